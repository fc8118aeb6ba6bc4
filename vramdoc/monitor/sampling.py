"""Samplers for the recorder: CUDA caching-allocator figures and NVML device figures.

Both are optional and never raise: on a CPU build ``torch.cuda`` is unavailable and the
memory record is None; without a driver NVML is unavailable and the GPU record is None
(STYLE.md principle 9). Figures are copied as the libraries name them, each saying which of
the three memory views it is (allocated < reserved < device used; REFERENCE.md section 1).
"""

from __future__ import annotations

import os
import time
from typing import Any

# torch.cuda.memory_stats keys -> event keys. One memory_stats() call per step: the
# convenience functions (memory_allocated, max_memory_reserved ...) each call it again
# (torch/cuda/memory.py), which would multiply the cost by four.
_CUDA_KEYS = {
    "allocated_bytes.all.current": "allocated_bytes",
    "reserved_bytes.all.current": "reserved_bytes",
    "allocated_bytes.all.peak": "peak_allocated_bytes",
    "reserved_bytes.all.peak": "peak_reserved_bytes",
    "num_alloc_retries": "alloc_retries",
    "num_ooms": "ooms",
}


class CudaMemorySampler:
    """Reads the caching allocator of one CUDA device; ``sample()`` is None without CUDA."""

    def __init__(self, device_index: int | None = None) -> None:
        self._torch: Any = None
        self.device_index = device_index
        try:
            import torch

            if torch.cuda.is_available():
                self._torch = torch
                if self.device_index is None:
                    self.device_index = torch.cuda.current_device()
        except Exception:  # noqa: BLE001 - no torch, broken CUDA: nothing to sample
            self._torch = None

    @property
    def available(self) -> bool:
        return self._torch is not None

    def sample(self) -> dict[str, int] | None:
        if self._torch is None:
            return None
        stats = self._torch.cuda.memory_stats(self.device_index)
        return {out: int(stats.get(key, 0)) for key, out in _CUDA_KEYS.items()}

    def device(self) -> dict[str, Any]:
        """Type, name, index and total bytes of the device the run uses."""
        if self._torch is None:
            return {"type": "cpu", "name": None, "index": None, "total_bytes": None}
        props = self._torch.cuda.get_device_properties(self.device_index)
        return {"type": "cuda", "name": props.name, "index": self.device_index,
                "total_bytes": int(props.total_memory),
                "compute_capability": [props.major, props.minor]}


def _first(obj: Any, *names: str) -> Any:
    for name in names:
        value = obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)
        if value is not None:
            return value
    return None


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def gpu_record(info: Any) -> dict[str, Any] | None:
    """Map a ``vramdoc.hardware.nvml.device_info`` result to the event's ``gpu`` record.

    Unknown fields stay None (NVML reports none of them under some drivers, MIG and WSL).
    """
    if info is None:
        return None
    used = _num(_first(info, "memory_used_bytes", "used_bytes", "memory_used"))
    total = _num(_first(info, "memory_total_bytes", "memory_bytes", "total_bytes"))
    return {
        "name": _first(info, "name"),
        "used_bytes": int(used) if used is not None else None,
        "total_bytes": int(total) if total is not None else None,
        "util_pct": _num(_first(info, "utilization_pct", "gpu_utilization_pct", "util_pct",
                                "utilization_gpu", "utilization")),
        "temp_c": _num(_first(info, "temperature_c", "temp_c", "temperature")),
        "power_w": _num(_first(info, "power_w", "power_draw_w", "power_watts")),
    }


def nvml_index(cuda_index: int) -> int:
    """NVML numbers every GPU of the machine; CUDA only the visible ones, in
    ``CUDA_VISIBLE_DEVICES`` order. Map one to the other where the variable lists indices
    (UUID lists keep the CUDA index: NVML's order is the same without the variable).

    >>> os.environ["CUDA_VISIBLE_DEVICES"] = "2,3"; nvml_index(1)
    3
    >>> del os.environ["CUDA_VISIBLE_DEVICES"]; nvml_index(1)
    1
    """
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible:
        parts = [p.strip() for p in visible.split(",") if p.strip()]
        if cuda_index < len(parts) and parts[cuda_index].isdigit():
            return int(parts[cuda_index])
    return cuda_index


class NvmlSampler:
    """Samples one device through ``vramdoc.hardware.nvml`` at most every ``interval_s``.

    NVML queries cost tens to hundreds of microseconds each; sampling on a clock rather than
    per step keeps the recorder's cost independent of the step rate.
    """

    def __init__(self, device_index: int | None, interval_s: float = 2.0) -> None:
        self.device_index = nvml_index(device_index or 0)
        self.interval_s = interval_s
        self._nvml: Any = None
        self._last_t = -float("inf")
        self._last: dict[str, Any] | None = None
        try:
            from vramdoc.hardware import nvml

            if nvml.available():
                self._nvml = nvml
        except Exception:  # noqa: BLE001 - module missing, no driver: no GPU panel
            self._nvml = None

    @property
    def available(self) -> bool:
        return self._nvml is not None

    def sample(self, now: float | None = None) -> dict[str, Any] | None:
        if self._nvml is None:
            return None
        now = time.monotonic() if now is None else now
        if now - self._last_t >= self.interval_s:
            self._last_t = now
            try:
                self._last = gpu_record(self._nvml.device_info(self.device_index,
                                                               processes=False))
            except Exception:  # noqa: BLE001 - a driver hiccup must not stop training
                self._last = None
        return self._last
