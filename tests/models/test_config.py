"""spec_from_config reads configs as transformers 5 does: class defaults and config variants.

Each case is built on the meta device (tests/models/_meta.py) and compared name by name.
"""

from __future__ import annotations

from typing import Any

import pytest

from vramdoc.errors import ConfigError, UnknownModelError, UsageError
from vramdoc.models import (
    SEQUENCE_CLASSIFICATION,
    SUPPORTED_MODEL_TYPES,
    default_task,
    param_groups,
    spec_from_config,
)

pytest.importorskip("torch")
pytest.importorskip("transformers")

from tests.models._meta import build, expand, hf_kwargs, quantizable  # noqa: E402

BUILTIN = [mt for mt in SUPPORTED_MODEL_TYPES if mt != "qwen"]  # qwen v1 is remote code

_TINY = dict(hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, vocab_size=101)
_GPT = dict(n_embd=64, n_layer=2, n_head=4, vocab_size=101, n_positions=40)

# Variants that exercise every branch of the config readers (name -> config).
VARIANTS: dict[str, dict[str, Any]] = {
    "llama-bias-headdim-tied": dict(_TINY, model_type="llama", attention_bias=True,
                                    mlp_bias=True, head_dim=24, tie_word_embeddings=True),
    "llama-kv-null": dict(_TINY, model_type="llama", num_key_value_heads=None),
    "qwen2-kv-null-tied": dict(_TINY, model_type="qwen2", num_key_value_heads=None,
                               tie_word_embeddings=True),
    "qwen2-kv-absent": {k: v for k, v in dict(_TINY, model_type="qwen2",
                                              num_attention_heads=32, hidden_size=256).items()
                        if k != "num_key_value_heads"},
    "qwen3-bias": dict(_TINY, model_type="qwen3", attention_bias=True, head_dim=32),
    "mistral-headdim": dict(_TINY, model_type="mistral", head_dim=8),
    "mixtral-num-experts-alias": dict(_TINY, model_type="mixtral", num_experts=3,
                                      num_experts_per_tok=1),
    "gemma-dtype-key": dict(_TINY, model_type="gemma", head_dim=16, dtype="bfloat16"),
    "gemma2-untied": dict(_TINY, model_type="gemma2", head_dim=16, tie_word_embeddings=False),
    "gemma3-text": dict(_TINY, model_type="gemma3_text", head_dim=16),
    "gemma3-vision-head": dict(
        model_type="gemma3", mm_tokens_per_image=4,
        text_config=dict(_TINY, model_type="gemma3_text", head_dim=16, vocab_size=300),
        vision_config=dict(model_type="siglip_vision_model", hidden_size=32,
                           intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
                           image_size=28, patch_size=14, vision_use_head=True)),
    "phi3-gqa-tied": dict(_TINY, model_type="phi3", pad_token_id=0, tie_word_embeddings=True),
    "gpt2-n-inner-untied": dict(_GPT, model_type="gpt2", n_inner=80,
                                tie_word_embeddings=False),
    "gpt2-hf-names": dict(model_type="gpt2", hidden_size=64, num_hidden_layers=2,
                          num_attention_heads=4, vocab_size=101, max_position_embeddings=40),
    "bigcode-mha": dict(_GPT, model_type="gpt_bigcode", multi_query=False),
    "neox-no-attn-bias-serial": dict(_TINY, model_type="gpt_neox", attention_bias=False,
                                     use_parallel_residual=False),
    "falcon-new-arch": dict(model_type="falcon", hidden_size=64, num_hidden_layers=2,
                            num_attention_heads=8, num_kv_heads=2, vocab_size=101,
                            new_decoder_architecture=True, bias=True),
    "falcon-new-arch-1ln": dict(model_type="falcon", hidden_size=64, num_hidden_layers=2,
                                num_attention_heads=8, num_kv_heads=2, vocab_size=101,
                                new_decoder_architecture=True, num_ln_in_parallel_attn=1),
    "falcon-serial-mha": dict(model_type="falcon", hidden_size=64, num_hidden_layers=2,
                              num_attention_heads=4, vocab_size=101, parallel_attn=False,
                              multi_query=False, ffn_hidden_size=72),
    "opt-350m-style": dict(model_type="opt", hidden_size=64, ffn_dim=96, num_hidden_layers=2,
                           num_attention_heads=4, vocab_size=101, max_position_embeddings=40,
                           word_embed_proj_dim=32, do_layer_norm_before=False),
    "opt-no-affine-no-bias": dict(model_type="opt", hidden_size=64, ffn_dim=96,
                                  num_hidden_layers=2, num_attention_heads=4, vocab_size=101,
                                  max_position_embeddings=40, enable_bias=False,
                                  layer_norm_elementwise_affine=False),
    "bloom-n-embed-alias": dict(model_type="bloom", n_embed=64, n_layer=2, n_head=4,
                                vocab_size=101),
    "roberta-type-vocab": dict(_TINY, model_type="roberta", type_vocab_size=1,
                               max_position_embeddings=66),
}


