"""``vramdoc watch RUN_DIR``: follow a training run recorded by VramdocCallback / Recorder."""

from __future__ import annotations

import argparse
import gc
import json
import math
import sys
from pathlib import Path
from typing import Any

from vramdoc.errors import EXIT_DOES_NOT_FIT, EXIT_OK, MissingDependencyError, UsageError

NAME = "watch"
HELP = "watch a training run live (or replay it): memory vs plan, loss, alerts"
ORDER = 40
DESCRIPTION = """\
Open a terminal monitor of a training run recorded with vramdoc's Trainer callback:

    from vramdoc.monitor import VramdocCallback
    trainer = Trainer(..., callbacks=[VramdocCallback("runs/exp1", plan="plan.json")])

    vramdoc watch runs/exp1              # live while it trains, or replay a finished run
    vramdoc watch runs/exp1 --no-follow  # read what is there, do not wait for more
    vramdoc watch runs/exp1 --once       # print a text summary and the alerts, no UI

Runs recorded by others are read too (the reader is picked from the path):

    vramdoc watch outputs/my-run             # Trainer output dir (its latest checkpoint)
    vramdoc watch outputs/my-run/runs/Dec02_10-00-00_host   # TensorBoard event files (extra tb)
    vramdoc watch wandb/offline-run-20261202_100000-abc123  # W&B offline run (extra wandb)
    vramdoc watch mlruns/0/<run-id>          # MLflow local store run

Keys: q quit, p pause, n / N next / previous alert, ? help.
Exit status of --once: 0 without error alerts, 1 with one or more.

The summary's status says how the run ended: finished, "crashed at step N: Type: message",
interrupted (SIGTERM, Ctrl-C, or killed: no end event and the process is gone), or running.
A log holding several runs (sessions) shows the latest and says how many came before.
"""

# --interval bounds: faster than 20 reads a second only burns CPU; slower than an hour is a typo.
INTERVAL_MIN_S = 0.05
INTERVAL_MAX_S = 3600.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR",
                        help="the run directory (holding events.jsonl) or the events file; or a "
                             "Trainer output dir (checkpoint-*/trainer_state.json), an MLflow "
                             "run folder (mlruns/<exp>/<run-id>), a TensorBoard log folder "
                             "(extra tb) or a W&B offline run folder (extra wandb)")
    parser.add_argument("--once", action="store_true",
                        help="print a summary and the alerts of what is recorded now, then exit")
    parser.add_argument("--json", action="store_true",
                        help="with --once: print the summary as JSON on stdout")
    parser.add_argument("--no-follow", action="store_true",
                        help="read the file to its end and stop following it")
    parser.add_argument("--interval", type=float, default=0.5, metavar="SECONDS",
                        help="seconds between reads of a live file (default 0.5)")


NO_RUN_HINT = ("record the run with VramdocCallback(run_dir) or Recorder(run_dir), or give a "
               "Trainer output dir, mlruns/<exp>/<run-id>, a TensorBoard log folder or a "
               "wandb/offline-run-* folder")


def check_options(args: argparse.Namespace) -> None:
    """Every option's value, before anything is read (UsageError: exit 2, one message)."""
    if args.json and not args.once:
        raise UsageError("--json needs --once", "vramdoc watch RUN_DIR --once --json")
    interval = args.interval
    if not math.isfinite(interval) or not INTERVAL_MIN_S <= interval <= INTERVAL_MAX_S:
        raise UsageError(f"--interval {interval} is not a number of seconds between "
                         f"{INTERVAL_MIN_S:g} and {INTERVAL_MAX_S:g}", "e.g. --interval 0.5")
    run_dir = args.run_dir
    if not run_dir.strip() or "\x00" in run_dir:
        raise UsageError(f"RUN_DIR {run_dir!r:.60} is not a path",
                         "give the run directory that holds events.jsonl")


def resolve_log(run_dir: str) -> Path:
    """The event log RUN_DIR names (existing or not); UsageError when the path is unusable."""
    from vramdoc.monitor.follower import events_path

    try:
        path = events_path(run_dir)
        path.is_file()
    except (OSError, ValueError) as exc:
        why = getattr(exc, "strerror", None) or str(exc)
        raise UsageError(f"cannot use RUN_DIR {run_dir!r:.80}: {why}",
                         "give the run directory that holds events.jsonl") from None
    return path


