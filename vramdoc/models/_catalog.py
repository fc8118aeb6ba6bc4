"""The offline model catalog: ``catalog.json`` next to this file, loaded lazily and once.

Each entry holds a short name, the official Hugging Face repo id, aliases (other repo ids
with the same architecture: chat/instruct variants, community mirrors, GPTQ/AWQ exports),
the config.json fields needed to rebuild the model, and ``source``: where those numbers were
read (a hub URL with revision, or ``github.com/owner/repo@commit:path``). The catalog is JSON,
not YAML, because ``json`` is already imported by every Python process and parses it in about
a millisecond.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from vramdoc.models.inventory import spec_from_config
from vramdoc.models.spec import ModelSpec

CATALOG_PATH = Path(__file__).with_name("catalog.json")


@cache
def catalog_entries() -> tuple[dict[str, Any], ...]:
    """The raw catalog entries (name, hf_id, aliases, source, config, optional note)."""
    with CATALOG_PATH.open(encoding="utf-8") as f:
        data = json.load(f)
    return tuple(data["models"])


@cache
def _index() -> dict[str, int]:
    """Lower-cased short name, repo id and alias -> entry position."""
    index: dict[str, int] = {}
    for i, e in enumerate(catalog_entries()):
        for key in (e["name"], e["hf_id"], *e.get("aliases", ())):
            index.setdefault(key.lower(), i)
    return index


@cache
def _spec(i: int) -> ModelSpec:
    e = catalog_entries()[i]
    return spec_from_config(e["config"], name=e["name"], hf_id=e["hf_id"], source=e["source"],
                            aliases=tuple(e.get("aliases", ())))


def catalog() -> tuple[ModelSpec, ...]:
    """Every catalog model as a ModelSpec, in catalog order."""
    return tuple(_spec(i) for i in range(len(catalog_entries())))


def lookup(text: str) -> ModelSpec | None:
    """The catalog model whose short name, repo id or alias is ``text`` (any case), or None."""
    i = _index().get(text.strip().lower())
    return None if i is None else _spec(i)


def entry(spec_name: str) -> dict[str, Any] | None:
    """The raw catalog entry of a short name (for its ``note``), or None."""
    i = _index().get(spec_name.lower())
    return None if i is None else catalog_entries()[i]


def known_names() -> tuple[str, ...]:
    """Every name the catalog resolves (short names first), for did-you-mean suggestions."""
    entries = catalog_entries()
    return tuple([e["name"] for e in entries] + [e["hf_id"] for e in entries]
                 + [a for e in entries for a in e.get("aliases", ())])
