"""Granite (model_type granite): inventory against transformers' meta-device build, the
catalog entry, PEFT's missing default targets, and a config.json estimated end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vramdoc.models import catalog, param_groups, spec_from_config

# GraniteConfig defaults, and a tiny GQA variant with both biases and non-unit multipliers
GRANITE = [
    {"model_type": "granite"},
    {"model_type": "granite", "hidden_size": 256, "intermediate_size": 688,
     "num_hidden_layers": 2, "num_attention_heads": 8, "num_key_value_heads": 2,
     "vocab_size": 1000, "attention_bias": True, "mlp_bias": True, "tie_word_embeddings": True,
     "embedding_multiplier": 12.0, "logits_scaling": 16.0, "residual_multiplier": 0.22,
     "attention_multiplier": 0.0078125},
]


def _meta_model(config: dict):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    cfg = transformers.AutoConfig.for_model(
        "granite", **{k: v for k, v in config.items() if k != "model_type"})
    with torch.device("meta"):
        return transformers.AutoModelForCausalLM.from_config(cfg)


@pytest.mark.parametrize("config", GRANITE, ids=["defaults", "tiny-gqa-bias-tied"])
def test_granite_parameter_count_matches_transformers(config: dict) -> None:
    model = _meta_model(config)
    spec = spec_from_config(config, name="granite")
    assert spec.n_params == sum(p.numel() for p in model.parameters())
    names = {n for n, _ in model.named_parameters()}
    ours = {g.path.replace("{i}", "0") + (".bias" if g.leaf == "bias" else ".weight")
            for g in param_groups(spec) if g.tied_to is None}
    assert {n for n in ours if n.endswith(".weight")} == {
        n for n in names if n.endswith(".weight") and (".layers.0." in n or ".layers." not in n)}


def test_granite_catalog_entry_matches_transformers() -> None:
    spec = next(s for s in catalog() if s.name == "granite-3.3-8b")
    model = _meta_model(spec.config)
    assert spec.n_params == sum(p.numel() for p in model.parameters()) == 8_170_864_640
    assert spec.model_type == "granite" and spec.tie_word_embeddings


def test_granite_lora_without_targets_is_refused_as_peft_refuses(tmp_path: Path,
                                                                  run_cli) -> None:
    # peft 0.21 has no default LoRA targets for granite (TRANSFORMERS_MODELS_TO_LORA_...)
    code, _out, err = run_cli("estimate", "--model", "granite-3.3-8b", "--method", "lora")
    assert code == 2, err
    assert "no default LoRA target" in err and "Traceback" not in err
    code, out, err = run_cli("estimate", "--model", "granite-3.3-8b", "--method", "lora",
                             "--lora-targets", "q_proj,v_proj", "--json")
    assert code == 0, err
    assert json.loads(out)["peak_allocated_bytes"] > 0


def test_granite_has_no_sequence_classification_class() -> None:
    from vramdoc.errors import UsageError

    spec = spec_from_config(GRANITE[1], name="granite")
    with pytest.raises(UsageError, match="does not support task 'sequence-classification'"):
        param_groups(spec, "sequence-classification")
