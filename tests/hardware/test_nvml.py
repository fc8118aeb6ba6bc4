"""nvml.py against a fake pynvml: happy path, per-field NVML errors, no driver, auto."""

from __future__ import annotations

import sys

import pytest

from tests.hardware.conftest import FakeGpu, NVMLError_DriverNotLoaded
from vramdoc.errors import EXIT_NO_HARDWARE, HardwareError
from vramdoc.hardware import nvml, resolve_gpu
from vramdoc.units import MiB


def test_happy_path(fake_nvml):
    fake_nvml([FakeGpu(), FakeGpu(name=b"NVIDIA A100-SXM4-80GB", total=81920 * MiB, cc=(8, 0),
                                  procs=[], graphics=[])])
    assert nvml.available()
    assert nvml.unavailable_reason() is None
    assert nvml.device_count() == 2
    assert nvml.driver_version() == "999.99"
    info = nvml.device_info(0)
    assert info == nvml.DeviceInfo(
        index=0,
        name="NVIDIA GeForce RTX 3060",
        memory_total_bytes=12288 * MiB,
        memory_used_bytes=1024 * MiB,
        memory_free_bytes=11264 * MiB,
        utilization_pct=37.0,
        temperature_c=61.0,
        power_w=123.456,
        power_limit_w=170.0,
        compute_capability=(8, 6),
        processes=(nvml.ProcessMemory(4242, 900 * MiB),),
    )
    second = nvml.device_info(1)
    assert second.name == "NVIDIA A100-SXM4-80GB"  # bytes from old bindings are decoded
    assert second.processes == ()
    assert [d.index for d in nvml.devices()] == [0, 1]


def test_every_field_survives_its_own_nvml_error(fake_nvml):
    calls = {
        "nvmlDeviceGetName": "name",
        "nvmlDeviceGetMemoryInfo": "memory_total_bytes",
        "nvmlDeviceGetUtilizationRates": "utilization_pct",
        "nvmlDeviceGetTemperature": "temperature_c",
        "nvmlDeviceGetPowerUsage": "power_w",
        "nvmlDeviceGetEnforcedPowerLimit": "power_limit_w",
        "nvmlDeviceGetCudaComputeCapability": "compute_capability",
    }
    for call, field in calls.items():
        fake_nvml([FakeGpu(unsupported={call})])
        info = nvml.device_info(0)
        assert getattr(info, field) is None, call
        # the other fields are still there
        others = [f for f in calls.values() if f != field]
        assert all(getattr(info, f) is not None for f in others), call
    fake_nvml([FakeGpu(unsupported={"nvmlDeviceGetMemoryInfo"})])
    info = nvml.device_info(0)
    assert (info.memory_used_bytes, info.memory_free_bytes) == (None, None)


def test_processes_under_wsl_and_mig(fake_nvml):
    # WSL/WDDM: processes listed but their memory hidden (pynvml gives usedGpuMemory=None)
    fake_nvml([FakeGpu(procs=[(7, None)], graphics=[(7, 5 * MiB), (9, None)])])
    assert nvml.device_info(0).processes == (
        nvml.ProcessMemory(7, 5 * MiB), nvml.ProcessMemory(9, None))
    # MIG without privileges: neither list is available
    fake_nvml([FakeGpu(unsupported={"nvmlDeviceGetComputeRunningProcesses",
                                    "nvmlDeviceGetGraphicsRunningProcesses"})])
    assert nvml.device_info(0).processes is None
    # the monitor can skip the process calls altogether
    mod = fake_nvml([FakeGpu()])
    assert nvml.device_info(0, processes=False).processes is None
    assert "nvmlDeviceGetComputeRunningProcesses" not in mod.calls


def test_nvml_initialised_once(fake_nvml):
    mod = fake_nvml([FakeGpu()])
    for _ in range(3):
        nvml.device_info(0)
    nvml.devices()
    assert mod.calls.count("nvmlInit") == 1


def test_no_driver(no_driver):
    assert not nvml.available()
    assert nvml.unavailable_reason() == "no NVIDIA driver found (libnvidia-ml is missing)"
    assert nvml.devices() == []
    assert nvml.device_count() == 0
    assert nvml.driver_version() is None
    with pytest.raises(HardwareError, match="no NVIDIA driver found") as err:
        nvml.device_info(0)
    assert err.value.exit_code == EXIT_NO_HARDWARE == 3


