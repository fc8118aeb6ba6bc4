"""Parameter inventory of DeepSeek-V2 (model_type ``deepseek_v2``; DeepSeek-V2-Lite and
DeepSeek-Coder-V2-Lite share it), as transformers 5.24
``models/deepseek_v2/modeling_deepseek_v2.py`` builds it:

- Multi-head latent attention (``DeepseekV2Attention``): ``q_proj`` (h -> a * (nope + rope)) when
  ``q_lora_rank`` is null, else ``q_a_proj`` (h -> q_lora_rank, bias = attention_bias),
  ``q_a_layernorm`` and ``q_b_proj`` (q_lora_rank -> a * (nope + rope)); ``kv_a_proj_with_mqa``
  (h -> kv_lora_rank + rope, bias = attention_bias), ``kv_a_layernorm`` (kv_lora_rank),
  ``kv_b_proj`` (kv_lora_rank -> a * (nope + v)); ``o_proj`` (a * v -> h, bias = attention_bias).
- Layers ``i < first_k_dense_replace``: a dense ``DeepseekV2MLP`` (gate/up/down, mlp_bias);
  the others a ``DeepseekV2Moe``: ``DeepseekV2TopkRouter`` (bare fp32 weight, E x h), fused
  ``DeepseekV2Experts`` (``gate_up_proj`` (E, 2 f, h), ``down_proj`` (E, h, f), f =
  moe_intermediate_size) and ``shared_experts``, a DeepseekV2MLP of width f * n_shared_experts.

peft 0.21's all-linear wraps the router and the fused experts (as Mixtral's) and neither the
dense MLP nor the shared experts' Linear layers (checked against a PEFT model by
tests/models/test_deepseek_v2.py).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from vramdoc.models._cfg import Cfg, Summary, embedding, linear, lm_head, norm, score_head
from vramdoc.models.spec import ATTN_ALL, EXPERTS, ROUTER, ParamGroup

SEQ_CLS = "sequence-classification"


def build_deepseek_v2(c: Cfg, task: str, num_labels: int) -> tuple[Summary, list[ParamGroup]]:
    # DeepseekV2Config class defaults (transformers 5.24 configuration_deepseek_v2.py)
    h = c.int("hidden_size", default=4096)
    L = c.int("num_hidden_layers", default=32)
    a = c.int("num_attention_heads", default=32)
    kv = c.int("num_key_value_heads", default=a)
    V = c.int("vocab_size", default=102_400)
    ffn = c.int("intermediate_size", default=11008)
    f = c.int("moe_intermediate_size", default=1407)
    experts = c.int("n_routed_experts", "num_experts", default=64)
    shared = c.raw.get("n_shared_experts", 2)
    shared = 0 if shared is None else c.int("n_shared_experts", default=2)
    top_k = c.int("num_experts_per_tok", default=1)  # null in the class: set by checkpoints
    first_dense = c.raw.get("first_k_dense_replace") or 0
    if not isinstance(first_dense, int) or isinstance(first_dense, bool) or first_dense < 0:
        c.problems.append("first_k_dense_replace must be a non-negative integer")
        first_dense = 0
    dense = min(first_dense, L)
    sparse = L - dense
    q_rank_raw = c.raw.get("q_lora_rank", 1536)
    q_rank = c.int("q_lora_rank", default=1536) if q_rank_raw is not None else 0
    kv_rank = c.int("kv_lora_rank", default=512)
    nope = c.int("qk_nope_head_dim", default=128)
    rope = c.int("qk_rope_head_dim", default=64)
    v_hd = c.int("v_head_dim", default=128)
    qk_hd = nope + rope
    attn_bias = c.flag("attention_bias", default=False)
    mlp_bias = c.flag("mlp_bias", default=False)
    tie = c.flag("tie_word_embeddings", default=False)

    blk = "model.layers.{i}"
    at = f"{blk}.self_attn"
    g: list[ParamGroup] = [embedding("model.embed_tokens", V, h)]
    if q_rank:
        g += [linear(f"{at}.q_a_proj", h, q_rank, bias=attn_bias, count=L),
              norm(f"{at}.q_a_layernorm", q_rank, bias=False, count=L),
              linear(f"{at}.q_b_proj", q_rank, a * qk_hd, bias=False, count=L)]
    else:
        g.append(linear(f"{at}.q_proj", h, a * qk_hd, bias=False, count=L))
    g += [linear(f"{at}.kv_a_proj_with_mqa", h, kv_rank + rope, bias=attn_bias, count=L),
          norm(f"{at}.kv_a_layernorm", kv_rank, bias=False, count=L),
          linear(f"{at}.kv_b_proj", kv_rank, a * (nope + v_hd), bias=False, count=L),
          linear(f"{at}.o_proj", a * v_hd, h, bias=attn_bias, count=L)]
    mlp: list[ParamGroup] = []
    if dense:
        mlp += [linear(f"{blk}.mlp.gate_proj", h, ffn, bias=mlp_bias, count=dense),
                linear(f"{blk}.mlp.up_proj", h, ffn, bias=mlp_bias, count=dense),
                linear(f"{blk}.mlp.down_proj", ffn, h, bias=mlp_bias, count=dense)]
    if sparse:
        sf = f * shared
        g += [ParamGroup(path=f"{blk}.mlp.gate", leaf="gate", kind=ROUTER, in_features=h,
                         out_features=experts, weight_numel=experts * h, count=sparse,
                         in_block=True, all_linear=True),
              ParamGroup(path=f"{blk}.mlp.experts.gate_up_proj", leaf="gate_up_proj",
                         kind=EXPERTS, in_features=h, out_features=2 * f,
                         weight_numel=experts * 2 * f * h, count=sparse, n_experts=experts,
                         in_block=True, all_linear=True),
              ParamGroup(path=f"{blk}.mlp.experts.down_proj", leaf="down_proj", kind=EXPERTS,
                         in_features=f, out_features=h, weight_numel=experts * h * f,
                         count=sparse, n_experts=experts, in_block=True, all_linear=True)]
        if sf:
            se = f"{blk}.mlp.shared_experts"
            mlp += [linear(f"{se}.gate_proj", h, sf, bias=mlp_bias, count=sparse),
                    linear(f"{se}.up_proj", h, sf, bias=mlp_bias, count=sparse),
                    linear(f"{se}.down_proj", sf, h, bias=mlp_bias, count=sparse)]
    # peft 0.21's all-linear leaves the MLP Linears of DeepSeek-V2 alone (as built)
    g += [dataclasses.replace(x, all_linear=False) for x in mlp]
    g += [norm(f"{blk}.{n}", h, bias=False, count=L)
          for n in ("input_layernorm", "post_attention_layernorm")]
    g.append(norm("model.norm", h, bias=False, in_block=False))
    g.append(score_head("score", h, num_labels) if task == SEQ_CLS else
             lm_head("lm_head", h, V, tied_to="model.embed_tokens" if tie else None))
    summary = Summary(
        family="moe" if sparse else "llama", hidden_size=h, num_hidden_layers=L,
        num_attention_heads=a, num_key_value_heads=kv, head_dim=qk_hd,
        intermediate_size=f if sparse else ffn, vocab_size=V,
        max_position_embeddings=c.int("max_position_embeddings", default=2048),
        tie_word_embeddings=tie, gated_mlp=True, num_local_experts=experts if sparse else 0,
        num_experts_per_tok=top_k if sparse else 0, attn_implementations=ATTN_ALL)
    return summary, g


def mla_dims(config: dict[str, Any]) -> tuple[int, int, int, int, int]:
    """(q_lora_rank or 0, kv_lora_rank, qk_nope_head_dim, qk_rope_head_dim, v_head_dim)."""
    c = Cfg(config)
    q_rank = c.int("q_lora_rank", default=1536) if config.get("q_lora_rank", 1536) else 0
    return (q_rank, c.int("kv_lora_rank", default=512), c.int("qk_nope_head_dim", default=128),
            c.int("qk_rope_head_dim", default=64), c.int("v_head_dim", default=128))
