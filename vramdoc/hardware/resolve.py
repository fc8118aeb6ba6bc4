"""``resolve_gpu``: turn what a user types after ``--gpu`` into a :class:`GpuSpec`.

Three forms:

1. **A name** from the catalog, forgiving about case, punctuation, word order and the brand
   words (``RTX-3060-12GB``, ``rtx 3060``, ``3060``, ``T4``, ``a100-80gb``,
   ``A100 80GB PCIe``). Where one name covers variants with the same memory, the catalog's
   aliases pick a documented default: ``H100`` -> H100-SXM, ``A100-80GB`` -> A100-80GB-SXM,
   ``A100-40GB`` -> A100-40GB-SXM. Where variants differ in memory (``A100``: 40 or 80 GB;
   ``V100``; ``RTX 3080``: 10 or 12 GB) nothing is guessed: the error lists the choices.
2. **A bare size** with a unit (``6GB``, ``24GiB``, ``12288MiB``; GB = GiB, see
   :mod:`vramdoc.units`), optionally with the generation after a comma: ``6GB,sm86``,
   ``24GB,sm89``, ``16GB,8.0``, ``24GB,ampere``. Without it vramdoc **assumes sm75
   (Turing: no bf16, no FlashAttention-2, fp16 with loss scaling)**, because a plan that
   works there also works on every newer card; the spec says ``assumed=True``. Throughput
   figures of a bare size are borrowed from the slowest catalog card of that compute
   capability (they only rank plans against each other on the same GPU).
3. **auto** (GPU 0 through NVML) or **auto:N**. The device is matched to the catalog by
   its NVML name (memory breaks ties between variants) and keeps NVML's measured total;
   an unknown card becomes a generic spec with NVML's memory and compute capability.
   No driver or GPU: :class:`~vramdoc.errors.HardwareError` (exit 3).

Unknown input raises :class:`~vramdoc.errors.UnknownGpuError` (exit 2) with a did-you-mean.
"""

from __future__ import annotations

import re
from dataclasses import replace

from vramdoc.errors import HardwareError, UnknownGpuError
from vramdoc.hardware.catalog import candidates, gpu_catalog, lookup, suggestions
from vramdoc.hardware.spec import GpuSpec, architecture_of, capability_flags, sm_of
from vramdoc.units import format_bytes, parse_size

#: The generation assumed for a bare size: Turing, the newest generation without bf16 or
#: FlashAttention-2. A plan made for it runs on Turing and everything newer.
DEFAULT_ASSUMED_CC: tuple[int, int] = (7, 5)

# Representative compute capability per architecture name (``24GB,ampere``). Where an
# architecture spans several, the consumer part is used: same flags, lower throughput.
_ARCH_CC: dict[str, tuple[int, int]] = {
    "pascal": (6, 1),
    "volta": (7, 0),
    "turing": (7, 5),
    "ampere": (8, 6),
    "ada": (8, 9),
    "lovelace": (8, 9),
    "hopper": (9, 0),
    "blackwell": (12, 0),
}

#: Compute capabilities of shipped NVIDIA GPUs (https://developer.nvidia.com/cuda-gpus).
KNOWN_SM = frozenset({50, 52, 53, 60, 61, 62, 70, 72, 75, 80, 86, 87, 88, 89, 90, 100, 101, 103,
                      110, 120, 121})

# A size needs its unit: "3060" is a card, "3060 Ti" is a card ("Ti" is not TiB), "24GB" a size.
_SIZE_RE = re.compile(r"^\s*\d+(\.\d+)?\s*(?:[kmgt]i?b|g)\s*$", re.IGNORECASE)
#: Bare sizes outside this range are typos (6MB for 6GB), not GPUs.
_MIN_BYTES, _MAX_BYTES = 2**30, 2**40
_SM_RE = re.compile(r"^(?:sm|cc|compute)?[_\s]*(\d+)(?:\.(\d+))?$", re.IGNORECASE)
_AUTO_RE = re.compile(r"^\s*auto\s*(?::\s*(\d+))?\s*$", re.IGNORECASE)

HINT_LIST = "run `vramdoc gpus` for the catalog, or give a size such as 24GB or 24GB,sm89"


