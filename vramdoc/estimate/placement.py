"""``device_map`` + ``max_memory``: which layers ``from_pretrained`` keeps on the GPU.

accelerate's ``infer_auto_device_map`` (the "auto" / "sequential" placement transformers asks
for) walks the model's top-level blocks in order (embeddings, the decoder layers, final norm and
LM head), fills GPU 0 up to its ``max_memory`` budget, and sends the first block that does not
fit, and every block after it, to the CPU; once something is offloaded it keeps room on the GPU
for the largest layer, into which the offloaded weights are copied while their layer runs
(``AlignDevicesHook``: weights moved to the execution device for the forward, released after).
The usual recipe is "a 7B model on a 6 GB card" with frozen, offloaded base layers
(``llm_int8_enable_fp32_cpu_offload`` for 8-bit bases); trainable parameters must stay on
the GPU.

What changes in the estimate: resident weights (and quantization constants) are those of the
GPU blocks; one offloaded layer is materialised in forward and backward; the offloaded
weights are host RAM.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from vramdoc.models.spec import EMBEDDING


@dataclass(frozen=True)
class Placement:
    """Where the weights of one process went."""

    gpu_blocks: int  # decoder layers on the GPU
    cpu_blocks: int  # decoder layers on the CPU
    head_on_cpu: bool  # final norm + LM head offloaded
    gpu_bytes: int  # resident on the GPU (weights + quantization constants)
    cpu_bytes: int  # host RAM
    layer_bytes: int  # one decoder layer (the transient copy of an offloaded one)


def _bytes(acc: Any) -> int:
    return int(acc.weights_bytes + acc.quant_state_bytes)


def place(setup: Any, spec: Any, groups: Any) -> Placement:
    """Layer placement of ``setup`` under its GPU-0 ``max_memory`` budget."""
    from vramdoc.estimate.params import account_params

    budget = setup.max_memory_gpu_bytes
    L = max(spec.num_hidden_layers, 1)
    blocks = account_params(setup, spec, tuple(g for g in groups if g.in_block))
    embed = account_params(setup, spec, tuple(g for g in groups
                                              if not g.in_block and g.kind == EMBEDDING))
    tail = account_params(setup, spec, tuple(g for g in groups
                                             if not g.in_block and g.kind != EMBEDDING))
    layer = _bytes(blocks) // L
    e, t = _bytes(embed), _bytes(tail)
    if e + layer * L + t <= budget:
        return Placement(L, 0, False, e + layer * L + t, 0, layer)
    room = budget - layer  # something is offloaded: keep room for the largest layer
    used = e if e <= room else 0
    on_gpu = 0
    while on_gpu < L and used + layer <= room:
        used += layer
        on_gpu += 1
    off = L - on_gpu
    cpu = layer * off + t + (0 if e <= room else e)
    return Placement(on_gpu, off, True, used, cpu, layer)
