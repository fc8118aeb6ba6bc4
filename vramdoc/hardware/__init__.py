"""GPUs: the offline catalog, ``--gpu`` resolution and (lazily) live NVML facts.

>>> from vramdoc.hardware import resolve_gpu
>>> resolve_gpu("rtx 3060").name
'RTX-3060-12GB'
>>> resolve_gpu("6GB").bf16      # a bare size assumes Turing (sm75)
False

Importing this package never imports ``pynvml``; only ``vramdoc.hardware.nvml`` does, and
only when a function there is called.
"""

from vramdoc.hardware.catalog import gpu_catalog
from vramdoc.hardware.resolve import (
    DEFAULT_ASSUMED_CC,
    generic_spec,
    parse_compute_capability,
    resolve_gpu,
    resolve_local,
)
from vramdoc.hardware.spec import GpuSpec, architecture_of, capability_flags

__all__ = [
    "DEFAULT_ASSUMED_CC",
    "GpuSpec",
    "architecture_of",
    "capability_flags",
    "generic_spec",
    "gpu_catalog",
    "parse_compute_capability",
    "resolve_gpu",
    "resolve_local",
]
