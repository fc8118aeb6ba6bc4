"""A fake ``pynvml`` module, injected into sys.modules: no GPU or driver is needed."""

from __future__ import annotations

import sys
import types
from dataclasses import dataclass, field
from typing import Any

import pytest

from vramdoc.hardware import nvml


class NVMLError(Exception):
    """Stands in for pynvml.NVMLError; subclasses mirror the real names."""


class NVMLError_LibraryNotFound(NVMLError):  # noqa: N801 - pynvml's own class names
    pass


class NVMLError_NotSupported(NVMLError):  # noqa: N801
    pass


class NVMLError_DriverNotLoaded(NVMLError):  # noqa: N801
    pass


@dataclass
class FakeGpu:
    name: str | bytes = "NVIDIA GeForce RTX 3060"
    total: int = 12288 * 2**20
    used: int = 1024 * 2**20
    util: int = 37
    temp: int = 61
    power_mw: int = 123_456
    limit_mw: int = 170_000
    cc: tuple[int, int] = (8, 6)
    procs: list[tuple[int, int | None]] = field(default_factory=lambda: [(4242, 900 * 2**20)])
    graphics: list[tuple[int, int | None]] = field(default_factory=list)
    unsupported: set[str] = field(default_factory=set)  # NVML calls that raise NotSupported


def make_fake_pynvml(gpus: list[FakeGpu], init_error: type[Exception] | None = None) -> Any:
    mod = types.ModuleType("pynvml")
    mod.NVMLError = NVMLError
    mod.NVMLError_LibraryNotFound = NVMLError_LibraryNotFound
    mod.NVMLError_NotSupported = NVMLError_NotSupported
    mod.NVMLError_DriverNotLoaded = NVMLError_DriverNotLoaded
    mod.NVML_TEMPERATURE_GPU = 0
    mod.calls = []

    def init() -> None:
        mod.calls.append("nvmlInit")
        if init_error is not None:
            raise init_error("fake init failure")

    def guard(fn_name: str, handle: int) -> FakeGpu:
        mod.calls.append(fn_name)
        gpu = gpus[handle]
        if fn_name in gpu.unsupported:
            raise NVMLError_NotSupported("Not Supported")
        return gpu

    def procs(items: list[tuple[int, int | None]]) -> list[Any]:
        return [types.SimpleNamespace(pid=p, usedGpuMemory=u) for p, u in items]

    mod.nvmlInit = init
    mod.nvmlShutdown = lambda: None
    mod.nvmlDeviceGetCount = lambda: len(gpus)
    mod.nvmlSystemGetDriverVersion = lambda: "999.99"
    mod.nvmlDeviceGetHandleByIndex = lambda i: i
    mod.nvmlDeviceGetName = lambda h: guard("nvmlDeviceGetName", h).name
    mod.nvmlDeviceGetMemoryInfo = lambda h: (lambda g: types.SimpleNamespace(
        total=g.total, used=g.used, free=g.total - g.used))(guard("nvmlDeviceGetMemoryInfo", h))
    mod.nvmlDeviceGetUtilizationRates = lambda h: types.SimpleNamespace(
        gpu=guard("nvmlDeviceGetUtilizationRates", h).util, memory=0)
    mod.nvmlDeviceGetTemperature = lambda h, s: guard("nvmlDeviceGetTemperature", h).temp
    mod.nvmlDeviceGetPowerUsage = lambda h: guard("nvmlDeviceGetPowerUsage", h).power_mw
    mod.nvmlDeviceGetEnforcedPowerLimit = lambda h: guard(
        "nvmlDeviceGetEnforcedPowerLimit", h).limit_mw
    mod.nvmlDeviceGetCudaComputeCapability = lambda h: guard(
        "nvmlDeviceGetCudaComputeCapability", h).cc
    mod.nvmlDeviceGetComputeRunningProcesses = lambda h: procs(
        guard("nvmlDeviceGetComputeRunningProcesses", h).procs)
    mod.nvmlDeviceGetGraphicsRunningProcesses = lambda h: procs(
        guard("nvmlDeviceGetGraphicsRunningProcesses", h).graphics)
    return mod


@pytest.fixture
def fake_nvml(monkeypatch):
    """Install a fake pynvml with the given GPUs; returns the fake module."""

    def install(gpus: list[FakeGpu], init_error: type[Exception] | None = None) -> Any:
        mod = make_fake_pynvml(gpus, init_error)
        monkeypatch.setitem(sys.modules, "pynvml", mod)
        nvml._reset()
        return mod

    yield install
    nvml._reset()


@pytest.fixture
def no_driver(fake_nvml):
    """NVML as on a machine without the NVIDIA driver (libnvidia-ml missing)."""
    return fake_nvml([], init_error=NVMLError_LibraryNotFound)
