"""DeepSeek-V2 (deepseek_v2): MLA attention with and without a q LoRA rank, rope / nope / v head
widths, shared + routed experts and first_k_dense_replace dense layers, against transformers'
meta-device build (every parameter name and size); PEFT 0.21's trainable counts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vramdoc.models import param_groups, spec_from_config

_TINY = {"model_type": "deepseek_v2", "hidden_size": 256, "intermediate_size": 688,
         "moe_intermediate_size": 128, "num_hidden_layers": 3, "num_attention_heads": 8,
         "num_key_value_heads": 8, "vocab_size": 1000, "n_routed_experts": 4,
         "n_shared_experts": 2, "num_experts_per_tok": 2, "first_k_dense_replace": 1,
         "q_lora_rank": None, "kv_lora_rank": 64, "qk_nope_head_dim": 32,
         "qk_rope_head_dim": 16, "v_head_dim": 24}
CONFIGS = {
    "lite-shape": _TINY,  # DeepSeek-V2-Lite: no q LoRA, first layer dense
    "q-lora": {**_TINY, "q_lora_rank": 96, "attention_bias": True, "first_k_dense_replace": 0},
    "all-dense": {**_TINY, "first_k_dense_replace": 3, "mlp_bias": True},
    "defaults": {"model_type": "deepseek_v2", "num_experts_per_tok": 6},
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
        # per-layer groups cover the dense layers first, then the sparse ones
        dense = config.get("first_k_dense_replace", 0)
        layers = range(g.count) if "{i}" in g.path else [None]
        if ".mlp." in g.path and g.count < spec.num_hidden_layers:
            layers = range(dense) if g.path.endswith(("mlp.gate_proj", "mlp.up_proj",
                                                       "mlp.down_proj")) else range(
                dense, spec.num_hidden_layers)
        for i in layers:
            path = g.path.replace("{i}", str(i))
            if g.kind == "experts":
                ours[path] = g.weight_numel
            else:
                ours[f"{path}.weight"] = g.weight_numel
                if g.bias_numel:
                    ours[f"{path}.bias"] = g.bias_numel
    assert ours == built
    q_rank = config.get("q_lora_rank", 1536) or 0
    assert spec.mla == (q_rank, config.get("kv_lora_rank", 512),
                        config.get("qk_nope_head_dim", 128), config.get("qk_rope_head_dim", 64),
                        config.get("v_head_dim", 128))


@pytest.mark.parametrize("targets", ["all-linear", ["q_proj", "kv_b_proj"]],
                         ids=["all-linear", "q-kvb"])
def test_trainable_count_matches_peft(targets) -> None:
    peft = pytest.importorskip("peft")
    from vramdoc.estimate import estimate
    from vramdoc.setup import setup_from_mapping

    pm = peft.get_peft_model(_meta_model(_TINY), peft.LoraConfig(r=8, target_modules=targets))
    want = sum(p.numel() for p in pm.parameters() if p.requires_grad)
    spec = spec_from_config({**_TINY, "torch_dtype": "bfloat16"}, name="ds")
    setup = setup_from_mapping({"model": "ds", "lora": {"r": 8, "target_modules": targets}},
                               source="test")
    assert estimate(setup, model=spec).trainable_params == want


def test_lora_without_targets_is_refused_as_peft_refuses(tmp_path: Path, run_cli) -> None:
    peft = pytest.importorskip("peft")
    # peft 0.21 has no default targets for deepseek_v2; it raises NoMatchingPeftModuleError
    # ("No `target_modules` passed but also no `target_parameters` found"), a ValueError
    with pytest.raises(ValueError, match="target_modules"):
        peft.get_peft_model(_meta_model(_TINY), peft.LoraConfig(r=8))
    path = tmp_path / "config.json"
    path.write_text(json.dumps({**_TINY, "torch_dtype": "bfloat16"}), encoding="utf-8")
    code, _out, err = run_cli("estimate", "--model", str(path), "--method", "lora")
    assert code == 2 and "no default LoRA target" in err and "Traceback" not in err
    code, out, err = run_cli("estimate", "--model", str(path), "--method", "lora",
                             "--lora-targets", "q_proj,kv_b_proj", "--json")
    assert code == 0, err
    assert json.loads(out)["peak_allocated_bytes"] > 0
