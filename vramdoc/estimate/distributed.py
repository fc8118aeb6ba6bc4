"""Per-GPU memory under data parallelism: which strategy holds what on one rank.

The setup picks the engine (TrainingArguments names): ``deepspeed`` -> DeepSpeed ZeRO
(:mod:`vramdoc.estimate.zero`); ``fsdp`` -> PyTorch FSDP1 / FSDP2 (:mod:`vramdoc.estimate.fsdp`);
``num_gpus > 1`` alone -> DDP. Each returns a :class:`DistParts`: the per-rank bytes of every
resident component, what is materialised during forward and backward, communication buffers,
memory that only the reserved or device views see, and what lives in host RAM.

PyTorch FSDP (Zhao et al. 2023, "PyTorch FSDP", arXiv 2304.11277, section 3; ZeRO stages in
Rajbhandari et al. 2020, arXiv 1910.02054) keeps 1/N of each wrapped unit's parameters per rank:

- ``full_shard`` (ZeRO-3): parameters, gradients and optimizer states sharded 1/N. Before a
  unit runs, its parameters are all-gathered to full size and freed after; at most two units
  are materialised at once (the one computing and the next one prefetched; what each engine
  holds when is in ``fsdp.py``). A unit's full gradient exists until its reduce-scatter.
- ``shard_grad_op`` (ZeRO-2): gradients and optimizer states sharded; parameters sharded at
  rest, but each unit stays unsharded from its forward until its backward (all of them at
  the loss, beside their shards).
- ``hybrid_shard*``: the same within a node, replicated across nodes.
- ``no_shard``: nothing sharded; FSDP all-reduces each unit's flat gradient in place.
- plain DDP (``num_gpus > 1`` without ``fsdp``): nothing sharded; DDP copies gradients into
  its communication buckets (``gradient_as_bucket_view=False``): one more gradient-sized
  buffer.

With HF Trainer's ``auto_wrap`` the unit is the decoder layer (``_no_split_modules``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from vramdoc.setup import TrainSetup
from vramdoc.units import MiB

# NCCL's device buffers, outside torch's allocator (nvidia-smi sees them, reserved does not):
# NCCL_BUFFSIZE is 4 MiB per channel and peer for the Simple protocol (NCCL environment
# variables documentation), the LL128 protocol keeps a buffer of about the same size; a ring
# has two peers; NCCL opens up to 16 channels between NVLink-connected GPUs (fewer over PCIe).
# 16 channels x 2 peers x 2 protocols x 4 MiB = 256 MiB per communicator.
NCCL_BYTES = 256 * MiB


@dataclass(frozen=True)
class Sharding:
    """How one rank holds the model's state."""

    world: int  # data-parallel ranks
    params_div: int  # parameters (weights, quant constants, adapters) held 1/params_div
    grads_div: int
    states_div: int
    gathered_units: int  # decoder layers materialised at full size at once (FULL_SHARD)
    ddp_bucket_copy: bool  # DDP's gradient buckets: one more gradient-sized buffer
    cpu_offload: bool  # fsdp "offload": parameters, gradients, states live on the CPU
    engine: str = "none"  # none | ddp | fsdp | deepspeed
    label: str = ""