def resolve_gpu(text: str) -> GpuSpec:
    """Resolve a ``--gpu`` value: a catalog name, a bare size (``6GB[,smXY]``) or ``auto[:N]``.

    Raises:
        UnknownGpuError: the text is none of the three (did-you-mean in the message).
        HardwareError: ``auto`` and NVML finds no driver or GPU.
    """
    if not isinstance(text, str) or not text.strip():
        raise UnknownGpuError("no GPU given", HINT_LIST)
    raw = text.strip()
    if len(raw) > 100:  # no GPU name or size is this long; keep the message one line
        raise UnknownGpuError(f"unknown GPU {raw[:40]!r}... ({len(raw):,} characters)", HINT_LIST)
    auto = _AUTO_RE.match(raw)
    if auto:
        return resolve_local(int(auto.group(1) or 0))
    head, _, tail = raw.partition(",")
    if _SIZE_RE.match(head):
        return _bare_size(head.strip(), tail.strip() if tail else None, raw)
    if tail:
        raise UnknownGpuError(
            f"{raw!r}: only a size takes a generation after the comma (e.g. 24GB,sm89)",
            HINT_LIST,
        )
    spec = lookup(raw)
    if spec is not None:
        return spec
    choices = candidates(raw)
    if len(choices) > 1:
        names = ", ".join(c.name for c in choices)
        raise UnknownGpuError(
            f"GPU {raw!r} is ambiguous: it matches {names}",
            "name one of them; variants differ in memory or bandwidth",
        )
    if len(choices) == 1:
        # every token the user typed belongs to exactly one card, but not enough to be sure
        # it is that card (GTX 1080 is not a GTX 1080 Ti): ask rather than guess
        raise UnknownGpuError(
            f"unknown GPU {raw!r}; did you mean {choices[0].name}?", HINT_LIST
        )
    near = suggestions(raw)
    mean = f"; did you mean {' or '.join(near)}?" if near else ""
    raise UnknownGpuError(f"unknown GPU {raw!r}{mean}", HINT_LIST)


def parse_compute_capability(text: str) -> tuple[int, int]:
    """``sm86`` / ``sm_86`` / ``8.6`` / ``cc8.6`` / ``sm120`` / ``ampere`` -> ``(major, minor)``.

    >>> parse_compute_capability("sm86")
    (8, 6)
    >>> parse_compute_capability("sm_120")
    (12, 0)
    >>> parse_compute_capability("8.0")
    (8, 0)
    >>> parse_compute_capability("Hopper")
    (9, 0)

    Raises:
        UnknownGpuError: not a compute capability NVIDIA could have shipped.
    """
    t = text.strip()
    if t.lower() in _ARCH_CC:
        return _ARCH_CC[t.lower()]
    m = _SM_RE.match(t)
    if m is None:
        raise UnknownGpuError(
            f"{text!r} is not a compute capability",
            "write it like sm75, sm86, sm89, sm90, 8.6 or an architecture name (ampere)",
        )
    digits, minor = m.group(1), m.group(2)
    if minor is not None:
        cc = (int(digits), int(minor))
    elif len(digits) == 2:
        cc = (int(digits[0]), int(digits[1]))
    elif len(digits) == 3:
        cc = (int(digits[:2]), int(digits[2]))
    else:
        cc = (-1, -1)
    if sm_of(cc) not in KNOWN_SM or not 0 <= cc[1] <= 9:
        raise UnknownGpuError(
            f"{text!r} is not a compute capability NVIDIA has shipped",
            "write it like sm75, sm86, sm89, sm90, sm100 or sm120",
        )
    return cc


def _bare_size(size_text: str, cc_text: str | None, raw: str) -> GpuSpec:
    memory_bytes = parse_size(size_text, what="GPU memory")
    if not _MIN_BYTES <= memory_bytes <= _MAX_BYTES:
        raise UnknownGpuError(
            f"{size_text!r} is not a plausible GPU memory size",
            "give the card's memory between 1GB and 1TB, e.g. 6GB or 24GiB (GB = GiB)",
        )
    if cc_text is None or cc_text == "":
        cc, assumed = DEFAULT_ASSUMED_CC, True
    else:
        cc, assumed = parse_compute_capability(cc_text), False
    return generic_spec(
        name=f"{size_text} GPU (sm{sm_of(cc)}{', assumed' if assumed else ''})",
        memory_bytes=memory_bytes,
        compute_capability=cc,
        assumed=assumed,
        source=(
            f"bare size {raw!r}: "
            + (f"generation assumed sm{sm_of(cc)} ({architecture_of(cc)}); "
               "say e.g. 6GB,sm86 for a newer card" if assumed
               else f"generation given as sm{sm_of(cc)} ({architecture_of(cc)})")
        ),
    )


