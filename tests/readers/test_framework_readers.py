"""Framework configs read from the projects' own examples estimate exactly like their hand
transcription into the setup schema (fixtures name their source repository and path)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from vramdoc.estimate import estimate
from vramdoc.models import resolve_model
from vramdoc.readers import axolotl, llamafactory, shell, trl
from vramdoc.setup import setup_from_mapping

FIX = Path(__file__).parent / "fixtures"
LF = FIX / "llamafactory" / "examples"


def same_estimate(report_setup: dict[str, Any] | None, hand: dict[str, Any],
                  model: str | None = None) -> None:
    assert report_setup is not None
    spec = resolve_model(model) if model else None
    got = estimate(setup_from_mapping(report_setup), model=spec).to_json()
    want = estimate(setup_from_mapping(hand), model=spec).to_json()
    # the echoed setup also holds keys that change no memory (output_dir, num_train_epochs ...)
    got.pop("setup")
    want.pop("setup")
    assert got == want


# --- axolotl --------------------------------------------------------------------------
AXOLOTL_QLORA = {  # examples/llama-3/qlora.yml, by hand
    "model": "NousResearch/Meta-Llama-3-8B",
    "model_kwargs": {"dtype": "bfloat16", "attn_implementation": "flash_attention_2"},
    "quantization": {"load_in_4bit": True, "bnb_4bit_quant_type": "nf4",
                     "bnb_4bit_use_double_quant": True, "bnb_4bit_compute_dtype": "bfloat16",
                     "bnb_4bit_quant_storage": "bfloat16"},
    "prepare_model_for_kbit_training": False,
    "lora": {"r": 32, "lora_alpha": 16, "lora_dropout": 0.05, "target_modules": "all-linear"},
    "training": {"per_device_train_batch_size": 2, "gradient_accumulation_steps": 4,
                 "optim": "paged_adamw_32bit", "bf16": True, "gradient_checkpointing": True,
                 "learning_rate": 2e-4, "lr_scheduler_type": "cosine"},
    "max_seq_length": 4096,
}
AXOLOTL_LORA8 = {  # examples/mistral/lora.yml: 8-bit base, bf16 auto
    "model": "mistralai/Mistral-7B-v0.1",
    "model_kwargs": {"dtype": "bfloat16", "attn_implementation": "flash_attention_2"},
    "quantization": {"load_in_8bit": True}, "prepare_model_for_kbit_training": False,
    "lora": {"r": 32, "lora_alpha": 16, "lora_dropout": 0.05, "target_modules": "all-linear"},
    "training": {"per_device_train_batch_size": 2, "gradient_accumulation_steps": 4,
                 "optim": "adamw_bnb_8bit", "bf16": True, "gradient_checkpointing": True},
    "max_seq_length": 8192,
}
AXOLOTL_FFT = {  # examples/llama-3/fft-8b.yaml: full fine-tune of a bf16-loaded model
    "model": "meta-llama/Llama-3.1-8B",
    "model_kwargs": {"dtype": "bfloat16", "attn_implementation": "flash_attention_2"},
    "training": {"per_device_train_batch_size": 1, "gradient_accumulation_steps": 8,
                 "optim": "paged_adamw_8bit", "bf16": True, "gradient_checkpointing": True,
                 "gradient_checkpointing_kwargs": {"use_reentrant": False}},
    "max_seq_length": 8192,
}


@pytest.mark.parametrize("name,hand,model", [
    ("axolotl-llama-3-qlora.yml", AXOLOTL_QLORA, None),
    ("axolotl-mistral-lora.yml", AXOLOTL_LORA8, None),
    # NousResearch/Meta-Llama-3.1-8B mirrors meta-llama/Llama-3.1-8B (same config.json)
    ("axolotl-llama-3-fft-8b.yaml", AXOLOTL_FFT, "llama-3.1-8b"),
])
def test_axolotl_examples_estimate_like_their_transcription(name: str, hand: dict[str, Any],
                                                            model: str | None) -> None:
    path = FIX / name
    report = axolotl.read(path, path.read_text())
    assert axolotl.detect(path, path.read_text())
    same_estimate(report.setup, hand, model)
    codes = {f.code for f in report.findings}
    assert "R201" in codes  # sample_packing is said, with how it is estimated
    assert report.lines["max_seq_length"] > 1


def test_axolotl_transcription_differs_when_a_default_is_wrong() -> None:
    """The comparison can fail: k-bit fp32 upcast on (PEFT's default) changes the estimate."""
    path = FIX / "axolotl-llama-3-qlora.yml"
    report = axolotl.read(path, path.read_text())
    wrong = {**AXOLOTL_QLORA, "prepare_model_for_kbit_training": True}
    with pytest.raises(AssertionError):
        same_estimate(report.setup, wrong)


def test_axolotl_defaults_and_shorthands() -> None:
    text = ("base_model: meta-llama/Llama-3.2-1B\nadapter: lora\nlora_r: 8\n"
            "lora_target_modules: [q_proj, v_proj]\nflash_attention: true\nfp16: true\n"
            "bf16: false\nplugins: [axolotl.integrations.liger.LigerPlugin]\n"
            "liger_fused_linear_cross_entropy: true\nunsloth_lora_mlp: true\n"
            "gradient_checkpointing: offload\nsequnce_len: 2048\nlearning_rate: 2e-5\n")
    report = axolotl.read(Path("a.yml"), text)
    s = report.setup
    assert s is not None
    assert s["model_kwargs"] == {"dtype": "float16", "attn_implementation": "flash_attention_2"}
    assert s["training"]["per_device_train_batch_size"] == 1  # schemas/training.py default
    assert s["training"]["optim"] == "adamw_torch_fused"
    assert s["training"]["learning_rate"] == 2e-5  # YAML reads 2e-5 as text
    assert s["max_seq_length"] == 512  # schemas/config.py default
    assert s["lora"]["target_modules"] == ["q_proj", "v_proj"]
    by_code = {f.code: f for f in report.findings}
    typo = [f for f in report.findings if f.code == "R203"]
    assert typo and "sequence_len" in typo[0].message and typo[0].line == 12
    assert s["training"]["use_liger_kernel"] is True  # liger_fused_linear_cross_entropy
    assert any("Liger" in f.message and "use_liger_kernel" in f.message for f in report.findings)
    assert any("Unsloth" in f.message for f in report.findings)
    assert any("offload" in f.message for f in report.findings if f.code == "R201")
    assert "R205" in by_code  # flash_attention: true is the legacy spelling
    setup_from_mapping(s)
    dpo = axolotl.read(Path("d.yml"), "base_model: gpt2\nrl: dpo\n")
    assert any(f.code == "R201" and "rl: dpo" in f.message for f in dpo.findings)


def test_axolotl_lora_with_4bit_is_not_quantized() -> None:
    report = axolotl.read(Path("a.yml"), "base_model: llama-2-7b\nadapter: lora\n"
                          "load_in_4bit: true\nlora_r: 16\n")
    assert report.setup is not None and "quantization" not in report.setup
    assert any(f.code == "R201" and "qlora" in f.message for f in report.findings)


# --- LLaMA-Factory ----------------------------------------------------------------------
LF_COMMON_TRAIN = {"per_device_train_batch_size": 1, "bf16": True, "gradient_checkpointing": True,
                   "gradient_checkpointing_kwargs": {"use_reentrant": True}}
LF_LORA = {  # train_lora/qwen3_lora_sft.yaml
    "model": "Qwen/Qwen3-4B-Instruct-2507", "model_kwargs": {"dtype": "auto"},
    "lora": {"r": 8, "lora_alpha": 16, "lora_dropout": 0.0, "target_modules": "all-linear"},
    "training": {**LF_COMMON_TRAIN, "gradient_accumulation_steps": 8},
    "max_seq_length": 2048,
}
LF_QLORA = {  # train_qlora/qwen3_lora_sft_otfq.yaml
    **LF_LORA,
    "quantization": {"load_in_4bit": True, "bnb_4bit_quant_type": "nf4",
                     "bnb_4bit_use_double_quant": True, "bnb_4bit_compute_dtype": "bfloat16",
                     "bnb_4bit_quant_storage": "bfloat16"},
    "prepare_model_for_kbit_training": False,
}
LF_FULL = {  # train_full/qwen3_full_sft.yaml with ZeRO-3 (params kept as loaded)
    "model": "Qwen/Qwen3-4B-Instruct-2507", "model_kwargs": {"dtype": "auto"},
    "training": {**LF_COMMON_TRAIN, "gradient_accumulation_steps": 2,
                 "deepspeed": json.loads((LF / "deepspeed" / "ds_z3_config.json").read_text())},
    "max_seq_length": 2048,
}


@pytest.mark.parametrize("name,hand", [
    ("train_lora/qwen3_lora_sft.yaml", LF_LORA),
    ("train_qlora/qwen3_lora_sft_otfq.yaml", LF_QLORA),
    ("train_full/qwen3_full_sft.yaml", LF_FULL),
])
def test_llamafactory_examples_estimate_like_their_transcription(name: str,
                                                                 hand: dict[str, Any]) -> None:
    path = LF / name
    assert llamafactory.detect(path, path.read_text())
    report = llamafactory.read(path, path.read_text())
    # Qwen3-4B-Instruct-2507 has Qwen3-4B's architecture (its config.json differs in rope only)
    same_estimate(report.setup, hand, "qwen3-4b")
    removed = {f.message.split(":")[0] for f in report.findings if f.code == "R205"}
    assert removed == {"overwrite_output_dir", "warmup_ratio"}


def test_liger_is_passed_on_where_the_fused_cross_entropy_runs() -> None:
    sft = llamafactory.read(Path("lf.yaml"), "model_name_or_path: gpt2\nstage: sft\n"
                            "enable_liger_kernel: true\n")
    dpo = llamafactory.read(Path("lf.yaml"), "model_name_or_path: gpt2\nstage: dpo\n"
                            "enable_liger_kernel: true\n")
    t = trl.read(Path("t.yaml"), "model_name_or_path: gpt2\nuse_liger_kernel: true\n")
    assert sft.setup and sft.setup["training"]["use_liger_kernel"] is True
    assert dpo.setup and "use_liger_kernel" not in dpo.setup["training"]
    assert t.setup and t.setup["training"]["use_liger_kernel"] is True
    for report in (sft, dpo, t):
        setup_from_mapping(report.setup)


def test_llamafactory_full_without_zero3_holds_fp32_weights() -> None:
    text = "model_name_or_path: llama-3.2-1b\nstage: sft\nfinetuning_type: full\nbf16: true\n"
    report = llamafactory.read(Path("lf.yaml"), text)
    assert report.setup is not None
    assert report.setup["model_kwargs"]["dtype"] == "float32"
    assert report.setup["max_seq_length"] == 2048
    assert report.setup["training"]["gradient_checkpointing"] is True


def test_llamafactory_deepspeed_reference_is_read() -> None:
    path = LF / "train_full" / "qwen3_full_sft.yaml"
    report = llamafactory.read(path, path.read_text())
    assert report.setup is not None
    assert report.setup["training"]["deepspeed"]["zero_optimization"]["stage"] == 3
    assert any(f.code == "R207" and "ZeRO-3" in f.message for f in report.findings)


def test_llamafactory_command_line_matches_its_yaml() -> None:
    sh = LF / "train_lora" / "qwen3_lora_sft.sh"
    report = shell.read(sh, sh.read_text())
    same_estimate(report.setup, LF_LORA, "qwen3-4b")
    assert report.lines["lora.r"] == 14  # the --lora_rank line


# --- TRL --------------------------------------------------------------------------------
TRL_PEFT = {  # SKILL.md sft_config.yaml: ModelConfig and SFTConfig defaults filled in
    "model": "Qwen/Qwen2.5-0.5B", "model_kwargs": {"dtype": "float32"},
    "lora": {"r": 16, "lora_alpha": 16, "lora_dropout": 0.05},
    "training": {"per_device_train_batch_size": 8, "gradient_accumulation_steps": 2,
                 "bf16": True, "gradient_checkpointing": True, "learning_rate": 2e-5},
    "max_seq_length": 1024,
}
TRL_FULL = {  # examples/cli_configs/example_config.yaml
    "model": "Qwen/Qwen2.5-0.5B", "model_kwargs": {"dtype": "float32"},
    "training": {"bf16": True, "gradient_checkpointing": True, "learning_rate": 1e-4},
    "max_seq_length": 1024,
}
TRL_CLI = {  # trl/scripts/sft.py usage: the first command (packing, no PEFT)
    "model": "Qwen/Qwen2-0.5B", "model_kwargs": {"dtype": "float32"},
    "training": {"per_device_train_batch_size": 2, "gradient_accumulation_steps": 8,
                 "bf16": True, "gradient_checkpointing": True},
    "max_seq_length": 1024,
}


@pytest.mark.parametrize("name,hand", [("sft_config.yaml", TRL_PEFT),
                                       ("example_config.yaml", TRL_FULL)])
def test_trl_configs_estimate_like_their_transcription(name: str, hand: dict[str, Any]) -> None:
    path = FIX / "trl" / name
    assert trl.detect(path, path.read_text())
    same_estimate(trl.read(path, path.read_text()).setup, hand)


def test_trl_script_command_line() -> None:
    path = FIX / "trl" / "sft_usage.sh"
    report = shell.read(path, path.read_text())
    # Qwen2-0.5B is not in the offline catalog; Qwen2.5-0.5B has the same shapes
    same_estimate(report.setup, TRL_CLI, "qwen2.5-0.5b")
    assert any(f.code == "R203" and f.line == 16 for f in report.findings)  # 2nd command
    assert any(f.code == "R201" and "packing" in f.message for f in report.findings)


def test_trl_qlora_and_renamed_length() -> None:
    text = ("model_name_or_path: llama-3.2-1b\nuse_peft: true\nload_in_4bit: true\n"
            "dtype: bfloat16\nmax_seq_length: 2048\nlora_target_modules: all-linear\n")
    report = trl.read(Path("t.yaml"), text)
    s = report.setup
    assert s is not None
    assert s["quantization"]["bnb_4bit_compute_dtype"] == "bfloat16"
    assert s["quantization"]["bnb_4bit_use_double_quant"] is False
    assert s["prepare_model_for_kbit_training"] is False
    assert s["max_seq_length"] == 2048
    assert s["lora"]["r"] == 16 and s["lora"]["target_modules"] == "all-linear"
    assert any(f.code == "R205" and "max_length" in f.message for f in report.findings)
