"""RunState: everything the watch knows about a run, built from its events.

Feed it events in file order (:meth:`RunState.feed`); it keeps the latest header (plan,
device, arguments), the per-step series the charts draw, Trainer's own logs, notes, and the
alerts the W rules raise, evaluated step by step on :class:`~vramdoc.monitor.context.ContextBuilder`
contexts. It imports neither torch nor textual: the TUI, ``vramdoc watch --once`` and tests all
read runs through it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from vramdoc.monitor.context import ContextBuilder
from vramdoc.monitor.schema import decode_float

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
    """A step event with its floats decoded (``"NaN"`` -> nan) and sub-records checked."""
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
    last_message: str = ""

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


@dataclass
class RunState:
    """The watch's model of a run. ``revision`` changes whenever anything changed."""

    rules: list[Any] = field(default_factory=list)
    rules_error: str = ""
    header: dict[str, Any] | None = None
    sessions: int = 0
    steps: list[dict[str, Any]] = field(default_factory=list)
    series: dict[str, list[float | None]] = field(default_factory=dict)
    step_numbers: list[int] = field(default_factory=list)
    logs: list[dict[str, Any]] = field(default_factory=list)
    notes: list[dict[str, Any]] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    ended: dict[str, Any] | None = None
    revision: int = 0
    last_context: dict[str, Any] = field(default_factory=dict)
    _ctx: ContextBuilder = field(default_factory=ContextBuilder)

    def __post_init__(self) -> None:
        self.series = {name: [] for name in SERIES}

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
        return self.steps[-1] if self.steps else None

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
        """The highest value of a ``mem`` figure over the run (None on CPU runs)."""
        values = [s["mem"][key] for s in self.steps if s.get("mem") and key in s["mem"]]
        return max(values) if values else None

    # --- feeding ---------------------------------------------------------------------------
    def feed(self, events: list[dict[str, Any]]) -> bool:
        """Take events in file order; True when anything changed."""
        for ev in events:
            kind = ev.get("kind")
            if kind == "header":
                self._on_header(ev)
            elif kind == "step":
                self._on_step(decode_step(ev))
            elif kind == "log":
                self.logs.append(ev)
                self._ctx.observe_log(ev)
            elif kind == "note":
                self.notes.append(ev)
            elif kind == "end":
                self.ended = ev
        if events:
            self.revision += 1
        return bool(events)

    def _on_header(self, ev: dict[str, Any]) -> None:
        self.header = ev
        self.sessions += 1
        self.ended = None
        self._ctx = ContextBuilder(ev)

    def _on_step(self, ev: dict[str, Any]) -> None:
        step = int(ev.get("step") or (self.step_numbers[-1] + 1 if self.step_numbers else 1))
        ev["step"] = step
        if self.step_numbers and step <= self.step_numbers[-1]:
            self._truncate(step)  # resumed from an earlier checkpoint: later steps are replaced
        # the step recorded before this one (a tracker source logs every logging_steps)
        prev = self.step_numbers[-1] if self.step_numbers else None
        self.steps.append(ev)
        self.step_numbers.append(step)
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
            self.series[name].append(row[name] if name in row else ev.get(name))
        context = self._ctx.push(ev)
        self.last_context = context
        if self.rules:
            self._alerts(step, context, prev)

    def _truncate(self, step: int) -> None:
        keep = sum(1 for s in self.step_numbers if s < step)
        del self.steps[keep:]
        del self.step_numbers[keep:]
        for values in self.series.values():
            del values[keep:]

    def _alerts(self, step: int, context: dict[str, Any], prev: int | None = None) -> None:
        from vramdoc.engine import evaluate

        for f in evaluate(self.rules, context):
            episode = next((a for a in reversed(self.alerts) if a.code == f.code), None)
            if episode is not None and (step - episode.last_step <= 1
                                        or episode.last_step == prev):
                episode.last_step = step
                episode.count += 1
                episode.last_message = f.message
                continue
            self.alerts.append(Alert(code=f.code, name=f.name, kind=f.kind,
                                     severity=f.severity, message=f.message, fix=f.fix,
                                     why=f.why, first_step=step, last_step=step,
                                     last_message=f.message))

    # --- summary ---------------------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        """What ``vramdoc watch --once --json`` prints: a run's state in one object."""
        latest = self.latest or {}
        losses = [v for v in self.series["loss"] if v is not None]
        finite = [v for v in losses if math.isfinite(v)]
        return {
            "steps": len(self.steps),
            "last_step": latest.get("step"),
            "ended": (self.ended or {}).get("reason"),
            "sessions": self.sessions,
            "device": self.device,
            "plan": self.plan,
            "loss_last": latest.get("loss"),
            "loss_min": min(finite) if finite else None,
            "nonfinite_losses": len(losses) - len(finite),
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
        }
