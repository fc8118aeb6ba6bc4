"""`vramdoc estimate` as a user runs it."""

from __future__ import annotations

import json

import pytest


def test_human_output_shows_components_phases_and_peak(run_cli) -> None:
    code, out, err = run_cli("estimate", "--model", "llama-2-7b", "--method", "qlora",
                             "--batch", "1", "--seq-len", "256", "--grad-ckpt",
                             "--optim", "paged_adamw_8bit")
    assert code == 0, err
    for word in ("weights", "quantization constants", "adapters", "optimizer_step",
                 "peak (", "reserved", "device", "paged optimizer states"):
        assert word in out


def test_json_output_and_gpu_fit(run_cli) -> None:
    code, out, _ = run_cli("estimate", "--model", "meta-llama/Llama-2-7b-hf", "--method", "qlora",
                           "--seq-len", "512", "--batch", "1", "--gpu", "RTX-3060-12GB", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["fits"] is True and data["gpu"]["name"]
    assert data["setup"]["quantization"]["load_in_4bit"] is True


def test_does_not_fit_exits_1(run_cli) -> None:
    code, out, _ = run_cli("estimate", "--model", "llama-2-7b", "--method", "full",
                           "--gpu", "T4")
    assert code == 1
    assert "does NOT fit" in out


def test_config_file_and_flag_override(run_cli, tmp_path) -> None:
    cfg = tmp_path / "run.yaml"
    cfg.write_text(
        "model: mistralai/Mistral-7B-v0.1\n"
        "model_kwargs: {dtype: bfloat16, attn_implementation: flash_attention_2}\n"
        "quantization: {load_in_4bit: true, bnb_4bit_quant_type: nf4,"
        " bnb_4bit_use_double_quant: true, bnb_4bit_compute_dtype: bfloat16}\n"
        "lora: {r: 16, lora_alpha: 32, target_modules: [q_proj, k_proj, v_proj, o_proj]}\n"
        "training: {per_device_train_batch_size: 4, gradient_accumulation_steps: 4,"
        " gradient_checkpointing: true, bf16: true, optim: paged_adamw_8bit,"
        " output_dir: out, logging_steps: 10}\n"
        "max_seq_length: 4096\n")
    code, out, _ = run_cli("estimate", "--config", str(cfg), "--json")
    assert code == 0
    base = json.loads(out)
    code, out, _ = run_cli("estimate", "--config", str(cfg), "--batch", "1", "--json")
    assert json.loads(out)["peak_allocated_bytes"] < base["peak_allocated_bytes"]
    assert base["setup"]["training"]["output_dir"] == "out"


@pytest.mark.parametrize(("args", "needle"), [
    (("--model", "llama-2-7", "--method", "lora"), "did you mean"),
    (("--model", "llama-2-7b", "--batch", "0"), "larger than zero"),
    (("--model", "llama-2-7b", "--gpu", "RTX-9999"), "GPU"),
    (("--model", "llama-2-7b", "--lora-r", "8"), "full fine-tune"),
    (("--config", "/nonexistent/run.yaml",), "does not exist"),
])
def test_bad_input_exits_2_with_one_message(run_cli, args, needle) -> None:
    code, out, err = run_cli("estimate", *args)
    assert code == 2
    assert needle.lower() in err.lower()
    assert "Traceback" not in err and out == ""


def test_config_problems_are_listed_together(run_cli, tmp_path) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("model: llama-2-7b\nquantization: {load_in_4bit: true}\n"
                   "training: {per_device_train_batch_sise: 4, evaluation_strategy: steps}\n"
                   "max_seq_lenght: 10\n")
    code, _, err = run_cli("estimate", "--config", str(cfg))
    assert code == 2
    assert "per_device_train_batch_size" in err  # did-you-mean
    assert "eval_strategy" in err  # removed in transformers 5
    assert "max_seq_length" in err
    assert "quantization without lora" in err
    assert "4 problem(s)" in err
