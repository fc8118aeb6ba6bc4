"""The plan-scope rule context: the names rules/_contexts/plan.yaml declares, for one setup.

Built in two layers so the search stays fast: :func:`setup_context` holds what the setup, the
model and the GPU say (no estimate); :func:`memory_context` adds the estimate's numbers for
the plans that get one.
"""

from __future__ import annotations

from typing import Any

from vramdoc.estimate.stack import (
    bnb_skips_linear_subclasses,
    checkpointing_ignored,
    version_tuple,
)
from vramdoc.planner.space import OPTIM_INFO, optim_state_bits
from vramdoc.setup import TrainSetup
from vramdoc.units import GiB, MiB

# The margin lives here, not in the search, so that the doctor's fit check (which reads this
# module) need not import the search module.
MIN_MARGIN_BYTES = 256 * MiB
MARGIN_FRACTION = 0.04


def default_margin(gpu_memory_bytes: int) -> int:
    """Bytes the planner keeps free on a GPU: max(256 MiB, 4 % of its memory)."""
    return max(MIN_MARGIN_BYTES, int(gpu_memory_bytes * MARGIN_FRACTION))


MEMORY_NAMES = (
    "peak_bytes", "device_bytes", "peak_gib", "device_gib", "peak_phase", "margin_bytes",
    "headroom_bytes", "headroom_gib", "fits", "weights_gib", "activations_gib", "logits_gib",
    "optimizer_gib", "paged_gib", "activations_frac", "optimizer_frac", "logits_frac",
    "trainable_params",
)


def resolved_dtype(setup: TrainSetup, spec: Any) -> str:
    """``auto`` resolves to the checkpoint's dtype, as from_pretrained(dtype="auto") does."""
    if setup.torch_dtype != "auto":
        return setup.torch_dtype
    return str(getattr(spec, "checkpoint_dtype", "float32"))


def gpu_context(gpu: Any, n_gpus: int = 1) -> dict[str, Any]:
    """GPU names of the context (gpu=None: planning without a CUDA GPU)."""
    if gpu is None:
        return {"gpu_name": "cpu", "gpu_cc": None, "gpu_arch": None, "gpu_bf16": False,
                "gpu_fa2": False, "gpu_cuda": False, "gpu_assumed": False,
                "gpu_memory_bytes": None, "gpu_memory_gib": None, "n_gpus": n_gpus}
    return {
        "gpu_name": gpu.name, "gpu_cc": 10 * gpu.compute_capability[0] + gpu.compute_capability[1],
        "gpu_arch": gpu.architecture, "gpu_bf16": bool(gpu.bf16),
        "gpu_fa2": bool(gpu.flash_attention_2), "gpu_cuda": True,
        "gpu_assumed": bool(gpu.assumed), "gpu_memory_bytes": gpu.memory_bytes,
        "gpu_memory_gib": round(gpu.memory_bytes / GiB, 2), "n_gpus": n_gpus,
    }


def model_context(spec: Any) -> dict[str, Any]:
    """Model names of the context."""
    from vramdoc.estimate.liger import liger_applies
    from vramdoc.models.numerics import fp16_overflow

    return {
        "model": spec.name, "model_type": spec.model_type, "model_params": spec.n_params,
        "model_family": spec.family,
        "attn_supported": ",".join(getattr(spec, "attn_implementations", ())),
        "is_moe": bool(spec.num_local_experts), "is_encoder": bool(spec.is_encoder),
        "checkpoint_dtype": spec.checkpoint_dtype, "vocab_size": spec.vocab_size,
        "max_position_embeddings": spec.max_position_embeddings,
        "fp16_overflow": fp16_overflow(spec.model_type),
        "liger_supported": liger_applies(spec.model_type, "causal-lm", spec.is_encoder),
    }


