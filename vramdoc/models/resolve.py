"""``resolve_model``: from what a user typed to a ModelSpec.

Order: catalog short name, official repo id or alias (any case) -> a local ``config.json``
file or a model directory holding one -> (only when ``huggingface_hub`` is installed and
``HF_HUB_OFFLINE`` is not set) the repo's config.json in huggingface_hub's disk cache, else one
request to the Hub, with a 10 s timeout and no retries: an unreachable Hub is an error naming
``HF_HUB_OFFLINE`` and the local-path alternative, at once. Anything else is an
:class:`~vramdoc.errors.UnknownModelError` with a did-you-mean and the hint to run
``vramdoc models``.
"""

from __future__ import annotations

import difflib
import importlib.util
import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

from vramdoc.errors import ConfigError, UnknownModelError, UsageError
from vramdoc.models import _catalog
from vramdoc.models.inventory import is_supported, spec_from_config
from vramdoc.models.spec import ModelSpec
from vramdoc.safeload import MAX_DATA_BYTES, load_json, read_text, short

HUB_TIMEOUT_S = 10.0
_HUB_HINT = ("set HF_HUB_OFFLINE=1 to skip the Hub, or pass the path of a local config.json or "
             "model directory")

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
    if _exists(path):
        return _from_path(path)
    if _REPO_ID.match(t) and _hub_allowed():
        spec = _from_hub(t)
        if spec is not None:
            return spec
    elif _REPO_ID.match(t) and importlib.util.find_spec("huggingface_hub") is not None:
        raise UnknownModelError(
            f"{_unknown(t).message}; it is not in the offline catalog and HF_HUB_OFFLINE (or "
            "TRANSFORMERS_OFFLINE) is set, so the Hub was not asked",
            "pass the path of a local config.json or model directory, or unset HF_HUB_OFFLINE")
    raise _unknown(text.strip())


def _exists(path: Path) -> bool:
    """Whether ``path`` exists; a path the OS refuses (too long, a NUL byte) does not."""
    try:
        return path.exists()
    except (OSError, ValueError):
        return False


def _unknown(text: str) -> UnknownModelError:
    names = _catalog.known_names()
    by_lower = {n.lower(): n for n in reversed(names)}
    close = difflib.get_close_matches(text.lower()[:200], list(by_lower), n=3, cutoff=0.6)
    suggest = f"; did you mean {', '.join(by_lower[c] for c in close)}?" if close else ""
    return UnknownModelError(
        f"unknown model {short(text)!r}{suggest}",
        "run `vramdoc models` to list the offline catalog, or pass the path of a config.json "
        "or model directory",
    )


def _from_path(path: Path) -> ModelSpec:
    file = path / "config.json" if path.is_dir() else path
    if not file.is_file():
        raise UnknownModelError(f"{path} has no config.json",
                                "pass a model directory that contains config.json, or the file")
    hint = "pass a Hugging Face config.json"
    try:
        config = load_json(read_text(file, what="config.json", max_bytes=MAX_DATA_BYTES,
                                     hint=hint), str(file))
    except UsageError as exc:  # too large, not UTF-8, not JSON: one message, file named
        raise ConfigError([f"not a readable JSON file: {exc.message}"], short(str(file)),
                          hint) from None
    if not isinstance(config, dict):
        raise ConfigError(["the top level is not a JSON object"], str(file),
                          "pass a Hugging Face config.json")
    name_or_path = config.get("_name_or_path")
    hf_id = name_or_path if isinstance(name_or_path, str) and _REPO_ID.match(name_or_path) else ""
    return _spec(config, name=str(path), hf_id=hf_id, source=str(file.resolve()))


def _spec(config: dict[str, Any], *, name: str, hf_id: str, source: str) -> ModelSpec:
    """vramdoc's own inventory of the config, or, for a model_type it has no builder for,
    the one transformers builds from the config (flagged generic)."""
    mt = config.get("model_type")
    if isinstance(mt, str) and mt and not is_supported(mt):
        from vramdoc.models.generic import generic_spec  # imports transformers: this path only

        return generic_spec(config, name=name, hf_id=hf_id, source=source)
    return spec_from_config(config, name=name, hf_id=hf_id, source=source)


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
    """The repo's config.json from huggingface_hub's disk cache, else from one Hub request;
    None when the Hub says the repo has no config.json.

    Raises:
        UnknownModelError: the Hub cannot be reached, or refuses access (gated repo), at once
            (one try, ``HUB_TIMEOUT_S``): no retry loop between the user and the answer.
    """
    from huggingface_hub import try_to_load_from_cache  # lazy: only for names off the catalog

    cached = try_to_load_from_cache(repo_id, "config.json")
    if isinstance(cached, str):
        file = Path(cached)
        config: Any = load_json(read_text(file, what="config.json", max_bytes=MAX_DATA_BYTES,
                                          hint=_HUB_HINT), str(file))
        # .../snapshots/<commit>/config.json: cite the exact revision that was read.
        revision = file.parent.name
    else:
        config, revision = _fetch_config(repo_id)
        if config is None:
            return None
    if not isinstance(config, dict):
        raise ConfigError(["the top level is not a JSON object"], f"{repo_id}: config.json",
                          "pass a Hugging Face config.json")
    source = f"https://huggingface.co/{repo_id}/blob/{revision}/config.json"
    return _spec(config, name=repo_id, hf_id=repo_id, source=source)


def _fetch_config(repo_id: str) -> tuple[Any, str]:
    """One GET of the repo's config.json: (parsed JSON, commit) or (None, "") when missing."""
    import urllib.error
    import urllib.request

    from huggingface_hub import get_token

    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")
    req = urllib.request.Request(f"{endpoint}/{repo_id}/resolve/main/config.json")
    token = get_token()
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=HUB_TIMEOUT_S) as resp:  # noqa: S310 - https
            data = resp.read(MAX_DATA_BYTES + 1)
            revision = resp.headers.get("X-Repo-Commit") or "main"
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None, ""
        if exc.code in (401, 403):
            raise UnknownModelError(
                f"the Hugging Face Hub refuses {repo_id!r} (HTTP {exc.code}: gated or private)",
                "accept the licence on its Hub page and log in (`hf auth login`), or pass the "
                "path of a local config.json") from None
        raise UnknownModelError(f"the Hugging Face Hub answered HTTP {exc.code} for {repo_id!r}",
                                _HUB_HINT) from None
    except (OSError, ValueError) as exc:  # URLError, timeouts, DNS failures
        reason = getattr(exc, "reason", None) or exc
        raise UnknownModelError(f"cannot reach the Hugging Face Hub for {repo_id!r} ({reason})",
                                _HUB_HINT) from None
    if len(data) > MAX_DATA_BYTES:
        raise UnknownModelError(f"{repo_id}: config.json is larger than 16 MiB", _HUB_HINT)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise UnknownModelError(f"{repo_id}: config.json is not UTF-8 text", _HUB_HINT) from None
    return load_json(text, f"{repo_id}: config.json"), revision
