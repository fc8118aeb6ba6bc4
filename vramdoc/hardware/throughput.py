"""Step-time model: how long one training step takes on a :class:`GpuSpec`. Pure Python.

The planner ranks setups that fit by predicted speed; this module is that prediction::

    t_step = flops / (peak(dtype) * utilization) + bytes_moved / (bandwidth * bw_efficiency)

- ``flops``: every matmul FLOP the GPU executes in the step, recomputation included
  (:func:`train_flops_per_token` counts them). ``peak(dtype)`` is the card's dense
  tensor-core rate with fp32 accumulation (:func:`peak_tflops`).
- ``bytes_moved``: DRAM traffic of the memory-bound work the caller accounts explicitly: the
  optimizer update (:func:`adamw_step_bytes`) and 4-bit dequantization
  (:func:`dequant_4bit_bytes`). The two terms add, not max: those kernels run one after
  another on one stream, they do not overlap with the matmuls.

Assumptions (an estimate to rank plans, not a measurement; ``vramdoc probe`` measures):

- ``ASSUMED_UTILIZATION = 0.35`` of peak for the executed matmul FLOPs. Anchors: PaLM
  (Chowdhery et al. 2022, arXiv:2204.02311, Table 3 and Appendix B, which defines MFU)
  reports model-FLOPs utilization of 46.2% for PaLM 540B, 32.5% Gopher, 30.2% MT-NLG and
  21.3% GPT-3; Llama 3 (arXiv:2407.21783, Table 4) reports 38-43% bf16 MFU on H100. A
  single-GPU Hugging Face Trainer fine-tune runs unfused eager kernels (norms, rotary,
  SwiGLU, a large-vocabulary cross-entropy) that those systems fuse, with small batches;
  fused-kernel libraries report about 2x the throughput of the same HF run (Unsloth README,
  github.com/unslothai/unsloth), which puts HF near a third of peak. 0.35 counts
  recomputation as executed FLOPs (PaLM's hardware-FLOPs utilization), so the model-FLOPs
  utilization of a checkpointed run comes out lower, as it should.
- ``ASSUMED_BANDWIDTH_EFFICIENCY = 0.8`` of peak DRAM bandwidth for streaming kernels
  (elementwise optimizer updates, dequantization).
- bf16 on a card without bf16 tensor math (sm < 80) runs at half the fp32 rate: torch
  matmul measurements give bf16/fp32 = 0.53 on a GTX 1080 Ti, 0.60 on an RTX 2080 Ti and
  0.73 on a V100 (github.com/zzc0721/torch-performance-test-data issues #60, #181, #140).
  The hardware rules forbid bf16 there anyway; the number keeps the model total.
"""

from __future__ import annotations

from vramdoc.hardware.spec import GpuSpec

#: Fraction of peak tensor FLOP/s a single-GPU HF Trainer step attains (module docstring).
ASSUMED_UTILIZATION = 0.35
#: Fraction of peak DRAM bandwidth streaming kernels attain.
ASSUMED_BANDWIDTH_EFFICIENCY = 0.8
#: bf16 matmul rate on cards without bf16 tensor cores, as a fraction of their fp32 rate.
EMULATED_BF16_FRACTION = 0.5
#: Extra DRAM bytes per parameter each time bitsandbytes dequantizes an NF4/FP4 weight:
#: read the packed 4-bit weight (0.5 B) and write the 16-bit copy (2 B) that F.linear then
#: reads like any 16-bit weight. bitsandbytes 0.50 ``backends/cuda/ops.py`` takes the
#: dequantize + F.linear path for more than 1536 rows (every training micro-batch), and
#: ``autograd/_functions.py`` ``MatMul4Bit.backward`` dequantizes again for the input grad.
DEQUANT_4BIT_BYTES_PER_PARAM = 2.5

_DTYPES = {
    "bf16": "bf16", "bfloat16": "bf16",
    "fp16": "fp16", "float16": "fp16", "half": "fp16",
    "fp32": "fp32", "float32": "fp32", "float": "fp32",
}


def canonical_dtype(dtype: str) -> str:
    """``"bfloat16"`` -> ``"bf16"``, ``"float16"`` -> ``"fp16"``, ``"float32"`` -> ``"fp32"``.

    Raises:
        ValueError: not a compute dtype of this model.
    """
    key = dtype.lower().removeprefix("torch.")
    if key not in _DTYPES:
        raise ValueError(f"unknown compute dtype {dtype!r}; use bf16, fp16 or fp32")
    return _DTYPES[key]


def peak_tflops(gpu: GpuSpec, dtype: str) -> float:
    """Dense peak matmul TFLOP/s of ``gpu`` for the compute dtype of a step.

    bf16/fp16 use the tensor-core rate with fp32 accumulation; fp32 uses the non-tensor rate
    (HF Trainer leaves TF32 off unless ``tf32=True``).
    """
    kind = canonical_dtype(dtype)
    if kind == "bf16":
        return gpu.bf16_tflops if gpu.bf16 and gpu.bf16_tflops > 0 \
            else gpu.fp32_tflops * EMULATED_BF16_FRACTION
    if kind == "fp16":
        return gpu.fp16_tflops
    return gpu.fp32_tflops


