"""RunState: everything the watch knows about a run, built from its events.

Feed it events in file order (:meth:`RunState.feed`); it keeps the latest header (plan,
device, arguments), the per-step series the charts draw, Trainer's own logs, notes, and the
alerts the W rules raise, evaluated step by step on :class:`~vramdoc.monitor.context.ContextBuilder`
contexts. It imports neither torch nor textual: the TUI, ``vramdoc watch --once`` and tests all
read runs through it.

**Sessions.** Every header starts a session (one ``Recorder``, one ``train()``); the state
shows the latest and counts the earlier ones. Lines that name another session (two runs
writing to one folder at once) are skipped and counted, so two runs never mix into one chart.

**Step order.** Within a session steps are kept sorted by step number: a step that arrives
late is put in its place, a repeated step number replaces the earlier event of that number
(the later write wins; beyond the charts' window a repeat cannot be told from a late step and
is counted as one). The rules see steps in the order they were written, and only steps
that move the run forward: a late step is drawn, counted and summarised but never compared
with steps that came after it.

**Bounded memory.** The charts' window (:data:`CHART_WINDOW` steps), the notes and logs
(:data:`KEEP_EVENTS`) and the alert episodes (:data:`MAX_EPISODES` per rule; later firings
extend the last episode) are bounded; totals (step count, minimum loss, non-finite losses,
peaks) are kept incrementally over the whole session. Memory does not grow with the log.
"""

from __future__ import annotations

import ast
import bisect
import math
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vramdoc.monitor.context import ContextBuilder
from vramdoc.monitor.fastdecode import ColumnRun, DecodedStep, StepRun
from vramdoc.monitor.header_args import clean_args
from vramdoc.monitor.outcome import Outcome, from_end, without_end
from vramdoc.monitor.schema import decode_float

CHART_WINDOW = 2048  # steps kept at full resolution (charts, panels)
KEEP_EVENTS = 200  # logs and notes kept
MAX_EPISODES = 50  # alert episodes per rule; later firings extend the last one
KEEP_SESSIONS = 20  # summaries of earlier sessions kept
_PEAK_KEYS = ("peak_allocated_bytes", "peak_reserved_bytes", "allocated_bytes",
              "reserved_bytes")

# Step fields that are floats in the file (non-finite ones written as strings).
_FLOAT_FIELDS = ("loss", "grad_norm", "lr", "loss_scale", "step_time_s", "tokens_per_s",
                 "samples_per_s", "epoch")
_GPU_FLOATS = ("util_pct", "temp_c", "power_w")

# Series the charts draw: name -> how to read it from a decoded step event.
SERIES = ("loss", "grad_norm", "lr", "tokens_per_s", "samples_per_s", "step_time_s",
          "loss_scale", "mem_allocated_bytes", "mem_reserved_bytes",
          "mem_peak_allocated_bytes", "mem_peak_reserved_bytes", "gpu_used_bytes",
          "gpu_util_pct")


def decode_step(ev: dict[str, Any]) -> dict[str, Any]:
    """A step event with its floats decoded (``"NaN"`` -> nan) and sub-records checked.

    A :class:`~vramdoc.monitor.fastdecode.DecodedStep` (the follower's fast path) is already
    decoded and is returned as it is.
    """
    if type(ev) is DecodedStep:
        return ev
    out = dict(ev)
    for key in _FLOAT_FIELDS:
        out[key] = decode_float(ev.get(key))
    mem = ev.get("mem")
    out["mem"] = ({k: v for k, v in mem.items() if isinstance(v, int) and not isinstance(v, bool)}
                  if isinstance(mem, dict) else None)
    gpu = ev.get("gpu")
    if isinstance(gpu, dict):
        g = dict(gpu)
        for key in _GPU_FLOATS:
            g[key] = decode_float(gpu.get(key))
        out["gpu"] = g
    else:
        out["gpu"] = None
    return out


@dataclass
class Alert:
    """One alert episode: a rule firing on consecutive steps counts once."""

    code: str
    name: str
    kind: str
    severity: str
    message: str
    fix: str
    why: str
    first_step: int
    last_step: int
    count: int = 1
    # the latest firing's message: formatted when read, since a rule that holds on most steps
    # of a long log would otherwise format a message per step that nobody reads
    _last: tuple[str, dict[str, Any]] | None = field(default=None, repr=False, compare=False)

    @property
    def last_message(self) -> str:
        if self._last is None:
            return self.message
        from vramdoc.engine import format_message

        template, context = self._last
        if "limit_text" not in context:  # the display strings are added when first needed
            ContextBuilder.add_texts(context)
        return format_message(template, context)

    @property
    def steps_text(self) -> str:
        if self.first_step == self.last_step:
            return f"step {self.first_step}"
        return f"steps {self.first_step}-{self.last_step}"


