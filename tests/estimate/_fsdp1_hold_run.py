"""Run by tests/estimate/test_fsdp1_held_inputs.py in a process of its own (it starts a gloo
process group): the backward rise of a toy stack of frozen FSDP1 units with adapters in units
of their own, checkpointed (reentrant) from outside each unit, as transformers up to 4.51
calls it, or inside it, as GradientCheckpointingLayer does from 4.52. Prints one JSON line."""

from __future__ import annotations

import json
import sys
import warnings
from functools import partial

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.checkpoint import checkpoint

from vramdoc.probe.tracker import MemoryTracker


class Block(nn.Module):
    def __init__(self, h: int, inside: bool) -> None:
        super().__init__()
        self.base = nn.Linear(h, h, bias=False).requires_grad_(False)
        self.adapter = nn.Linear(h, h, bias=False)
        self.inside = inside

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        return x + torch.tanh(self.base(x)) + self.adapter(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.inside:
            return checkpoint(self._run, x, use_reentrant=True)
        return self._run(x)


class Stack(nn.Module):
    def __init__(self, layers: int, h: int, inside: bool) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(Block(h, inside) for _ in range(layers))
        self.inside = inside

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x) if self.inside else checkpoint(block.__call__, x, use_reentrant=True)
        return x.float().pow(2).mean()


def rise(layers: int, rows: int, h: int, inside: bool, fsdp: bool) -> int:
    torch.manual_seed(0)
    model: nn.Module = Stack(layers, h, inside)
    if fsdp:
        from torch.distributed.fsdp import FullyShardedDataParallel as FSDP
        from torch.distributed.fsdp.wrap import lambda_auto_wrap_policy

        def wrap(m: nn.Module) -> bool:
            return isinstance(m, Block) or (isinstance(m, nn.Linear) and m.weight.requires_grad)

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = FSDP(model, auto_wrap_policy=partial(lambda_auto_wrap_policy, lambda_fn=wrap),
                         use_orig_params=True, device_id=torch.device("cpu"))
    x = torch.randn(rows, h, requires_grad=True)
    tracker = MemoryTracker(round_to=1)
    with tracker:
        tracker.set_phase("forward", 0)
        loss = model(x)
        tracker.set_phase("backward", 0)
        loss.backward()
    trace = tracker.trace()
    return trace.phases["backward"].allocated_bytes - trace.phases["forward"].allocated_bytes


def main() -> None:
    rows, h = int(sys.argv[1]), int(sys.argv[2])
    layer_counts = [int(a) for a in sys.argv[3:]]
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        out = {f"{layers}/{where}_{kind}": rise(layers, rows, h, where == "inside",
                                                 kind == "fsdp")
               for layers in layer_counts for where in ("outside", "inside")
               for kind in ("plain", "fsdp")}
    finally:
        dist.destroy_process_group()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
