"""Predicted time of one optimizer step: FLOPs over the GPU's throughput, plus the memory-bound
parts (dequantization, eager attention scores, the optimizer update).

It ranks plans that already fit; it is not a benchmark. What it assumes:

- Matmul FLOPs per token, Kaplan et al. 2020 / nanoGPT ``estimate_mfu``: forward
  ``2·N + 4·L·s·h`` (N = parameters in the blocks plus the LM head), backward twice that when
  weights train. A frozen base (LoRA, QLoRA) skips the weight gradients: backward
  ``2·N + 8·L·s·h``. Gradient checkpointing adds one forward (Chen et al. 2016). MoE models
  count the routed experts only (``num_experts_per_tok / num_local_experts``).
- Achieved matmul throughput = dense peak of the compute dtype (bf16 / fp16 tensor cores,
  plain fp32 without autocast; TF32 is off by default in torch) x an efficiency that grows with
  the tokens per micro-batch: ``0.5 · T / (T + 1024)``; small GEMMs use the GPU poorly.
- Memory-bound parts at 80 % of peak bandwidth: k-bit bases dequantize every quantized weight
  in each forward, backward and recompute pass (read the packed weight, write and re-read a
  16-bit copy: ``bits/8 + 4`` bytes per weight, QLoRA section 3); eager attention writes and
  re-reads the ``a·s²`` score matrix (about 8 passes of 2 bytes, Korthikanti et al. 2022); the
  optimizer step reads and writes weights, gradients and states once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from vramdoc.planner.space import OPTIM_INFO, Candidate

ETA_MAX = 0.5  # best fraction of dense peak reached by training matmuls (nanoGPT MFU ~ 0.4-0.6)
TOKENS_HALF = 1024  # tokens per micro-batch at which half of ETA_MAX is reached
BW_EFFICIENCY = 0.8


@dataclass(frozen=True)
class StepTime:
    """Seconds per optimizer step, by part."""

    compute_s: float
    dequant_s: float
    attention_s: float
    optimizer_s: float
    flops: float

    @property
    def total_s(self) -> float:
        return self.compute_s + self.dequant_s + self.attention_s + self.optimizer_s

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


def _peak_flops(gpu: Any, dtype: str, amp: str | None, method: str) -> float:
    compute = {"bf16": "bfloat16", "fp16": "float16"}.get(amp or "", dtype)
    if method == "qlora" and amp is None:
        compute = "float32"  # bnb_4bit_compute_dtype float32 (the default)
    if compute == "bfloat16" and gpu.bf16_tflops > 0:
        tflops = gpu.bf16_tflops
    elif compute == "float16" and gpu.fp16_tflops > 0:
        tflops = gpu.fp16_tflops
    else:  # fp32, or bf16 emulated on a GPU without bf16 tensor cores
        tflops = gpu.fp32_tflops or gpu.fp16_tflops / 8
    return float(max(tflops, 1e-3)) * 1e12


def step_time(cand: Candidate, dims: ModelDims, gpu: Any, effective_batch: int,
              trainable_params: float) -> StepTime:
    """Seconds per optimizer step of ``cand`` on ``gpu`` (see the module docstring)."""
    c = cand.combo
    s, mb = cand.seq_len, cand.micro_batch
    tokens = effective_batch * s
    micro_steps = cand.grad_accum
    n_mm = dims.n_block + dims.n_head
    attn = 4.0 * dims.L * s * dims.h  # forward attention FLOPs per token
    fwd = 2.0 * n_mm + attn
    frozen = c.method != "full"
    bwd = (2.0 * n_mm + 2 * attn) if frozen else (4.0 * n_mm + 2 * attn)
    adapters = 6.0 * trainable_params if frozen else 0.0
    per_token = fwd + bwd + adapters + (fwd if c.ckpt else 0.0)
    flops = per_token * tokens
    eta = ETA_MAX * (mb * s) / (mb * s + TOKENS_HALF)
    compute_s = flops / (_peak_flops(gpu, c.dtype, c.amp, c.method) * eta)

    bw = gpu.memory_bandwidth_gbps * 1e9 * BW_EFFICIENCY
    passes = 3 if c.ckpt else 2
    dequant_s = 0.0
    if c.method in ("qlora", "qlora-int8", "gptq-lora", "awq-lora"):
        bits = 8 if c.method == "qlora-int8" else 4
        dequant_s = micro_steps * passes * dims.n_quant * (bits / 8 + 4) / bw
    attention_s = 0.0
    if c.attn == "eager":
        attention_s = micro_steps * passes * dims.L * mb * dims.a * s * s * 2 * 8 / bw
    state_bits, _paged, _bnb, _cuda = OPTIM_INFO.get(c.optim, (32, False, False, False))
    param_bytes = 4 if (frozen or c.dtype == "float32") else 2
    state_bytes = 2 * (state_bits or 8) / 8
    # read weight + grad + states, write weight + states
    optimizer_s = trainable_params * (2 * param_bytes + param_bytes + 2 * state_bytes) / bw
    return StepTime(compute_s, dequant_s, attention_s, optimizer_s, flops)
