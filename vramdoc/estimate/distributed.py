"""Per-GPU memory under data parallelism: DDP and FSDP (TrainingArguments ``fsdp`` options).

PyTorch FSDP (Zhao et al. 2023, "PyTorch FSDP", arXiv 2304.11277, section 3; ZeRO stages in
Rajbhandari et al. 2020, arXiv 1910.02054) flattens each wrapped unit's parameters and keeps
1/N of them per rank:

- ``full_shard`` (ZeRO-3): parameters, gradients and optimizer states sharded 1/N. Before a
  unit runs, its parameters are all-gathered to full size and freed after; with the default
  backward prefetch two units are materialised at once. A unit's full gradient exists until
  its reduce-scatter.
- ``shard_grad_op`` (ZeRO-2): gradients and optimizer states sharded; parameters stay whole.
- ``hybrid_shard*``: the same within a node; we treat the node as the given GPUs.
- ``no_shard`` / plain DDP (``num_gpus > 1`` without ``fsdp``): nothing sharded; DDP copies
  gradients into its communication buckets (``gradient_as_bucket_view=False``): one more
  gradient-sized buffer.

With HF Trainer's ``auto_wrap`` the unit is the decoder layer (``_no_split_modules``).
"""

from __future__ import annotations

from dataclasses import dataclass

from vramdoc.setup import TrainSetup


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


def sharding(setup: TrainSetup) -> Sharding:
    n = setup.num_gpus
    opts = set(setup.training.fsdp.split())
    if n <= 1:
        return Sharding(1, 1, 1, 1, 0, False, False)
    if not opts or "no_shard" in opts:
        return Sharding(n, 1, 1, 1, 0, not opts, False)
    offload = "offload" in opts
    if "shard_grad_op" in opts or "hybrid_shard_zero2" in opts:
        return Sharding(n, 1, n, n, 0, False, offload)
    # full_shard / hybrid_shard: 1 unit in use + 1 prefetched (BACKWARD_PRE default)
    return Sharding(n, n, n, n, 2, False, offload)


def shard(n_bytes: int, div: int) -> int:
    """Bytes one rank holds of a flat buffer of n_bytes split over div ranks (padded)."""
    return -(-n_bytes // div) if div > 1 else n_bytes
