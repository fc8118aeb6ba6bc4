"""Live GPU facts through NVML. The only vramdoc module that imports ``pynvml``, lazily.

``pynvml`` comes from the ``nvidia-ml-py`` package (NVIDIA's own bindings; the old ``pynvml``
distribution is unmaintained): ``pip install "vramdoc[nvml]"``.

Hardware is optional and never crashes the tool (nvitop's ``nvmlQuery(default=NA)`` habit,
our own code): every field NVML cannot give, because the driver, WSL/WDDM or MIG does not
expose it, comes back as None. ``available()``, ``unavailable_reason()``, ``device_count()``
and ``devices()`` never raise. Only asking for one device (``device_info``) raises, and only
the typed :class:`~vramdoc.errors.HardwareError` (exit code 3): no library, no driver, or no
GPU at that index.
"""

from __future__ import annotations

import atexit
import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from vramdoc.errors import HardwareError

NVML_HINT = (
    "use --gpu NAME or --gpu 24GB[,sm86] to plan without a local GPU; `vramdoc gpus` lists names"
)


@dataclass(frozen=True)
class ProcessMemory:
    """One process holding device memory. ``used_bytes`` is None where NVML hides it
    (WSL/WDDM, MIG without privileges)."""

    pid: int
    used_bytes: int | None


@dataclass(frozen=True)
class DeviceInfo:
    """A snapshot of one GPU. Any field NVML cannot give is None.

    Attributes:
        index: NVML device index (the order of ``nvidia-smi``; CUDA's order can differ
            unless ``CUDA_DEVICE_ORDER=PCI_BUS_ID``).
        name: product name, e.g. ``"NVIDIA GeForce RTX 3060"``.
        memory_total_bytes / memory_used_bytes / memory_free_bytes: device-wide, as
            nvidia-smi's Memory-Usage column (all processes, CUDA contexts included).
        utilization_pct: percent of the last sample period a kernel was running.
        temperature_c: GPU core temperature, Celsius.
        power_w / power_limit_w: board power draw and the enforced limit, watts.
        compute_capability: ``(major, minor)``.
        processes: compute and graphics processes with their memory; None when NVML cannot
            list them (MIG, some WSL drivers) or when ``device_info(processes=False)``.
    """

    index: int
    name: str | None
    memory_total_bytes: int | None
    memory_used_bytes: int | None
    memory_free_bytes: int | None
    utilization_pct: float | None
    temperature_c: float | None
    power_w: float | None
    power_limit_w: float | None
    compute_capability: tuple[int, int] | None
    processes: tuple[ProcessMemory, ...] | None