def load_alert_rules() -> tuple[list[Any], str]:
    """The W rules, or ([], why not): the watch shows data even when rules cannot load."""
    try:
        from vramdoc.engine import load_rules

        return list(load_rules(scope="watch")), ""
    except Exception as exc:  # noqa: BLE001 - engine missing or a bad rule file
        text = getattr(exc, "message", None) or str(exc)
        return [], f"alert rules unavailable: {text.splitlines()[0]}"


def live_rules(rules: list[Any], constants: dict[str, Any]) -> list[Any]:
    """``rules`` less those that cannot fire in a session with these header ``constants``.

    A rule whose condition is ``A and B and ...`` with one part that reads only header-fixed
    names (``fp16 and ...`` on a bf16 run, ``lr_scheduler_type == 'constant' and ...``) and is
    false (or raises) on them is false (or raises, which does not fire) at every step of the
    session: it is left out of the per-step evaluation. Same alerts, fewer conditions per step.
    """
    from vramdoc.engine.conditions import (
        compiled_condition,
        evaluate_condition,
        parse_condition,
    )

    live = []
    for rule in rules:
        tree = rule.tree
        parts = tree.values if isinstance(tree, ast.BoolOp) and isinstance(tree.op, ast.And) \
            else [tree]
        silent = False
        for part in parts:
            text = ast.unparse(part)
            _, names, problems = parse_condition(text)
            if problems or not names or not set(names) <= constants.keys():
                continue
            values = {n: constants[n] for n in names}
            try:
                fn = compiled_condition(text, part)
                value = fn(values) if fn is not None else evaluate_condition(part, values, text)
                silent = not value
            except Exception:  # noqa: BLE001 - raises at every step: never fires
                silent = True
            if silent:
                break
        if not silent:
            live.append(rule)
    return live


