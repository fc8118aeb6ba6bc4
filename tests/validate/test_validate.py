"""`vramdoc validate` on the shipped example and on bad input."""

from __future__ import annotations

import json

from tests.conftest import ROOT

EXAMPLE = ROOT / "examples" / "validate-own-runs"


def test_example_prints_its_expected_output(run_cli) -> None:
    code, out, _ = run_cli("validate", str(EXAMPLE / "runs.csv"))
    assert code == 0
    assert out == (EXAMPLE / "expected_output.txt").read_text(encoding="utf-8")


def test_json_has_each_run_and_the_summary(run_cli) -> None:
    code, out, _ = run_cli("validate", str(EXAMPLE / "runs.csv"), "--json")
    data = json.loads(out)
    assert [r["id"] for r in data["runs"]][:2] == ["FMS-15 allocated", "FMS-15 nvidia-smi"]
    # FMS-15 peak allocated 19.250 GiB (fms-acceleration a100_80gb.csv): within 5 %
    first = data["runs"][0]
    assert abs(first["predicted_bytes"] - first["measured_bytes"]) / first["measured_bytes"] < 0.05
    assert data["summary"]["count"] == 4


def test_bad_rows_are_listed_together(run_cli, tmp_path) -> None:
    (tmp_path / "s.yaml").write_text("model: llama-2-7b\n")
    (tmp_path / "runs.csv").write_text(
        "id,setup,metric,measured\na,s.yaml,peak,10GiB\nb,s.yaml,allocated,ten\n")
    code, _, err = run_cli("validate", str(tmp_path / "runs.csv"))
    assert code == 2
    assert "line 2" in err and "line 3" in err


def test_missing_columns(run_cli, tmp_path) -> None:
    (tmp_path / "runs.csv").write_text("id,setup\n")
    code, _, err = run_cli("validate", str(tmp_path / "runs.csv"))
    assert code == 2 and "metric" in err
