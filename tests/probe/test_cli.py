"""`vramdoc probe` end to end on tiny models (in-process)."""

from __future__ import annotations

import json

import pytest

from tests.probe.conftest import TINY_LLAMA


@pytest.fixture
def tiny_dir(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(TINY_LLAMA))
    return tmp_path


def test_fake_probe_json_has_measured_estimate_findings(run_cli, tiny_dir):
    code, out, err = run_cli("probe", "--model", str(tiny_dir), "--method", "lora",
                             "--batch", "2", "--seq-len", "32", "--device", "fake", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert set(data) >= {"measured", "estimate", "findings"}
    for view in ("measured", "estimate"):
        assert set(data[view]) >= {"peak_allocated_bytes", "phases", "components"}
        assert set(data[view]["phases"]) == {"load", "forward", "backward", "optimizer_step"}
    m = data["measured"]
    assert m["device"] == "fake" and m["steps_run"] == 2
    assert sum(m["components"].values()) == m["peak_allocated_bytes"]
    assert data["findings"] == []


def test_cpu_probe_text_report(run_cli, tiny_dir):
    code, out, err = run_cli("probe", "--model", str(tiny_dir), "--batch", "2", "--seq-len",
                             "32", "--device", "cpu", "--steps", "2", "--optim", "adamw_torch")
    assert code == 0, err
    assert "peak allocated" in out and "steps/s" in out and "findings: none" in out
    assert "probing" in err


def test_weights_from_a_local_checkpoint(run_cli, tmp_path, capsys):
    from transformers import AutoConfig, AutoModelForCausalLM

    cfg = AutoConfig.for_model(**{k: v for k, v in TINY_LLAMA.items() if k != "torch_dtype"})
    AutoModelForCausalLM.from_config(cfg).save_pretrained(tmp_path)
    capsys.readouterr()  # save_pretrained may import DeepSpeed, whose logger prints to stdout
    code, out, err = run_cli("probe", "--model", str(tmp_path), "--weights", str(tmp_path),
                             "--batch", "1", "--seq-len", "16", "--device", "cpu", "--steps",
                             "1", "--json")
    assert code == 0, err
    assert json.loads(out)["steps"][0]["loss"] > 0


@pytest.mark.parametrize("args, message", [
    (["--device", "fake", "--weights", "x"], "--weights loads real tensors"),
    (["--device", "fake", "--steps", "0"], "--steps 0"),
])
def test_usage_errors_exit_2(run_cli, tiny_dir, args, message):
    code, out, err = run_cli("probe", "--model", str(tiny_dir), *args)
    assert code == 2 and message in err and out == ""


def test_cuda_without_gpu_exits_3(run_cli, tiny_dir):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    code, _, err = run_cli("probe", "--model", str(tiny_dir), "--device", "cuda")
    assert code == 3 and "no CUDA GPU" in err