def _compare(key: str, config: dict[str, Any], task: str | None = None) -> None:
    spec = spec_from_config(config, name=key)
    task = task or default_task(spec)
    groups = param_groups(spec, task)
    params, bnb = build(key, config, task)
    mine = expand(groups)
    assert set(mine) == set(params), (sorted(set(params) ^ set(mine))[:6])
    assert {n: mine[n] for n in params} == params
    assert quantizable(groups) == bnb, sorted(quantizable(groups) ^ bnb)
    if task == default_task(spec):
        assert spec.n_params == sum(params.values())


@pytest.mark.parametrize("model_type", BUILTIN)
def test_config_class_defaults(model_type: str) -> None:
    """A config with only model_type reads like AutoConfig.for_model(model_type)."""
    from transformers import AutoConfig

    _compare(f"default-{model_type}", {"model_type": model_type})
    spec = spec_from_config({"model_type": model_type}, name=model_type)
    hf = AutoConfig.for_model(model_type)
    text = hf.get_text_config()
    assert spec.hidden_size == text.hidden_size
    assert spec.num_hidden_layers == text.num_hidden_layers
    assert spec.num_attention_heads == text.num_attention_heads
    assert spec.vocab_size == text.vocab_size
    if not spec.is_encoder:
        assert spec.tie_word_embeddings == hf.tie_word_embeddings
    if hasattr(text, "num_key_value_heads") and model_type != "falcon":
        assert spec.num_key_value_heads == text.num_key_value_heads


@pytest.mark.parametrize("key", sorted(VARIANTS))
def test_config_variants(key: str) -> None:
    _compare(key, VARIANTS[key])


@pytest.mark.parametrize("key", ["llama-bias-headdim-tied", "gpt2-n-inner-untied",
                                 "falcon-new-arch", "opt-350m-style", "bloom-n-embed-alias",
                                 "gemma3-vision-head", "mixtral-num-experts-alias"])
def test_config_variants_sequence_classification(key: str) -> None:
    _compare(key, VARIANTS[key], SEQUENCE_CLASSIFICATION)


def test_num_labels_changes_only_the_head() -> None:
    spec = spec_from_config(VARIANTS["roberta-type-vocab"], name="r")
    g5 = param_groups(spec, num_labels=5)
    params, _ = build("roberta-5", VARIANTS["roberta-type-vocab"], SEQUENCE_CLASSIFICATION, 5)
    assert expand(g5) == params
    assert sum(g.numel for g in g5) - spec.n_params == 3 * (64 + 1)


def test_transformers5_dtype_and_torch_dtype() -> None:
    base = dict(_TINY, model_type="llama")
    assert spec_from_config(dict(base, dtype="bfloat16"), name="a").checkpoint_dtype == "bfloat16"
    assert spec_from_config(dict(base, torch_dtype="float16"),
                            name="b").checkpoint_dtype == "float16"
    assert spec_from_config(dict(base, torch_dtype="torch.bfloat16"),
                            name="c").checkpoint_dtype == "bfloat16"
    assert spec_from_config(base, name="d").checkpoint_dtype == "float32"
    with pytest.raises(ConfigError, match="dtype 'int3'"):
        spec_from_config(dict(base, dtype="int3"), name="e")


def test_sliding_window_semantics() -> None:
    assert spec_from_config({"model_type": "mistral"}, name="m").sliding_window == 4096
    assert spec_from_config({"model_type": "mistral", "sliding_window": None},
                            name="m").sliding_window is None
    q = dict(_TINY, model_type="qwen2", sliding_window=4096)
    assert spec_from_config(q, name="q").sliding_window is None  # use_sliding_window False
    assert spec_from_config(dict(q, use_sliding_window=True), name="q").sliding_window == 4096


def test_unsupported_model_type_names_the_supported_ones() -> None:
    with pytest.raises(UnknownModelError, match=r"'t5'.*llama.*mixtral.*roberta"):
        spec_from_config({"model_type": "t5"}, name="t5-small")
    with pytest.raises(UnknownModelError, match="no model_type"):
        spec_from_config({"hidden_size": 8}, name="x")


def test_bad_fields_are_all_reported_at_once() -> None:
    with pytest.raises(ConfigError, match=r"2 problem\(s\)") as exc:
        spec_from_config({"model_type": "llama", "hidden_size": 0, "num_hidden_layers": "x"},
                         name="bad")
    assert "hidden_size must be a positive integer" in str(exc.value)
    assert exc.value.exit_code == 2


def test_task_errors() -> None:
    bert = spec_from_config({"model_type": "bert"}, name="bert")
    with pytest.raises(UsageError, match="does not support task 'causal-lm'"):
        param_groups(bert, "causal-lm")
    with pytest.raises(UsageError, match="task 'translation'"):
        param_groups(bert, "translation")
    with pytest.raises(UsageError, match="num_labels"):
        param_groups(bert, num_labels=0)


def test_hf_kwargs_drop_model_type() -> None:
    # The reason tests pass hf_kwargs(spec.config) and not **spec.config to for_model.
    from transformers import AutoConfig

    with pytest.raises(TypeError, match="multiple values for argument 'model_type'"):
        AutoConfig.for_model("llama", **{"model_type": "llama"})
    assert AutoConfig.for_model("llama", **hf_kwargs({"model_type": "llama"})).model_type == "llama"
