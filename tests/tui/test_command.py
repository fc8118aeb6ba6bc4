"""`vramdoc watch`: --once summaries, exit codes and the errors a user can act on."""

from __future__ import annotations

import json
import sys

import pytest

from tests.tui.runs import DEMO_RUN, gpu_run


def test_once_text_on_the_demo(run_cli):
    code, out, err = run_cli("watch", str(DEMO_RUN), "--once")
    assert code == 1  # W102 is an error
    assert out.startswith(f"run        {DEMO_RUN}\nstatus     finished at step 54\n"
                          "steps      54 (last 54)\n")
    assert "memory     not measured (the run trained on CPU), GPU limit 15.00 GiB" in out
    assert "loss       last NaN, min 4.796, 3 non-finite" in out
    assert "W102 error   masked-nan (steps 52-54)" in out
    assert err == ""


def test_once_json_on_a_gpu_run(run_cli, tmp_path):
    gpu_run(tmp_path)
    code, out, _ = run_cli("watch", str(tmp_path), "--once", "--json")
    assert code == 0  # warnings only
    doc = json.loads(out)
    assert doc["steps"] == 80 and doc["ended"] == "finished"
    assert doc["peak_allocated_bytes"] == int(9.9 * 2**30) + 80 * 3 * 2**20
    assert doc["limit_bytes"] == 12 * 2**30
    assert [a["code"] for a in doc["alerts"]] == ["W112", "W108"]
    assert doc["file"]["corrupt_lines"] == 0


def test_once_without_a_log_is_a_usage_error(run_cli, tmp_path):
    code, out, err = run_cli("watch", str(tmp_path), "--once")
    assert (code, out) == (2, "")
    assert f"error: no event log at {tmp_path}/events.jsonl" in err
    assert "hint: record the run with VramdocCallback" in err


def test_json_needs_once(run_cli):
    code, _, err = run_cli("watch", str(DEMO_RUN), "--json")
    assert code == 2 and "--json needs --once" in err


def test_no_follow_without_a_log_is_a_usage_error(run_cli, tmp_path):
    code, _, err = run_cli("watch", str(tmp_path / "missing"), "--no-follow")
    assert code == 2 and "no event log" in err


def test_missing_textual_names_the_extra(run_cli, monkeypatch):
    monkeypatch.setitem(sys.modules, "textual", None)  # import textual -> ImportError
    code, _, err = run_cli("watch", str(DEMO_RUN))
    assert code == 2
    assert "vramdoc watch needs the 'textual' package" in err
    assert 'pip install "vramdoc[tui]"' in err


@pytest.mark.parametrize("bad", ["0", "-1"])
def test_interval_must_be_positive(run_cli, bad):
    code, _, err = run_cli("watch", str(DEMO_RUN), "--interval", bad)
    assert code == 2 and "--interval" in err


def test_the_demo_prints_its_documented_summary(run_cli, monkeypatch):
    from tests.tui.runs import ROOT

    monkeypatch.chdir(ROOT)
    expected = (ROOT / "examples" / "watch-demo" / "expected_once.txt").read_text()
    code, out, _ = run_cli("watch", "examples/watch-demo/run", "--once")
    assert code == 1
    assert out == expected, "refresh: vramdoc watch examples/watch-demo/run --once > " \
                            "examples/watch-demo/expected_once.txt (and review the diff)"
