"""The doctor: turn what a probe run showed into findings, through the doctor rules (D*).

No torch here: :func:`doctor_context` reads a :class:`ProbeResult` and builds the mapping the
rules in ``rules/D*.yaml`` read (names declared in ``rules/_contexts/doctor.yaml``);
:func:`diagnose` evaluates them and, after an out-of-memory error, asks the planner for the
next setup that fits the card.
"""

from __future__ import annotations

import math
import statistics
from typing import Any

from vramdoc.probe.result import ProbeResult
from vramdoc.setup import TrainSetup, setup_to_mapping
from vramdoc.units import format_bytes

FP16_MAX = 65504.0  # largest finite IEEE 754 binary16 value
# Every name the doctor context offers (declared with a description in
# rules/_contexts/doctor.yaml; a test keeps the two equal). Unknown figures stay None.
CONTEXT_NAMES = (
    "device", "model", "method", "steps", "bf16", "fp16", "fp16_active", "load_dtype",
    "learning_rate", "suggested_lr", "max_grad_norm", "warmup_steps", "optim",
    "logging_nan_inf_filter", "gpu_name", "gpu_bf16", "gpu_memory_bytes", "trainable_dtypes",
    "pure_fp16_params", "step_error",
    # numerics
    "numerics_measured", "loss_first", "loss_last", "loss_nonfinite", "loss_nonfinite_step",
    "first_nonfinite_module", "first_nonfinite_step", "first_nonfinite_value",
    "first_nonfinite_dtype", "fp16_overflow", "max_absmax", "max_absmax_module",
    "max_absmax_dtype", "near_overflow_module", "near_overflow_absmax", "near_overflow_pct",
    "nonfinite_grad_groups", "nonfinite_grad_example", "nonfinite_grad_step",
    "nonfinite_params", "nonfinite_param_example", "nonfinite_param_step", "skipped_steps",
    "loss_scale_initial", "loss_scale_final", "grad_norm_nonfinite", "grad_norm_first",
    "grad_norm_max", "grad_norm_step", "grad_norm_ratio", "loss_spike_ratio", "loss_spike_step",
    "masked_nan",
    # memory
    "oom", "oom_emulated", "oom_kind", "oom_phase", "oom_step", "oom_allocated_bytes",
    "oom_allocated_text", "oom_request_bytes", "oom_request_text", "oom_limit_bytes",
    "oom_limit_text", "oom_largest", "oom_largest_text", "oom_second", "oom_second_text",
    "next_plan", "next_plan_peak_text", "measured_peak_bytes", "measured_peak_phase",
    "measured_peak_text", "estimated_peak_bytes", "estimated_peak_phase", "estimated_peak_text",
    "estimate_error", "estimate_error_pct",
)
NEAR_LIMIT_FRACTION = 0.25  # report fp16 outputs above a quarter of the limit


def _finite(x: float | None) -> bool:
    return x is not None and math.isfinite(x)


def _value_name(v: float | None) -> str | None:
    if v is None:
        return None
    return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")


