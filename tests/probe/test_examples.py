"""The doctor examples: `vramdoc probe --config examples/<name>/setup.yaml --device cpu`."""

from __future__ import annotations

import json

import pytest


@pytest.mark.parametrize("name, kind, code", [
    ("doctor-fp16-overflow", "overflow", "D101"),
    ("doctor-nan", "nan", "D113"),
    ("doctor-oom", "oom", "D150"),
])
def test_example_is_diagnosed(run_cli, in_root, name, kind, code):
    setup = f"examples/{name}/setup.yaml"
    readme = (in_root / "examples" / name / "README.md").read_text(encoding="utf-8")
    assert f"vramdoc probe --config {setup} --device cpu" in readme
    exit_code, out, err = run_cli("probe", "--config", setup, "--device", "cpu", "--json")
    assert exit_code == 1, err
    data = json.loads(out)
    first = data["findings"][0]
    assert (first["code"], first["kind"], first["severity"]) == (code, kind, "error")
    assert first["fix"] and first["message"]
    if kind == "overflow":
        assert first["module"] == "model.layers.0.mlp.down_proj" and first["step"] == 0
        assert first["propose"] == {"training.bf16": True, "training.fp16": False}
    if kind == "nan":
        assert data["steps"][0]["loss"] > 0 and data["steps"][1]["loss"] != data["steps"][1][
            "loss"]  # NaN from the second step on
        assert (first["module"], first["step"]) == ("model.embed_tokens", 1)
    if kind == "oom":
        assert data["oom"]["emulated"] and first["phase"] == data["oom"]["phase"]
        assert data["oom"]["allocated_bytes"] + data["oom"]["request_bytes"] > data["oom"][
            "limit_bytes"]
        assert data["next_plan"]["peak_allocated_bytes"] < data["oom"]["limit_bytes"]


def test_readme_probe_section_runs_the_examples(in_root):
    readme = (in_root / "README.md").read_text(encoding="utf-8")
    block = readme[readme.index("<!-- section:probe -->"):readme.index("<!-- /section:probe -->")]
    for name in ("doctor-fp16-overflow", "doctor-nan", "doctor-oom"):
        assert f"vramdoc probe --config examples/{name}/setup.yaml --device cpu" in block
    assert "bench_probe_accuracy" in block and "median |error|" in block
