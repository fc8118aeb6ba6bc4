"""GpuSpec: what the planner and the estimator need to know about one GPU. No heavy imports.

Units live in field names: ``memory_bytes`` (int bytes), ``memory_bandwidth_gbps`` (GB/s,
decimal, as NVIDIA quotes it), ``*_tflops`` (dense, i.e. without 2:4 structured sparsity,
10**12 FLOP/s).

Capability flags follow the compute capability ``sm = 10 * major + minor``:

- ``bf16``: bf16 tensor-core math needs sm80+ (Ampere). Older cards run fp16 with loss
  scaling. Source: NVIDIA A100 whitepaper (bf16 introduced with the third-generation tensor
  core); flash-attention ``flash_api.cpp`` rejects bf16 below sm80.
- ``flash_attention_2``: the ``flash-attn`` 2.x kernels need sm80+; the README lists Ampere,
  Ada and Hopper. For Blackwell (sm100, sm120) vramdoc says **no**: the kernels only exist
  when ``flash-attn`` is built from source with CUDA >= 12.8 (its ``setup.py`` adds sm_100 /
  sm_120 only then; prebuilt wheels are built with CUDA 12.3), and Dao-AILab/flash-attention
  issue #1987 (sm_120 support) is open. ``attn_implementation="sdpa"`` runs there and has
  the same memory profile. See ``capability_flags``.
- ``fp8``: fp8 tensor cores arrived with sm89 (Ada) and sm90 (Hopper).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from vramdoc.units import MiB

# Architecture of each compute-capability major (minor where it matters), from NVIDIA's
# CUDA GPUs table (https://developer.nvidia.com/cuda-gpus).
_ARCH_BY_SM: dict[int, str] = {
    60: "Pascal",
    61: "Pascal",
    70: "Volta",
    75: "Turing",
    80: "Ampere",
    86: "Ampere",
    87: "Ampere",
    89: "Ada",
    90: "Hopper",
    100: "Blackwell",
    103: "Blackwell",
    120: "Blackwell",
    121: "Blackwell",
}

ARCHITECTURES: tuple[str, ...] = ("Pascal", "Volta", "Turing", "Ampere", "Ada", "Hopper",
                                  "Blackwell")

SEGMENTS: tuple[str, ...] = ("consumer", "workstation", "datacenter", "generic")


def sm_of(compute_capability: tuple[int, int]) -> int:
    """``(8, 6)`` -> ``86``; ``(12, 0)`` -> ``120``."""
    major, minor = compute_capability
    return 10 * major + minor


def architecture_of(compute_capability: tuple[int, int]) -> str:
    """Architecture name for a compute capability, e.g. ``(7, 5)`` -> ``"Turing"``.

    Unknown capabilities fall back to the nearest lower known one (a future sm 12.2 part is
    still called Blackwell until NVIDIA says otherwise).
    """
    sm = sm_of(compute_capability)
    if sm in _ARCH_BY_SM:
        return _ARCH_BY_SM[sm]
    lower = [k for k in _ARCH_BY_SM if k <= sm]
    return _ARCH_BY_SM[max(lower)] if lower else "Pre-Pascal"


def capability_flags(compute_capability: tuple[int, int]) -> dict[str, bool]:
    """The feature flags a compute capability implies (see the module docstring).

    >>> capability_flags((7, 5))
    {'bf16': False, 'flash_attention_2': False, 'fp8': False}
    >>> capability_flags((8, 6))
    {'bf16': True, 'flash_attention_2': True, 'fp8': False}
    >>> capability_flags((9, 0))
    {'bf16': True, 'flash_attention_2': True, 'fp8': True}
    >>> capability_flags((12, 0))
    {'bf16': True, 'flash_attention_2': False, 'fp8': True}
    """
    sm = sm_of(compute_capability)
    return {
        "bf16": sm >= 80,
        "flash_attention_2": 80 <= sm < 100,
        "fp8": sm >= 89,
    }


@dataclass(frozen=True)
class GpuSpec:
    """One GPU as vramdoc plans for it.

    Attributes:
        name: catalog name, e.g. ``"RTX-3060-12GB"`` (or a description for bare sizes and
            unmatched local GPUs).
        memory_bytes: total device memory as NVML / nvidia-smi reports it (``memory.total``),
            not the marketing size: an "80GB" H100 reports 81,559 MiB.
        compute_capability: ``(major, minor)``, e.g. ``(8, 6)``.
        architecture: ``"Pascal"``, ``"Volta"``, ``"Turing"``, ``"Ampere"``, ``"Ada"``,
            ``"Hopper"`` or ``"Blackwell"``.
        bf16 / flash_attention_2 / fp8: capability flags (module docstring).
        memory_bandwidth_gbps: peak DRAM bandwidth, GB/s (10**9 B/s).
        bf16_tflops / fp16_tflops: dense tensor-core peak with fp32 accumulation, the mode
            mixed-precision training uses (GeForce cards run it at half their fp16-accumulate
            rate). ``bf16_tflops`` is 0.0 where the card has no bf16 tensor math.
        fp32_tflops: non-tensor fp32 peak (plain fp32 training, and the emulation rate of
            bf16 on cards without it).
        assumed: True when vramdoc assumed the generation (a bare size such as ``"6GB"``).
        source: where the numbers come from (URLs), or how they were assumed.
        aliases: other names that resolve to this entry (NVML product names included).
        vendor: ``"NVIDIA"``.
        segment: ``"consumer"``, ``"workstation"``, ``"datacenter"`` or ``"generic"``.
        release_year: year of launch (0 when unknown).
        memory_gb_marketed: the size on the box, in GB as the vendor writes it.
        memory_source: where the NVML total comes from.
        notes: caveats (variants, derived figures).
        interconnect / interconnect_gbps: the NVLink of parts that have one (per direction,
            GB/s); empty for PCIe cards (``vramdoc.hardware.interconnect`` gives their link).
    """

    name: str
    memory_bytes: int
    compute_capability: tuple[int, int]
    architecture: str
    bf16: bool
    flash_attention_2: bool
    fp8: bool
    memory_bandwidth_gbps: float
    bf16_tflops: float
    fp16_tflops: float
    fp32_tflops: float = 0.0
    assumed: bool = False
    source: str = ""
    aliases: tuple[str, ...] = ()
    vendor: str = "NVIDIA"
    segment: str = "generic"
    release_year: int = 0
    memory_gb_marketed: int = 0
    memory_source: str = ""
    notes: str = ""
    interconnect: str = ""  # GPU-to-GPU link of NVLink parts ("" = PCIe, see interconnect.py)
    interconnect_gbps: float = 0.0  # per direction, GB/s

    @property
    def sm(self) -> int:
        """Compute capability as one integer: ``(8, 6)`` -> ``86`` (what rules call gpu_cc)."""
        return sm_of(self.compute_capability)

    @property
    def memory_mib(self) -> int:
        """Total memory in MiB, the unit nvidia-smi prints."""
        return self.memory_bytes // MiB

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready mapping (tuples become lists); ``sm`` is included for readers."""
        out = asdict(self)
        out["compute_capability"] = list(self.compute_capability)
        out["aliases"] = list(self.aliases)
        out["sm"] = self.sm
        return out