def _numerics(result: ProbeResult, setup: TrainSetup, fp16_active: bool) -> dict[str, Any]:
    steps = result.steps
    ctx: dict[str, Any] = {"numerics_measured": result.device != "fake" and bool(steps)}
    if not ctx["numerics_measured"]:
        return ctx
    losses = [s.loss for s in steps]
    bad = [s for s in steps if s.loss is not None and not math.isfinite(s.loss)]
    ctx.update(loss_first=losses[0], loss_last=losses[-1], loss_nonfinite=bool(bad),
               loss_nonfinite_step=bad[0].step if bad else None)
    first = next((s for s in steps if s.first_nonfinite_module), None)
    if first is not None:
        mod = first.first_nonfinite_module
        ctx.update(first_nonfinite_module=mod, first_nonfinite_step=first.step,
                   first_nonfinite_value=_value_name(first.first_nonfinite_value),
                   first_nonfinite_dtype=result.module_dtype.get(mod or ""))
    ctx["fp16_overflow"] = bool(
        first is not None and ctx.get("first_nonfinite_value") in ("inf", "-inf")
        and ctx.get("first_nonfinite_dtype") == "float16")
    sixteen = ("float16", "bfloat16")
    finite = {m: v for m, v in result.module_absmax.items()
              if math.isfinite(v) and result.module_dtype.get(m) in sixteen}
    if finite:
        top = max(finite, key=lambda m: finite[m])
        ctx.update(max_absmax=finite[top], max_absmax_module=top,
                   max_absmax_dtype=result.module_dtype.get(top))
    fp16_mods = {m: v for m, v in finite.items() if result.module_dtype.get(m) == "float16"}
    if fp16_active and fp16_mods:
        top = max(fp16_mods, key=lambda m: fp16_mods[m])
        ratio = fp16_mods[top] / FP16_MAX
        if ratio >= NEAR_LIMIT_FRACTION:
            ctx.update(near_overflow_module=top, near_overflow_absmax=fp16_mods[top],
                       near_overflow_pct=100.0 * ratio)
    grads = [s for s in steps if s.nonfinite_grad_params]
    if grads:
        from vramdoc.probe.numerics import group_name

        groups = sorted({group_name(n) for n in grads[0].nonfinite_grad_params})
        ctx.update(nonfinite_grad_groups=len(groups), nonfinite_grad_example=groups[0],
                   nonfinite_grad_step=grads[0].step)
    else:
        ctx["nonfinite_grad_groups"] = 0
    params = [s for s in steps if s.nonfinite_params_after]
    if params:
        ctx.update(nonfinite_params=len(params[0].nonfinite_params_after),
                   nonfinite_param_example=params[0].nonfinite_params_after[0],
                   nonfinite_param_step=params[0].step)
    else:
        ctx["nonfinite_params"] = 0
    if setup.training.fp16:
        scales = [s.scale for s in steps if s.scale is not None]
        ctx.update(skipped_steps=sum(s.skipped for s in steps),
                   loss_scale_final=scales[-1] if scales else None,
                   loss_scale_initial=65536.0)  # torch.amp.GradScaler(init_scale=2.**16)
    norms = [s.grad_norm for s in steps]
    ctx["grad_norm_nonfinite"] = any(n is not None and not math.isfinite(n) for n in norms)
    finite_norms = [(s.step, s.grad_norm) for s in steps if _finite(s.grad_norm)]
    if finite_norms:
        first_norm = finite_norms[0][1] or 0.0
        step_max, norm_max = max(finite_norms, key=lambda x: x[1] or 0.0)
        ctx.update(grad_norm_first=first_norm, grad_norm_max=norm_max, grad_norm_step=step_max,
                   grad_norm_ratio=(norm_max / first_norm) if first_norm > 0 else None)
    spike, spike_step = None, None
    for i in range(1, len(steps)):
        prev = [s.loss for s in steps[:i] if _finite(s.loss)]
        cur = steps[i].loss
        if prev and _finite(cur):
            base = statistics.median(prev)
            if base > 0 and (spike is None or cur / base > spike):  # type: ignore[operator]
                spike, spike_step = cur / base, steps[i].step  # type: ignore[operator]
    ctx.update(loss_spike_ratio=spike, loss_spike_step=spike_step)
    ctx["masked_nan"] = bool(bad) and setup.training.logging_nan_inf_filter
    return ctx


def _memory(result: ProbeResult) -> dict[str, Any]:
    ctx: dict[str, Any] = {"oom": result.oom is not None}
    m, e = result.measured, result.estimate
    if m is not None:
        ctx.update(measured_peak_bytes=m.peak_allocated_bytes, measured_peak_phase=m.peak_phase,
                   measured_peak_text=format_bytes(m.peak_allocated_bytes))
    if m is not None and e is not None and result.oom is None and m.peak_allocated_bytes:
        err = (e.peak_allocated_bytes - m.peak_allocated_bytes) / m.peak_allocated_bytes
        ctx.update(estimated_peak_bytes=e.peak_allocated_bytes, estimated_peak_phase=e.peak_phase,
                   estimated_peak_text=format_bytes(e.peak_allocated_bytes),
                   estimate_error=err, estimate_error_pct=100.0 * err)
    oom = result.oom
    if oom is not None:
        ranked = sorted(((c, b) for c, b in oom.components.items() if b > 0),
                        key=lambda cb: -cb[1])
        ctx.update(oom_emulated=oom.emulated, oom_phase=oom.phase, oom_step=oom.step,
                   oom_allocated_bytes=oom.allocated_bytes, oom_request_bytes=oom.request_bytes,
                   oom_limit_bytes=oom.limit_bytes,
                   oom_allocated_text=format_bytes(oom.allocated_bytes),
                   oom_request_text=format_bytes(oom.request_bytes),
                   oom_limit_text=format_bytes(oom.limit_bytes),
                   oom_kind="emulated" if oom.emulated else "CUDA")
        if ranked:
            ctx.update(oom_largest=ranked[0][0], oom_largest_text=format_bytes(ranked[0][1]))
        if len(ranked) > 1:
            ctx.update(oom_second=ranked[1][0], oom_second_text=format_bytes(ranked[1][1]))
    return ctx