def _throughput_donor(cc: tuple[int, int]) -> GpuSpec:
    """The slowest catalog card of this compute capability (else architecture, else older)."""
    cat = gpu_catalog()
    sm = sm_of(cc)
    for pool in (
        [g for g in cat if g.compute_capability == cc],
        [g for g in cat if g.architecture == architecture_of(cc)],
        [g for g in cat if g.sm <= sm],
        list(cat),
    ):
        if pool:
            return min(pool, key=lambda g: (g.fp16_tflops, g.memory_bandwidth_gbps))
    raise AssertionError("empty GPU catalog")  # gpu_catalog() never returns an empty tuple


def generic_spec(
    *,
    name: str,
    memory_bytes: int,
    compute_capability: tuple[int, int],
    assumed: bool,
    source: str,
) -> GpuSpec:
    """A spec for a GPU vramdoc only knows by memory and compute capability.

    Flags follow the compute capability; bandwidth and TFLOPs come from the slowest catalog
    card of that capability (named in ``notes``), so a plan's predicted speed is a floor.
    """
    flags = capability_flags(compute_capability)
    donor = _throughput_donor(compute_capability)
    return GpuSpec(
        name=name,
        memory_bytes=memory_bytes,
        compute_capability=compute_capability,
        architecture=architecture_of(compute_capability),
        bf16=flags["bf16"],
        flash_attention_2=flags["flash_attention_2"],
        fp8=flags["fp8"],
        memory_bandwidth_gbps=donor.memory_bandwidth_gbps,
        bf16_tflops=donor.bf16_tflops if flags["bf16"] else 0.0,
        fp16_tflops=donor.fp16_tflops,
        fp32_tflops=donor.fp32_tflops,
        assumed=assumed,
        source=source,
        segment="generic",
        memory_source=f"given: {format_bytes(memory_bytes)}",
        notes=f"throughput borrowed from {donor.name}, the slowest catalog card of its kind",
    )


def resolve_local(index: int = 0) -> GpuSpec:
    """The GPU at NVML ``index`` as a spec (``--gpu auto`` / ``auto:N``).

    Raises:
        HardwareError: no NVML library, no driver, or no GPU at ``index``.
    """
    from vramdoc.hardware import nvml  # lazy: pynvml is imported only here

    info = nvml.device_info(index, processes=False)
    if info.memory_total_bytes is None:
        raise HardwareError(
            f"NVML cannot read the memory of GPU {index} ({info.name or 'unknown'})",
            nvml.NVML_HINT,
        )
    total = info.memory_total_bytes
    where = f"NVML GPU {index}"
    spec = _match_device(info.name or "", total)
    if spec is not None and (info.compute_capability in (None, spec.compute_capability)):
        return replace(
            spec,
            memory_bytes=total,
            memory_source=f"{where}: {total // 2**20} MiB measured",
            source=f"{where} ({info.name}) matched to catalog {spec.name}; {spec.source}",
        )
    cc = info.compute_capability
    return generic_spec(
        name=info.name or f"GPU {index}",
        memory_bytes=total,
        compute_capability=cc or DEFAULT_ASSUMED_CC,
        assumed=cc is None,
        source=(
            f"{where} ({info.name}): not in the catalog; memory and compute capability "
            f"from NVML" if cc is not None else
            f"{where} ({info.name}): not in the catalog and NVML gives no compute capability;"
            f" assumed sm{sm_of(DEFAULT_ASSUMED_CC)}"
        ),
    )


def _match_device(nvml_name: str, total_bytes: int) -> GpuSpec | None:
    """Catalog entry for an NVML product name; memory picks between same-name variants."""
    if not nvml_name:
        return None

    def close(g: GpuSpec) -> bool:
        # An 8 GB RTX 3060 must not borrow the 12 GB card's identity: within 10% or no match.
        return abs(g.memory_bytes - total_bytes) <= 0.10 * total_bytes

    exact = lookup(nvml_name)
    if exact is not None:
        return exact if close(exact) else None
    pool = [g for g in candidates(nvml_name) if close(g)]
    if not pool:
        return None
    return min(pool, key=lambda g: abs(g.memory_bytes - total_bytes))
