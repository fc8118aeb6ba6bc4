"""The offline GPU catalog (``catalog.json``): loading, validation and name lookup.

Every entry carries its spec-sheet ``source`` and a ``memory_source`` for the NVML total.
``validate_catalog`` lists every problem at once (torchtune's ``ConfigError`` habit); the
loader refuses a catalog with problems, and the tests run the same validation.

Name matching is forgiving: a name is lower-cased, the brand words NVIDIA / GeForce / Tesla
/ Quadro / RTX / GTX are dropped, ``GiB`` is read as ``GB``, and the rest is split into
letter and digit runs whose order does not matter. ``"RTX-3060-12GB"``, ``"rtx 3060 12gb"``
and ``"3060 12GB"`` give the same key; ``"A100 SXM4 80GB"`` and ``"A100-80GB-SXM4"`` too.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from importlib import resources
from typing import Any

from vramdoc.errors import ConfigError
from vramdoc.hardware.spec import (
    ARCHITECTURES,
    SEGMENTS,
    GpuSpec,
    architecture_of,
    capability_flags,
)
from vramdoc.units import MiB

CATALOG_FILE = "catalog.json"

# Words that carry no identity: every catalog card is an NVIDIA card, and "RTX" / "GTX"
# prefixes are routinely dropped by people ("3060", "A6000").
_BRAND_WORDS = frozenset({"nvidia", "geforce", "tesla", "quadro", "rtx", "gtx", "the"})
_TOKEN_RE = re.compile(r"[a-z]+|[0-9]+")

_REQUIRED: dict[str, type | tuple[type, ...]] = {
    "name": str,
    "aliases": list,
    "vendor": str,
    "architecture": str,
    "compute_capability": list,
    "segment": str,
    "release_year": int,
    "memory_mib": int,
    "memory_gb_marketed": int,
    "memory_source": str,
    "memory_bandwidth_gbps": (int, float),
    "bf16_tflops": (int, float),
    "fp16_tflops": (int, float),
    "fp32_tflops": (int, float),
    "bf16": bool,
    "flash_attention_2": bool,
    "fp8": bool,
    "source": str,
    "notes": str,
}


# Optional keys: the GPU-to-GPU link of parts that have NVLink (per direction, GB/s, with its
# source); cards without them talk over PCIe (vramdoc.hardware.interconnect).
_OPTIONAL: dict[str, type | tuple[type, ...]] = {
    "interconnect": str,
    "interconnect_gbps": (int, float),
    "interconnect_source": str,
}


def name_tokens(text: str) -> tuple[str, ...]:
    """Order-free identity of a GPU name: sorted letter/digit runs without brand words.

    >>> name_tokens("NVIDIA GeForce RTX 3060")
    ('3060',)
    >>> name_tokens("A100-80GB-SXM4") == name_tokens("a100 sxm4 80 GiB")
    True
    """
    low = text.lower().replace("gib", "gb")
    return tuple(sorted(t for t in _TOKEN_RE.findall(low) if t not in _BRAND_WORDS))


def compact(text: str) -> str:
    """Letters and digits only, brand words dropped, order kept (for did-you-mean)."""
    low = text.lower().replace("gib", "gb")
    return "".join(t for t in _TOKEN_RE.findall(low) if t not in _BRAND_WORDS)


def validate_catalog(data: Any) -> list[str]:
    """Every problem in a parsed catalog.json, as one line each (empty when valid)."""
    problems: list[str] = []
    if not isinstance(data, dict) or not isinstance(data.get("gpus"), list):
        return ["top level must be an object with a 'gpus' list"]
    seen_keys: dict[tuple[str, ...], str] = {}
    for i, entry in enumerate(data["gpus"]):
        where = f"gpus[{i}]"
        if not isinstance(entry, dict):
            problems.append(f"{where}: not an object")
            continue
        name = entry.get("name", "?")
        where = f"gpus[{i}] {name}"
        missing = [k for k in _REQUIRED if k not in entry]
        if missing:
            problems.append(f"{where}: missing {', '.join(missing)}")
            continue
        unknown = sorted(set(entry) - set(_REQUIRED) - set(_OPTIONAL))
        if unknown:
            problems.append(f"{where}: unknown keys {', '.join(unknown)}")
        for key, typ in _REQUIRED.items():
            value = entry[key]
            # bool is an int subclass: reject it where a number is expected
            if not isinstance(value, typ) or (typ is not bool and isinstance(value, bool)):
                problems.append(f"{where}: {key} has the wrong type ({type(value).__name__})")
        if any(p.startswith(where) and "wrong type" in p for p in problems):
            continue
        problems.extend(_check_values(where, entry))
        for text in [entry["name"], *entry["aliases"]]:
            tokens = name_tokens(text)
            owner = seen_keys.get(tokens)
            if owner is not None and owner != entry["name"]:
                problems.append(f"{where}: name/alias {text!r} collides with {owner}")
            seen_keys.setdefault(tokens, entry["name"])
    return problems


def _check_values(where: str, entry: dict[str, Any]) -> list[str]:
    out: list[str] = []
    cc = entry["compute_capability"]
    if len(cc) != 2 or not all(isinstance(x, int) and not isinstance(x, bool) for x in cc):
        return [f"{where}: compute_capability must be [major, minor]"]
    cct = (cc[0], cc[1])
    if entry["architecture"] not in ARCHITECTURES:
        out.append(f"{where}: architecture {entry['architecture']!r} not in {ARCHITECTURES}")
    elif architecture_of(cct) != entry["architecture"]:
        out.append(f"{where}: sm{cc[0]}{cc[1]} is {architecture_of(cct)}, "
                   f"not {entry['architecture']}")
    for flag, expected in capability_flags(cct).items():
        if entry[flag] != expected:
            out.append(f"{where}: {flag}={entry[flag]} contradicts sm{cc[0]}{cc[1]}")
    if entry["segment"] not in SEGMENTS:
        out.append(f"{where}: segment {entry['segment']!r} not in {SEGMENTS}")
    # Sanity ranges: the smallest card here has 6 GB, the largest HBM part < 300 GB.
    if not 2048 <= entry["memory_mib"] <= 300 * 1024:
        out.append(f"{where}: memory_mib {entry['memory_mib']} out of range")
    marketed_mib = entry["memory_gb_marketed"] * 1024
    # NVML totals sit a little under the box size (ECC, reservations): within -7% / +0%.
    if not 0.93 * marketed_mib <= entry["memory_mib"] <= marketed_mib:
        out.append(f"{where}: memory_mib {entry['memory_mib']} inconsistent with "
                   f"{entry['memory_gb_marketed']} GB marketed")
    if not 100 <= entry["memory_bandwidth_gbps"] <= 10_000:
        out.append(f"{where}: memory_bandwidth_gbps out of range")
    if not 1 <= entry["fp32_tflops"] <= 200:
        out.append(f"{where}: fp32_tflops out of range")
    if not 1 <= entry["fp16_tflops"] <= 5000:
        out.append(f"{where}: fp16_tflops out of range")
    if entry["bf16"] != (entry["bf16_tflops"] > 0):
        out.append(f"{where}: bf16_tflops must be > 0 exactly when bf16 is supported")
    if entry["bf16_tflops"] > 0 and entry["bf16_tflops"] != entry["fp16_tflops"]:
        # Ampere, Ada, Hopper and Blackwell run bf16 and fp16 tensor math at the same rate.
        out.append(f"{where}: bf16_tflops must equal fp16_tflops on a bf16-capable card")
    if not 2016 <= entry["release_year"] <= 2030:
        out.append(f"{where}: release_year out of range")
    for key in ("source", "memory_source"):
        if not entry[key].strip():
            out.append(f"{where}: empty {key}")
    if "http" not in entry["source"]:
        out.append(f"{where}: source must cite a URL")
    return out


def _spec_from_entry(entry: dict[str, Any]) -> GpuSpec:
    cc = (int(entry["compute_capability"][0]), int(entry["compute_capability"][1]))
    return GpuSpec(
        name=entry["name"],
        memory_bytes=int(entry["memory_mib"]) * MiB,
        compute_capability=cc,
        architecture=entry["architecture"],
        bf16=bool(entry["bf16"]),
        flash_attention_2=bool(entry["flash_attention_2"]),
        fp8=bool(entry["fp8"]),
        memory_bandwidth_gbps=float(entry["memory_bandwidth_gbps"]),
        bf16_tflops=float(entry["bf16_tflops"]),
        fp16_tflops=float(entry["fp16_tflops"]),
        fp32_tflops=float(entry["fp32_tflops"]),
        assumed=False,
        source=entry["source"],
        aliases=tuple(entry["aliases"]),
        vendor=entry["vendor"],
        segment=entry["segment"],
        release_year=int(entry["release_year"]),
        memory_gb_marketed=int(entry["memory_gb_marketed"]),
        memory_source=entry["memory_source"],
        notes=entry["notes"],
        interconnect=str(entry.get("interconnect", "")),
        interconnect_gbps=float(entry.get("interconnect_gbps", 0.0)),
    )


def load_catalog_data() -> dict[str, Any]:
    """The parsed catalog.json shipped inside the package."""
    text = resources.files("vramdoc.hardware").joinpath(CATALOG_FILE).read_text("utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


@lru_cache(maxsize=1)
def gpu_catalog() -> tuple[GpuSpec, ...]:
    """Every catalog GPU, oldest generation first.

    Raises:
        ConfigError: the shipped catalog is invalid (lists every problem).
    """
    data = load_catalog_data()
    problems = validate_catalog(data)
    if problems:
        raise ConfigError(problems, source=f"vramdoc/hardware/{CATALOG_FILE}")
    return tuple(_spec_from_entry(e) for e in data["gpus"])


@lru_cache(maxsize=1)
def _key_index() -> dict[tuple[str, ...], GpuSpec]:
    index: dict[tuple[str, ...], GpuSpec] = {}
    for spec in gpu_catalog():
        for text in (spec.name, *spec.aliases):
            index.setdefault(name_tokens(text), spec)
    return index


def lookup(text: str) -> GpuSpec | None:
    """The catalog entry whose name or alias matches ``text`` (forgiving), else None."""
    return _key_index().get(name_tokens(text))


def candidates(text: str) -> list[GpuSpec]:
    """Entries whose name or an alias contains every token of ``text`` (catalog order).

    ``"a100"`` gives the four A100 variants; used to list choices for an ambiguous name.
    """
    want = name_tokens(text)
    if not want:
        return []
    out: list[GpuSpec] = []
    for spec in gpu_catalog():
        for alias in (spec.name, *spec.aliases):
            have = list(name_tokens(alias))
            if _contains(have, want):
                out.append(spec)
                break
    return out


def _contains(have: list[str], want: tuple[str, ...]) -> bool:
    pool = list(have)
    for token in want:
        if token not in pool:
            return False
        pool.remove(token)
    return True


def suggestions(text: str, limit: int = 3) -> list[str]:
    """Catalog names that look like ``text`` (did-you-mean), best first."""
    import difflib

    want = compact(text)
    by_key: dict[str, str] = {}
    for spec in gpu_catalog():
        for alias in (spec.name, *spec.aliases):
            by_key.setdefault(compact(alias), spec.name)
    out: list[str] = []
    for key in difflib.get_close_matches(want, list(by_key), n=limit * 4, cutoff=0.6):
        name = by_key[key]
        if name not in out:
            out.append(name)
    return out[:limit]
