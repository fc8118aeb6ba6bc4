"""Block facts the activation walk reads come from the model spec (config, else class default)."""

from __future__ import annotations

from vramdoc.models import resolve_model, spec_from_config


def test_catalog_block_facts() -> None:
    gpt2 = resolve_model("gpt2")
    # GPT2Config defaults: activation_function gelu_new, resid/embd/attn pdrop 0.1
    assert (gpt2.hidden_act, gpt2.hidden_dropout, gpt2.rotary) == ("gelu_new", 0.1, False)
    assert resolve_model("falcon-7b").shared_block_norm
    assert resolve_model("qwen3-8b").qk_norm
    assert not resolve_model("bloomz-7b1").rotary
    llama = resolve_model("llama-2-7b")
    assert (llama.hidden_act, llama.attention_dropout, llama.rotary) == ("silu", 0.0, True)


def test_config_values_win_over_class_defaults() -> None:
    spec = spec_from_config({"model_type": "gpt2", "n_embd": 64, "n_layer": 1, "n_head": 2,
                             "vocab_size": 100, "resid_pdrop": 0.0,
                             "activation_function": "relu"}, name="tiny")
    assert (spec.hidden_act, spec.hidden_dropout, spec.attention_dropout) == ("relu", 0.0, 0.1)
