"""The parsed-rules cache: same rules as parsing, invalidated by any edit, never required."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT
from vramdoc.engine import yamlcache
from vramdoc.engine.loader import _load, default_rules_dir


def _rules(rules_dir: Path) -> dict[str, tuple[str, str]]:
    _load.cache_clear()
    from vramdoc.engine.loader import _contexts

    _contexts.cache_clear()
    return {r.code: (r.when, r.message) for r in _load(rules_dir, None)}


def test_cached_rules_equal_parsed_rules_and_edits_invalidate(tmp_path, monkeypatch) -> None:
    rules = tmp_path / "rules"
    shutil.copytree(default_rules_dir(), rules)
    monkeypatch.setenv("VRAMDOC_CACHE_DIR", str(tmp_path / "cache"))
    yamlcache._state.clear()
    fresh = _rules(rules)
    files = list((tmp_path / "cache").glob("rules-*.json"))
    assert len(files) == 2  # the rules folder and its _contexts folder
    yamlcache._state.clear()
    assert _rules(rules) == fresh  # read back from the cache
    # an edit (size and mtime change) is seen at once
    path = rules / "M216-logits-dominate.yaml"
    path.write_text(path.read_text().replace("the logits/loss chain is", "logits are"))
    yamlcache._state.clear()
    assert _rules(rules)["M216"][1].startswith("logits are")
    _load.cache_clear()


def test_a_broken_or_missing_cache_is_ignored(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("VRAMDOC_CACHE_DIR", str(tmp_path))
    yamlcache._state.clear()
    target = yamlcache._file_for(default_rules_dir())
    assert target is not None
    target.write_text("{not json")
    assert _rules(default_rules_dir())
    assert json.loads(target.read_text())["version"] == 1  # rewritten
    monkeypatch.setenv("VRAMDOC_NO_CACHE", "1")
    assert yamlcache.cache_dir() is None
    _load.cache_clear()


def test_data_json_cannot_keep_is_not_cached(tmp_path) -> None:
    f = tmp_path / "x.yaml"
    f.write_text("1: 2\n")
    yamlcache.put(f, {1: 2})  # an int key would come back as "1"
    assert yamlcache.get(f) == (False, None)


def test_a_warm_plan_process_does_not_import_yaml(tmp_path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "VRAMDOC_CACHE_DIR": str(tmp_path)}
    cmd = [sys.executable, "-c", "import sys; from vramdoc.cli import main; "
           "main(['plan', '--model', 'llama-2-7b', '--gpu', '6GB']); "
           "print('yaml' in sys.modules, file=sys.stderr)"]
    subprocess.run(cmd, env=env, capture_output=True, check=False)  # fills the cache
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    assert out.stderr.strip().splitlines()[-1] == "False"
