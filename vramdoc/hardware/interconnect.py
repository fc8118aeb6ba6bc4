"""Links between GPUs: within a node (NVLink or PCIe) and between nodes (InfiniBand).

Bandwidths are per GPU and per direction, in GB/s (10**9 B/s), the figure a ring collective
moves data at (NCCL's "bus bandwidth" tops out near it). NVLink parts carry theirs in the
catalog (``interconnect_gbps``, datasheet total halved). Other cards talk over PCIe x16, by
generation of their architecture (PCI-SIG: Gen3 8 GT/s, Gen4 16 GT/s, Gen5 32 GT/s per lane,
128b/130b coding: ~15.75, ~31.5, ~63 GB/s per direction); consumer boards without peer-to-peer
go through host memory and reach less. Between nodes: one InfiniBand NIC per GPU, as in NVIDIA's
DGX designs: DGX A100 has eight 200 Gb/s HDR ConnectX-6 (25 GB/s), DGX H100 / B200 eight 400 Gb/s
NDR ConnectX-7 (50 GB/s) (NVIDIA DGX A100 / DGX H100 user guides, "Hardware overview").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

_PCIE_GBPS = {"Pascal": 15.75, "Volta": 15.75, "Turing": 15.75, "Ampere": 31.5, "Ada": 31.5,
              "Hopper": 63.0, "Blackwell": 63.0}
_IB_GBPS = {"Hopper": 50.0, "Blackwell": 50.0}
IB_DEFAULT_GBPS = 25.0
# Host <-> GPU copies of offloaded state go over the card's PCIe link (pinned memory).


@dataclass(frozen=True)
class Links:
    """Bandwidths one GPU sees, GB/s per direction."""

    intra_node: str
    intra_gbps: float
    inter_node_gbps: float
    host_gbps: float


def links(gpu: Any) -> Links:
    """The links of ``gpu`` (a GpuSpec; None: a PCIe Gen4 card)."""
    arch = getattr(gpu, "architecture", "Ampere") or "Ampere"
    pcie = _PCIE_GBPS.get(arch, 31.5)
    nv = float(getattr(gpu, "interconnect_gbps", 0.0) or 0.0)
    name = getattr(gpu, "interconnect", "") or ""
    if nv:
        return Links(name, nv, _IB_GBPS.get(arch, IB_DEFAULT_GBPS), pcie)
    gen = {15.75: "3.0", 31.5: "4.0", 63.0: "5.0"}[pcie]
    return Links(f"PCIe {gen} x16", pcie, _IB_GBPS.get(arch, IB_DEFAULT_GBPS), pcie)
