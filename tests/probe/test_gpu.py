"""On a CUDA GPU: allocator peaks per phase, and the tracker agrees with the allocator."""

from __future__ import annotations

import pytest
import torch

from tests.probe.conftest import tiny_setup, tiny_spec

pytestmark = pytest.mark.gpu

if not torch.cuda.is_available():
    pytest.skip("needs a CUDA GPU", allow_module_level=True)


def test_cuda_probe_measures_allocator_peaks():
    from vramdoc.probe.recipe import run_probe

    setup = tiny_setup("lora", bf16=True)
    result = run_probe(setup, tiny_spec(), device="cuda", steps=3)
    m = result.measured
    assert result.device == "cuda" and result.step_error is None
    assert set(m.phases) == {"load", "forward", "backward", "optimizer_step"}
    assert m.peak_reserved_bytes >= m.peak_allocated_bytes > 0
    assert m.device_bytes and m.device_bytes > m.peak_reserved_bytes


def test_fake_trace_matches_cuda_allocator():
    from vramdoc.probe.recipe import run_probe

    setup = tiny_setup("full", dtype="bfloat16", bf16=True)
    cuda = run_probe(setup, tiny_spec(), device="cuda", steps=2).measured
    fake = run_probe(setup, tiny_spec(), device="fake", steps=2).measured
    for phase in ("forward", "backward", "optimizer_step"):
        assert abs(cuda.phases[phase] - fake.phases[phase]) <= 0.02 * cuda.phases[phase], phase
