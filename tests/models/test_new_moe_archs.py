"""Phi-3.5-MoE (phimoe) and gpt-oss (gpt_oss): inventory against transformers' meta-device build
(names and sizes), PEFT 0.21's trainable counts for explicit and all-linear targets, and PEFT's
missing default target list refused as PEFT refuses it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vramdoc.models import param_groups, spec_from_config

_TINY = {"hidden_size": 256, "intermediate_size": 128, "num_hidden_layers": 2,
         "num_attention_heads": 8, "num_key_value_heads": 2, "vocab_size": 1000,
         "num_local_experts": 4, "num_experts_per_tok": 2}
CONFIGS = {
    "phimoe-defaults": {"model_type": "phimoe"},
    "phimoe-tiny": {"model_type": "phimoe", **_TINY},
    "phimoe-biases": {"model_type": "phimoe", **_TINY, "attention_bias": True,
                      "lm_head_bias": True, "sliding_window": 64},
    "gpt_oss-defaults": {"model_type": "gpt_oss"},
    "gpt_oss-tiny": {"model_type": "gpt_oss", **_TINY, "head_dim": 32},
    "gpt_oss-no-bias": {"model_type": "gpt_oss", **_TINY, "head_dim": 48,
                        "attention_bias": False, "num_hidden_layers": 3},
}


def _meta_model(config: dict):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    cfg = transformers.AutoConfig.for_model(
        config["model_type"], **{k: v for k, v in config.items() if k != "model_type"})
    with torch.device("meta"):
        return transformers.AutoModelForCausalLM.from_config(cfg)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_parameter_inventory_matches_transformers(name: str) -> None:
    config = CONFIGS[name]
    model = _meta_model(config)
    spec = spec_from_config(config, name=name)
    built = {n: p.numel() for n, p in model.named_parameters()}
    assert spec.n_params == sum(built.values())
    ours: dict[str, int] = {}
    for g in param_groups(spec):
        if g.tied_to:
            continue
        for i in range(g.count if "{i}" in g.path else 1):
            path = g.path.replace("{i}", str(i))
            if g.kind in ("experts", "other"):
                ours[path] = g.weight_numel
            else:
                ours[f"{path}.weight"] = g.weight_numel
                if g.bias_numel:
                    ours[f"{path}.bias"] = g.bias_numel
    assert ours == built
    assert spec.family == "moe" and spec.num_local_experts == config.get(
        "num_local_experts", 16 if config["model_type"] == "phimoe" else 128)


def test_gpt_oss_layout_facts() -> None:
    spec = spec_from_config(CONFIGS["gpt_oss-tiny"], name="g")
    # GptOssConfig: sliding_window 128 on even layers; no SDPA (sinks), eager/flash/flex only
    assert spec.sliding_window == 128 and spec.sliding_layers == 1
    assert "sdpa" not in spec.attn_implementations and "eager" in spec.attn_implementations
    assert spec.num_experts_per_tok == 2 and spec.head_dim == 32


@pytest.mark.parametrize(("name", "targets"), [
    ("phimoe-tiny", ["q_proj", "v_proj"]), ("phimoe-tiny", ["q_proj", "o_proj", "k_proj"]),
    ("gpt_oss-tiny", "all-linear"), ("gpt_oss-tiny", ["q_proj", "v_proj"])],
    ids=["phimoe-q-v", "phimoe-attn", "gpt_oss-all-linear", "gpt_oss-q-v"])
def test_trainable_count_matches_peft(name: str, targets) -> None:
    peft = pytest.importorskip("peft")
    from vramdoc.estimate import estimate
    from vramdoc.setup import setup_from_mapping

    config = CONFIGS[name]
    pm = peft.get_peft_model(_meta_model(config), peft.LoraConfig(r=8, target_modules=targets))
    want = sum(p.numel() for p in pm.parameters() if p.requires_grad)
    spec = spec_from_config({**config, "torch_dtype": "bfloat16"}, name=name)
    setup = setup_from_mapping({"model": name, "lora": {"r": 8, "target_modules": targets}},
                               source="test")
    # peft 0.21 wraps neither gpt-oss's bare router nor its fused experts
    assert estimate(setup, model=spec).trainable_params == want


@pytest.mark.parametrize("targets", ["all-linear", "q_proj,router"])
def test_phimoe_lora_on_its_router_is_refused(tmp_path: Path, run_cli, targets: str) -> None:
    """PEFT's all-linear wraps PhimoeTopKRouter (an nn.Linear subclass) and the forward then
    fails, as the fake-device trace of a real step shows: refuse it, naming what works."""
    torch = pytest.importorskip("torch")
    peft = pytest.importorskip("peft")
    transformers = pytest.importorskip("transformers")
    cfg = transformers.AutoConfig.for_model("phimoe", **_TINY)
    model = transformers.AutoModelForCausalLM.from_config(cfg)  # tiny: real CPU weights
    pm = peft.get_peft_model(model, peft.LoraConfig(
        r=8, target_modules="all-linear" if targets == "all-linear" else targets.split(",")))
    with pytest.raises(AttributeError, match="'tuple' object has no attribute 'dtype'"):
        pm(input_ids=torch.zeros(1, 4, dtype=torch.long))
    path = tmp_path / "config.json"
    path.write_text(json.dumps({**CONFIGS["phimoe-tiny"], "torch_dtype": "bfloat16"}))
    code, out, err = run_cli("estimate", "--model", str(path), "--method", "lora",
                             "--lora-targets", targets)
    assert code == 2 and out == "" and "PhimoeTopKRouter returns a tuple" in err
    assert "--lora-targets q_proj,k_proj,v_proj,o_proj" in err


@pytest.mark.parametrize("name", ["phimoe-tiny", "gpt_oss-tiny"])
def test_lora_without_targets_is_refused_as_peft_refuses(tmp_path: Path, run_cli,
                                                         name: str) -> None:
    peft = pytest.importorskip("peft")
    with pytest.raises(ValueError, match="Please specify `target_modules`"):
        peft.get_peft_model(_meta_model(CONFIGS[name]), peft.LoraConfig(r=8))
    path = tmp_path / "config.json"
    path.write_text(json.dumps({**CONFIGS[name], "torch_dtype": "bfloat16"}), encoding="utf-8")
    code, _out, err = run_cli("estimate", "--model", str(path), "--method", "lora")
    assert code == 2 and "no default LoRA target" in err and "Traceback" not in err
