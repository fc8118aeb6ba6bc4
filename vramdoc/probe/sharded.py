"""One rank of a sharded (FSDP2) run of N ranks, traced on fake tensors inside one CPU process.

``vramdoc probe --num-gpus N --fsdp "full_shard auto_wrap" --device fake`` runs the same
recipe as a one-GPU fake probe (:mod:`vramdoc.probe.recipe`), with three additions:

- a fake process group: torch.distributed's ``fake`` backend with a ``FakeStore`` (world size
  N, this process is one rank), collectives that return at once and move no data, and a
  one-dimensional device mesh over it (as torchtitan's memory estimation does);
- the model sharded the way accelerate 1.15 ``fsdp2_prepare_model`` shards it for HF Trainer:
  trainable parameters upcast to fp32 under mixed precision (unless the model holds
  bitsandbytes 4-bit weights), ``fully_shard`` on every decoder layer (``_no_split_modules``),
  on the input embedding when it is not tied, on ``[final norm, output head]`` with
  ``reshard_after_forward=False``, then on the root with torch's default for it (False);
  ``MixedPrecisionPolicy(param_dtype, reduce_dtype, output_dtype)`` in the 16-bit dtype;
  ``CPUOffloadPolicy`` for ``offload``; frozen non-floating 4-bit weights left out of
  sharding (``ignored_params``), as accelerate leaves them;
- roles for what FSDP allocates: the all-gather buffers and unsharded parameters
  (``FSDPParamGroup.unshard`` / ``wait_for_unshard``) count as weights, the unsharded
  gradients and reduce-scatter buffers (``post_backward``) as gradients; with CPU offload the
  sharded parameters, gradients, optimizer states and the optimizer step live on the host.

Every rank holds the same bytes: FSDP2 pads each parameter's shard to ``ceil(dim0 / N)`` rows,
so the last ranks' (shorter or empty) shards take the same storage as rank 0's. Rank 0 is
traced unless asked otherwise; the tests trace the last rank too and find the same figures.

Why a CPU trace stands for a CUDA rank here (torch 2.13, ``distributed/fsdp/_fully_shard``):
every buffer FSDP2 allocates is held by Python references, not by ``record_stream``, and the
caching allocator counts a block as allocated from the request the CPU issues to the free it
issues, stream order aside; so the allocated timeline is the CPU program order the fake run
follows. The same code paths run on both devices: the all-gather output kept in
``comm_ctx.all_gather_state`` (and the ``prev_all_gather_state`` local of
``wait_for_unshard``) until the next copy-out, the reduce-scatter input kept in
``comm_ctx.reduce_scatter_states`` until the next group's ``post_backward``
(``reduce_scatter_max_input_buffers`` = 1), the unsharded gradients freed once copied in
(``foreach_reduce``), the backward prefetch of the previous group in ``post_forward_order``
(forward prefetch is explicit only, and accelerate sets none), ``reshard_after_forward``
False for the root (torch's default) and the tail (accelerate's). The only device-type
branches (``_fsdp_state.py`` moving forward inputs to the device, the HSDP all-reduce event)
change no byte count.

What the fake device does not show (it is a CPU device with CUDA's block rounding):
NCCL's own buffers (outside torch's allocator), the caching allocator's per-stream pools
(reserved, not allocated), and with CPU offload the device copies of a shard on its way into
the all-gather buffer and of the reduce-scatter output on its way to the host (transient, one
shard of one layer each): ``.to("cpu")`` of a cpu tensor copies nothing.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch

from vramdoc.errors import UsageError
from vramdoc.setup import TrainSetup


@dataclass
class ShardedRun:
    """What the recipe needs to run one rank of a sharded setup."""

    world: int
    rank: int
    reshard_after_forward: bool
    cpu_offload: bool
    label: str
    notes: list[str] = field(default_factory=list)
    mesh: Any = None

    def placed(self, role: str) -> str:
        """Where a resident component lives: with CPU offload, the sharded state is host RAM."""
        if self.cpu_offload and role in ("weights", "adapters", "gradients", "optimizer_states"):
            return "host"
        return role

    def to_json(self) -> dict[str, Any]:
        return {"engine": "fsdp2", "world_size": self.world, "rank": self.rank,
                "reshard_after_forward": self.reshard_after_forward,
                "cpu_offload": self.cpu_offload, "label": self.label}


def sharded_run(setup: TrainSetup, rank: int = 0) -> ShardedRun:
    """The FSDP2 run a setup asks for, or a UsageError saying what the probe cannot run."""
    from vramdoc.estimate.fsdp import options

    n = setup.num_gpus
    if setup.training.deepspeed:
        raise UsageError(
            "the sharded probe runs FSDP2 only: DeepSpeed's engine cannot start on fake "
            "tensors (deepspeed.initialize needs a real accelerator and moves the module to "
            "it), so DeepSpeed runs are estimate-only",
            "use vramdoc estimate --deepspeed FILE, or probe the FSDP equivalent with "
            "--fsdp \"full_shard auto_wrap\"")
    o = options(setup)
    if o is None:
        raise UsageError(f"num_gpus={n} without fsdp is DDP: every rank holds the whole model, "
                         "which the one-GPU probe already measures",
                         "add --fsdp \"full_shard auto_wrap\" (or shard_grad_op) to probe a "
                         "sharded rank, or drop --num-gpus")
    if o.version != 2:
        raise UsageError("the sharded probe runs FSDP2 (fully_shard); fsdp_config version 1 "
                         "(FullyShardedDataParallel) is estimate-only",
                         "drop fsdp_config version: 1 (transformers 5 defaults to FSDP2)")
    if setup.nodes > 1:
        raise UsageError("the sharded probe traces one node's mesh; --nodes > 1 is estimate-only",
                         "drop --nodes (FSDP2 full_shard shards over all GPUs alike)")
    if not 0 <= rank < n:
        raise UsageError(f"rank {rank} is outside 0..{n - 1}", "pick a rank below --num-gpus")
    label = (f"FSDP2 {'full_shard' if o.reshard_after_forward else 'shard_grad_op'}"
             + (" + CPU offload" if o.cpu_offload else ""))
    run = ShardedRun(n, rank, o.reshard_after_forward, o.cpu_offload, label)
    if o.activation_checkpointing:
        run.notes.append("fsdp_config activation_checkpointing traced as gradient "
                         "checkpointing of every decoder layer (the same saved tensors)")
    if setup.training.gradient_accumulation_steps > 1:
        run.notes.append("gradient accumulation traced with a reduce-scatter after every "
                         "micro-batch (accelerate's no_sync is not emulated)")
    return run


@contextlib.contextmanager
def fake_process_group(run: ShardedRun) -> Iterator[Any]:
    """torch.distributed's fake backend for ``run.world`` ranks, this process being
    ``run.rank``; yields the one-dimensional device mesh fully_shard shards over."""
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    from torch.testing._internal.distributed.fake_pg import FakeStore

    if dist.is_initialized():
        raise UsageError("a process group is already initialized in this process",
                         "run the sharded probe in a process of its own")
    dist.init_process_group("fake", store=FakeStore(), rank=run.rank, world_size=run.world)
    try:
        yield init_device_mesh("cpu", (run.world,))
    finally:
        dist.destroy_process_group()


def _has_4bit(model: torch.nn.Module) -> bool:
    from vramdoc.probe.standins import PackedLinear4bit

    return any(isinstance(m, PackedLinear4bit) for m in model.modules())


def shard_model(built: Any, setup: TrainSetup, run: ShardedRun, tracker: Any) -> None:
    """``fully_shard`` the built model as accelerate's ``fsdp2_prepare_model`` does (see the
    module docstring); call under the fake mode and the tracker, after ``tag_model``."""
    from accelerate.utils.fsdp_utils import _find_final_norm
    from torch.distributed.fsdp import (
        CPUOffloadPolicy,
        FSDPModule,
        MixedPrecisionPolicy,
        OffloadPolicy,
        fully_shard,
    )

    t = setup.training
    model = built.model
    half = torch.bfloat16 if t.bf16 else torch.float16 if t.fp16 else None
    mp = MixedPrecisionPolicy(param_dtype=half, reduce_dtype=half, output_dtype=half) \
        if half is not None else MixedPrecisionPolicy()
    # pinned host memory needs a CUDA build; pinning changes no byte count
    offload = CPUOffloadPolicy(pin_memory=False) if run.cpu_offload else OffloadPolicy()
    kwargs: dict[str, Any] = {"mesh": run.mesh, "reshard_after_forward": run.reshard_after_forward,
                              "offload_policy": offload, "mp_policy": mp}
    has_4bit = _has_4bit(model)
    if has_4bit:
        ignored = {p for p in model.parameters()
                   if not p.requires_grad and not p.is_floating_point()}
        if ignored:
            kwargs["ignored_params"] = ignored
            run.notes.append(f"{len(ignored)} frozen 4-bit weights in integer storage are left "
                             "out of sharding, whole on every rank, as accelerate leaves them "
                             "(bnb_4bit_quant_storage bfloat16 shards them)")
    elif half is not None:
        upcast = 0
        for p in model.parameters():
            if p.requires_grad and p.dtype != torch.float32:
                p.data = p.data.to(torch.float32)
                upcast += 1
        if upcast:
            run.notes.append(f"{upcast} trainable parameters upcast to fp32 before sharding, as "
                             "accelerate's fsdp2_prepare_model does under mixed precision")
    for layer in built.decoder_layers():
        fully_shard(layer, **kwargs)
    get_in = getattr(model, "get_input_embeddings", None)
    get_out = getattr(model, "get_output_embeddings", None)
    embed = get_in() if get_in is not None else None
    head = get_out() if get_out is not None else None
    tied = embed is not None and head is not None and getattr(embed, "weight", None) is \
        getattr(head, "weight", None)
    if embed is not None and not tied and not isinstance(embed, FSDPModule):
        fully_shard(embed, **kwargs)
    norm = _find_final_norm(model)
    tail = [m for m in ((norm, embed, head) if tied else (norm, head))
            if m is not None and not isinstance(m, FSDPModule)]
    if tail:
        fully_shard(tail, **{**kwargs, "reshard_after_forward": False})
    fully_shard(model, **{k: v for k, v in kwargs.items() if k != "reshard_after_forward"})
    # the shards replace the whole parameters: say again which are weights and adapters
    from vramdoc.probe.build import tag_model

    tag_model(built, tracker.tag)
    if run.cpu_offload:
        for p in model.parameters():
            if isinstance(getattr(p, "_local_tensor", None), torch.Tensor):
                tracker.tag(p, "host")


@contextlib.contextmanager
def fsdp_roles(tracker: Any, run: ShardedRun) -> Iterator[None]:
    """Give what FSDP2 allocates its component (see the module docstring)."""
    from torch.distributed.fsdp._fully_shard._fsdp_param_group import FSDPParamGroup

    names = ("unshard", "wait_for_unshard", "post_backward")
    originals = {n: getattr(FSDPParamGroup, n) for n in names}

    def with_role(fn: Any, role: str) -> Any:
        def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            previous, tracker.role = tracker.role, role
            try:
                return fn(self, *args, **kwargs)
            finally:
                tracker.role = previous
        return wrapper

    def post_backward(self: Any, *args: Any) -> Any:
        for fp in self.fsdp_params:
            # autograd made these while the layer's backward ran: the unsharded gradients
            if getattr(fp, "_unsharded_param", None) is not None:
                tracker.tag(fp.unsharded_param.grad, "gradients")
            tracker.tag(getattr(fp, "unsharded_accumulated_grad", None), "gradients")
        out = with_role(originals["post_backward"], "gradients")(self, *args)
        if run.cpu_offload:
            for fp in self.fsdp_params:
                tracker.tag(fp.sharded_param.grad, "host")
        return out

    resize = torch.UntypedStorage.resize_

    def tracked_resize(storage: Any, size: int) -> Any:
        out = resize(storage, size)
        tracker.resized(storage, int(size))
        return out

    torch.UntypedStorage.resize_ = tracked_resize  # type: ignore[method-assign]
    FSDPParamGroup.unshard = with_role(originals["unshard"], "weights")  # type: ignore[method-assign]
    FSDPParamGroup.wait_for_unshard = with_role(  # type: ignore[method-assign]
        originals["wait_for_unshard"], "weights")
    FSDPParamGroup.post_backward = post_backward  # type: ignore[method-assign]
    try:
        yield
    finally:
        for n, fn in originals.items():
            setattr(FSDPParamGroup, n, fn)
        torch.UntypedStorage.resize_ = resize  # type: ignore[method-assign]
