"""`vramdoc plan` outputs: the report, JSON, the setup file (one model, two doors), exit codes."""

from __future__ import annotations

import json

from vramdoc.emit import memory_bar
from vramdoc.estimate import estimate
from vramdoc.setup import load_setup_file


def test_emit_yaml_reads_back_to_the_same_estimate_byte_for_byte(run_cli, tmp_path):
    for model, gpu in (("llama-2-7b", "6GB"), ("mistral-7b", "RTX-4090"),
                       ("llama-2-7b", "A100-80GB")):
        code, out, _err = run_cli("plan", "--model", model, "--gpu", gpu, "--emit", "yaml")
        assert code == 0
        path = tmp_path / f"{model}-{gpu}.yaml"
        path.write_text(out)
        code, js, _err = run_cli("plan", "--model", model, "--gpu", gpu, "--json")
        best = json.loads(js)["plans"][0]
        setup = load_setup_file(path)
        est = estimate(setup)  # resolves model and GPU from the file, like `vramdoc estimate`
        assert est.peak_allocated_bytes == best["peak_allocated_bytes"]
        assert est.peak_reserved_bytes == best["peak_reserved_bytes"]
        assert est.device_bytes == best["device_bytes"]
        assert setup.gpu == gpu and setup.effective_batch_size == 16
        code, ej, _err = run_cli("estimate", "--config", str(path), "--json")
        assert json.loads(ej)["peak_allocated_bytes"] == best["peak_allocated_bytes"]


def test_json_object(run_cli):
    code, out, err = run_cli("plan", "--model", "llama-2-7b", "--gpu", "6GB", "--json",
                             "--top", "2")
    assert code == 0 and "ranked plans" in err
    data = json.loads(out)
    assert data["fits"] is True and data["search"]["candidates"] >= 1000
    assert data["search"]["rejected_by_rule"]["H101"] > 0
    assert len(data["plans"]) == 2 and data["closest"] is None
    p = data["plans"][0]
    for key in ("label", "setup", "peak_allocated_bytes", "device_bytes", "headroom_bytes",
                "step_time_s", "tokens_per_s", "rules", "applied", "components"):
        assert key in p, key
    assert p["method"] == "qlora" and p["headroom_bytes"] >= 0
    assert p["device_bytes"] + p["headroom_bytes"] + data["margin_bytes"] == \
        data["gpu"]["memory_bytes"]
    assert {r["code"] for r in p["rules"]} >= {"M205", "M211"}


def test_nothing_fits_exit_1_with_closest_and_suggestions(run_cli):
    code, out, err = run_cli("plan", "--model", "llama-2-13b", "--gpu", "4GB")
    assert code == 1 and out == ""
    assert "nothing fits: the closest plan needs" in err
    assert "what would fit:" in err and "a larger GPU:" in err
    code, out, _err = run_cli("plan", "--model", "llama-2-13b", "--gpu", "4GB", "--json")
    data = json.loads(out)
    assert code == 1 and data["fits"] is False and data["missing_bytes"] > 0
    assert data["closest"]["headroom_bytes"] == -data["missing_bytes"]


def test_usage_errors_exit_2(run_cli):
    code, _out, err = run_cli("plan", "--model", "llama-2-7b", "--gpu", "6GB", "--method",
                              "qlora,lorra")
    assert code == 2 and "--method 'lorra' is not a method (did you mean 'lora'?)" in err
    code, _out, err = run_cli("plan", "--model", "llama-2-7b")
    assert code == 2 and "no GPU given" in err
    code, _out, err = run_cli("plan", "--model", "llama-2-7b", "--gpu", "6GB", "--seq-len", "0")
    assert code == 2 and "--seq-len must be larger than zero" in err
    code, _out, err = run_cli("plan", "--model", "no-such-model-xyz", "--gpu", "6GB")
    assert code == 2


def test_config_file_drives_the_plan(run_cli, tmp_path):
    cfg = tmp_path / "run.yaml"
    cfg.write_text(
        "model: mistral-7b\n"
        "training: {per_device_train_batch_size: 8, gradient_accumulation_steps: 4, "
        "bf16: true, learning_rate: 0.001}\n"
        "max_seq_length: 1024\n")
    code, out, err = run_cli("plan", "--config", str(cfg), "--gpu", "T4", "--emit", "yaml")
    assert code == 1  # the setup as given breaks H101 (bf16 on a T4); the plan avoids it
    assert "your setup as given:" in err and "H101" in err
    assert "error: your setup as given breaks H101" in err
    setup = load_setup_file_text(out, tmp_path)
    assert setup.max_seq_length == 1024 and setup.effective_batch_size == 32
    assert not setup.training.bf16


def load_setup_file_text(text, tmp_path):
    p = tmp_path / "out.yaml"
    p.write_text(text)
    return load_setup_file(p)


def test_memory_bar():
    assert memory_bar(3, 1, 8, width=8) == "[███▒····]"
    assert memory_bar(9, 1, 8, width=8) == "[████████]!"
    assert memory_bar(0, 0, 8, width=4) == "[····]"