@dataclass(frozen=True)
class DistParts:
    """Per-rank bytes of one strategy (what ``build_estimate`` assembles into phases)."""

    base: dict[str, int]  # resident weights, quant_state, adapters
    grads: int  # gradients held after backward (per rank)
    states: int  # optimizer states (ZeRO: + the fp32 master copy)
    temps: int  # optimizer-step temporaries
    paged: int  # paged optimizer states (CUDA unified memory)
    gathered: int  # parameters materialised beyond the resident ones in forward / backward
    unit_grads: int  # one unit's unsharded gradient before its reduce-scatter
    comm_bytes: int = 0  # communication buckets allocated through backward
    step_bytes: int = 0  # allocated during the optimizer step only (fp32 gradient partition)
    pool_bytes: int = 0  # reserved by other streams' pools beyond the default stream's peak
    # the default stream's pool at the start of training beyond the resident parameters:
    # blocks cached while the engine wrapped the model (FSDP1, fsdp.init_cache_bytes)
    init_cache_bytes: int = 0
    # FSDP allocates the sharded gradients on its reduce-scatter stream (their own pool)
    grads_on_comm_stream: bool = False
    device_extra_bytes: int = 0  # outside torch's allocator (NCCL)
    host: dict[str, int] = field(default_factory=dict)  # host RAM per process, by component
    label: str = ""
    # torch autocast caches 16-bit copies of the weights through forward; not when the engine
    # casts them itself (FSDP's MixedPrecision param_dtype, DeepSpeed's 16-bit module)
    autocast_cache: bool = True
    # FSDP2: parameters gathered beyond the resident ones at the loss and at the start of
    # backward (``gathered_loss``) and in the blocks' backward (``gathered_backward``), when
    # they differ from what a block's forward gathers (None: ``gathered`` throughout)
    gathered_loss: int | None = None
    gathered_backward: int | None = None
    # FSDP2 shard_grad_op: parameters gathered beyond the resident ones at the loss in forward,
    # when more than at the start of backward (the tail's and the last layer's all-gather
    # outputs; None: ``gathered_loss``)
    gathered_forward_loss: int | None = None
    # FSDP2 shard_grad_op: gathered beyond the resident ones while the tail is all-gathered,
    # after the last block and before the logits (None: no such instant of its own)
    gathered_before_head: int | None = None
    # FSDP2: the unsharded gradient at the start of backward, the tail's (None: ``unit_grads``)
    unit_grads_loss: int | None = None
    # FSDP2: parameters gathered beyond the resident ones at the last layer's all-gather
    # copy-out in forward (three units), before that layer saves anything (None: no such
    # instant of its own)
    gathered_copy_out: int | None = None
    # FSDP2: gathered beyond the resident ones at the end of layer 0's backward, when its
    # prefetch is the input embedding's unit rather than a layer (None: ``gathered_backward``)
    gathered_backward_end: int | None = None
    # FSDP2: sharded gradient bytes not yet made at the end of layer 0's backward (its own,
    # reduce-scattered in its post_backward)
    pending_grads: int = 0
    # FSDP2: at the untied input embedding's backward, the parameters gathered beyond the
    # resident ones and the unsharded gradients beyond the sharded ones but the embedding's
    # (None: ``gathered_backward`` and ``unit_grads`` with every sharded gradient)
    embedding_backward: tuple[int, int] | None = None
    # FSDP2: the unsharded gradients in the first layer's backward (layer L-1): its own and
    # the tail's reduce-scatter input, still held (None: ``unit_grads``)
    unit_grads_first: int | None = None
    # FSDP1 under LoRA: gathered beyond the resident ones at the end of a layer's backward,
    # when its first adapter's pre-backward hook has prefetched the layer below (None: no
    # such instant of its own)
    gathered_layer_end: int | None = None
    # FSDP1: the all-gather stream pool's high-water mark, when more than is ever allocated
    # at once there (None: the most gathered at any instant)
    gathered_pool: int | None = None
    # FSDP2: parameters gathered beyond the resident ones during the loss chain's backward,
    # before the tail's pre-backward hook prefetches a layer (None: ``gathered_loss``)
    gathered_loss_chain: int | None = None


def sharding(setup: TrainSetup) -> Sharding:
    n = setup.num_gpus
    if setup.training.deepspeed:
        from vramdoc.estimate.zero import zero_sharding

        return zero_sharding(setup)
    opts = set(setup.training.fsdp.split())
    if n <= 1:
        return Sharding(1, 1, 1, 1, 0, False, False)
    if not opts:
        return Sharding(n, 1, 1, 1, 0, True, False, "ddp", "DDP")
    from vramdoc.estimate.fsdp import fsdp_sharding

    return fsdp_sharding(setup)


def shard(n_bytes: int, div: int) -> int:
    """Bytes one rank holds of a flat buffer of n_bytes split over div ranks (padded)."""
    return -(-n_bytes // div) if div > 1 else n_bytes
