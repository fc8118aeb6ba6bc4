"""``resolve_model``: from what a user typed to a ModelSpec.

Order: catalog short name, official repo id or alias (any case) -> a local ``config.json``
file or a model directory holding one -> (only when ``huggingface_hub`` is installed and
``HF_HUB_OFFLINE`` is not set) the repo's config.json from the Hub, which huggingface_hub
caches on disk. Anything else is an :class:`~vramdoc.errors.UnknownModelError` with a
did-you-mean and the hint to run ``vramdoc models``.
"""

from __future__ import annotations

import difflib
import importlib.util
import json
import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

from vramdoc.errors import ConfigError, UnknownModelError, UsageError
from vramdoc.models import _catalog
from vramdoc.models.inventory import spec_from_config
from vramdoc.models.spec import ModelSpec

_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]{0,95}/[\w.-]{1,96}$")
_HUB_PREFIXES = ("https://huggingface.co/", "http://huggingface.co/", "huggingface.co/", "hf.co/")
_TRUTHY = {"1", "true", "yes", "on"}


def resolve_model(text: str) -> ModelSpec:
    """Resolve a catalog name, repo id, alias, local config.json / directory, or hub id.

    Raises:
        UnknownModelError: nothing matches (the message suggests close catalog names).
        ConfigError: a local config.json is not valid JSON or lacks required fields.
    """
    if not isinstance(text, str) or not text.strip():
        raise UsageError("no model given", "pass a name from `vramdoc models`, a repo id or a "
                         "path to config.json")
    t = text.strip()
    for prefix in _HUB_PREFIXES:
        if t.lower().startswith(prefix):
            t = t[len(prefix):].strip("/")
    spec = _catalog.lookup(t)
    if spec is not None:
        return spec
    path = Path(os.path.expanduser(t))
    if path.exists():
        return _from_path(path)
    if _REPO_ID.match(t) and _hub_allowed():
        spec = _from_hub(t)
        if spec is not None:
            return spec
    raise _unknown(text.strip())


def _unknown(text: str) -> UnknownModelError:
    names = _catalog.known_names()
    by_lower = {n.lower(): n for n in reversed(names)}
    close = difflib.get_close_matches(text.lower(), list(by_lower), n=3, cutoff=0.6)
    suggest = f"; did you mean {', '.join(by_lower[c] for c in close)}?" if close else ""
    return UnknownModelError(
        f"unknown model {text!r}{suggest}",
        "run `vramdoc models` to list the offline catalog, or pass the path of a config.json "
        "or model directory",
    )


def _from_path(path: Path) -> ModelSpec:
    file = path / "config.json" if path.is_dir() else path
    if not file.is_file():
        raise UnknownModelError(f"{path} has no config.json",
                                "pass a model directory that contains config.json, or the file")
    try:
        config = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError([f"not a readable JSON file: {exc}"], str(file),
                          "pass a Hugging Face config.json") from exc
    if not isinstance(config, dict):
        raise ConfigError(["the top level is not a JSON object"], str(file),
                          "pass a Hugging Face config.json")
    name_or_path = config.get("_name_or_path")
    hf_id = name_or_path if isinstance(name_or_path, str) and _REPO_ID.match(name_or_path) else ""
    return spec_from_config(config, name=str(path), hf_id=hf_id, source=str(file.resolve()))


def _hub_allowed() -> bool:
    offline = any(os.environ.get(v, "").strip().lower() in _TRUTHY
                  for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))
    return not offline and importlib.util.find_spec("huggingface_hub") is not None


HUB_TIMEOUT_S = 5.0


def _reach_hub_once(repo_id: str) -> None:
    """One HEAD request for the repo's config.json, no retries (hf_hub_download retries
    network errors with back-off for a minute when nothing is cached).

    Raises:
        UsageError: the Hub cannot be reached (names HF_HUB_OFFLINE).
    """
    from huggingface_hub import get_hf_file_metadata, hf_hub_url

    try:
        get_hf_file_metadata(hf_hub_url(repo_id, "config.json"), timeout=HUB_TIMEOUT_S)
    except Exception as exc:  # noqa: BLE001 - sorted below by what it says
        name = type(exc).__name__
        if any(k in name for k in ("Connect", "Timeout", "Network", "Offline")) or \
                "connect" in str(exc).lower():
            raise UsageError(
                f"{repo_id!r} is not in the catalog and the Hugging Face Hub cannot be reached "
                f"({name}, one try, {HUB_TIMEOUT_S:g} s timeout)",
                "use a catalog name (vramdoc models), a local config.json, or set "
                "HF_HUB_OFFLINE=1 to skip the Hub") from None
        # reachable: a missing repo or file is answered by hf_hub_download as "not found"


@lru_cache(maxsize=64)
def _from_hub(repo_id: str) -> ModelSpec | None:
    """The repo's config.json via huggingface_hub (disk-cached by it), or None when missing."""
    try:
        from huggingface_hub import hf_hub_download  # lazy: only for names off the catalog
    except Exception:  # noqa: BLE001
        return None
    try:  # the disk cache first: no network at all
        file = Path(hf_hub_download(repo_id, "config.json", local_files_only=True))
    except Exception:  # noqa: BLE001 - not cached
        _reach_hub_once(repo_id)
        try:
            file = Path(hf_hub_download(repo_id, "config.json"))
        except Exception:  # noqa: BLE001 - any hub failure means "not found" to the user
            return None
    try:
        config: Any = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(config, dict):
        return None
    # .../snapshots/<commit>/config.json: cite the exact revision that was read.
    revision = file.parent.name
    source = f"https://huggingface.co/{repo_id}/blob/{revision}/config.json"
    return spec_from_config(config, name=repo_id, hf_id=repo_id, source=source)
