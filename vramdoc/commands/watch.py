"""``vramdoc watch RUN_DIR``: follow a training run recorded by VramdocCallback / Recorder."""

from __future__ import annotations

import argparse
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
"""


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


def run(args: argparse.Namespace) -> int:
    from vramdoc.monitor.follower import events_path
    from vramdoc.monitor.sources import detect

    path = events_path(args.run_dir)
    source = detect(args.run_dir)  # None / "events": vramdoc's log; else a tracker format
    if args.json and not args.once:
        raise UsageError("--json needs --once", "vramdoc watch RUN_DIR --once --json")
    if args.interval <= 0:
        raise UsageError(f"--interval {args.interval} must be larger than zero",
                         "e.g. --interval 0.5")
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
    from vramdoc.monitor.run import RunState
    from vramdoc.monitor.schema import encode_value

    if not path.is_file():
        raise UsageError(f"no event log at {path}", NO_RUN_HINT)
    follower = Follower(path)
    state = RunState.with_rules()
    state.feed(follower.read_all())
    summary = state.summary()
    summary["file"] = {"path": str(path), "status": follower.status.value,
                       "corrupt_lines": follower.corrupt, "truncated_lines": follower.truncated,
                       "foreign_lines": follower.foreign}
    if follower.status is FollowerStatus.FOREIGN:
        raise UsageError(follower.describe(), "upgrade vramdoc to read this run")
    errors = sum(1 for a in state.alerts if a.severity == "error")
    if as_json:
        json.dump(encode_value(summary), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(_text(run_dir, summary, follower.describe()))
    return EXIT_DOES_NOT_FIT if errors else EXIT_OK


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
    summary["file"] = {"path": str(run_dir), "status": follower.status.value}
    errors = sum(1 for a in state.alerts if a.severity == "error")
    if as_json:
        json.dump(encode_value(summary), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(_text(run_dir, summary, follower.describe()))
    return EXIT_DOES_NOT_FIT if errors else EXIT_OK


def _num(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float) and not math.isfinite(v):
        return "NaN" if math.isnan(v) else "Inf"
    return f"{v:.4g}"


def _text(run_dir: str, s: dict[str, Any], status: str) -> str:
    from vramdoc.units import format_bytes

    def size(v: Any) -> str:
        return format_bytes(v) if isinstance(v, int) else "-"

    plan = s.get("plan") or {}
    lines = [
        f"run        {run_dir} ({status})",
        f"steps      {s['steps']} (last {s['last_step']})" if s["steps"] else "steps      none yet",
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
