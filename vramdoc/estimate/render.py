"""Human rendering of a MemoryEstimate (formatting happens only here, at the edge)."""

from __future__ import annotations

from vramdoc.estimate.core import COMPONENTS, PHASES, MemoryEstimate
from vramdoc.units import format_bytes, format_count

_LABELS = {
    "weights": "weights",
    "quant_state": "quantization constants",
    "adapters": "adapters (LoRA)",
    "gradients": "gradients",
    "optimizer_states": "optimizer states",
    "optimizer_temporaries": "optimizer step temporaries",
    "activations": "activations",
    "logits": "logits + loss",
}


def describe_setup(est: MemoryEstimate) -> str:
    s = est.setup
    t = s.training
    parts = [s.method]
    q = s.quantization
    if q is not None and q.quant_method == "bitsandbytes" and q.bits == 4:
        parts.append(q.bnb_4bit_quant_type + ("+dq" if q.bnb_4bit_use_double_quant else ""))
    if s.lora is not None:
        targets = ",".join(s.lora.target_modules) or "peft default"
        parts.append(f"r={s.lora.r} [{targets}]")
    prec = "bf16" if t.bf16 else "fp16" if t.fp16 else "no AMP"
    parts += [f"dtype={s.torch_dtype}", prec, s.attn_implementation,
              f"batch {t.per_device_train_batch_size}x{t.gradient_accumulation_steps}",
              f"seq {s.max_seq_length}", t.optim]
    if est.details.get("gradient_checkpointing"):
        parts.append("grad-ckpt")
    return " · ".join(parts)


def _host_lines(est: MemoryEstimate) -> list[str]:
    """Per-GPU / per-node figures and the host RAM view of a multi-GPU or offloaded run."""
    h = est.host
    s = est.setup
    out: list[str] = []
    if s.num_gpus > 1 or est.strategy:
        per_node = max(s.num_gpus // max(s.nodes, 1), 1)
        out.append(f"strategy: {est.strategy or 'single GPU'} · {s.num_gpus} GPU(s) on "
                   f"{s.nodes} node(s): device {format_bytes(est.device_bytes)} per GPU, "
                   f"{format_bytes(est.device_bytes * per_node)} per node")
    if h is None or (not h.per_process and not h.paged_spill_bytes and s.num_gpus <= 1
                     and h.limit_bytes is None):
        return out
    line = (f"host RAM per node: {format_bytes(h.peak_bytes)} peak "
            f"(training {format_bytes(h.training_bytes)}, loading "
            f"{format_bytes(h.loading_bytes)}; {h.processes} process(es))")
    if h.limit_bytes is not None:
        line += (f" of {format_bytes(h.limit_bytes)}: "
                 + ("fits" if h.fits else "does NOT fit"))
    out.append(line)
    for name, value in h.per_process.items():
        out.append(f"  per process: {name} {format_bytes(value)}")
    if h.paged_spill_bytes:
        out.append(f"  paged optimizer states that may spill: {format_bytes(h.paged_spill_bytes)}")
    return out


def render_estimate(est: MemoryEstimate) -> str:
    """The table users read: components x phases, the peak and the three views."""
    pct = 100 * est.trainable_params / est.n_params if est.n_params else 0.0
    lines = [
        f"{est.model_name}: {format_count(est.n_params)} parameters, "
        f"{format_count(est.trainable_params)} trainable ({pct:.2f} %)",
        describe_setup(est),
        "",
    ]
    w = 28
    head = f"{'component':<{w}}" + "".join(f"{p:>16}" for p in PHASES)
    lines += [head, "-" * len(head)]
    for c in COMPONENTS:
        vals = [est.phase_components[p][c] for p in PHASES]
        if not any(vals):
            continue
        cells = "".join(f"{format_bytes(v) if v else '-':>16}" for v in vals)
        lines.append(f"{_LABELS[c]:<{w}}{cells}")
    lines.append("-" * len(head))
    totals = est.phases
    # what the device view holds outside torch's allocator besides the context (NCCL, sharded)
    nccl = est.device_bytes - est.peak_reserved_bytes - est.cuda_context_bytes - est.paged_bytes
    cells = "".join(
        f"{format_bytes(totals[p]) + (' *' if p == est.peak_phase else '  '):>16}" for p in PHASES
    )
    lines.append(f"{'allocated':<{w}}{cells}")
    lines += [
        "",
        f"peak ({est.peak_phase}):  allocated {format_bytes(est.peak_allocated_bytes)}"
        f"  ·  reserved {format_bytes(est.peak_reserved_bytes)}"
        f"  ·  device {format_bytes(est.device_bytes)}",
        f"device = reserved + CUDA context {format_bytes(est.cuda_context_bytes)}"
        + (f" + paged optimizer states {format_bytes(est.paged_bytes)}" if est.paged_bytes else "")
        + (f" + NCCL buffers {format_bytes(nccl)}" if nccl > 0 else ""),
    ]
    if est.gpu is not None:
        head_b = est.headroom_bytes or 0
        verdict = "fits" if est.fits else "does NOT fit"
        room = "headroom" if head_b >= 0 else "missing"
        lines.append(f"GPU {est.gpu.name} ({format_bytes(est.gpu.memory_bytes)}): {verdict}, "
                     f"{format_bytes(abs(head_b))} {room}")
    lines += _host_lines(est)
    for n in est.notes:
        lines.append(f"note: {n}")
    return "\n".join(lines) + "\n"
