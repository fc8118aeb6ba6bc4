"""CUDA allocator and NVML sampling, with stand-ins for a GPU this machine does not have."""

from __future__ import annotations

import types

import pytest

from vramdoc.monitor import Recorder
from vramdoc.monitor.follower import iter_events
from vramdoc.monitor.sampling import CudaMemorySampler, NvmlSampler, gpu_record

GiB = 2**30


@pytest.fixture
def fake_cuda(monkeypatch):
    torch = pytest.importorskip("torch")
    stats = {"allocated_bytes.all.current": 5 * GiB, "reserved_bytes.all.current": 6 * GiB,
             "allocated_bytes.all.peak": 7 * GiB, "reserved_bytes.all.peak": 8 * GiB,
             "num_alloc_retries": 2, "num_ooms": 0, "active.all.current": 99}
    calls = []

    def memory_stats(device=None):
        calls.append(device)
        return stats

    props = types.SimpleNamespace(name="NVIDIA A100-SXM4-80GB", total_memory=80 * GiB,
                                  major=8, minor=0)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "memory_stats", memory_stats)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i: props)
    return calls


class FakeNvml:
    def __init__(self):
        self.calls = 0

    def available(self):
        return True

    def device_info(self, index, processes=True):
        assert processes is False  # the sampler skips the per-process query
        self.calls += 1
        return types.SimpleNamespace(name="NVIDIA A100-SXM4-80GB", memory_total_bytes=80 * GiB,
                                     memory_used_bytes=9 * GiB, utilization_pct=93.0,
                                     temperature_c=64.0, power_w=312.5)


def test_cuda_sampler_reads_one_memory_stats_call(fake_cuda):
    s = CudaMemorySampler()
    assert s.available and s.device_index == 0
    assert s.sample() == {"allocated_bytes": 5 * GiB, "reserved_bytes": 6 * GiB,
                          "peak_allocated_bytes": 7 * GiB, "peak_reserved_bytes": 8 * GiB,
                          "alloc_retries": 2, "ooms": 0}
    assert fake_cuda == [0]
    assert s.device()["total_bytes"] == 80 * GiB


def test_nvml_sampler_is_throttled(monkeypatch):
    import vramdoc.hardware.nvml as nvml_mod

    fake = FakeNvml()
    monkeypatch.setattr(nvml_mod, "available", fake.available)
    monkeypatch.setattr(nvml_mod, "device_info", fake.device_info)
    s = NvmlSampler(0, interval_s=2.0)
    first = s.sample(now=100.0)
    assert first == {"name": "NVIDIA A100-SXM4-80GB", "used_bytes": 9 * GiB,
                     "total_bytes": 80 * GiB, "util_pct": 93.0, "temp_c": 64.0, "power_w": 312.5}
    assert s.sample(now=101.0) is first and fake.calls == 1  # within the interval: cached
    s.sample(now=102.5)
    assert fake.calls == 2


def test_no_driver_means_no_gpu_record(monkeypatch):
    import vramdoc.hardware.nvml as nvml_mod

    monkeypatch.setattr(nvml_mod, "available", lambda: False)
    s = NvmlSampler(0)
    assert not s.available and s.sample() is None
    assert gpu_record(None) is None


def test_recorder_writes_cuda_and_nvml_figures(fake_cuda, monkeypatch, tmp_path):
    import vramdoc.hardware.nvml as nvml_mod

    fake = FakeNvml()
    monkeypatch.setattr(nvml_mod, "available", fake.available)
    monkeypatch.setattr(nvml_mod, "device_info", fake.device_info)
    with Recorder(tmp_path) as rec:
        rec.step(loss=1.0)
    header, step, _end = list(iter_events(tmp_path))
    assert header["device"]["type"] == "cuda" and header["device"]["total_bytes"] == 80 * GiB
    assert step["mem"]["peak_reserved_bytes"] == 8 * GiB and step["mem"]["alloc_retries"] == 2
    assert step["gpu"]["util_pct"] == 93.0


def test_fp16_scale_and_skipped_steps_from_the_accelerated_optimizer(tmp_path):
    pytest.importorskip("transformers")
    from vramdoc.monitor import VramdocCallback

    cb = VramdocCallback(tmp_path)
    cb.recorder = Recorder(tmp_path, background=False)
    scaler = types.SimpleNamespace(get_scale=lambda: 32768.0)
    opt = types.SimpleNamespace(param_groups=[{"lr": 2e-4}], scaler=scaler,
                                step_was_skipped=True)
    state = types.SimpleNamespace(global_step=7, epoch=0.1, num_input_tokens_seen=0)
    cb.on_step_begin(None, state, None)
    cb.on_optimizer_step(None, state, None, optimizer=opt)
    cb.on_step_end(None, state, None)
    cb.recorder.close()
    step = [e for e in iter_events(tmp_path) if e["kind"] == "step"][0]
    assert (step["step"], step["lr"], step["loss_scale"], step["skipped"]) == (
        7, 2e-4, 32768.0, True)
    assert step["skipped_total"] == 1