def test_driver_not_loaded_and_no_gpu(fake_nvml):
    fake_nvml([], init_error=NVMLError_DriverNotLoaded)
    assert nvml.unavailable_reason() == "the NVIDIA driver is not loaded"
    fake_nvml([])
    assert nvml.unavailable_reason() == "NVML found no GPU"
    with pytest.raises(HardwareError, match="NVML found no GPU"):
        nvml.device_info(0)


def test_bad_index(fake_nvml):
    fake_nvml([FakeGpu()])
    with pytest.raises(HardwareError, match="there is no GPU 3: NVML sees 1 GPU"):
        nvml.device_info(3)


def test_missing_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import raises ImportError
    nvml._reset()
    try:
        assert not nvml.available()
        assert "nvidia-ml-py is not installed" in nvml.unavailable_reason()
        with pytest.raises(HardwareError, match=r'pip install "vramdoc\[nvml\]"'):
            nvml.device_info(0)
    finally:
        nvml._reset()


# --- resolve_gpu("auto") ---------------------------------------------------------------------


def test_auto_matches_the_catalog_and_keeps_nvml_memory(fake_nvml):
    fake_nvml([FakeGpu(total=12000 * MiB)])
    g = resolve_gpu("auto")
    assert g.name == "RTX-3060-12GB"
    assert g.memory_bytes == 12000 * MiB  # the measured total wins over the catalog's
    assert g.bf16 and g.flash_attention_2 and not g.assumed
    assert "NVML GPU 0" in g.source and "12000 MiB measured" in g.memory_source


def test_auto_index_and_memory_breaks_ties(fake_nvml):
    fake_nvml([FakeGpu(), FakeGpu(name="NVIDIA GeForce RTX 4060 Ti", total=16380 * MiB,
                                  cc=(8, 9))])
    assert resolve_gpu("auto:1").name == "RTX-4060-Ti-16GB"
    assert resolve_gpu(" AUTO : 0 ").name == "RTX-3060-12GB"


def test_auto_unknown_card_is_generic(fake_nvml):
    fake_nvml([FakeGpu(name="NVIDIA GeForce RTX 3060 Laptop GPU", total=6144 * MiB)])
    g = resolve_gpu("auto")
    assert g.name == "NVIDIA GeForce RTX 3060 Laptop GPU"
    assert g.memory_bytes == 6144 * MiB and g.compute_capability == (8, 6)
    assert g.bf16 and not g.assumed and g.segment == "generic"
    # an 8 GB RTX 3060 does not borrow the 12 GB card's identity
    fake_nvml([FakeGpu(total=8192 * MiB)])
    assert resolve_gpu("auto").segment == "generic"


def test_auto_without_compute_capability_assumes_turing(fake_nvml):
    fake_nvml([FakeGpu(name="Mystery GPU", unsupported={"nvmlDeviceGetCudaComputeCapability"})])
    g = resolve_gpu("auto")
    assert g.assumed and g.compute_capability == (7, 5) and not g.bf16


def test_auto_without_driver_raises_hardware_error(no_driver):
    with pytest.raises(HardwareError, match="no GPU available through NVML"):
        resolve_gpu("auto")


def test_auto_without_driver_exits_3_via_cli(no_driver, run_cli):
    code, out, err = run_cli("gpus", "auto")
    assert code == 3
    assert out == ""
    assert err.splitlines()[0] == (
        "error: no GPU available through NVML: no NVIDIA driver found (libnvidia-ml is missing)")
    assert err.splitlines()[1].startswith("hint: use --gpu NAME")
    assert "Traceback" not in err


def test_monitor_sampler_reads_device_info(fake_nvml):
    # the watch monitor's sampler maps DeviceInfo by these field names
    from vramdoc.monitor.sampling import gpu_record

    fake_nvml([FakeGpu()])
    rec = gpu_record(nvml.device_info(0, processes=False))
    assert rec == {"name": "NVIDIA GeForce RTX 3060", "used_bytes": 1024 * MiB,
                   "total_bytes": 12288 * MiB, "util_pct": 37.0, "temp_c": 61.0,
                   "power_w": 123.456}
