"""Optimizer states and step temporaries for the ``optim`` names Trainer accepts.

Sources (read in the installed releases, torch 2.13, bitsandbytes 0.50, torchao, transformers 5):
- torch.optim.AdamW (``adamw_torch``): ``exp_avg`` and ``exp_avg_sq`` created like the param
  (same dtype). On CUDA the default multi-tensor path (``_multi_tensor_adam``) allocates
  ``exp_avg_sq_sqrt = torch._foreach_sqrt(exp_avg_sqs)``: one full copy of the state in the
  state dtype, per (device, dtype) group, during ``optimizer.step()``.
- ``adamw_torch_fused``: ``torch._fused_adamw_`` updates in place: no temporaries; its
  ``step`` counters live on the device (one small tensor per parameter).
- bitsandbytes 8-bit optimizers (``Optimizer2State`` / ``Optimizer1State``): uint8 states with
  an fp32 absmax per 256-element block; tensors under ``min_8bit_size`` = 4096 elements keep
  fp32 states; 32-bit variants keep fp32 states whatever the param dtype. Paged variants put
  states in CUDA unified memory (``cudaMallocManaged``): invisible to torch's allocator stats.
  Updates are in-place CUDA kernels.
- torchao ``AdamW8bit`` / ``AdamW4bit`` (``adamw_torch_8bit`` / ``adamw_torch_4bit``): 8-bit
  codes + fp32 scale per 256 elements, or 4-bit codes + fp32 scale per 128 elements, for
  tensors of >= 4096 elements; smaller ones keep states like the param. The step is compiled
  per tensor and dequantizes one tensor's states to fp32 at a time.
- transformers Adafactor (``adafactor``, Trainer passes scale_parameter=False,
  relative_step=False, beta1=None): factored second moment (rows + cols, fp32) for matrices,
  full fp32 for vectors; per-parameter loop with fp32 copies of grad and update.
- torch SGD (``sgd``, Trainer default momentum 0): no state. RMSprop / Adagrad: one state like
  the param plus a foreach sqrt copy on CUDA. Lion (bnb): one state.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from vramdoc.estimate.params import DTYPE_BYTES, ParamAccount, round_block

BNB_MIN_8BIT_SIZE = 4096
BNB_PAGED_MIN_SIZE = 100_000  # bitsandbytes Optimizer8bit.get_state_buffer: numel < 1e5 not paged
BNB_BLOCK = 256
TORCHAO_MIN_SIZE = 4096


@dataclass(frozen=True)
class OptimizerKind:
    """How one ``optim`` name keeps its state."""

    n_states: int  # moment tensors per parameter
    bits: int  # 32 = like the param (torch) or fp32 (bnb 32-bit); 8 or 4 = quantized
    family: str  # torch | torch_fused | bnb | torchao | adafactor
    paged: bool = False
    fp32_states: bool = False  # bnb 32-bit keeps fp32 states for 16-bit params
    foreach_temp_copies: int = 0  # full-state copies the multi-tensor step allocates


OPTIMIZER_KINDS: dict[str, OptimizerKind] = {
    "adamw_torch": OptimizerKind(2, 32, "torch", foreach_temp_copies=1),
    # transformers' own AdamW (removed in 5): a per-parameter loop, denom = sqrt(v) + eps
    "adamw_hf": OptimizerKind(2, 32, "torch_loop"),
    "adamw_torch_fused": OptimizerKind(2, 32, "torch_fused"),
    "adamw_anyprecision": OptimizerKind(2, 32, "torch", foreach_temp_copies=1),
    "adamw_torch_8bit": OptimizerKind(2, 8, "torchao"),
    "adamw_torch_4bit": OptimizerKind(2, 4, "torchao"),
    "adamw_bnb_8bit": OptimizerKind(2, 8, "bnb"),
    "adamw_8bit": OptimizerKind(2, 8, "bnb"),
    "paged_adamw_8bit": OptimizerKind(2, 8, "bnb", paged=True),
    "paged_adamw_32bit": OptimizerKind(2, 32, "bnb", paged=True, fp32_states=True),
    "lion_32bit": OptimizerKind(1, 32, "bnb", fp32_states=True),
    "lion_8bit": OptimizerKind(1, 8, "bnb"),
    "paged_lion_32bit": OptimizerKind(1, 32, "bnb", paged=True, fp32_states=True),
    "paged_lion_8bit": OptimizerKind(1, 8, "bnb", paged=True),
    "rmsprop": OptimizerKind(1, 32, "torch", foreach_temp_copies=1),
    "rmsprop_bnb": OptimizerKind(1, 32, "bnb", fp32_states=True),
    "rmsprop_bnb_32bit": OptimizerKind(1, 32, "bnb", fp32_states=True),
    "rmsprop_bnb_8bit": OptimizerKind(1, 8, "bnb"),
    "adagrad": OptimizerKind(1, 32, "torch", foreach_temp_copies=1),
    "sgd": OptimizerKind(0, 32, "torch"),
    "adafactor": OptimizerKind(0, 32, "adafactor"),
    "ademamix": OptimizerKind(3, 32, "bnb", fp32_states=True),
    "ademamix_8bit": OptimizerKind(3, 8, "bnb"),
    "paged_ademamix_32bit": OptimizerKind(3, 32, "bnb", paged=True, fp32_states=True),
    "paged_ademamix_8bit": OptimizerKind(3, 8, "bnb", paged=True),
}


@dataclass(frozen=True)
class OptimizerAccount:
    """Optimizer bytes: device-resident states, paged states, step temporaries."""

    states_bytes: int  # on the device, seen by torch's allocator
    paged_bytes: int  # in CUDA unified memory, not seen by torch's allocator
    temporaries_bytes: int  # allocated inside optimizer.step() and freed before it returns


def _quantized_state_bytes(numel: int, bits: int, block: int) -> int:
    codes = math.ceil(numel * bits / 8)
    return round_block(codes) + round_block(4 * math.ceil(numel / block))


def account_optimizer(
    optim: str, params: ParamAccount, weight_decay: float = 0.0, foreach: bool = True
) -> OptimizerAccount:
    """States and temporaries of ``optim`` for the trainable tensors in ``params``."""
    kind = OPTIMIZER_KINDS[optim]
    states = temps = paged = 0
    largest = 0
    by_dtype: dict[int, int] = {}  # torch groups tensors by (device, dtype) for foreach
    for rows, cols, count, p_b in params.trainable_tensors:
        numel = rows * cols
        largest = max(largest, numel)
        by_dtype[p_b] = by_dtype.get(p_b, 0) + round_block(numel * p_b) * count
        if kind.family == "adafactor":
            # factored second moment for matrices (rows + cols), full for vectors, fp32
            if cols > 1:
                per = round_block(4 * rows) + round_block(4 * cols)
            else:
                per = round_block(4 * numel)
            states += per * count
            continue
        if kind.family in ("torch", "torch_fused", "torch_loop"):
            per = kind.n_states * round_block(numel * p_b)
            if kind.family == "torch_fused":
                per += round_block(4)  # device-side step counter
        elif kind.family == "bnb":
            eight = kind.bits == 8 and numel >= BNB_MIN_8BIT_SIZE
            codes = round_block(numel if eight else numel * 4)
            absmax = round_block(4 * math.ceil(numel / BNB_BLOCK)) if eight else 0
            if kind.paged and numel >= BNB_PAGED_MIN_SIZE:
                # get_state_buffer pages only tensors of >= 1e5 elements; absmax stays on device
                paged += kind.n_states * codes * count
                per = kind.n_states * absmax
            else:
                per = kind.n_states * (codes + absmax)
        else:  # torchao
            block = 256 if kind.bits == 8 else 128
            if numel >= TORCHAO_MIN_SIZE and numel % block == 0:
                per = kind.n_states * _quantized_state_bytes(numel, kind.bits, block)
            else:
                per = kind.n_states * round_block(numel * p_b)
        states += per * count
    # the multi-tensor step runs one (device, dtype) group at a time
    t_bytes = max(by_dtype.values(), default=0)
    largest_bytes = max((round_block(r * k * e) for r, k, _, e in params.trainable_tensors),
                        default=0)
    if kind.family == "torch_loop" or (kind.family == "torch" and not foreach):
        temps = largest_bytes if kind.n_states else 0  # one parameter at a time
    elif kind.family == "torch":
        temps = kind.foreach_temp_copies * t_bytes
        if optim == "sgd" and weight_decay > 0:
            temps = t_bytes  # _foreach_add(grads, params, alpha=weight_decay)
    elif kind.family == "adafactor":
        # grad.float(), update = grad**2 + eps, and p.float() for 16-bit params: per tensor
        copies = 2 if DTYPE_BYTES[params.trainable_dtype] == 4 else 3
        temps = copies * round_block(4 * largest)
    elif kind.family == "torchao":
        temps = kind.n_states * round_block(4 * largest)
    return OptimizerAccount(states_bytes=states, paged_bytes=paged, temporaries_bytes=temps)
