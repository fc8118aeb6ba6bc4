"""The human report on stderr: the search, the ranked table, a memory bar per plan, the rules."""

from __future__ import annotations

from typing import Any

from vramdoc.units import format_bytes, format_count

BAR = 40


def memory_bar(device_bytes: int, margin_bytes: int, gpu_bytes: int, width: int = BAR) -> str:
    """``[████████▒▒··]``: device view, margin, free; ``!`` marks what does not fit.

    >>> memory_bar(3, 1, 8, width=8)
    '[███▒····]'
    >>> memory_bar(9, 1, 8, width=8)
    '[████████]!'
    """
    used = min(width, round(width * device_bytes / gpu_bytes))
    marg = min(width - used, round(width * margin_bytes / gpu_bytes))
    free = width - used - marg
    over = "!" if device_bytes + margin_bytes > gpu_bytes and free == 0 and marg == 0 else ""
    return "[" + "█" * used + "▒" * marg + "·" * free + "]" + over


def _secs(s: float) -> str:
    return f"{s:.1f} s" if s < 100 else f"{s:.0f} s"


def _plan_rows(plans: list[Any], gpu: Any) -> list[str]:
    rows = []
    for i, p in enumerate(plans, 1):
        est = p.estimate
        s = p.setup
        per = " per GPU" if s.num_gpus > 1 else ""
        rows.append(f" {i}  {p.label}")
        rows.append(f"    {memory_bar(est.device_bytes, p.margin_bytes, gpu.memory_bytes)} "
                    f"{format_bytes(est.device_bytes)} of {format_bytes(gpu.memory_bytes)}{per}"
                    f" · headroom {format_bytes(p.headroom_bytes, signed=True)}"
                    f" · ~{_secs(p.step.total_s)}/step, {p.tokens_per_s:,.0f} tok/s")
        if s.num_gpus > 1 or (est.host is not None and est.host.per_process):
            rows.append("    " + _node_line(p))
    return rows


def _node_line(p: Any) -> str:
    """Per-node figures of a multi-GPU plan: GPU memory, host RAM, exposed communication."""
    s, est = p.setup, p.estimate
    per_node = max(s.num_gpus // max(s.nodes, 1), 1)
    parts = [f"per node ({per_node} GPUs{f', {s.nodes} nodes' if s.nodes > 1 else ''}): "
             f"{format_bytes(est.device_bytes * per_node)} GPU"]
    h = est.host
    if h is not None:
        txt = f"host RAM {format_bytes(h.peak_bytes)}"
        if h.limit_bytes is not None:
            txt += f" of {format_bytes(h.limit_bytes)}"
        parts.append(txt)
    if p.step.comm_s:
        parts.append(f"communication not hidden {_secs(p.step.comm_s)}/step")
    return " · ".join(parts)


def _steps(plan: Any) -> list[str]:
    out = []
    for f in plan.findings:
        mark = {"error": "x", "warning": "!", "info": "·"}[f.severity]
        out.append(f"  {mark} {f.code} {f.message}")
    for code, key, old, new in plan.applied:
        out.append(f"  → {code} set {key}: {old!r} -> {new!r}")
    return out


def render_report(result: Any) -> str:
    """The report for a PlanResult (fits or not)."""
    req, spec, gpu, st = result.request, result.spec, result.gpu, result.stats
    eb = req.effective_batch
    sm = f", sm{gpu.compute_capability[0]}{gpu.compute_capability[1]}" if not gpu.assumed else ""
    lines = [
        f"vramdoc plan: {spec.name} ({format_count(spec.n_params)} params) on {gpu.name} "
        f"({format_bytes(gpu.memory_bytes)}{sm}) · seq {req.seq_len} · effective batch {eb}",
    ]
    base = req.base
    if base is not None and base.num_gpus > 1:
        lines.append(f"  {base.num_gpus} GPUs on {base.nodes} node(s): memory per GPU, effective "
                     f"batch {max(eb // base.num_gpus, 1)} per GPU")
    if gpu.assumed:
        lines.append(f"  note: {gpu.source or 'GPU generation assumed from a bare size'}")
    if getattr(spec, "generic", False):
        lines.append(f"  note: generic (approximate activations): model_type "
                     f"{spec.model_type!r} is built from its config by transformers; the "
                     "parameters are exact, the activations follow a generic block")
    rejected = " · ".join(f"{c} {n:,}" for c, n in sorted(st.rejected_by_rule.items()))
    lines.append(
        f"searched {st.candidates:,} candidates: {st.rejected:,} forbidden by rules"
        f"{f' ({rejected})' if rejected else ''}, {st.skipped_by_bound:,} skipped by memory "
        f"bounds, {st.estimated:,} estimated; margin kept free: "
        f"{format_bytes(result.margin_bytes)}")
    lines.append("")
    if result.plans:
        lines.append("ranked plans (fidelity first, then fewer warnings, then speed):")
        lines += _plan_rows(list(result.plans), gpu)
        lines.append("")
        lines.append("best plan, the rules that shaped it (x error · ! warning · · info):")
        lines += _steps(result.plans[0])
    else:
        lines.append(f"nothing fits: the closest plan needs {format_bytes(result.missing_bytes)}"
                     " more than the GPU has free")
        if result.closest is not None:
            lines += _plan_rows([result.closest], gpu)
            lines += _steps(result.closest)
        if result.suggestions:
            lines.append("")
            lines.append("what would fit:")
            lines += [f"  - {s}" for s in result.suggestions]
    if result.user_plan is not None:
        up = result.user_plan
        lines.append("")
        lines.append(f"your setup as given: {up.label}")
        lines += _plan_rows([up], gpu)[1:]
        lines += _steps(up)
    return "\n".join(lines) + "\n"
