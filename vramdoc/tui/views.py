"""What each widget shows, computed from a RunState: plain data, no textual, no rendering.

The follow worker builds a :class:`Snapshot` off the UI thread and hands it over; widgets
only display the part they are given (STYLE.md principle 11). Sizes stay int bytes here and
are formatted by the widgets through :mod:`vramdoc.units`.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from vramdoc.monitor.follower import Follower, FollowerStatus
from vramdoc.monitor.outcome import printable
from vramdoc.monitor.run import Alert, RunState
from vramdoc.units import format_count

# Estimator component names (CONTRACTS.md) in the order a breakdown reads best.
COMPONENT_ORDER = ("weights", "quant_state", "adapters", "gradients", "optimizer_states",
                   "optimizer_temporaries", "activations", "logits")


@dataclass(frozen=True)
class ChartView:
    """One chart: values per step; None = not recorded, nan/inf = non-finite."""

    title: str
    steps: tuple[int, ...]
    values: tuple[float | None, ...]
    unit: str = ""  # "bytes" formats as sizes; "" plain numbers; "/s" rates
    zero_based: bool = False
    log_scale: bool = False
    refs: tuple[tuple[str, float], ...] = ()  # (label, value) horizontal reference lines
    empty_text: str = "no data yet"


@dataclass(frozen=True)
class MemoryView:
    limit_bytes: int | None
    limit_label: str
    components: tuple[tuple[str, int], ...]  # the plan's breakdown at its peak phase
    plan_peak_bytes: int | None
    plan_reserved_bytes: int | None
    plan_device_bytes: int | None
    plan_phase: str | None
    measured: tuple[tuple[str, int | None], ...]  # (label, bytes) of the run
    note: str = ""
    started: bool = True  # False until the run's header arrives


@dataclass(frozen=True)
class GpuView:
    name: str | None
    util_pct: float | None = None
    temp_c: float | None = None
    power_w: float | None = None
    used_bytes: int | None = None
    total_bytes: int | None = None
    util_history: tuple[float | None, ...] = ()
    note: str = ""  # why there is no GPU figure


@dataclass(frozen=True)
class RunBarView:
    title: str
    detail: str
    step: int | None
    max_steps: int | None
    status: str  # waiting | live | ended | foreign
    status_text: str


@dataclass(frozen=True)
class Snapshot:
    """Everything the screen shows at one moment."""

    bar: RunBarView
    memory: MemoryView
    gpu: GpuView
    charts: dict[str, ChartView]
    alerts: tuple[Alert, ...]
    rules_error: str = ""
    revision: int = 0
    steps: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def _finite(v: Any) -> bool:
    return isinstance(v, int | float) and math.isfinite(v)


def run_bar(state: RunState, follower: Follower | None, run_label: str) -> RunBarView:
    header = state.header or {}
    model = (header.get("args") or {}).get("model") or {}
    device = state.device
    bits = []
    if model.get("class"):
        name = model.get("name_or_path") or model.get("model_type") or ""
        bits.append(f"{model['class']}" + (f" ({name})" if name else ""))
    if model.get("params"):
        p = format_count(int(model["params"]))
        t = model.get("trainable_params")
        bits.append(f"{p} params" + (f", {format_count(int(t))} trainable"
                                     if t and t != model["params"] else ""))
    plan = state.plan or {}
    if plan.get("method"):
        bits.append(str(plan["method"]))
    if device.get("type") == "cuda":
        bits.append(str(device.get("name") or "cuda"))
    elif header:
        bits.append("cpu")
    latest = state.latest or {}
    status = follower.status.value if follower is not None else (
        FollowerStatus.ENDED.value if state.ended else FollowerStatus.LIVE.value)
    if follower is not None and (state.header is None
                                 or follower.status is FollowerStatus.FOREIGN):
        text = follower.describe()
    else:
        parts = [state.outcome(follower.path if follower is not None else None).text]
        total = state.sessions + state.skipped_sessions
        if total > 1:
            parts.append(f"session {total} of {total}")
        if follower is not None:
            parts += follower.problems()
        text = ", ".join(parts)
    return RunBarView(title=printable(run_label), detail=printable(" · ".join(bits)),
                      step=latest.get("step"), max_steps=state.args.get("max_steps"),
                      status=status, status_text=printable(text))


def memory_view(state: RunState) -> MemoryView:
    if state.header is None:
        return MemoryView(limit_bytes=None, limit_label="", components=(), plan_peak_bytes=None,
                          plan_reserved_bytes=None, plan_device_bytes=None, plan_phase=None,
                          measured=(), note="waiting for the run to start", started=False)
    plan = state.plan or {}
    limit = state.limit_bytes
    device = state.device
    gpu_name = device.get("name") or plan.get("gpu_name") or ((state.latest_gpu or {}).get("name"))
    label = "GPU limit" + (f" ({printable(gpu_name)})" if gpu_name else "")
    comps = plan.get("components") or {}
    ordered = [(n, comps[n]) for n in COMPONENT_ORDER if comps.get(n)]
    ordered += [(n, v) for n, v in comps.items() if n not in COMPONENT_ORDER and v]
    latest = state.latest or {}
    mem = latest.get("mem") or {}
    gpu = state.latest_gpu or {}
    measured: list[tuple[str, int | None]] = []
    note = ""
    if state.steps and not any(s.get("mem") for s in state.steps[-5:]):
        note = "no CUDA allocator figures: the run trained on CPU"
    else:
        measured = [
            ("peak allocated", state.peak("peak_allocated_bytes")),
            ("peak reserved", state.peak("peak_reserved_bytes")),
            ("allocated now", mem.get("allocated_bytes")),
        ]
    if gpu.get("used_bytes"):
        measured.append(("device (NVML)", gpu["used_bytes"]))
    if not state.steps:
        note = "waiting for the first step"
    return MemoryView(limit_bytes=limit, limit_label=label, components=tuple(ordered),
                      plan_peak_bytes=plan.get("peak_allocated_bytes"),
                      plan_reserved_bytes=plan.get("peak_reserved_bytes"),
                      plan_device_bytes=plan.get("device_bytes"),
                      plan_phase=plan.get("peak_phase"), measured=tuple(measured), note=note)


def gpu_view(state: RunState, local: dict[str, Any] | None = None) -> GpuView:
    """The run's last NVML sample, else a local one, else why there is none."""
    gpu = state.latest_gpu or local
    if state.header is None and not gpu:
        return GpuView(name=None, note="waiting for the run to start")
    if not gpu:
        device = state.device
        why = ("no GPU: the run trained on CPU" if device.get("type") == "cpu"
               else "no GPU figures: NVML was not available to the run")
        return GpuView(name=None, note=why)
    history = tuple((s.get("gpu") or {}).get("util_pct") for s in state.steps[-200:])
    name = gpu.get("name") or state.device.get("name")
    return GpuView(name=printable(name) if name else name,
                   util_pct=gpu.get("util_pct"), temp_c=gpu.get("temp_c"),
                   power_w=gpu.get("power_w"), used_bytes=gpu.get("used_bytes"),
                   total_bytes=gpu.get("total_bytes"), util_history=history,
                   note="" if state.latest_gpu else "this machine's GPU (the run recorded none)")