def doctor_context(result: ProbeResult, setup: TrainSetup, gpu: Any = None) -> dict[str, Any]:
    """The mapping the doctor rules read (see rules/_contexts/doctor.yaml)."""
    t = setup.training
    fp16_weights = setup.torch_dtype == "float16"
    fp16_active = t.fp16 or (fp16_weights and not t.bf16)
    ctx: dict[str, Any] = dict.fromkeys(CONTEXT_NAMES)
    ctx.update({
        "device": result.device, "model": result.model, "method": setup.method,
        "steps": result.steps_run, "bf16": t.bf16, "fp16": t.fp16, "fp16_active": fp16_active,
        "load_dtype": setup.torch_dtype, "learning_rate": t.learning_rate,
        "suggested_lr": t.learning_rate / 10, "max_grad_norm": t.max_grad_norm,
        "warmup_steps": t.warmup_steps, "optim": t.optim,
        "logging_nan_inf_filter": t.logging_nan_inf_filter,
        "gpu_name": getattr(gpu, "name", None),
        "gpu_bf16": bool(gpu.bf16) if gpu is not None else None,
        "gpu_memory_bytes": int(gpu.memory_bytes) if gpu is not None else None,
        "next_plan": None,
        "trainable_dtypes": list(result.trainable_dtypes),
        "pure_fp16_params": "float16" in result.trainable_dtypes and not (t.fp16 or t.bf16),
        "step_error": result.step_error,
    })
    ctx.update(_numerics(result, setup, fp16_active))
    ctx.update(_memory(result))
    unknown = set(ctx) - set(CONTEXT_NAMES)
    assert not unknown, f"doctor context offers undeclared names {unknown}"
    return ctx


def next_plan(setup: TrainSetup, gpu: Any) -> dict[str, Any] | None:
    """The planner's best setup for this model on this card, or None when nothing fits."""
    try:
        from vramdoc.planner import PlanRequest, plan

        res = plan(PlanRequest(model=setup.model, gpu=gpu, seq_len=setup.max_seq_length,
                               effective_batch=setup.effective_batch_size, base=setup,
                               top_k=1))
    except Exception as exc:  # the planner is another area: an OOM report must still come out
        return {"error": f"{type(exc).__name__}: {exc}"}
    best = res.best
    if best is None:
        return None
    return {"label": best.label, "peak_allocated_bytes": int(best.estimate.peak_allocated_bytes),
            "setup": setup_to_mapping(best.setup)}


def _proposal(propose: dict[str, Any], ctx: dict[str, Any]) -> dict[str, Any]:
    """Fill ``"{name}"`` placeholders in a rule's proposal with the context's numbers."""
    from vramdoc.engine import format_message

    out: dict[str, Any] = {}
    for key, value in propose.items():
        if isinstance(value, str) and "{" in value:
            text = format_message(value, ctx)
            try:
                value = float(text)
            except ValueError:
                value = text
        out[key] = value
    return out


def diagnose(result: ProbeResult, setup: TrainSetup, spec: Any, gpu: Any) -> list[dict[str, Any]]:
    """Evaluate the doctor rules on ``result``; store and return the findings (JSON-ready)."""
    from vramdoc.engine import evaluate, load_rules

    ctx = doctor_context(result, setup, gpu)
    if result.oom is not None and gpu is not None:
        result.next_plan = next_plan(setup, gpu)
        if result.next_plan and "label" in result.next_plan:
            ctx["next_plan"] = result.next_plan["label"]
            ctx["next_plan_peak_text"] = format_bytes(result.next_plan["peak_allocated_bytes"])
    findings = []
    for f in evaluate(load_rules(scope="doctor"), ctx):
        item: dict[str, Any] = {"code": f.code, "name": f.name, "kind": f.kind,
                                "severity": f.severity, "message": f.message, "fix": f.fix,
                                "propose": _proposal(f.propose, ctx), "why": f.why}
        step, phase, module = _where(f.kind, ctx)
        for key, value in (("step", step), ("phase", phase), ("module", module)):
            if value is not None:
                item[key] = value
        findings.append(item)
    result.findings = findings
    return findings


def _where(kind: str, ctx: dict[str, Any]) -> tuple[Any, Any, Any]:
    """Step, phase and module a finding of ``kind`` points at, where known."""
    if kind == "oom":
        return ctx.get("oom_step"), ctx.get("oom_phase"), None
    if kind in ("overflow", "nan", "inf", "masked_nan"):
        if ctx.get("first_nonfinite_module"):
            return ctx.get("first_nonfinite_step"), "forward", ctx.get("first_nonfinite_module")
        if ctx.get("near_overflow_module"):
            return None, "forward", ctx.get("near_overflow_module")
        if ctx.get("nonfinite_grad_groups"):
            return ctx.get("nonfinite_grad_step"), "backward", ctx.get("nonfinite_grad_example")
        if ctx.get("nonfinite_params"):
            return (ctx.get("nonfinite_param_step"), "optimizer_step",
                    ctx.get("nonfinite_param_example"))
        return ctx.get("loss_nonfinite_step"), None, None
    if kind == "loss_spike":
        return ctx.get("loss_spike_step"), None, None
    if kind == "grad_explosion":
        return ctx.get("grad_norm_step"), "backward", None
    if kind == "estimate_drift":
        return None, ctx.get("measured_peak_phase"), None
    return None, None, None
