"""Qwen2-MoE / Qwen3-MoE (qwen2_moe, qwen3_moe): inventory against transformers' meta-device build,
with its shared expert, sparse-step and mlp-only layers; PEFT's missing default refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vramdoc.models import param_groups, spec_from_config

_TINY = {"hidden_size": 256, "intermediate_size": 688, "num_hidden_layers": 2,
         "num_attention_heads": 8, "num_key_value_heads": 2, "vocab_size": 1000,
         "num_experts": 4, "num_experts_per_tok": 2, "moe_intermediate_size": 128,
         "shared_expert_intermediate_size": 384}
QWEN2_MOE = [
    {"model_type": "qwen2_moe"},
    {"model_type": "qwen2_moe", **_TINY},
    # dense layers: every second layer sparse, layer 1 forced dense -> 1 of 4 sparse
    {"model_type": "qwen2_moe", **_TINY, "num_hidden_layers": 4, "decoder_sparse_step": 2,
     "mlp_only_layers": [1], "qkv_bias": False},
]


def _meta_model(config: dict):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    cfg = transformers.AutoConfig.for_model(
        config["model_type"], **{k: v for k, v in config.items() if k != "model_type"})
    with torch.device("meta"):
        return transformers.AutoModelForCausalLM.from_config(cfg)


QWEN3_MOE = [
    {"model_type": "qwen3_moe"},
    {"model_type": "qwen3_moe", **{k: v for k, v in _TINY.items()
                                   if k != "shared_expert_intermediate_size"},
     "head_dim": 32, "attention_bias": True},
    {"model_type": "qwen3_moe", **{k: v for k, v in _TINY.items()
                                   if k != "shared_expert_intermediate_size"},
     "num_hidden_layers": 3, "mlp_only_layers": [0, 2]},
]


@pytest.mark.parametrize("config", QWEN2_MOE + QWEN3_MOE, ids=[
    "qwen2-defaults", "qwen2-tiny", "qwen2-dense-layers", "qwen3-defaults", "qwen3-tiny-bias",
    "qwen3-dense-layers"])
def test_qwen_moe_parameter_count_matches_transformers(config: dict) -> None:
    model = _meta_model(config)
    spec = spec_from_config(config, name="qwen2-moe")
    assert spec.n_params == sum(p.numel() for p in model.parameters())
    names = {n.rsplit(".", 1)[0] if n.endswith((".weight", ".bias")) else n
             for n, _ in model.named_parameters()}
    ours = {g.path.replace("{i}", "0") for g in param_groups(spec)}
    # every module path we list exists in some layer of the real model
    flat = {n.replace(".layers.1.", ".layers.0.").replace(".layers.2.", ".layers.0.")
            .replace(".layers.3.", ".layers.0.") for n in names}
    assert ours <= flat, sorted(ours - flat)
    default_experts = 60 if config["model_type"] == "qwen2_moe" else 128
    assert spec.family == "moe" and spec.num_local_experts == config.get(
        "num_experts", default_experts)


def test_qwen2_moe_lora_without_targets_is_refused(tmp_path: Path, run_cli) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({**QWEN2_MOE[1], "torch_dtype": "bfloat16"}), encoding="utf-8")
    code, _out, err = run_cli("estimate", "--model", str(path), "--method", "lora")
    assert code == 2
    assert "no default LoRA target" in err and "Traceback" not in err
    code, out, err = run_cli("estimate", "--model", str(path), "--method", "lora",
                             "--lora-targets", "q_proj,v_proj", "--json")
    assert code == 0, err
    assert json.loads(out)["peak_allocated_bytes"] > 0


@pytest.mark.parametrize("config", [QWEN2_MOE[1], QWEN3_MOE[1]], ids=["qwen2", "qwen3"])
def test_qwen_moe_all_linear_trainable_count_matches_peft(config: dict) -> None:
    peft = pytest.importorskip("peft")
    from vramdoc.estimate import estimate
    from vramdoc.setup import setup_from_mapping

    model = _meta_model(config)
    pm = peft.get_peft_model(model, peft.LoraConfig(r=8, target_modules="all-linear"))
    want = sum(p.numel() for p in pm.parameters() if p.requires_grad)
    spec = spec_from_config({**config, "torch_dtype": "bfloat16"}, name="qwen2-moe")
    setup = setup_from_mapping({"model": "qwen2-moe", "lora": {
        "r": 8, "target_modules": "all-linear"}}, source="test")
    # peft 0.21 wraps neither the router nor the fused experts of Qwen2-MoE; it wraps
    # Qwen3-MoE's (experts decorated with @use_experts_implementation, as Mixtral's)
    assert estimate(setup, model=spec).trainable_params == want
