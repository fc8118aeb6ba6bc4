"""The human report of a probe run (no torch): measured vs estimated, speed, findings."""

from __future__ import annotations

from vramdoc.estimate.core import COMPONENTS, PHASES
from vramdoc.probe.result import MemoryView, ProbeResult
from vramdoc.units import format_bytes, format_count

_ERROR_FLOOR_BYTES = 64 * 1024  # below this a percentage says nothing (a few 512-B blocks)


def _err(measured: int, estimated: int | None) -> str:
    """The estimate's error: a percentage, or where either side is below the floor (a 1 KiB
    estimate against 188 MiB measured) the absolute difference, the percentage being n/a."""
    if estimated is None or max(measured, estimated) < _ERROR_FLOOR_BYTES:
        return ""
    if min(measured, estimated) < _ERROR_FLOOR_BYTES:
        diff = estimated - measured
        return f"{'+' if diff >= 0 else '-'}{format_bytes(abs(diff))} (n/a %)"
    return f"{100.0 * (estimated - measured) / measured:+.1f} %"


def _row(label: str, measured: int | None, estimated: int | None, compare: bool = True) -> str:
    m = format_bytes(measured) if measured is not None else "-"
    e = format_bytes(estimated) if estimated is not None else "-"
    err = _err(measured, estimated) if measured is not None and compare else ""
    return f"  {label:<24}{m:>12}{e:>12}{err:>20}"


def _memory(m: MemoryView, e: MemoryView | None, stopped_in: str | None = None) -> list[str]:
    """Measured vs estimated; a run stopped by an OOM is compared only up to that phase."""
    lines = [f"  {'peak allocated':<24}{'measured':>12}{'estimated':>12}{'error':>20}"]
    for p in PHASES:
        if p in m.phases:
            lines.append(_row(p, m.phases[p], e.phases.get(p) if e else None,
                              compare=p != stopped_in))
    peak_label = f"peak ({m.peak_phase})"
    lines.append(_row(peak_label, m.peak_allocated_bytes, e.peak_allocated_bytes if e else None,
                      compare=stopped_in is None))
    if e is not None and e.peak_phase != m.peak_phase:
        lines.append(f"  (the estimate puts its peak in {e.peak_phase})")
    lines.append(f"components at the measured peak ({m.peak_phase}):")
    est_comps = e.phase_components.get(m.peak_phase, {}) if e else {}
    for c in COMPONENTS:
        mv = m.components.get(c, 0)
        ev = est_comps.get(c) if e else None
        if mv or ev:
            lines.append(_row(c, mv, ev, compare=stopped_in is None))
    if m.paged_bytes or (e is not None and e.paged_bytes):
        lines.append(_row("paged (unified memory)", m.paged_bytes, e.paged_bytes if e else None))
    if m.peak_reserved_bytes is not None:
        lines.append(f"  reserved peak {format_bytes(m.peak_reserved_bytes)}; device used "
                     f"{format_bytes(m.device_bytes) if m.device_bytes else '-'}")
    return lines


def render(result: ProbeResult) -> str:
    """The text report printed by ``vramdoc probe``."""
    r = result
    head = (f"vramdoc probe: {r.model} · {r.method} · batch {r.batch_size} x {r.seq_len} tokens"
            f" on {r.device_name}")
    lines = [head, f"  {r.steps_run} of {r.steps_requested} step(s); "
                   f"{format_count(r.n_params)} parameters, "
                   f"{format_count(r.n_trainable)} trainable"]
    if r.sharding is not None:
        sh = r.sharding
        lines.append(f"  rank {sh['rank']} of {sh['world_size']} ({sh['label']}, fake process "
                     "group): figures are per rank, the estimate per GPU")
    if r.gpu is not None:
        limit = f", allocatable {format_bytes(r.limit_bytes)} (emulated)" if r.limit_bytes else ""
        lines.append(f"  compared with {r.gpu['name']} ({format_bytes(r.gpu['memory_bytes'])}"
                     f"{limit})")
    if r.interrupted:
        lines.append(f"  INTERRUPTED (Ctrl-C) after {r.steps_run} step(s): a partial report")
    lines.append("")
    if r.oom is not None:
        o = r.oom
        kind = "emulated" if o.emulated else "CUDA"
        lines.append(f"OUT OF MEMORY ({kind}) in {o.phase}, step {o.step}: "
                     f"{format_bytes(o.allocated_bytes)} allocated + "
                     f"{format_bytes(o.request_bytes)} requested > {format_bytes(o.limit_bytes)}")
        lines.append("  figures below cover the run up to that point")
        lines.append("")
    if r.measured is not None and r.measured.phases:
        lines += _memory(r.measured, r.estimate, r.oom.phase if r.oom else None)
    if r.estimate is None and r.estimate_error:
        lines.append(f"  (no estimate: {r.estimate_error})")
    if r.steps_per_s is not None:
        lines.append("")
        lines.append(f"speed: {r.steps_per_s:.3g} steps/s, {r.tokens_per_s:,.0f} tokens/s "
                     f"({r.device}; the first step is not timed when there are more)")
    if r.steps and r.device != "fake":
        losses = ", ".join("-" if s.loss is None else f"{s.loss:.4g}" for s in r.steps)
        lines.append(f"loss per step: {losses}")
    lines.append("")
    lines.append("measured: " + "; ".join(r.measured_items))
    if r.modelled_items:
        lines.append("modelled: " + "; ".join(r.modelled_items))
    for note in r.notes:
        lines.append(f"note: {note}")
    lines.append("")
    if not r.findings:
        lines.append("findings: none")
    else:
        lines.append("findings:")
        for f in r.findings:
            lines.append(f"  {f['severity']:<8}{f['code']} {f['name']} [{f['kind']}]")
            lines.append(f"          {f['message']}")
            lines.append(f"          fix: {f['fix']}")
            if f.get("propose"):
                changes = ", ".join(f"{k}: {v}" for k, v in f["propose"].items())
                lines.append(f"          propose: {changes}")
    if r.next_plan and "label" in r.next_plan:
        lines.append("")
        lines.append(f"next plan that fits: {r.next_plan['label']} "
                     f"(estimated peak {format_bytes(r.next_plan['peak_allocated_bytes'])})")
    return "\n".join(lines) + "\n"
