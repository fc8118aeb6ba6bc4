"""The watch context: the names a W rule's ``when`` reads, computed per recorded step.

Declared with their meanings in ``rules/_contexts/watch.yaml``; this module is the one place
they are computed, from the step events of one session and its header. Windowed figures use
the previous :data:`WINDOW` steps (not the current one), so a spike is compared with what
came before it. Every name is always present; a figure that cannot be known (no CUDA, no
plan, too few steps) is None and rules test for it (``x is not None and ...``).
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

from vramdoc.monitor.curves import CurveTracker
from vramdoc.units import format_bytes

isfinite = math.isfinite

WINDOW = 20  # steps of history for medians and trends
RECENT = 5  # steps that make up "now" for throughput (one slow step is not a stall)


def _finite(x: float | None) -> bool:
    return x is not None and math.isfinite(x)


_INF = (math.inf, -math.inf)


def _median(values: Any) -> float | None:
    """``statistics.median`` of the finite values (None when there are none).

    Its steps, inlined (sort, middle value or the mean of the two middle ones, computed as
    ``(a + b) / 2``): this runs three times per step of a log of millions.
    """
    # Inline finiteness test (v == v is False for NaN).
    vals = [v for v in values if v is not None and v == v and v not in _INF]
    if not vals:
        return None
    vals.sort()
    n = len(vals)
    i = n // 2
    return vals[i] if n % 2 else (vals[i - 1] + vals[i]) / 2


def _ratio(a: float | None, b: float | None) -> float | None:
    # _finite inlined, the same tests in the same order
    if a is None or not isfinite(a) or b is None or not isfinite(b) or not b:
        return None
    return a / b


def _slope(points: list[tuple[int, float]]) -> float | None:
    """Least-squares slope of y over x (bytes per step).

    ``sum((x - mx) * (y - my)) / sum((x - mx) ** 2)``, with the same ``sum()`` calls over lists
    (not generators, which cost more than the additions on a 20-point window).
    """
    n = len(points)
    if n < 3:
        return None
    xs, ys = zip(*points, strict=True)
    mx = sum(xs) / n
    my = sum(ys) / n
    dxs = [x - mx for x in xs]
    sxx = sum([d ** 2 for d in dxs])
    if sxx == 0:
        return None
    return sum([d * (y - my) for d, y in zip(dxs, ys, strict=True)]) / sxx


def _text(n: float | None) -> str:
    return format_bytes(n) if n is not None else "?"


class ContextBuilder:
    """Feed it the header, then each step event in order; get the context of each step."""

    def __init__(self, header: dict[str, Any] | None = None) -> None:
        header = header or {}
        args = header.get("args") or {}
        self.fp16 = bool(args.get("fp16"))
        self.bf16 = bool(args.get("bf16"))
        nan_filter = args.get("logging_nan_inf_filter")
        self.nan_filter = bool(nan_filter) if nan_filter is not None else None
        self.max_grad_norm = args.get("max_grad_norm")
        plan = header.get("plan") or {}
        device = header.get("device") or {}
        self.plan_peak = plan.get("peak_allocated_bytes")
        self.plan_reserved = plan.get("peak_reserved_bytes")
        self.device_total = device.get("total_bytes")
        self.plan_gpu_bytes = plan.get("gpu_memory_bytes")
        self.steps_seen = 0
        self.loss_hist: deque[float | None] = deque(maxlen=WINDOW)
        self.gn_hist: deque[float | None] = deque(maxlen=WINDOW)
        self.tput_hist: deque[float] = deque(maxlen=WINDOW + RECENT)
        self.alloc_hist: deque[tuple[int, float]] = deque(maxlen=WINDOW)
        self.frag_hist: deque[float] = deque(maxlen=WINDOW)
        self.skipped_streak = 0
        self.scale_max: float | None = None
        self.prev_retries: int | None = None
        # a tracker source logs Trainer's window-average loss, after logging_nan_inf_filter
        self.loss_logged = bool(header.get("loss_logged"))
        self.curves = CurveTracker(header)

    def constants(self) -> dict[str, Any]:
        """The context names whose value is fixed by the header: every step's context of
        this session holds these values (tests/monitor/test_rule_pruning.py checks it)."""
        c = self.curves
        return {"max_grad_norm": self.max_grad_norm, "nan_filter": self.nan_filter,
                "fp16": self.fp16, "bf16": self.bf16, "plan_peak_allocated_bytes": self.plan_peak,
                "loss_logged": self.loss_logged, "lr_scheduler_type": c.scheduler,
                "warmup_steps": c.warmup_steps, "max_steps": c.max_steps, "method": c.method,
                "lr_low": c.lr_low, "lr_high": c.lr_high, "clip_threshold": c.clip_threshold}

    def observe_log(self, ev: dict[str, Any]) -> None:
        """A ``log`` event (Trainer's logs, evaluations among them)."""
        self.curves.observe_log(ev)

    def limit_bytes(self, gpu: dict[str, Any] | None) -> int | None:
        """The GPU's memory: the device the run saw, else NVML, else the plan's GPU."""
        for value in (self.device_total, (gpu or {}).get("total_bytes"), self.plan_gpu_bytes):
            if value:
                return int(value)
        return None

    @staticmethod
    def add_texts(ctx: dict[str, Any]) -> dict[str, Any]:
        """Add the display strings messages print (``limit_text`` ...) to a context."""
        top = ctx["mem_peak_reserved_bytes"]
        if top is None:
            top = ctx["mem_reserved_bytes"]
        growth = ctx["mem_growth_bytes_per_step"]
        ctx.update({
            "limit_text": _text(ctx["gpu_limit_bytes"]),
            "peak_reserved_text": _text(top),
            "peak_allocated_text": _text(ctx["mem_peak_allocated_bytes"]),
            "plan_peak_text": _text(ctx["plan_peak_allocated_bytes"]),
            "frag_text": _text(ctx["frag_bytes"]),
            "growth_text": _text(growth) if growth is not None else "?",
        })
        return ctx

    def push(self, ev: dict[str, Any], texts: bool = True) -> dict[str, Any]:
        """The context of step event ``ev`` (decoded floats), then remember it.

        Args:
            texts: add the display strings (:meth:`add_texts`); the watch leaves them out and
                adds them only when a rule fires, since formatting sizes on every step of a
                long log costs more than the rules.
        """
        self.steps_seen += 1
        loss, gn = ev.get("loss"), ev.get("grad_norm")
        mem = ev.get("mem") or {}
        gpu = ev.get("gpu") or {}
        limit = self.limit_bytes(gpu)

        loss_median = _median(self.loss_hist)
        gn_median = _median(self.gn_hist)

        skipped = bool(ev.get("skipped"))
        self.skipped_streak = self.skipped_streak + 1 if skipped else 0
        scale = ev.get("loss_scale")
        if _finite(scale):
            self.scale_max = max(self.scale_max or 0.0, scale)  # type: ignore[arg-type]

        # throughput: tokens/s when counted, else steps/s; interrupted intervals excluded
        dt = ev.get("step_time_s")
        rate = ev.get("tokens_per_s") or (1.0 / dt if _finite(dt) and dt else None)
        tput_ratio = None
        if not ev.get("interrupted") and _finite(rate):
            self.tput_hist.append(rate)  # type: ignore[arg-type]
            hist = list(self.tput_hist)
            if len(hist) >= WINDOW // 2 + RECENT:
                tput_ratio = _ratio(_median(hist[-RECENT:]), _median(hist[:-RECENT]))

        allocated = mem.get("allocated_bytes")
        reserved = mem.get("reserved_bytes")
        peak_alloc = mem.get("peak_allocated_bytes")
        peak_res = mem.get("peak_reserved_bytes")
        retries = mem.get("alloc_retries")
        retries_new = (retries - self.prev_retries
                       if retries is not None and self.prev_retries is not None else 0)
        if retries is not None:
            self.prev_retries = retries
        frag = reserved - allocated if reserved is not None and allocated is not None else None
        frag_growth = frag - min(self.frag_hist) if frag is not None and self.frag_hist else None
        step = int(ev.get("step") or self.steps_seen)
        growth = _slope(list(self.alloc_hist) + ([(step, allocated)] if allocated else []))
        top = peak_res if peak_res is not None else reserved
        steps_to_limit = None
        # A trend under 1 MiB/step is noise in the allocator's rounding (2 MiB segments).
        if limit and top is not None and growth is not None and growth > 2**20:
            steps_to_limit = max(0.0, (limit - top) / growth)
        gpu_used = gpu.get("used_bytes")
        gpu_total = gpu.get("total_bytes")

        ctx: dict[str, Any] = {
            "step": step,
            "steps_seen": self.steps_seen,
            "loss": loss,
            "loss_nonfinite": loss is not None and not math.isfinite(loss),
            "loss_median": loss_median,
            "loss_ratio": _ratio(loss, loss_median) if loss_median and loss_median > 0 else None,
            "grad_norm": gn,
            "grad_norm_nonfinite": gn is not None and not math.isfinite(gn),
            "grad_norm_median": gn_median,
            "grad_norm_ratio": _ratio(gn, gn_median) if gn_median and gn_median > 0 else None,
            "max_grad_norm": self.max_grad_norm,
            "lr": ev.get("lr"),
            "nan_filter": self.nan_filter,
            "fp16": self.fp16,
            "bf16": self.bf16,
            "loss_scale": scale,
            "loss_scale_max": self.scale_max,
            "skipped": skipped,
            "skipped_streak": self.skipped_streak,
            "skipped_total": ev.get("skipped_total") or 0,
            "step_time_s": dt,
            "tokens_per_s": ev.get("tokens_per_s"),
            "throughput_ratio": tput_ratio,
            "interrupted": bool(ev.get("interrupted")),
            "mem_allocated_bytes": allocated,
            "mem_reserved_bytes": reserved,
            "mem_peak_allocated_bytes": peak_alloc,
            "mem_peak_reserved_bytes": peak_res,
            "mem_growth_bytes_per_step": growth,
            "mem_steps_to_limit": steps_to_limit,
            "mem_used_fraction": _ratio(top, limit),
            "alloc_retries": retries,
            "alloc_retries_new": retries_new,
            "frag_bytes": frag,
            "frag_fraction": _ratio(frag, reserved),
            "frag_growth_bytes": frag_growth,
            "gpu_limit_bytes": limit,
            "gpu_used_bytes": gpu_used,
            "gpu_used_fraction": _ratio(gpu_used, gpu_total),
            "gpu_util_pct": gpu.get("util_pct"),
            "gpu_temp_c": gpu.get("temp_c"),
            "gpu_power_w": gpu.get("power_w"),
            "plan_peak_allocated_bytes": self.plan_peak,
            "drift_ratio": _ratio(peak_alloc, self.plan_peak) if peak_alloc else None,
        }
        ctx.update(self.curves.push(step, ev, None if ev.get("interrupted") else rate))
        ctx["loss_logged"] = self.loss_logged
        if texts:
            self.add_texts(ctx)
        self.loss_hist.append(loss)
        self.gn_hist.append(gn)
        if allocated:
            self.alloc_hist.append((step, float(allocated)))
        if frag is not None:
            self.frag_hist.append(float(frag))
        return ctx
