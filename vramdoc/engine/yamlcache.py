"""A disk cache of parsed rule files, so a cold ``vramdoc plan`` need not import PyYAML.

Importing PyYAML and parsing ~60 rule files costs about 0.06 s of CPU, a quarter of a whole
``vramdoc plan`` process. The parsed data of each file is kept in one JSON file per rules
directory, keyed by the file's name, size and modification time (like pip's and ruff's
caches); a file whose key differs is parsed again, and the cache is rewritten at exit of the
load. Only data that survives a JSON round trip unchanged is cached. Nothing is cached when
``VRAMDOC_NO_CACHE`` is set or the cache folder cannot be written.

Cache folder: ``$VRAMDOC_CACHE_DIR``, else ``$XDG_CACHE_HOME/vramdoc``, else
``~/.cache/vramdoc``.
"""

from __future__ import annotations

import copy
import json
import os
import zlib
from pathlib import Path
from typing import Any

_VERSION = 1
_state: dict[Path, tuple[dict[str, Any], bool]] = {}  # dir -> (entries, dirty)


def cache_dir() -> Path | None:
    """Where the cache lives, or None when caching is off."""
    if os.environ.get("VRAMDOC_NO_CACHE"):
        return None
    explicit = os.environ.get("VRAMDOC_CACHE_DIR")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "vramdoc"


def _file_for(rules_dir: Path) -> Path | None:
    base = cache_dir()
    if base is None:
        return None
    digest = f"{zlib.crc32(str(rules_dir).encode()):08x}"
    return base / f"rules-{digest}.json"


def _entries(rules_dir: Path) -> dict[str, Any]:
    if rules_dir not in _state:
        data: dict[str, Any] = {}
        path = _file_for(rules_dir)
        if path is not None:
            try:
                raw = json.loads(path.read_text(encoding="utf-8"))
                if raw.get("version") == _VERSION and isinstance(raw.get("files"), dict):
                    data = raw["files"]
            except (OSError, ValueError, AttributeError):
                data = {}
        _state[rules_dir] = (data, False)
    return _state[rules_dir][0]


def _key(path: Path) -> list[int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns]


def get(path: Path) -> tuple[bool, Any]:
    """(hit, data) for a rule file: the cached parse when its size and mtime still match."""
    key = _key(path)
    entry = _entries(path.parent).get(path.name)
    if key is not None and isinstance(entry, dict) and entry.get("key") == key:
        return True, copy.deepcopy(entry.get("data"))
    return False, None


def put(path: Path, data: Any) -> None:
    """Remember a fresh parse (only if JSON keeps it exactly)."""
    key = _key(path)
    if key is None:
        return
    try:
        if json.loads(json.dumps(data)) != data:
            return
    except (TypeError, ValueError):
        return
    entries = _entries(path.parent)
    entries[path.name] = {"key": key, "data": data}
    _state[path.parent] = (entries, True)


def flush(rules_dir: Path) -> None:
    """Write the cache of ``rules_dir`` if a file was parsed afresh (errors are ignored)."""
    entries, dirty = _state.get(rules_dir, ({}, False))
    target = _file_for(rules_dir)
    if not dirty or target is None:
        return
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"version": _VERSION, "files": entries}), encoding="utf-8")
        os.replace(tmp, target)
        _state[rules_dir] = (entries, False)
    except OSError:
        pass
