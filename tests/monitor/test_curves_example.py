"""examples/curves-overfitting: the files are what make_run.py writes, and the watch's
--once output is the expected one."""

from __future__ import annotations

import filecmp
import json
import runpy
import shutil

from tests.conftest import ROOT

EXAMPLE = ROOT / "examples" / "curves-overfitting"


def test_make_run_reproduces_the_committed_run(tmp_path, monkeypatch):
    copy = tmp_path / "curves-overfitting"
    shutil.copytree(EXAMPLE, copy)
    shutil.rmtree(copy / "run")
    runpy.run_path(str(copy / "make_run.py"), run_name="__main__")
    cmp = filecmp.dircmp(EXAMPLE / "run", copy / "run")
    assert sorted(cmp.common_dirs) == ["checkpoint-550", "checkpoint-600"]
    for sub in cmp.common_dirs:
        c = filecmp.dircmp(EXAMPLE / "run" / sub, copy / "run" / sub)
        assert not c.left_only and not c.right_only
        _match, mismatch, errors = filecmp.cmpfiles(EXAMPLE / "run" / sub, copy / "run" / sub,
                                                    c.common_files, shallow=False)
        assert mismatch == [] and errors == [], sub


def test_once_prints_the_expected_output(run_cli, monkeypatch):
    monkeypatch.chdir(ROOT)
    code, out, err = run_cli("watch", "examples/curves-overfitting/run", "--once")
    assert (code, err) == (0, "")
    assert out == (EXAMPLE / "expected_once.txt").read_text()
    code, out, _ = run_cli("watch", "examples/curves-overfitting/run", "--once", "--json")
    assert code == 0
    assert json.loads(out) == json.loads((EXAMPLE / "expected_once.json").read_text())