def charts(state: RunState) -> dict[str, ChartView]:
    steps = tuple(state.step_numbers)
    s = state.series
    limit = state.limit_bytes
    plan = state.plan or {}
    mem_refs: list[tuple[str, float]] = []
    if limit:
        mem_refs.append(("limit", float(limit)))
    if plan.get("peak_allocated_bytes"):
        mem_refs.append(("plan", float(plan["peak_allocated_bytes"])))
    has_mem = any(v is not None for v in s["mem_peak_allocated_bytes"])
    if has_mem or not state.steps:
        memory = ChartView(
            "memory: peak allocated", steps, tuple(s["mem_peak_allocated_bytes"]),
            unit="bytes", zero_based=True, refs=tuple(mem_refs), empty_text="no data yet")
    else:  # a CPU run has no allocator figures: the learning rate is worth the space
        memory = ChartView("lr (CPU run: no memory figures)", steps,
                           tuple(s["lr"]), zero_based=True)
    gn = [v for v in s["grad_norm"] if _finite(v) and v > 0]
    tput = s["samples_per_s"] if (any(s["samples_per_s"]) and not any(s["tokens_per_s"])) \
        else s["tokens_per_s"]
    return {
        "loss": ChartView("loss", steps, tuple(s["loss"])),
        "grad_norm": ChartView(
            "grad-norm", steps, tuple(s["grad_norm"]),
            log_scale=bool(gn) and max(gn) / min(gn) > 100,
            refs=(("clip", float(state.args["max_grad_norm"])),)
            if state.args.get("max_grad_norm") else ()),
        "memory": memory,
        "throughput": ChartView(
            "tokens/s" if tput is s["tokens_per_s"] else "samples/s", steps, tuple(tput),
            unit="/s", zero_based=True),
    }


def snapshot(state: RunState, follower: Follower | None, run_label: str,
             local_gpu: dict[str, Any] | None = None) -> Snapshot:
    """Every view of ``state`` at once (called on the worker thread)."""
    return Snapshot(
        bar=run_bar(state, follower, run_label),
        memory=memory_view(state),
        gpu=gpu_view(state, local_gpu),
        charts=charts(state),
        # copies: the worker keeps extending its episodes while the UI shows these
        alerts=tuple(dataclasses.replace(a) for a in state.alerts),
        rules_error=state.rules_error,
        revision=state.revision,
        steps=state.step_count,
    )
