"""Architectures added for issue 12: a config.json of them is estimated, not refused.

Parameter counts are checked against the model transformers builds on the meta device.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vramdoc.models import param_groups, spec_from_config

# OLMo-2 defaults (Olmo2Config) and a tiny variant with attention biases and GQA
OLMO2 = [
    {"model_type": "olmo2"},
    {"model_type": "olmo2", "hidden_size": 256, "intermediate_size": 688, "num_hidden_layers": 2,
     "num_attention_heads": 8, "num_key_value_heads": 2, "vocab_size": 1000,
     "attention_bias": True, "pad_token_id": 0, "eos_token_id": 1},
]


@pytest.mark.parametrize("config", OLMO2, ids=["defaults", "tiny-gqa-bias"])
def test_olmo2_parameter_count_matches_transformers(config: dict) -> None:
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    spec = spec_from_config(config, name="olmo2")
    cfg = transformers.AutoConfig.for_model(
        "olmo2", **{k: v for k, v in config.items() if k != "model_type"})
    with torch.device("meta"):
        model = transformers.AutoModelForCausalLM.from_config(cfg)
    assert spec.n_params == sum(p.numel() for p in model.parameters())
    names = {n for n, _ in model.named_parameters()}
    ours = {g.path.replace("{i}", "0") + ".weight" for g in param_groups(spec)}
    assert ours == {n for n in names if n.endswith(".weight") and (
        ".layers.0." in n or ".layers." not in n)}
    # the block facts the estimator walks
    assert spec.post_norms_only and spec.qk_norm and spec.qk_norm_full


def test_olmo2_config_json_is_estimated(tmp_path: Path, run_cli) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({**OLMO2[1], "torch_dtype": "bfloat16"}), encoding="utf-8")
    code, out, err = run_cli("estimate", "--model", str(path), "--json")
    assert code == 0, err
    assert json.loads(out)["peak_allocated_bytes"] > 0
