"""The live-storage tracker: exact byte counts, CUDA block rounding, roles, phases, OOM."""

from __future__ import annotations

import pytest
import torch

from vramdoc.probe.tracker import EmulatedOutOfMemory, MemoryTracker, block_bytes


@pytest.mark.parametrize("nbytes, rounded", [(0, 0), (1, 512), (512, 512), (513, 1024),
                                             (4000, 4096), (2**20, 2**20)])
def test_block_bytes_follows_cuda_min_block(nbytes, rounded):
    # c10/cuda/CUDACachingAllocator.cpp: kMinBlockSize = 512, round_size rounds up to it
    assert block_bytes(nbytes, 512) == rounded
    assert block_bytes(nbytes, 1) == nbytes


def _timeline(round_to: int) -> MemoryTracker:
    tr = MemoryTracker(round_to=round_to)
    with tr:
        w = torch.empty(1000)  # 4,000 B
        tr.tag(w, "weights")
        tr.set_phase("forward", 0)
        a = torch.empty(250)  # 1,000 B, alive at the end of forward
        t = torch.empty(100)  # 400 B, freed inside forward
        del t
        tr.set_phase("backward", 0)
        g = torch.empty(1000)
        tr.tag(g, "gradients")
        del a
        tr.set_phase("optimizer_step", 0)
        s = torch.empty(2000)  # state
        tmp = torch.empty(10)  # a temporary of the step
        step = torch.empty(1)  # a host-side step counter
        tr.tag(s, "optimizer_states")
        tr.tag(step, "host")
        del tmp
    tr.keep = (w, g, s, step)  # type: ignore[attr-defined]
    return tr


def test_phase_peaks_and_components_exact_bytes():
    trace = _timeline(round_to=1).trace()
    assert trace.phases["load"].allocated_bytes == 4000
    assert trace.phases["forward"].allocated_bytes == 4000 + 1000 + 400
    assert trace.phases["forward"].components["activations"] == 1400
    assert trace.phases["backward"].allocated_bytes == 4000 + 1000 + 4000
    assert trace.phases["backward"].components["gradients"] == 4000
    opt = trace.phases["optimizer_step"]
    # host step counter excluded; temporaries counted while alive
    assert opt.allocated_bytes == 4000 + 4000 + 8000 + 40
    assert opt.components == {"weights": 4000, "quant_state": 0, "adapters": 0,
                              "gradients": 4000, "optimizer_states": 8000,
                              "optimizer_temporaries": 40, "activations": 0, "logits": 0}
    assert trace.peak_phase == "optimizer_step"


def test_rounding_counts_blocks():
    trace = _timeline(round_to=512).trace()
    # 4000 -> 4096, 1000 -> 1024, 400 -> 512, 8000 -> 8192, 40 -> 512
    assert trace.phases["forward"].allocated_bytes == 4096 + 1024 + 512
    assert trace.phases["optimizer_step"].allocated_bytes == 4096 + 4096 + 8192 + 512


def test_views_and_inplace_ops_are_not_new_storage():
    tr = MemoryTracker(round_to=1)
    with tr:
        x = torch.zeros(100)
        x.add_(1)
        y = x.view(10, 10)[2:]
        tr.set_phase("forward", 0)
    assert tr.trace().resident_after_load_bytes == 400
    del y


def test_emulated_oom_names_phase_and_sizes():
    tr = MemoryTracker(round_to=1, limit_bytes=10_000)
    keep = []
    with pytest.raises(EmulatedOutOfMemory, match="forward") as info, tr:
        tr.set_phase("forward", 3)
        keep.append(torch.empty(2000))  # 8,000 B
        keep.append(torch.empty(1000))  # +4,000 B > 10,000
    assert (info.value.phase, info.value.step) == ("forward", 3)
    assert (info.value.allocated_bytes, info.value.request_bytes) == (8000, 4000)


def test_paused_allocations_are_not_counted():
    tr = MemoryTracker(round_to=1)
    with tr:
        with tr.paused():
            big = torch.empty(10_000)
        small = torch.empty(10)
    assert tr.trace().resident_after_load_bytes == 40
    del big, small