@dataclass
class RunState:
    """The watch's model of a run's latest session. ``revision`` changes with anything."""

    rules: list[Any] = field(default_factory=list)
    rules_error: str = ""
    header: dict[str, Any] | None = None
    session: str | None = None  # the latest session's id (None in logs without ids)
    sessions: int = 0  # headers seen (the latest session included)
    skipped_sessions: int = 0  # sessions before the part of the file that was read
    earlier: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=KEEP_SESSIONS))
    steps: list[dict[str, Any]] = field(default_factory=list)  # window, sorted by step
    step_count: int = 0  # steps of the session (the window holds the last CHART_WINDOW)
    out_of_order: int = 0  # steps that arrived after a later step (put in their place)
    duplicates: int = 0  # step numbers written again (the later event kept)
    other_session_lines: int = 0  # lines of another session, skipped
    logs: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=KEEP_EVENTS))
    notes: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=KEEP_EVENTS))
    alerts: list[Alert] = field(default_factory=list)
    ended: dict[str, Any] | None = None
    last_error: dict[str, Any] | None = None  # the last exception note of the session
    revision: int = 0
    failed_events: int = 0  # events that raised while being taken in (skipped)
    failed_reason: str = ""
    header_problems: list[str] = field(default_factory=list)  # header args not used as given
    last_context: dict[str, Any] = field(default_factory=dict)
    _ctx: ContextBuilder = field(default_factory=ContextBuilder)
    _max_step: int | None = None
    _loss_min: float | None = None
    _nonfinite: int = 0
    _peaks: dict[str, int] = field(default_factory=dict)
    _episodes: dict[str, int] = field(default_factory=dict)
    _latest_alert: dict[str, Alert] = field(default_factory=dict)  # code -> its last episode
    _live: list[Any] | None = None  # the rules that can fire in this session (live_rules)
    _vector: Any = None  # the live rules over columns (batch.VectorRules); False: not possible
    batched_steps: int = 0  # steps taken in runs (vramdoc.monitor.batch), for tests and figures
    # read_to_end: a ColumnRun's rows that make the whole chart window, decoded into events
    # only when anything reads the window (_settle_window); a later run usually replaces them
    _window_run: Any = None  # (ColumnRun, first row, end row) or None
    _defer_window: bool = False

    @classmethod
    def with_rules(cls) -> RunState:
        rules, error = load_alert_rules()
        return cls(rules=rules, rules_error=error)

    # --- views -----------------------------------------------------------------------------
    @property
    def plan(self) -> dict[str, Any] | None:
        return (self.header or {}).get("plan")

    @property
    def device(self) -> dict[str, Any]:
        return (self.header or {}).get("device") or {}

    @property
    def args(self) -> dict[str, Any]:
        return (self.header or {}).get("args") or {}

    @property
    def latest(self) -> dict[str, Any] | None:
        """The step event of the highest step number."""
        return self.steps[-1] if self.steps else None

    @property
    def step_numbers(self) -> list[int]:
        """Step numbers of the window, ascending."""
        return [s["step"] for s in self.steps]

    @property
    def series(self) -> dict[str, list[float | None]]:
        """The charts' series over the window, aligned with :attr:`step_numbers`."""
        out: dict[str, list[float | None]] = {name: [] for name in SERIES}
        for ev in self.steps:
            mem = ev.get("mem") or {}
            gpu = ev.get("gpu") or {}
            row = {
                "mem_allocated_bytes": mem.get("allocated_bytes"),
                "mem_reserved_bytes": mem.get("reserved_bytes"),
                "mem_peak_allocated_bytes": mem.get("peak_allocated_bytes"),
                "mem_peak_reserved_bytes": mem.get("peak_reserved_bytes"),
                "gpu_used_bytes": gpu.get("used_bytes"),
                "gpu_util_pct": gpu.get("util_pct"),
            }
            for name in SERIES:
                out[name].append(row[name] if name in row else ev.get(name))
        return out

    @property
    def latest_gpu(self) -> dict[str, Any] | None:
        for ev in reversed(self.steps[-50:]):
            if ev.get("gpu"):
                return ev["gpu"]  # type: ignore[no-any-return]
        return None

    @property
    def limit_bytes(self) -> int | None:
        return self._ctx.limit_bytes(self.latest_gpu)

    def peak(self, key: str) -> int | None:
        """The highest value of a ``mem`` figure over the session (None on CPU runs)."""
        return self._peaks.get(key)

    def outcome(self, path: Path | None = None, now: float | None = None) -> Outcome:
        """How the session ended, or whether it still runs (see :mod:`~.outcome`)."""
        last = self._max_step
        if self.ended is not None:
            return from_end(self.ended, last, self.last_error)
        return without_end(self.header, path, last, now=now)

    # --- feeding ---------------------------------------------------------------------------
    def feed(self, events: list[dict[str, Any]]) -> bool:
        """Take events in file order; True when anything changed.

        Events are expected to have passed :func:`vramdoc.monitor.events.check_event` (the
        follower does it). One that still breaks something is counted in
        :attr:`failed_events` and skipped: a watch never dies on a line.
        """
        for ev in events:
            if type(ev) is StepRun or type(ev) is ColumnRun:  # Follower.poll_runs
                self._feed_run(ev)
                continue
            self._settle_window()
            try:
                self._feed_one(ev)
            except Exception as exc:  # noqa: BLE001 - the line, not the watch, is at fault
                self.failed_events += 1
                self.failed_reason = f"{type(exc).__name__}: {exc}"[:200]
        if not self._defer_window:
            self._settle_window()
        if events:
            self.revision += 1
        return bool(events)

    def _settle_window(self) -> None:
        """Decode the chart window's rows a ColumnRun left pending (see ``_window_run``)."""
        pending = self._window_run
        if pending is not None:
            self._window_run = None
            run, a, b = pending
            events = []
            for k in range(a, b):  # lines the run's decoder took: the fast decoder takes them
                try:
                    events.append(run.event(k))
                except Exception as exc:  # noqa: BLE001 - as in feed(): never die on a line
                    self.failed_events += 1
                    self.failed_reason = f"{type(exc).__name__}: {exc}"[:200]
            self.steps = self.steps + events

    def _feed_one(self, ev: dict[str, Any]) -> None:
        kind = ev.get("kind")
        if kind == "header":
            self._on_header(ev)
            return
        sid = ev.get("session")
        if sid is not None and self.session is not None and sid != self.session:
            self.other_session_lines += 1
            return
        if kind == "step":
            self._on_step(decode_step(ev))
        elif kind == "log":
            self.logs.append(ev)
            self._ctx.observe_log(ev)
        elif kind == "note":
            self.notes.append(ev)
            if ev.get("what") == "exception" and isinstance(ev.get("error"), dict):
                self.last_error = ev["error"]
        elif kind == "end":
            self.ended = ev

    def _on_header(self, ev: dict[str, Any]) -> None:
        if self.header is not None or self.steps:
            self.earlier.append(self._session_record())
        if "args" in ev:  # a value the alerts cannot read: the default, named (header_args)
            args, self.header_problems = clean_args(ev["args"])
            ev = {**ev, "args": args}
        else:
            self.header_problems = []
        self.header = ev
        self.session = ev.get("session") if isinstance(ev.get("session"), str) else None
        self.sessions += 1
        self.steps = []
        self.step_count = self.out_of_order = self.duplicates = self.other_session_lines = 0
        self.logs.clear()
        self.notes.clear()
        self.alerts = []
        self.ended = None
        self.last_error = None
        self.last_context = {}
        self._ctx = ContextBuilder(ev)
        self._max_step = self._loss_min = None
        self._nonfinite = 0
        self._peaks = {}
        self._episodes = {}
        self._latest_alert = {}
        self._live = None
        self._vector = None

    def _session_record(self) -> dict[str, Any]:
        return {"session": self.session, "steps": self.step_count, "last_step": self._max_step,
                "status": self.outcome().text if self.ended is not None else "no end event"}

    def _on_step(self, ev: dict[str, Any]) -> None:
        raw = ev.get("step")
        step = raw if isinstance(raw, int) and not isinstance(raw, bool) and raw >= 0 else (
            (self._max_step or 0) + 1)
        ev["step"] = step
        if self._max_step is not None and step <= self._max_step:
            self._late_step(step, ev)
            return
        # the step recorded before this one (a tracker source logs every logging_steps)
        prev = self._max_step
        self._max_step = step
        self.step_count += 1
        self.steps.append(ev)
        self._account(ev, +1)
        if len(self.steps) > CHART_WINDOW + CHART_WINDOW // 4:
            del self.steps[:len(self.steps) - CHART_WINDOW]
        context = self._ctx.push(ev, texts=False)
        self.last_context = context
        if self.rules:
            self._alerts(step, context, prev)

    def _feed_run(self, run: StepRun | ColumnRun) -> None:
        """Step events decoded as a run: the longest stretches that move the run forward in
        this session go through :func:`vramdoc.monitor.batch.take_run`; any other step (late,
        repeated, another session's) and any stretch the batch path does not take are fed
        one by one, as :meth:`feed` feeds events."""
        from vramdoc.monitor.fastdecode import run_decoder

        try:
            from vramdoc.monitor.batch import take_run
        except ImportError:  # no numpy: every step goes one by one
            def take_run(*_: Any) -> bool:
                return False
        decoders = run_decoder()
        assert decoders is not None  # a StepRun was decoded by it
        to_event = decoders[1]
        columns = type(run) is ColumnRun
        i, n = 0, len(run)
        while i < n:
            j = self._forward_stretch(run, i)
            if j - i >= 32 and take_run(self, run[i:j], to_event):
                i = j
                continue
            self._settle_window()
            for k in range(i, max(j, i + 1)):
                try:
                    self._feed_one(run.event(k) if columns else to_event(run[k]))
                except Exception as exc:  # noqa: BLE001 - as in feed()
                    self.failed_events += 1
                    self.failed_reason = f"{type(exc).__name__}: {exc}"[:200]
            i = max(j, i + 1)

    def _forward_stretch(self, run: StepRun, i: int) -> int:
        """End of the stretch from ``i`` of steps of this session with rising step numbers
        above every step seen (``i`` itself when ``run[i]`` is not one)."""
        last = self._max_step if self._max_step is not None else -1
        session = self.session
        j, n = i, len(run)
        if type(run) is ColumnRun:
            return self._forward_columns(run, i, last)
        if i == 0:  # the usual case at once: one session, steps rising
            steps = [s.step for s in run]
            if None not in steps and steps[0] > last and \
                    all(map(int.__lt__, steps, steps[1:])) and \
                    (session is None or {s.session for s in run} <= {session, None}):
                return n
        while j < n:
            s = run[j]
            step = s.step
            if step is None or step <= last or (session is not None and s.session is not None
                                                and s.session != session):
                break
            last = step
            j += 1
        return j

    def _forward_columns(self, run: ColumnRun, i: int, last: int) -> int:
        """:meth:`_forward_stretch` over a ColumnRun's step column (nan: no step number)."""
        import numpy as np

        steps = run.cols["step"][i:]
        session = self.session
        # a row breaks the stretch when it has no step number (nan), does not rise above the
        # one before (the first: above every step seen), or names another session
        prev = np.empty_like(steps)
        if len(steps):
            prev[0] = last
            prev[1:] = steps[:-1]
        with np.errstate(invalid="ignore"):
            bad = ~(steps > prev)  # nan compares False
        if session is not None:
            sessions = run.sessions[i:]
            if set(sessions) - {session, None}:
                bad |= np.array([s is not None and s != session for s in sessions], dtype=bool)
        cut = np.flatnonzero(bad)
        return i + (int(cut[0]) if len(cut) else len(steps))

    def _late_step(self, step: int, ev: dict[str, Any]) -> None:
        """A step number at or below the highest seen: place it, or replace its twin."""
        i = bisect.bisect_left(self.steps, step, key=lambda s: s["step"])
        if i < len(self.steps) and self.steps[i]["step"] == step:
            self.duplicates += 1
            self._account(self.steps[i], -1)
            self.steps[i] = ev
            self._account(ev, +1)
            return
        self.out_of_order += 1
        self.step_count += 1
        self._account(ev, +1)
        if i > 0 or len(self.steps) < CHART_WINDOW:
            self.steps.insert(i, ev)  # else: older than the window, summarised only

    def _account(self, ev: dict[str, Any], sign: int) -> None:
        """Whole-session totals; ``sign`` -1 takes back a replaced step (counts only)."""
        loss = ev.get("loss")
        if loss is not None and not math.isfinite(loss):
            self._nonfinite += sign
        if sign < 0:
            return
        if loss is not None and math.isfinite(loss):
            self._loss_min = loss if self._loss_min is None else min(self._loss_min, loss)
        mem = ev.get("mem")
        if mem:
            for key in _PEAK_KEYS:
                v = mem.get(key)
                if v is not None and v > self._peaks.get(key, -1):
                    self._peaks[key] = v

    def _alerts(self, step: int, context: dict[str, Any], prev: int | None = None) -> None:
        from vramdoc.engine import finding, holding

        if self._live is None:
            self._live = live_rules(self.rules, self._ctx.constants())
        fired = holding(self._live, context)
        if not fired:
            return
        latest = self._latest_alert
        for rule in fired:
            code = rule.code
            episode = latest.get(code)
            if episode is not None and (step - episode.last_step <= 1
                                        or episode.last_step == prev
                                        or self._episodes.get(code, 0) >= MAX_EPISODES):
                # extending an episode needs only the message, formatted when read (with the
                # context's display strings, added then: see Alert.last_message)
                episode.last_step = step
                episode.count += 1
                episode._last = (rule.message, context)
                continue
            if "limit_text" not in context:
                self._ctx.add_texts(context)
            f = finding(rule, context)
            self._episodes[f.code] = self._episodes.get(f.code, 0) + 1
            alert = Alert(code=f.code, name=f.name, kind=f.kind, severity=f.severity,
                          message=f.message, fix=f.fix, why=f.why, first_step=step,
                          last_step=step)
            self.alerts.append(alert)
            latest[code] = alert

    # --- summary ---------------------------------------------------------------------------
    def summary(self, path: Path | None = None) -> dict[str, Any]:
        """What ``vramdoc watch --once --json`` prints: a run's state in one object."""
        latest = self.latest or {}
        return {
            "steps": self.step_count,
            "last_step": latest.get("step"),
            "ended": (self.ended or {}).get("reason"),
            "status": self.outcome(path).as_dict(),
            "sessions": self.sessions + self.skipped_sessions,
            "session": self.session,
            "earlier_sessions": self.sessions + self.skipped_sessions - 1
            if self.sessions else 0,
            "out_of_order_steps": self.out_of_order,
            "duplicate_steps": self.duplicates,
            "other_session_lines": self.other_session_lines,
            "device": self.device,
            "plan": self.plan,
            "loss_last": latest.get("loss"),
            "loss_min": self._loss_min,
            "nonfinite_losses": self._nonfinite,
            "peak_allocated_bytes": self.peak("peak_allocated_bytes"),
            "peak_reserved_bytes": self.peak("peak_reserved_bytes"),
            "limit_bytes": self.limit_bytes,
            "alerts": [
                {"code": a.code, "name": a.name, "severity": a.severity, "kind": a.kind,
                 "first_step": a.first_step, "last_step": a.last_step, "count": a.count,
                 "message": a.message, "fix": a.fix}
                for a in self.alerts
            ],
            "rules_error": self.rules_error or None,
            "failed_events": self.failed_events,
            # header arguments not used as given (only when there are any)
            **({"header_problems": list(self.header_problems)} if self.header_problems
               else {}),
        }
