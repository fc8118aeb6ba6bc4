"""Odd input becomes findings, never a traceback; whatever setup a reader returns validates."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vramdoc.readers import accelerate, axolotl, deepspeed, llamafactory, runs, shell, trl
from vramdoc.readers._common import CODES
from vramdoc.setup import setup_from_mapping

KEYS = [
    # axolotl
    "base_model", "adapter", "load_in_4bit", "load_in_8bit", "lora_r", "lora_alpha",
    "lora_dropout", "lora_target_modules", "lora_target_linear", "micro_batch_size",
    "gradient_accumulation_steps", "sequence_len", "gradient_checkpointing", "bf16", "fp16",
    "bfloat16", "optimizer", "learning_rate", "lr_scheduler", "warmup_ratio", "flash_attention",
    "attn_implementation", "sample_packing", "deepspeed", "fsdp", "fsdp_config", "gptq",
    "bnb_config_kwargs", "peft_use_dora", "num_epochs", "plugins",
    # LLaMA-Factory
    "model_name_or_path", "stage", "finetuning_type", "lora_rank", "lora_target",
    "quantization_bit", "quantization_method", "cutoff_len", "per_device_train_batch_size",
    "flash_attn", "pure_bf16", "disable_gradient_checkpointing", "packing", "use_unsloth",
    # TRL
    "use_peft", "max_length", "max_seq_length", "dtype", "torch_dtype", "model_init_kwargs",
    "use_bnb_nested_quant", "optim", "evaluation_strategy", "weight_decay", "no_such_key",
]
VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 70000) | st.floats(allow_nan=False, width=32)
    | st.sampled_from(["auto", "all", "lora", "qlora", "full", "llama-3.2-1b", "fa2", "2e-5",
                       "adamw_torch", "paged_adamw_8bit", "bfloat16", "nope", "", "x.json"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(KEYS), inner,
                                                                max_size=3),
    max_leaves=6,
)
CONFIGS = st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=14)


def _check(report: Any) -> None:
    for f in report.findings:
        assert f.code in CODES and f.severity in ("error", "warning", "info")
        assert f.message
    if report.setup is not None:
        setup_from_mapping(report.setup)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(CONFIGS)
def test_yaml_readers_never_raise(cfg: dict[str, Any]) -> None:
    text = yaml.safe_dump(cfg)
    for mod in (axolotl, llamafactory, trl, accelerate):
        _check(mod.read(Path("cfg.yaml"), text))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(
    ["python", "train.py", "accelerate", "launch", "torchrun", "deepspeed", "trl", "sft",
     "--num_processes", "--nproc_per_node", "4", "--model_name_or_path", "llama-3.2-1b",
     "--per_device_train_batch_size", "x", "--bf16", "--fsdp", "full_shard", "\\\n", "&&",
     "'", "--deepspeed", "ds.json", "--lora_r", "-m", "--config_file", "a.yaml", "$X",
     "--load_in_4bit", "--use_peft", "\n", "--gradient_checkpointing", "False", "=", "#"]),
    max_size=30))
def test_shell_reader_never_raises(words: list[str]) -> None:
    text = " ".join(words)
    _check(shell.read(Path("run.sh"), text))


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.sampled_from(
    ["zero_optimization", "bf16", "fp16", "train_micro_batch_size_per_gpu", "r", "lora_alpha",
     "target_modules", "base_model_name_or_path", "train_batch_size", "max_steps",
     "model_type", "quantization_config", "peft_type", "use_dora"]), VALUES, max_size=8))
def test_json_readers_never_raise(data: dict[str, Any]) -> None:
    text = json.dumps(data)
    _check(deepspeed.read(Path("ds.json"), text))
    for name in ("adapter_config.json", "trainer_state.json", "config.json"):
        _check(runs.read(Path("/nonexistent-dir") / name, text))


def test_malformed_files_are_one_finding_each() -> None:
    for mod in (axolotl, llamafactory, trl, accelerate):
        for text in ("a: [1, 2\n", "- just\n- a list\n", "", "\t: bad"):
            report = mod.read(Path("x.yaml"), text)
            assert report.setup is None
            assert [f.code for f in report.findings] == ["R200"], (mod, text)
    assert [f.code for f in runs.read(Path("config.json"), "[1, 2]").findings] == ["R200"]
    assert [f.code for f in shell.read(Path("x.sh"), "echo hi\n").findings] == ["R200"]


# the readers of framework configs, command lines and run outputs
FRAMEWORK_READERS = ("shell", "deepspeed", "accelerate", "axolotl", "llamafactory", "trl", "runs")


def test_each_fixture_is_detected_by_its_reader() -> None:
    from tests.conftest import ROOT
    from vramdoc.readers import read_source, reader_for

    fixtures = ROOT / "tests" / "readers" / "fixtures"
    expected = {"axolotl": "axolotl", "llamafactory": "llamafactory", "trl": "trl"}
    for f in sorted(fixtures.rglob("*")):
        if not f.is_file() or f.suffix == ".md":
            continue
        report = read_source(f)
        if f.suffix == ".json":
            want = "deepspeed"
        elif f.suffix == ".sh":
            want = "shell"
        elif "accelerate" in f.parts:
            want = "accelerate"
        else:
            want = next(v for k, v in expected.items() if k in f.name or k in f.parts)
        assert report.kind == want, f
    # vramdoc's own setup files are none of these formats: the setup-file reader takes them
    for setup in sorted((ROOT / "examples").rglob("setup.yaml")):
        mod = reader_for(setup, setup.read_text())
        assert mod is not None and mod.KIND == "setup", setup


def test_readers_take_the_path_as_a_string_too() -> None:
    """vramdoc.readers.read_source passes ``str(path)``."""
    from tests.conftest import ROOT

    fixtures = ROOT / "tests" / "readers" / "fixtures"
    for f in sorted(fixtures.rglob("*")):
        if not f.is_file() or f.suffix == ".md":
            continue
        text = f.read_text()
        mods = [m for m in (__import__(f"vramdoc.readers.{n}", fromlist=["x"])
                            for n in FRAMEWORK_READERS) if m.detect(str(f), text)]
        assert mods, f
        assert mods[0].read(str(f), text) == mods[0].read(f, text)


def test_framework_yaml_is_read_like_setup_files() -> None:
    """Framework configs go through vramdoc.safeload's loader: 2e-4 is a number (YAML 1.1
    would read a string) and an alias bomb is refused quickly instead of expanding."""
    from vramdoc.readers import axolotl

    ok = axolotl.read(Path("a.yml"), "base_model: NousResearch/Meta-Llama-3-8B\n"
                      "learning_rate: 2e-4\nmicro_batch_size: 2\n")
    assert ok.setup is not None and ok.setup["training"]["learning_rate"] == 2e-4
    rows = "".join(f"{k}: &{k} [{', '.join(['*' + p] * 9)}]\n"
                   for p, k in zip("abcdef", "bcdefg", strict=True))
    bomb = axolotl.read(Path("b.yml"), "a: &a [x, x, x, x, x, x, x, x, x]\n" + rows
                        + "base_model: x\n")
    assert bomb.setup is None
    assert [f.code for f in bomb.findings] == ["R200"]
    assert "alias" in bomb.findings[0].message
