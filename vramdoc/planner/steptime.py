"""Predicted time of one optimizer step, through the hardware step-time helper
(``vramdoc.hardware.throughput``): matmul FLOPs over the GPU's peak, plus the memory-bound
work (dequantization, eager attention scores, the optimizer update) over its bandwidth.

It ranks plans that already fit; it is not a benchmark. What the planner adds to the helper:

- FLOPs per token from ``train_flops_per_token`` (PaLM appendix B: forward ``2N + 4·L·s·h``,
  backward twice that, ``4N`` with a frozen base, one more forward with checkpointing) plus
  ``6·r·(in+out)`` per adapter; N = Linears in the blocks (MoE: the routed experts only,
  ``num_experts_per_tok / num_local_experts``) plus the LM head.
- Utilization grows with the tokens per micro-batch: small GEMMs use the GPU poorly. The
  helper's ``ASSUMED_UTILIZATION`` is reached from 4,096 tokens per micro-batch on,
  ``u = U · T/(T + 1024) · (1 + 1024/4096)`` below that. Without this, 1x16 and 16x1 would
  tie and the planner could not prefer the larger micro-batch.
- k-bit bases: ``dequant_4bit_bytes`` per micro-batch (8-bit and GPTQ/AWQ bases are counted
  the same way, an approximation). Eager attention writes and re-reads the ``a·s²`` score
  matrix, about 8 passes of 2 bytes per layer (Korthikanti et al. 2022), per pass (forward,
  backward, recompute). The optimizer update: ``adamw_step_bytes`` with the state width.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from vramdoc.hardware.throughput import (
    ASSUMED_UTILIZATION,
    adamw_step_bytes,
    dequant_4bit_bytes,
    step_time_s,
    train_flops_per_token,
)
from vramdoc.planner.space import Candidate, optim_state_bits

TOKENS_HALF = 1024  # tokens per micro-batch at which utilization is half its asymptote
TOKENS_FULL = 4096  # tokens per micro-batch from which the helper's utilization applies


@dataclass(frozen=True)
class StepTime:
    """Seconds per optimizer step, by part."""

    compute_s: float
    dequant_s: float
    attention_s: float
    optimizer_s: float
    flops: float
    comm_s: float = 0.0  # communication not hidden behind compute (planner/parallel.py)

    @property
    def total_s(self) -> float:
        return (self.compute_s + self.dequant_s + self.attention_s + self.optimizer_s
                + self.comm_s)

    def tokens_per_s(self, tokens: int) -> float:
        return tokens / self.total_s if self.total_s > 0 else 0.0


@dataclass(frozen=True)
class ModelDims:
    """The model numbers the step-time model needs (computed once per plan)."""

    n_block: float  # matmul parameters in the blocks that a token passes through (MoE: active)
    n_head: float  # LM-head parameters (h·V; classification heads are negligible)
    n_quant: float  # parameters a k-bit base stores quantized (the block Linears, all experts)
    L: int
    h: int
    a: int


def model_dims(spec: Any) -> ModelDims:
    """Block / head / quantizable parameter counts from a ModelSpec."""
    h, V, L = spec.hidden_size, spec.vocab_size, spec.num_hidden_layers
    embed = V * h * (1 if spec.tie_word_embeddings else 2)
    n_total = float(spec.n_params)
    n_block_all = max(n_total - embed, 0.0)
    n_block = n_block_all
    E, k = spec.num_local_experts, spec.num_experts_per_tok
    if E and k:
        per_expert = (3 if spec.gated_mlp else 2) * h * spec.intermediate_size
        experts = L * E * per_expert
        n_block = n_block_all - experts * (1 - k / E)
    return ModelDims(n_block=n_block, n_head=float(h * V), n_quant=n_block_all, L=L, h=h,
                     a=spec.num_attention_heads)


def compute_dtype(combo: Any) -> str:
    """Dtype the matmuls run in: the autocast dtype, else the weights' (QLoRA: fp32 compute)."""
    if combo.amp is not None:
        return str(combo.amp)
    if combo.method in ("qlora", "qlora-int8", "gptq-lora", "awq-lora"):
        return "fp32"  # bnb_4bit_compute_dtype float32, BitsAndBytesConfig's default
    return {"bfloat16": "bf16", "float16": "fp16"}.get(combo.dtype, "fp32")


def utilization(tokens_per_micro_batch: int) -> float:
    """Fraction of peak the matmuls reach at this micro-batch size (module docstring)."""
    t = tokens_per_micro_batch
    return min(ASSUMED_UTILIZATION,
               ASSUMED_UTILIZATION * t / (t + TOKENS_HALF) * (1 + TOKENS_HALF / TOKENS_FULL))


def step_time(cand: Candidate, dims: ModelDims, gpu: Any, effective_batch: int,
              trainable_params: float, *, num_gpus: int = 1, nodes: int = 1,
              strategy: str = "") -> StepTime:
    """Seconds per optimizer step of ``cand`` on ``gpu`` (see the module docstring); with
    ``num_gpus`` > 1, per GPU (its ``effective_batch``) plus the exposed communication of
    ``strategy`` (planner/parallel.py)."""
    c = cand.combo
    s, mb = cand.seq_len, cand.micro_batch
    tokens = effective_batch * s
    frozen = c.method != "full"
    per_token = train_flops_per_token(int(dims.n_block + dims.n_head), n_layers=dims.L,
                                      hidden_size=dims.h, seq_len=s, weight_grads=not frozen,
                                      recompute=c.ckpt)
    if frozen:
        per_token += 6.0 * trainable_params
    flops = per_token * tokens
    dtype = compute_dtype(c)
    compute_s = step_time_s(flops, 0.0, gpu, dtype, utilization=utilization(mb * s))

    dequant = 0.0
    if c.method in ("qlora", "qlora-int8", "gptq-lora", "awq-lora"):
        dequant = cand.grad_accum * dequant_4bit_bytes(int(dims.n_quant), recompute=c.ckpt)
    scores = 0.0
    if c.attn == "eager":
        passes = 3 if c.ckpt else 2
        scores = cand.grad_accum * passes * dims.L * mb * dims.a * s * s * 2 * 8
    param_dtype = c.dtype if c.method == "full" else "float32"
    bits = optim_state_bits(c.optim, param_dtype)
    param_bytes = 2 if param_dtype in ("bfloat16", "float16") else 4
    update = adamw_step_bytes(int(trainable_params), param_bytes=param_bytes,
                              grad_bytes=param_bytes, state_bytes=(bits or 8) / 8)
    comm_s = 0.0
    if num_gpus > 1 or strategy:
        from vramdoc.planner.parallel import OVERLAP, comm_seconds

        kbit = c.method in ("qlora", "gptq-lora", "awq-lora")
        over, serial = comm_seconds(
            strategy, n_params=dims.n_quant + 2 * dims.n_head, trainable=trainable_params,
            param_bytes=1 if kbit else (4 if dtype == "fp32" and c.amp is None else 2),
            grad_bytes=param_bytes, grad_accum=cand.grad_accum, ckpt=c.ckpt, gpu=gpu,
            num_gpus=num_gpus, nodes=nodes)
        comm_s = max(0.0, over - OVERLAP * compute_s) + serial
    return StepTime(
        compute_s=compute_s, comm_s=comm_s,
        dequant_s=step_time_s(0.0, dequant, gpu, dtype),
        attention_s=step_time_s(0.0, scores, gpu, dtype),
        optimizer_s=step_time_s(0.0, update, gpu, dtype),
        flops=flops,
    )
