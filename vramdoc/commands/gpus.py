"""``vramdoc gpus``: the GPU catalog as a table, or what one ``--gpu`` value resolves to."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from vramdoc.errors import UsageError
from vramdoc.hardware import GpuSpec, gpu_catalog, resolve_gpu
from vramdoc.hardware.spec import ARCHITECTURES
from vramdoc.safeload import dumps_strict
from vramdoc.units import gib, parse_size

NAME = "gpus"
HELP = "list the GPU catalog, or show what a --gpu value resolves to"
ORDER = 60
DESCRIPTION = """\
List the offline GPU catalog: memory as NVML reports it, compute capability, bf16 /
FlashAttention-2 / fp8 support, memory bandwidth and dense tensor TFLOPs.

With a GPU argument, show what `--gpu GPU` means to vramdoc instead:
  vramdoc gpus rtx-3060        a catalog name (forgiving about case and punctuation)
  vramdoc gpus 6GB             a bare size: assumes sm75 (Turing: no bf16, no FA2)
  vramdoc gpus 24GB,sm89       a bare size with its generation
  vramdoc gpus auto            the local GPU 0 through NVML (auto:1 for GPU 1)

Filters: --min-memory 16GB (GB = GiB), --arch Ampere. --json prints JSON on stdout.
"""

_ARCH_ALIASES = {"lovelace": "Ada", "ada lovelace": "Ada"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("gpu", nargs="?", metavar="GPU",
                        help="a --gpu value to resolve (name, size[,smXY] or auto[:N])")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--min-memory", metavar="SIZE",
                        help="only GPUs with at least this much memory (e.g. 16GB)")
    parser.add_argument("--arch", metavar="NAME",
                        help=f"only this architecture ({', '.join(ARCHITECTURES)})")


def _arch(text: str) -> str:
    low = text.strip().lower()
    for arch in ARCHITECTURES:
        if arch.lower() == low:
            return arch
    if low in _ARCH_ALIASES:
        return _ARCH_ALIASES[low]
    raise UsageError(f"unknown architecture {text!r}", f"use one of {', '.join(ARCHITECTURES)}")


def select(
    gpus: Sequence[GpuSpec], *, min_memory_bytes: int | None = None, arch: str | None = None
) -> list[GpuSpec]:
    """The GPUs passing the filters, in catalog order."""
    return [
        g for g in gpus
        if (min_memory_bytes is None or g.memory_bytes >= min_memory_bytes)
        and (arch is None or g.architecture == arch)
    ]


def _yes(flag: bool) -> str:
    return "yes" if flag else "-"


def _num(x: float) -> str:
    # 0.0 means "the card has no such tensor math", shown as a dash, never as a number
    return "-" if x == 0 else (f"{x:.0f}" if x >= 100 else f"{x:.1f}")


_COLUMNS = ("GPU", "arch", "sm", "memory GiB", "bf16", "FA2", "fp8", "GB/s",
            "bf16 TFLOPs", "fp16 TFLOPs")


def render_table(gpus: Sequence[GpuSpec]) -> str:
    """A plain-text table, one GPU per row (dense TFLOPs, fp32 accumulation)."""
    rows = [
        (g.name, g.architecture, str(g.sm), f"{gib(g.memory_bytes):.2f}", _yes(g.bf16),
         _yes(g.flash_attention_2), _yes(g.fp8), f"{g.memory_bandwidth_gbps:.0f}",
         _num(g.bf16_tflops), _num(g.fp16_tflops))
        for g in gpus
    ]
    widths = [max(len(c), *(len(r[i]) for r in rows)) if rows else len(c)
              for i, c in enumerate(_COLUMNS)]
    left = {0, 1}  # text columns left-aligned, numbers right-aligned

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) if i in left else c.rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths, strict=True))).rstrip()

    out = [line(_COLUMNS), line(["-" * w for w in widths])]
    out += [line(r) for r in rows]
    return "\n".join(out)


def render_one(spec: GpuSpec) -> str:
    """Every field of one resolved GPU, for people."""
    lines = [render_table([spec]), ""]
    lines.append(f"memory: {spec.memory_bytes:,} bytes ({spec.memory_mib} MiB); "
                 f"{spec.memory_source}")
    if spec.fp32_tflops:
        lines.append(f"fp32 (non-tensor): {_num(spec.fp32_tflops)} TFLOPs")
    if spec.assumed:
        lines.append("generation ASSUMED: give it as e.g. 6GB,sm86 if the card is newer")
    lines.append(f"source: {spec.source}")
    if spec.notes:
        lines.append(f"notes: {spec.notes}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    if args.gpu:
        spec = resolve_gpu(args.gpu)
        if args.json:
            print(dumps_strict(spec.to_json(), indent=2))
        else:
            print(render_one(spec))
        return 0
    min_bytes = (parse_size(args.min_memory, what="--min-memory")
                 if args.min_memory is not None else None)
    arch = _arch(args.arch) if args.arch is not None else None
    gpus = select(gpu_catalog(), min_memory_bytes=min_bytes, arch=arch)
    if args.json:
        print(dumps_strict([g.to_json() for g in gpus], indent=2))
        return 0
    if not gpus:
        print("no catalog GPU matches these filters", file=sys.stderr)
        return 0
    print(render_table(gpus))
    print(f"{len(gpus)} GPU(s). Memory as NVML reports it; TFLOPs dense, fp32 accumulation. "
          "`vramdoc gpus NAME` shows sources.", file=sys.stderr)
    return 0
