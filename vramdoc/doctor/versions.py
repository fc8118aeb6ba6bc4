"""Which release of each library a script is checked against.

In order: a ``--transformers 5.24`` style flag, a pin in a ``requirements*.txt`` beside the
file (``transformers==4.46.3``), the installed distribution's metadata (read without importing
the library), else None: the newest release, every change in ``rules/api/`` applies.
"""

from __future__ import annotations

import os
import re
import sys
from functools import cache
from pathlib import Path

LIBRARIES = ("transformers", "peft", "trl", "bitsandbytes", "accelerate")
_PIN = re.compile(r"^\s*([A-Za-z0-9_.\-]+)\s*(?:\[[^\]]*\])?\s*(==|~=|===)\s*([0-9][0-9a-zA-Z.]*)")


def parse_version(text: str) -> tuple[int, ...]:
    """``"5.24"`` -> (5, 24, 0); pre-release suffixes are dropped ("4.57.0.dev0" -> 4.57.0).

    >>> parse_version("5.24"), parse_version("0.21.2"), parse_version("4.57.0.dev0")
    ((5, 24, 0), (0, 21, 2), (4, 57, 0))
    """
    parts = [int(m) for m in re.findall(r"\d+", text.split("+")[0])[:3]]
    while len(parts) < 3:
        parts.append(0)
    return tuple(parts)


@cache
def _dist_infos() -> dict[str, str]:
    """name -> version of the installed distributions, from the ``*.dist-info`` folder names on
    sys.path (importlib.metadata reads the same folders, at several times the start-up cost)."""
    out: dict[str, str] = {}
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        for n in names:
            if n.endswith(".dist-info") and "-" in n:
                name, _, version = n[: -len(".dist-info")].rpartition("-")
                out.setdefault(name.lower().replace("_", "-"), version)
    return out


def installed_version(library: str) -> str | None:
    """The installed release of ``library`` (None when not installed); nothing is imported."""
    return _dist_infos().get(library.lower().replace("_", "-"))


def requirements_pins(folder: Path) -> dict[str, tuple[str, str]]:
    """Pinned versions in ``requirements*.txt`` files of ``folder``: library -> (version, file)."""
    out: dict[str, tuple[str, str]] = {}
    try:
        files = sorted(folder.glob("requirements*.txt"))
    except OSError:
        return out
    for f in files:
        try:
            text = f.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        for line in text.splitlines():
            m = _PIN.match(line.split("#", 1)[0])
            if m:
                name = m.group(1).lower().replace("_", "-")
                if name in LIBRARIES:
                    out.setdefault(name, (m.group(3), f.name))
    return out


def resolve_versions(path: Path, flags: dict[str, str | None]) -> dict[str, tuple[str | None, str]]:
    """library -> (version or None, where it came from) for the file at ``path``."""
    pins = requirements_pins(path.parent)
    out: dict[str, tuple[str | None, str]] = {}
    for lib in LIBRARIES:
        if flags.get(lib):
            out[lib] = (flags[lib], f"--{lib}")
        elif lib in pins:
            out[lib] = (pins[lib][0], pins[lib][1])
        elif installed_version(lib):
            out[lib] = (installed_version(lib), "installed")
        else:
            out[lib] = (None, "not installed: the newest release assumed")
    return out
