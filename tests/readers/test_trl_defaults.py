"""The TRL reader's defaults are the installed trl's (SFTConfig / ModelConfig dataclasses)."""

from __future__ import annotations

import dataclasses

import pytest

from vramdoc.readers import trl as trl_reader

SFT_KEYS = ("max_length", "learning_rate", "gradient_checkpointing", "packing")
MODEL_KEYS = ("dtype", "use_peft", "lora_r", "lora_alpha", "lora_dropout",
              "bnb_4bit_quant_type", "use_bnb_nested_quant")


def test_reader_defaults_match_installed_trl() -> None:
    trl = pytest.importorskip("trl")
    sft = {f.name: f.default for f in dataclasses.fields(trl.SFTConfig)}
    model = {f.name: f.default for f in dataclasses.fields(trl.ModelConfig)}
    assert set(SFT_KEYS) | set(MODEL_KEYS) == set(trl_reader.DEFAULTS)
    for key in SFT_KEYS:
        assert sft[key] == trl_reader.DEFAULTS[key], key
    for key in MODEL_KEYS:
        assert model[key] == trl_reader.DEFAULTS[key], key
    # bf16 defaults to None and becomes `not fp16` in __post_init__ (trl/trainer/base_config.py)
    assert sft["bf16"] is None
    cfg = trl.SFTConfig(output_dir="unused", use_cpu=True)
    assert cfg.bf16 is True
