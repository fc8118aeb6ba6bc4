"""Fixtures for the probe tests: tiny models built from config (seconds on one core)."""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("peft")

TINY_LLAMA: dict[str, Any] = {
    "model_type": "llama", "hidden_size": 64, "intermediate_size": 172, "num_hidden_layers": 2,
    "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 256,
    "max_position_embeddings": 128, "rms_norm_eps": 1e-5, "tie_word_embeddings": False,
    "torch_dtype": "float32",
}


def tiny_spec(**overrides: Any) -> Any:
    """A ModelSpec for a 2-layer GQA Llama (hidden 64): ~120K parameters."""
    from vramdoc.models import spec_from_config

    return spec_from_config({**TINY_LLAMA, **overrides}, name="tiny-llama")


def tiny_setup(method: str = "full", **training: Any) -> Any:
    """A setup in the file format for the tiny model (batch 2 x 32 tokens, adamw_torch)."""
    from vramdoc.setup import setup_from_mapping

    data: dict[str, Any] = {
        "model": "tiny-llama", "max_seq_length": 32,
        "model_kwargs": {"dtype": training.pop("dtype", "float32"),
                         "attn_implementation": training.pop("attn", "sdpa")},
        "training": {"per_device_train_batch_size": 2, "optim": "adamw_torch", **training},
    }
    if method in ("lora", "qlora"):
        data["lora"] = {"r": 4, "lora_alpha": 8,
                        "target_modules": ["q_proj", "v_proj", "down_proj"]}
    if method == "qlora":
        data["quantization"] = {"load_in_4bit": True, "bnb_4bit_quant_type": "nf4",
                                "bnb_4bit_use_double_quant": True,
                                "bnb_4bit_compute_dtype": "float32"}
    return setup_from_mapping(data, source="test")


@pytest.fixture
def in_root(monkeypatch):
    """Run from the repository root (example setups name their model by a relative path)."""
    from tests.conftest import ROOT

    monkeypatch.chdir(ROOT)
    return ROOT
