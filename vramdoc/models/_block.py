"""Facts about one transformer block that decide what it keeps for backward: the MLP
activation, dropout probabilities, rotary position embedding, q/k norms, a shared norm in
parallel blocks. Each value is read from config.json, else from the config class's default in
transformers 5.23 (``configuration_<model>.py``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from vramdoc.errors import ConfigError
from vramdoc.safeload import show

# activation of each config class when config.json leaves it out
_ACT_DEFAULTS = {
    "gpt2": "gelu_new", "gpt_bigcode": "gelu_pytorch_tanh", "opt": "relu", "bloom": "gelu",
    "gpt_neox": "gelu", "falcon": "gelu", "bert": "gelu", "roberta": "gelu",
    "gemma": "gelu_pytorch_tanh", "gemma2": "gelu_pytorch_tanh",
    "gemma3_text": "gelu_pytorch_tanh", "gemma3": "gelu_pytorch_tanh",
}
# (attention probs, hidden/residual, embedding) dropout defaults; others default to 0
_DROPOUT_DEFAULTS = {
    "bert": (0.1, 0.1, 0.1), "roberta": (0.1, 0.1, 0.1), "gpt2": (0.1, 0.1, 0.1),
    "gpt_bigcode": (0.1, 0.1, 0.1), "opt": (0.0, 0.1, 0.1),
}
# absolute (learned) or ALiBi positions: no rotary q/k copies
_NO_ROTARY = {"gpt2", "gpt_bigcode", "opt", "bloom", "bert", "roberta"}
# per-head RMSNorm on q and k before rotary
_QK_NORM = {"qwen3", "qwen3_moe", "gemma3_text", "gemma3", "olmo2"}


@dataclass(frozen=True)
class BlockFacts:
    hidden_act: str
    attention_dropout: float
    hidden_dropout: float
    embedding_dropout: float
    rotary: bool
    qk_norm: bool
    shared_block_norm: bool  # parallel block whose attention and MLP read one norm (Falcon-7B)
    use_cache: bool = True
    attn_softcap: bool = False
    final_softcap: bool = False
    sandwich_norms: bool = False
    norm_unit_offset: bool = False
    sliding_layers: int = 0
    always_mask: bool = False
    sdpa_repeat_kv: bool = True
    post_norms_only: bool = False
    norm_fp32_product: bool = False
    qk_norm_full: bool = False
    layer_norm: bool = False
    attn_sinks: bool = False
    moe_act: str = "swiglu"
    shared_expert_first: bool = False
    # q enters SDPA as a contiguous (b, heads, s, d) tensor (GPT-NeoX's apply_rotary_pos_emb
    # ends in torch.cat): the fused kernel's output follows q's layout, so the caller's
    # transpose(1, 2).contiguous() is a copy (traced: gpt_neox sdpa aten.clone (b, s, a, d))
    sdpa_out_copy: bool = False
    router: str = "softmax_topk"
    expert_bias: bool = False
    embedding_norm: bool = False  # see ModelSpec (Bloom)
    alibi: bool = False
    qkv_copies: bool = False
    returned_attn: str = ""
    mlp_input_freed: bool = False
    position_embeds: int = 0
    # the decoder layer's frame holds its attention output while its MLP runs (read where
    # the k-bit (QLoRA) recomputed block is walked op by op): GPT2Block / GPTBigCodeBlock keep
    # ``attn_output`` bound after the residual add
    attn_output_held: bool = False
    # x-sized temporaries the MLP activation's backward holds at once next to its incoming
    # gradient, where it is a python formula (0: one, the gradient it returns)
    act_backward_temps: int = 0
    # the decoder layer returns (hidden_states, attention weights): under reentrant
    # checkpointing the weights are an output of the checkpointed function
    returns_attn_weights: bool = False
    # eager attention casts softmax's output to q's dtype (``softmax(..., dtype=float32)
    # .to(query.dtype)``); Falcon keeps softmax's own (``dtype=hidden_states.dtype``)
    probs_to_query_dtype: bool = True
    # the decoder scales inputs_embeds after the embedding module returns (GraniteModel.forward:
    # ``inputs_embeds * self.embedding_multiplier``, transformers 5.24 modeling_granite.py)
    embeddings_scaled_outside: bool = False
    # each branch's output is scaled before the residual add (GraniteDecoderLayer: ``residual +
    # hidden_states * self.residual_multiplier``, transformers 5.24 modeling_granite.py)
    residual_multiplier: bool = False


def _first_float(cfg: Mapping[str, Any], keys: tuple[str, ...], default: float) -> float:
    for k in keys:
        v = cfg.get(k)
        if v is not None:
            if isinstance(v, bool) or not isinstance(v, int | float) or not 0 <= v <= 1:
                raise ConfigError([f"{k} must be a probability between 0 and 1, got {show(v)}"],
                                  "model config", "fix the config.json fields named above")
            return float(v)
    return default


# Gemma's RMSNorm scales by (1 + weight) in fp32 (modeling_gemma*.py, GemmaRMSNorm.forward)
_UNIT_OFFSET_NORM = {"gemma", "gemma2", "gemma3_text", "gemma3"}
# post-attention and post-MLP norms on top of the two pre-norms (Gemma2DecoderLayer)
_SANDWICH = {"gemma2", "gemma3_text", "gemma3"}
# soft-capping defaults of the config classes (transformers 5.24 configuration_gemma2.py:
# attn_logit_softcapping 50.0, final_logit_softcapping 30.0; Gemma 3: None for both)
_SOFTCAP_DEFAULTS = {"gemma2": (50.0, 30.0)}
# How the top-k router makes the routing weights (transformers 5.24): MixtralTopKRouter takes
# an fp32 softmax over all experts, then top-k, then renormalises in place (``/= sum``);
# GptOssTopKRouter takes the top-k logits first, then a softmax over those k in their dtype.
# Qwen2MoeTopKRouter / Qwen3MoeTopKRouter take Mixtral's fp32 softmax and top-k, then cast the
# routing weights back to the logits' dtype (``router_top_value.to(router_logits.dtype)``).
# Others keep "softmax_topk" (an fp32 softmax over all experts, then top-k).
_ROUTERS = {"mixtral": "softmax_topk_norm", "gpt_oss": "topk_softmax",
            "qwen2_moe": "softmax_topk_cast", "qwen3_moe": "softmax_topk_cast"}
# encoders fill no cache: BertModel builds one only when config.is_decoder
_NO_CACHE = {"bert", "roberta"}


def sliding_layer_count(model_type: str, config: Mapping[str, Any], layers: int,
                        window: int | None) -> int:
    """How many layers attend through a sliding window, as the config class lays them out.

    ``layer_types`` when config.json has it; else the config classes' ``__post_init__``
    (transformers 5.24): Gemma 2 alternates starting with a sliding layer, Gemma 3 has one full
    layer in every ``sliding_window_pattern`` (6), Qwen2/3 slide from ``max_window_layers`` on,
    Mistral/Mixtral slide everywhere.
    """
    if not window:
        return 0
    types = config.get("layer_types")
    if isinstance(types, list) and types:
        return sum(1 for t in types if t == "sliding_attention")
    if model_type in ("gemma2", "gpt_oss"):  # GptOssConfig: sliding on even layer indices
        return (layers + 1) // 2
    if model_type in ("gemma3_text", "gemma3"):
        pattern = int(config.get("sliding_window_pattern") or 6)
        return layers - layers // pattern
    if model_type in ("qwen2", "qwen3", "qwen2_moe", "qwen3_moe"):
        return max(0, layers - int(config.get("max_window_layers") or 28))
    return layers


def block_facts(model_type: str, config: Mapping[str, Any], layers: int = 0,
                window: int | None = None) -> BlockFacts:
    act = config.get("hidden_act", config.get("activation_function"))

    d_attn, d_resid, d_emb = _DROPOUT_DEFAULTS.get(model_type, (0.0, 0.0, 0.0))
    return BlockFacts(
        hidden_act=str(act) if act is not None else _ACT_DEFAULTS.get(model_type, "silu"),
        attention_dropout=_first_float(
            config, ("attention_dropout", "attn_pdrop", "attention_probs_dropout_prob"), d_attn),
        hidden_dropout=_first_float(
            config, ("resid_pdrop", "hidden_dropout_prob", "hidden_dropout", "dropout"), d_resid),
        # OPTDecoder (transformers 5.24 modeling_opt.py) applies config.dropout inside the
        # layers only: no dropout after the embeddings
        embedding_dropout=0.0 if model_type == "opt" else _first_float(
            config, ("embd_pdrop", "hidden_dropout_prob", "dropout"), d_emb),
        rotary=model_type not in _NO_ROTARY,
        qk_norm=bool(config.get("use_qk_norm")) or model_type in _QK_NORM,
        shared_block_norm=model_type == "falcon"
        and not config.get("new_decoder_architecture", False),
        use_cache=bool(config.get("use_cache", True)) and model_type not in _NO_CACHE,
        attn_softcap=bool(_softcap(config, "attn_logit_softcapping", model_type, 0)),
        final_softcap=bool(_softcap(config, "final_logit_softcapping", model_type, 1)),
        sandwich_norms=model_type in _SANDWICH,
        norm_unit_offset=model_type in _UNIT_OFFSET_NORM,
        sliding_layers=sliding_layer_count(model_type, config, layers, window),
        # FalconModel: create_causal_mask(..., allow_is_causal_skip=False), then its own
        # F.scaled_dot_product_attention call with the model's k/v heads
        always_mask=model_type == "falcon",
        # Olmo2DecoderLayer / Olmo2RMSNorm / Olmo2Attention (transformers 5.24 modeling_olmo2.py)
        post_norms_only=model_type == "olmo2",
        # GptOssRMSNorm returns (self.weight * hidden_states).to(input_dtype) as OLMo 2 does
        # (transformers 5.24 modeling_gpt_oss.py)
        norm_fp32_product=model_type in ("olmo2", "gpt_oss"),
        qk_norm_full=model_type == "olmo2",
        # PhimoeDecoderLayer / PhimoeModel: nn.LayerNorm (transformers 5.24 modeling_phimoe.py)
        layer_norm=model_type == "phimoe",
        # GptOssAttention: sinks; GptOssExperts._apply_gate (transformers 5.24 modeling_gpt_oss.py)
        attn_sinks=model_type == "gpt_oss",
        moe_act="clamped_swiglu" if model_type == "gpt_oss" else "swiglu",
        # Phi-3's apply_rotary_pos_emb ends in torch.cat too (partial rotary: q_rot and
        # q_pass joined; transformers 5.24 modeling_phi3.py)
        sdpa_out_copy=model_type in ("gpt_neox", "phi3"),
        # Qwen2MoeSparseMoeBlock.forward runs shared_expert(x) before the router and the
        # routed experts (DeepseekV2Moe.forward adds its shared experts after them)
        shared_expert_first=model_type == "qwen2_moe",
        router=_ROUTERS.get(model_type, "softmax_topk"),
        # GptOssExperts: gate_up_proj_bias / down_proj_bias, gathered per routed token
        expert_bias=model_type == "gpt_oss",
        # transformers 5.24 modeling_gpt2.py / modeling_gpt_bigcode.py (GPT2Block.forward,
        # GPTBigCodeBlock.forward)
        attn_output_held=model_type in ("gpt2", "gpt_bigcode"),
        # BLOOM's GeLUFunction.backward (transformers 5.24 modeling_bloom.py, bloom_gelu_back):
        # ``0.5 * x * ((1 - tanh_out * tanh_out) * (0.79788456 + 0.1070322243 * x * x))``
        # evaluated left to right holds tanh_out, 0.5 * x, 1 - tanh_out**2, 0.107 * x and its
        # product with x at once
        act_backward_temps=5 if model_type == "bloom" else 0,
        # BloomBlock.forward / FalconDecoderLayer.forward: ``return output, attn_weights``
        returns_attn_weights=model_type in ("bloom", "falcon"),
        # FalconAttention.forward (transformers 5.24 modeling_falcon.py), rotary branch
        probs_to_query_dtype=model_type != "falcon",
        embeddings_scaled_outside=model_type == "granite",
        residual_multiplier=model_type == "granite",
        sdpa_repeat_kv=not (model_type == "falcon"
                            and not config.get("new_decoder_architecture", False)),
        # BloomModel / BloomAttention (transformers 5.24 modeling_bloom.py)
        embedding_norm=model_type == "bloom",
        alibi=model_type == "bloom",
        qkv_copies=model_type == "bloom",
        # FalconDecoderLayer / BloomBlock return (output, attn_weights); FalconModel /
        # BloomModel keep ``outputs = block(...)`` until the next layer returns
        returned_attn={"falcon": "softmax", "bloom": "probs"}.get(model_type, ""),
        mlp_input_freed=model_type == "opt",
        position_embeds={"gpt2": 1, "gpt_bigcode": 1, "opt": 2}.get(model_type, 0),
    )


def _softcap(config: Mapping[str, Any], key: str, model_type: str, i: int) -> float | None:
    if key in config:
        v = config[key]
        return float(v) if v else None
    d = _SOFTCAP_DEFAULTS.get(model_type)
    return d[i] if d else None
