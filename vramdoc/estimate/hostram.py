"""Host RAM per node: what a run puts in the machine's memory beside the GPUs.

Counted per process, then times the processes of one node (``num_gpus / nodes``):

- offloaded state: FSDP ``cpu_offload`` (sharded parameters, gradients, optimizer states),
  DeepSpeed ``offload_optimizer`` / ``offload_param`` (fp32 master + states + fp32 gradient
  partition; 16-bit parameter partitions), all in pinned memory by default, and NVMe
  offload's pinned swap buffers (:mod:`vramdoc.estimate.zero`, :mod:`vramdoc.estimate.fsdp`);
- paged optimizer states (bitsandbytes paged optimizers, CUDA unified memory): they live on
  the GPU until it runs short, then spill to host RAM; counted here as what may spill;
- model loading: ``from_pretrained`` without a ``device_map`` materialises the checkpoint's
  weights on the CPU before Trainer moves the model to its GPU, one copy per process;
  FSDP's ``cpu_ram_efficient_loading`` loads on the first process only (the others build on
  the meta device and receive the weights through ``sync_module_states``); ZeRO-3's
  ``zero.Init`` keeps only each rank's partition; k-bit bases load straight to the GPU
  (they need a ``device_map``) and hold no full copy.

Loading and training do not overlap: the node's peak is the larger of the two. Not counted:
the Python process itself, the dataset and the dataloader workers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class HostRam:
    """Host RAM of one node, in bytes."""

    processes: int  # training processes on the node
    per_process: dict[str, int] = field(default_factory=dict)  # steady state, by component
    loading_bytes: int = 0  # the node's peak while loading the model
    paged_spill_bytes: int = 0  # paged optimizer states that may spill, whole node
    limit_bytes: int | None = None  # --host-ram

    @property
    def training_bytes(self) -> int:
        return self.processes * sum(self.per_process.values()) + self.paged_spill_bytes

    @property
    def peak_bytes(self) -> int:
        return max(self.training_bytes, self.loading_bytes)

    @property
    def fits(self) -> bool | None:
        return None if self.limit_bytes is None else self.peak_bytes <= self.limit_bytes

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"processes_per_node": self.processes,
                               "per_process": dict(self.per_process),
                               "training_bytes": self.training_bytes,
                               "loading_bytes": self.loading_bytes,
                               "paged_spill_bytes": self.paged_spill_bytes,
                               "peak_bytes": self.peak_bytes}
        if self.limit_bytes is not None:
            out.update(limit_bytes=self.limit_bytes, fits=self.fits)
        return out


def _zero_stage(setup: Any) -> int:
    from vramdoc.parallel import zero_options

    zo = zero_options(setup)
    return zo.stage if zo is not None else 0


def host_ram(setup: Any, params: Any, parts: Any, paged_per_rank: int,
             limit_bytes: int | None = None) -> HostRam:
    """The node's host RAM for a setup, from the per-rank parts of its strategy."""
    procs = max(setup.num_gpus // max(setup.nodes, 1), 1)
    checkpoint = params.weights_bytes + params.adapters_bytes
    if setup.quantization is not None:
        loading = 0
    elif setup.training.deepspeed and _zero_stage(setup) == 3:
        loading = procs * (-(-checkpoint // max(setup.num_gpus, 1)))
    else:
        from vramdoc.parallel import fsdp_options

        head = setup.transformers_version.split(".")[0]
        o = fsdp_options(setup.training, int(head) if head.isdigit() else 5)
        loading = checkpoint if (o is not None and o.cpu_ram_efficient_loading) else \
            procs * checkpoint
    return HostRam(processes=procs, per_process={k: v for k, v in parts.host.items() if v},
                   loading_bytes=loading, paged_spill_bytes=procs * paged_per_rank,
                   limit_bytes=limit_bytes)