def setup_context(setup: TrainSetup, spec: Any, base: dict[str, Any],
                  user_seq_len: int | None = None) -> dict[str, Any]:
    """Context of ``setup`` on top of ``base`` (model + GPU names), memory names None."""
    t = setup.training
    q = setup.quantization
    lo = setup.lora
    dtype = resolved_dtype(setup, spec)
    bits, paged, bnb, cuda_only = OPTIM_INFO.get(t.optim, (32, False, False, False))
    # trainable parameters' dtype: adapters are fp32 (PEFT autocast_adapter_dtype)
    param_dtype = dtype if lo is None else "float32"
    four = q is not None and q.quant_method == "bitsandbytes" and q.bits == 4
    ctx = dict(base)
    ctx.update({
        "task": setup.task, "method": setup.method, "dtype": dtype, "bf16": t.bf16,
        "fp16": t.fp16, "attn_implementation": setup.attn_implementation,
        "gradient_checkpointing": t.gradient_checkpointing, "use_reentrant": t.use_reentrant,
        "optim": t.optim, "optim_paged": paged, "optim_state_bits":
            optim_state_bits(t.optim, param_dtype) if bits is not None else None,
        "optim_bnb": bnb, "optim_cuda_only": cuda_only,
        "quantized": q is not None, "quant_method": q.quant_method if q else None,
        "load_in_4bit": four,
        "load_in_8bit": q is not None and q.quant_method == "bitsandbytes" and q.bits == 8,
        "bnb_4bit_quant_type": q.bnb_4bit_quant_type if four and q else None,
        "bnb_4bit_use_double_quant": q.bnb_4bit_use_double_quant if four and q else None,
        "bnb_4bit_compute_dtype": q.bnb_4bit_compute_dtype if four and q else None,
        "prepare_kbit": q is not None and setup.prepare_model_for_kbit_training,
        "lora_r": lo.r if lo else None, "lora_alpha": lo.lora_alpha if lo else None,
        "lora_targets": (",".join(lo.target_modules) if lo.target_modules else "default")
        if lo else None,
        "lora_all_linear": lo is not None and lo.target_modules == ("all-linear",),
        "lora_dropout": lo.lora_dropout if lo else None,
        "use_rslora": lo.use_rslora if lo else None,
        "micro_batch": t.per_device_train_batch_size, "grad_accum": t.gradient_accumulation_steps,
        "effective_batch": setup.effective_batch_size, "seq_len": setup.max_seq_length,
        "user_seq_len": user_seq_len if user_seq_len is not None else setup.max_seq_length,
        "learning_rate": t.learning_rate, "warmup_steps": t.warmup_steps,
        "lr_scheduler_type": t.lr_scheduler_type, "max_grad_norm": t.max_grad_norm,
        "weight_decay": t.weight_decay, "use_liger_kernel": t.use_liger_kernel,
        "transformers_version": setup.transformers_version,
        "transformers_major": version_tuple(setup.transformers_version)[0],
        "checkpointing_ignored": checkpointing_ignored(spec.model_type,
                                                       setup.transformers_version),
        "bnb_skips_linear_subclasses": bnb_skips_linear_subclasses(setup.transformers_version),
    })
    for name in MEMORY_NAMES:
        ctx[name] = None
    return ctx


def memory_context(ctx: dict[str, Any], est: Any, gpu_memory_bytes: int | None,
                   margin_bytes: int) -> dict[str, Any]:
    """``ctx`` with the estimate's names filled in."""
    comp = est.components
    peak = max(est.peak_allocated_bytes, 1)
    act = comp.get("activations", 0)
    logits = comp.get("logits", 0)
    opt = comp.get("optimizer_states", 0) + comp.get("optimizer_temporaries", 0)
    weights = comp.get("weights", 0) + comp.get("quant_state", 0)
    out = dict(ctx)
    out.update({
        "peak_bytes": est.peak_allocated_bytes, "device_bytes": est.device_bytes,
        "peak_gib": est.peak_allocated_bytes / GiB, "device_gib": est.device_bytes / GiB,
        "peak_phase": est.peak_phase, "margin_bytes": margin_bytes,
        "weights_gib": weights / GiB, "activations_gib": act / GiB, "logits_gib": logits / GiB,
        "optimizer_gib": opt / GiB, "paged_gib": est.paged_bytes / GiB,
        "activations_frac": act / peak, "optimizer_frac": opt / peak, "logits_frac": logits / peak,
        "trainable_params": est.trainable_params,
    })
    if gpu_memory_bytes is not None:
        headroom = gpu_memory_bytes - est.device_bytes - margin_bytes
        out.update(headroom_bytes=headroom, headroom_gib=headroom / GiB, fits=headroom >= 0)
    return out