class _State:
    """NVML is initialised once per process; this remembers the outcome."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.tried = False
        self.lib: Any = None  # the pynvml module once nvmlInit succeeded
        self.reason: str | None = None  # why NVML is unusable
        self.handles: dict[int, Any] = {}


_STATE = _State()


def _reset() -> None:
    """Forget the NVML state (tests inject a fake ``pynvml`` and start over)."""
    global _STATE
    _STATE = _State()


def _describe_init_error(lib: Any, exc: Exception) -> str:
    # Map the NVML errors people actually meet to a sentence; fall back to NVML's text.
    kinds = {
        "NVMLError_LibraryNotFound": "no NVIDIA driver found (libnvidia-ml is missing)",
        "NVMLError_DriverNotLoaded": "the NVIDIA driver is not loaded",
        "NVMLError_NoPermission": "no permission to talk to the NVIDIA driver",
        "NVMLError_FunctionNotFound": "the NVIDIA driver is too old for this NVML call",
    }
    for cls_name, text in kinds.items():
        cls = getattr(lib, cls_name, None)
        if isinstance(cls, type) and isinstance(exc, cls):
            return text
    return f"NVML could not start: {exc}"


def _lib() -> Any:
    """The initialised ``pynvml`` module, or None (then ``_STATE.reason`` says why)."""
    state = _STATE
    if state.tried:
        return state.lib
    with state.lock:
        if state.tried:
            return state.lib
        state.tried = True
        try:
            import pynvml  # the nvidia-ml-py package
        except ImportError:
            state.reason = 'nvidia-ml-py is not installed (pip install "vramdoc[nvml]")'
            return None
        try:
            pynvml.nvmlInit()
        except Exception as exc:  # noqa: BLE001 - any NVML failure means "no GPU here"
            state.reason = _describe_init_error(pynvml, exc)
            return None
        state.lib = pynvml
        atexit.register(_shutdown, pynvml)
        return pynvml


def _shutdown(lib: Any) -> None:
    # the process is exiting: a failing shutdown has nobody to report to
    with contextlib.suppress(Exception):
        lib.nvmlShutdown()


def _query(fn: Callable[..., Any], *args: Any, default: Any = None) -> Any:
    """Call one NVML function; NVML errors (NotSupported under WSL/MIG ...) give ``default``."""
    lib = _STATE.lib
    nvml_error = getattr(lib, "NVMLError", ()) if lib is not None else ()
    try:
        return fn(*args)
    except nvml_error:
        return default
    except (AttributeError, TypeError, UnicodeDecodeError):
        # a binding too old for this call, or a garbled string from the driver
        return default


def available() -> bool:
    """True when NVML works and sees at least one GPU. Never raises."""
    return device_count() > 0


def unavailable_reason() -> str | None:
    """Why NVML is not usable (no library, no driver, no GPU), or None when it is."""
    if _lib() is None:
        return _STATE.reason
    if device_count() == 0:
        return "NVML found no GPU"
    return None


def device_count() -> int:
    """Number of GPUs NVML sees; 0 without a driver. Never raises."""
    lib = _lib()
    if lib is None:
        return 0
    count = _query(lib.nvmlDeviceGetCount, default=0)
    return int(count) if isinstance(count, int) else 0


def driver_version() -> str | None:
    """The NVIDIA driver version string, or None."""
    lib = _lib()
    if lib is None:
        return None
    return _text(_query(lib.nvmlSystemGetDriverVersion))


def devices() -> list[DeviceInfo]:
    """A snapshot of every GPU; empty without a driver (``unavailable_reason`` says why).

    Never raises.
    """
    out: list[DeviceInfo] = []
    for index in range(device_count()):
        try:
            out.append(device_info(index))
        except HardwareError:
            continue  # a device that vanished between count and query
    return out


def _handle(index: int) -> Any:
    lib = _lib()
    if lib is None:
        raise HardwareError(
            f"no GPU available through NVML: {_STATE.reason}", NVML_HINT
        )
    handle = _STATE.handles.get(index)
    if handle is not None:
        return handle
    count = device_count()
    if count == 0:
        raise HardwareError("NVML found no GPU", NVML_HINT)
    if not 0 <= index < count:
        raise HardwareError(
            f"there is no GPU {index}: NVML sees {count} GPU(s), index 0 to {count - 1}",
            "use auto (GPU 0) or auto:N with a valid N",
        )
    handle = _query(lib.nvmlDeviceGetHandleByIndex, index)
    if handle is None:
        raise HardwareError(f"NVML cannot open GPU {index}", NVML_HINT)
    _STATE.handles[index] = handle
    return handle


def _text(value: Any) -> str | None:
    if isinstance(value, bytes):  # older bindings return bytes
        return value.decode("utf-8", errors="replace")
    return value if isinstance(value, str) else None


def _int_or_none(value: Any) -> int | None:
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else None


def _milliwatts(value: Any) -> float | None:
    return value / 1000.0 if isinstance(value, int | float) and not isinstance(value, bool) \
        else None


def _processes(lib: Any, handle: Any) -> tuple[ProcessMemory, ...] | None:
    compute = _query(lib.nvmlDeviceGetComputeRunningProcesses, handle)
    graphics = _query(lib.nvmlDeviceGetGraphicsRunningProcesses, handle)
    if compute is None and graphics is None:
        return None
    by_pid: dict[int, int | None] = {}
    for proc in [*(compute or []), *(graphics or [])]:
        pid = _int_or_none(getattr(proc, "pid", None))
        if pid is None:
            continue
        used = _int_or_none(getattr(proc, "usedGpuMemory", None))  # None: NVML hides it
        # a process listed as compute and graphics holds one allocation: keep the larger
        prev = by_pid.get(pid)
        by_pid[pid] = used if prev is None else (max(prev, used) if used is not None else prev)
    return tuple(ProcessMemory(pid, used) for pid, used in sorted(by_pid.items()))


def device_info(index: int = 0, *, processes: bool = True) -> DeviceInfo:
    """A snapshot of GPU ``index``; cheap enough for a live monitor to poll.

    Args:
        index: NVML device index.
        processes: also list per-process memory (one more NVML call pair; the monitor
            can skip it).

    Raises:
        HardwareError: no NVML library, no driver, or no GPU at ``index``.
    """
    handle = _handle(index)
    lib = _STATE.lib
    mem = _query(lib.nvmlDeviceGetMemoryInfo, handle)
    util = _query(lib.nvmlDeviceGetUtilizationRates, handle)
    temp = _query(lib.nvmlDeviceGetTemperature, handle,
                  getattr(lib, "NVML_TEMPERATURE_GPU", 0))
    cc = _query(lib.nvmlDeviceGetCudaComputeCapability, handle)
    cc_tuple = (
        (int(cc[0]), int(cc[1]))
        if isinstance(cc, tuple | list) and len(cc) == 2 and all(isinstance(x, int) for x in cc)
        else None
    )
    util_gpu = getattr(util, "gpu", None) if util is not None else None
    return DeviceInfo(
        index=index,
        name=_text(_query(lib.nvmlDeviceGetName, handle)),
        memory_total_bytes=_int_or_none(getattr(mem, "total", None)),
        memory_used_bytes=_int_or_none(getattr(mem, "used", None)),
        memory_free_bytes=_int_or_none(getattr(mem, "free", None)),
        utilization_pct=float(util_gpu) if isinstance(util_gpu, int | float) else None,
        temperature_c=float(temp) if isinstance(temp, int | float) else None,
        power_w=_milliwatts(_query(lib.nvmlDeviceGetPowerUsage, handle)),
        power_limit_w=_milliwatts(_query(lib.nvmlDeviceGetEnforcedPowerLimit, handle)),
        compute_capability=cc_tuple,
        processes=_processes(lib, handle) if processes else None,
    )
