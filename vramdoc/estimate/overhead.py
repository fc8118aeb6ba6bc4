"""What sits between torch's allocated bytes and what nvidia-smi shows.

- CUDA context (driver state, kernels of torch/cuBLAS/cuDNN loaded on demand): 1,343 MiB on a
  V100 with CUDA 11 and eager module loading (HF transformers docs, "Model training anatomy");
  with lazy loading (``CUDA_MODULE_LOADING=LAZY``, default since CUDA 11.7 in PyTorch builds)
  it is a few hundred MiB. We model a base by GPU generation, the larger images (more SMs and
  newer kernels) costing more: see ``cuda_context_bytes``.
- The caching allocator rounds every block up to 512 B and serves large requests from 2 MiB
  or 20 MiB segments (``c10/cuda/CUDACachingAllocator.cpp``: kMinBlockSize, kSmallBuffer,
  kLargeBuffer); freed activation blocks of varying size are kept and split, so
  ``max_memory_reserved`` exceeds ``max_memory_allocated`` by a share of the memory that
  churns (activations, logits, optimizer temporaries), while long-lived weights and states
  allocated once fragment little. Published pairs: torchtune PR #527 (allocated 13.99 GB,
  reserved 15.97 GB, full fine-tune); fsdp_qlora Llama-2-7B ctx 512 (8.28 vs 10.24 GiB).
"""

from __future__ import annotations

from vramdoc.units import MiB

# Fraction of the churning (dynamic) peak the allocator keeps reserved beyond what is
# allocated, and of the static part: one constant for every model and GPU, read from runs that
# published both figures. fms-acceleration's a100_80gb.csv gives, for each single-GPU run,
# torch's peak allocated and the nvidia-smi peak: minus a ~0.5 GiB context, the reserved
# excess is 18-37 % (median 29 %) of the part above weights and states over six runs
# (Mistral-7B LoRA/QLoRA/GPTQ, Mixtral QLoRA); the torchtune and fsdp_qlora pairs above are
# consistent with it. 25 % sits inside that range, on the low side, because an estimate that
# over-reserves hides the real headroom less than one that under-reserves crashes a run.
DYNAMIC_SLACK = 0.25
STATIC_SLACK = 0.01
BASE_SLACK_BYTES = 64 * MiB  # small-block pool (2 MiB segments for tensors < 1 MiB)


# HF transformers docs "Efficient training on a single GPU" (v4.21, V100, eager loading)
EAGER_CONTEXT_BYTES = 1343 * MiB


def cuda_context_bytes(compute_capability: tuple[int, int] | None, lazy: bool = True) -> int:
    """CUDA context + lazily loaded kernels, by generation (nvidia-smi minus reserved)."""
    if not lazy:
        return EAGER_CONTEXT_BYTES
    if compute_capability is None:
        return 500 * MiB
    major = compute_capability[0]
    if major >= 9:
        return 560 * MiB
    if major == 8:
        return 480 * MiB
    return 420 * MiB


def reserved_bytes(allocated_peak: int, static: int) -> int:
    """``max_memory_reserved`` predicted from the allocated peak and its static part."""
    dynamic = max(allocated_peak - static, 0)
    slack = BASE_SLACK_BYTES + int(STATIC_SLACK * static) + int(DYNAMIC_SLACK * dynamic)
    # the allocator hands out whole 2 MiB pages for large blocks
    total = allocated_peak + slack
    return -(-total // (2 * MiB)) * (2 * MiB)


def _pages(n_bytes: int) -> int:
    return -(-n_bytes // (2 * MiB)) * (2 * MiB)


def sharded_reserved_bytes(totals: dict[str, int], gathered: dict[str, int], gathered_peak: int,
                           pool: int, stream_grads: dict[str, int], static: int,
                           wrapped: int) -> int:
    """``max_memory_reserved`` of a sharded run: one caching-allocator pool per stream.

    The caching allocator pools blocks per CUDA stream and never hands a block cached for one
    stream to an allocation on another (``c10/cuda/CUDACachingAllocator.cpp``: a block keeps
    the stream it was allocated on; ``record_stream`` only delays its reuse), so each
    stream's pool peaks on its own and the reserved figure is their sum:

    - the all-gather stream: the gathered parameters (``gathered``: per phase, the units
      materialised at once and the unsharded root; ``gathered_peak`` the most at any instant)
      plus ``pool`` (what is freed but not yet reusable there: FSDP1 frees an unsharded
      unit with ``record_stream`` on the compute stream and its rate limiter,
      ``limit_all_gathers``, lets the next all-gather be issued once the older of two queued
      frees has completed, so one freed unit is still pending; plus, for FSDP1, the unsharded
      gradient ``record_stream``ed to the reduce-scatter stream);
    - the reduce-scatter stream: FSDP's sharded gradients (``stream_grads`` per phase), which
      FSDP1 allocates there (``_reduce_grad``: ``new_sharded_grad`` under the post-backward
      stream, kept as ``_saved_grad_shard`` and then ``.grad``; torch's own comment: "for the
      sharded strategies, the gradient is produced in the post-backward stream") and FSDP2
      too (``foreach_reduce`` builds the reduce-scatter output on its reduce-scatter stream
      and the sharded gradients are views of it): blocks the forward's activations can never
      reuse;
    - the default (compute) stream: everything else, with the slack of ``reserved_bytes``;
      never below ``wrapped``, what wrapping the model left reserved there (the resident
      shards plus the blocks cached while each unit was moved and flattened,
      ``fsdp.init_cache_bytes``).
    """
    phases = list(totals)
    default_peak = max(totals[p] - gathered.get(p, 0) - stream_grads.get(p, 0) for p in phases)
    grads_pool = max(stream_grads.values(), default=0)
    default_static = max(static - grads_pool, 0)
    default = max(reserved_bytes(default_peak, min(default_static, default_peak)),
                  _pages(wrapped))
    return default + _pages(gathered_peak + pool) + _pages(grads_pool)