def step_time_s(
    flops: float,
    bytes_moved: float,
    gpu: GpuSpec,
    dtype: str,
    *,
    utilization: float = ASSUMED_UTILIZATION,
    bandwidth_efficiency: float = ASSUMED_BANDWIDTH_EFFICIENCY,
) -> float:
    """Predicted seconds for one step: compute time plus memory-bound time (module docstring).

    Args:
        flops: matmul FLOPs the step executes (forward, backward, recomputation).
        bytes_moved: DRAM bytes of the memory-bound work counted separately (optimizer
            update, dequantization); 0 when there is none.
        gpu: the GPU.
        dtype: compute dtype of the matmuls: ``bf16``, ``fp16`` or ``fp32``.
        utilization: fraction of peak FLOP/s attained (default ``ASSUMED_UTILIZATION``).
        bandwidth_efficiency: fraction of peak bandwidth attained.

    Raises:
        ValueError: negative work, an unknown dtype, or a GPU with no throughput figures.
    """
    if flops < 0 or bytes_moved < 0:
        raise ValueError("flops and bytes_moved must be >= 0")
    if not 0 < utilization <= 1 or not 0 < bandwidth_efficiency <= 1:
        raise ValueError("utilization and bandwidth_efficiency must be in (0, 1]")
    peak = peak_tflops(gpu, dtype)
    if peak <= 0 or gpu.memory_bandwidth_gbps <= 0:
        raise ValueError(f"{gpu.name} has no throughput figures for {dtype}")
    compute_s = flops / (peak * 1e12 * utilization)
    memory_s = bytes_moved / (gpu.memory_bandwidth_gbps * 1e9 * bandwidth_efficiency)
    return compute_s + memory_s


def train_flops_per_token(
    n_matmul_params: int,
    *,
    n_layers: int = 0,
    hidden_size: int = 0,
    seq_len: int = 0,
    weight_grads: bool = True,
    recompute: bool = False,
) -> float:
    """Matmul FLOPs one training token costs, forward + backward (+ recomputation).

    PaLM Appendix B (arXiv:2204.02311): ``6N + 12 L H Q T`` per token for training, i.e. a
    forward of ``2N`` for the weights plus ``4 L h T`` for attention scores and their
    weighted sum (``h = H Q``), and a backward of twice the forward (Kaplan et al. 2020,
    arXiv:2001.08361, section 2.1). The backward splits into activation gradients (``2N``)
    and weight gradients (``2N``); a frozen base (LoRA, QLoRA) skips the weight gradients, so
    its cost is ``4N`` plus the small adapter terms the caller adds. Full activation
    checkpointing recomputes the forward once more (Korthikanti et al. 2022,
    arXiv:2205.05198).

    Args:
        n_matmul_params: parameters that take part in matmuls: every Linear in the blocks and
            the LM head; not the input embedding (a lookup).
        n_layers / hidden_size / seq_len: for the attention term; 0 leaves it out.
        weight_grads: False when these weights are frozen.
        recompute: full gradient checkpointing.

    >>> train_flops_per_token(1_000_000)               # 6N
    6000000.0
    >>> train_flops_per_token(1_000_000, weight_grads=False, recompute=True)   # 2N+2N+2N
    6000000.0
    >>> train_flops_per_token(0, n_layers=2, hidden_size=64, seq_len=128)      # 12 L h T
    196608.0
    """
    attention_fwd = 4.0 * n_layers * hidden_size * seq_len
    forward = 2.0 * n_matmul_params + attention_fwd
    backward = 2.0 * n_matmul_params + 2.0 * attention_fwd  # activation gradients
    if weight_grads:
        backward += 2.0 * n_matmul_params
    return forward + backward + (forward if recompute else 0.0)


def dequant_4bit_bytes(n_quantized_params: int, *, recompute: bool = False) -> float:
    """DRAM bytes one step spends dequantizing 4-bit weights (QLoRA), all layers.

    Each quantized weight is dequantized in the forward, again in the backward (for the
    input gradient) and once more per recomputed forward: ``DEQUANT_4BIT_BYTES_PER_PARAM``
    each time. Per micro-batch: multiply by the number of micro-batches in a step.
    """
    passes = 3 if recompute else 2
    return float(n_quantized_params) * DEQUANT_4BIT_BYTES_PER_PARAM * passes


def adamw_step_bytes(
    n_trainable: int, *, param_bytes: float = 4, grad_bytes: float = 4, state_bytes: float = 4
) -> float:
    """DRAM bytes of one AdamW update: read param, grad and two states; write param and states.

    ``state_bytes`` is 4 for fp32 states, 2 for bf16 states, about 1 for 8-bit states
    (bitsandbytes keeps one byte per element plus small block constants).
    """
    read = param_bytes + grad_bytes + 2 * state_bytes
    write = param_bytes + 2 * state_bytes
    return float(n_trainable) * (read + write)