def run(args: argparse.Namespace) -> int:
    from vramdoc.monitor.sources import detect

    check_options(args)
    path = resolve_log(args.run_dir)
    source = detect(args.run_dir)  # None / "events": vramdoc's log; else a tracker format
    if args.once:
        if source not in (None, "events"):
            return _once_source(args.run_dir, source, as_json=args.json)
        return _once(args.run_dir, path, as_json=args.json)
    try:
        import textual  # noqa: F401
    except ImportError as exc:
        raise MissingDependencyError("textual", "tui", "vramdoc watch") from exc
    if source not in (None, "events"):
        from vramdoc.monitor.sources import read_events

        read_events(args.run_dir, source)  # unreadable or a missing extra: say so before the UI
    elif args.no_follow and not path.is_file():
        raise UsageError(f"no event log at {path}", NO_RUN_HINT)
    elif not path.is_file():  # a run about to start: the watch waits for its first line
        print(f"waiting for {path} (q quits)", file=sys.stderr)
    from vramdoc.tui import make_app

    make_app(args.run_dir, follow=not args.no_follow, poll_interval=args.interval).run()
    return EXIT_OK


def _once(run_dir: str, path: Path, *, as_json: bool) -> int:
    from vramdoc.monitor.follower import Follower, FollowerStatus
    from vramdoc.monitor.outcome import printable
    from vramdoc.monitor.run import RunState
    from vramdoc.monitor.schema import encode_value

    if not path.is_file():
        raise UsageError(f"no event log at {path}", NO_RUN_HINT)
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}",
                         "check the file's permissions") from None
    follower = Follower(path)
    state = RunState.with_rules()
    state.skipped_sessions = follower.skip_to_last_session()
    read_to_end(follower, state)
    summary = state.summary(path)
    summary["file"] = {"path": str(path), "status": follower.status.value,
                       "corrupt_lines": follower.corrupt, "truncated_lines": follower.truncated,
                       "foreign_lines": follower.foreign, "invalid_lines": follower.invalid,
                       "first_invalid": follower.first_invalid or None,
                       "oversized_lines": follower.oversized}
    if follower.status is FollowerStatus.FOREIGN:
        raise UsageError(follower.describe(), "upgrade vramdoc to read this run")
    errors = sum(1 for a in state.alerts if a.severity == "error")
    if as_json:
        json.dump(encode_value(summary), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        problems = follower.problems() + state.header_problems
        sys.stdout.write(printable(_text(run_dir, summary, problems)))
    return EXIT_DOES_NOT_FIT if errors else EXIT_OK


def read_to_end(follower: Any, state: Any) -> None:
    """Feed ``state`` the log in slices up to its current end (memory: one slice at a time).

    Runs of the recorder's step lines are decoded and taken in at once
    (:meth:`~vramdoc.monitor.follower.Follower.poll_runs`, :mod:`vramdoc.monitor.batch`);
    the result is the same as feeding every event of :meth:`Follower.poll` one by one.
    """
    # The cyclic garbage collector is paused while reading: the decoded steps and columns
    # form no cycles, and its passes over ~26,000 new objects per slice cost a fifth of the
    # time; whatever cyclic garbage there is waits for the end (memory stays bounded).
    paused = gc.isenabled()
    gc.disable()
    # the chart window's events are decoded once, at the end, not after every slice
    defer = hasattr(state, "_settle_window")
    if defer:
        state._defer_window = True
    try:
        while True:
            before = follower.offset
            state.feed(follower.poll_runs())
            if follower.at_end() or follower.offset == before:  # the end, or unreadable now
                break
        state.feed(follower.finish())
    finally:
        if defer:
            state._defer_window = False
            state._settle_window()
        if paused:
            gc.enable()


def _sessions_line(s: dict[str, Any]) -> list[str]:
    if s["sessions"] <= 1:
        return []
    return [f"sessions   {s['sessions']} in this log; this is the latest "
            f"({s['earlier_sessions']} earlier, not shown)"]


def _order_line(s: dict[str, Any]) -> list[str]:
    lines = []
    order = []
    if s["out_of_order_steps"]:
        order.append(f"{s['out_of_order_steps']} step(s) arrived out of order "
                     "(placed by step number)")
    if s["duplicate_steps"]:
        order.append(f"{s['duplicate_steps']} step number(s) written twice (the later kept)")
    if s["other_session_lines"]:
        order.append(f"{s['other_session_lines']} line(s) of another session skipped "
                     "(two runs writing to one folder)")
    if order:
        lines.append("order      " + "; ".join(order))
    return lines


def _once_source(run_dir: str, kind: str, *, as_json: bool) -> int:
    """``--once`` for a tracker source (trainer_state.json, MLflow, TensorBoard, W&B)."""
    from vramdoc.monitor.run import RunState
    from vramdoc.monitor.schema import encode_value
    from vramdoc.monitor.sources import SourceFollower

    follower = SourceFollower(run_dir, kind)
    state = RunState.with_rules()
    state.feed(follower.read_all())  # raises a VramdocError (exit 2) on unreadable input
    summary = state.summary()
    summary["source"] = kind
    summary["file"] = {"path": str(run_dir), "status": follower.status.value,
                       "problems": follower.problems()}
    errors = sum(1 for a in state.alerts if a.severity == "error")
    if as_json:
        json.dump(encode_value(summary), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        from vramdoc.monitor.outcome import printable

        problems = follower.problems() + state.header_problems
        sys.stdout.write(printable(_text(run_dir, summary, problems)))
    return EXIT_DOES_NOT_FIT if errors else EXIT_OK


def _num(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float) and not math.isfinite(v):
        return "NaN" if math.isnan(v) else "Inf"
    return f"{v:.4g}"


def _text(run_dir: str, s: dict[str, Any], problems: list[str]) -> str:
    from vramdoc.units import format_bytes

    def size(v: Any) -> str:
        return format_bytes(v) if isinstance(v, int) else "-"

    plan = s.get("plan") or {}
    lines = [
        f"run        {run_dir}",
        *([f"source     {s['source'].replace('_', ' ')}"] if s.get("source") else []),
        f"status     {s['status']['text']}",
        *_sessions_line(s),
        f"steps      {s['steps']} (last {s['last_step']})" if s["steps"] else "steps      none yet",
        *_order_line(s),
        f"loss       last {_num(s['loss_last'])}, min {_num(s['loss_min'])}, "
        f"{s['nonfinite_losses']} non-finite",
    ]
    if s.get("source"):
        lines.append(f"memory     not recorded ({s['source'].replace('_', ' ')} logs hold no "
                     "memory figures; VramdocCallback records them)")
    elif s["peak_allocated_bytes"] is None and (s.get("device") or {}).get("type") == "cpu":
        lines.append(f"memory     not measured (the run trained on CPU), GPU limit "
                     f"{size(s['limit_bytes'])}")
    else:
        lines.append(f"memory     peak allocated {size(s['peak_allocated_bytes'])}, peak reserved "
                     f"{size(s['peak_reserved_bytes'])}, GPU limit {size(s['limit_bytes'])}")
    if plan:
        lines.append(f"plan       peak allocated {size(plan.get('peak_allocated_bytes'))}"
                     + (f" at {plan['peak_phase']}" if plan.get("peak_phase") else ""))
    if problems:
        lines.append("file       " + "; ".join(problems))
    if s.get("rules_error"):
        lines.append(f"alerts     {s['rules_error']}")
    elif not s["alerts"]:
        lines.append("alerts     none")
    else:
        lines.append(f"alerts     {len(s['alerts'])}")
        for a in s["alerts"]:
            span = (f"step {a['first_step']}" if a["first_step"] == a["last_step"]
                    else f"steps {a['first_step']}-{a['last_step']}")
            lines.append(f"  {a['code']} {a['severity']:<7} {a['name']} ({span}): {a['message']}")
            lines.append(f"       fix: {a['fix']}")
    return "\n".join(lines) + "\n"
