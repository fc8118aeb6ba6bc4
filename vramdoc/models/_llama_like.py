"""Parameter inventories of rotary, RMSNorm, gated-MLP decoders (Llama and its relatives).

Shapes and names follow transformers 5.23 ``models/<type>/modeling_<type>.py``:

- llama, mistral, qwen2, qwen3, gemma, gemma2, gemma3_text: ``q/k/v/o_proj`` with GQA
  (``num_key_value_heads * head_dim`` rows in k/v), ``gate/up/down_proj``, RMSNorm weights.
- mixtral: attention as above, a ``MixtralTopKRouter`` (bare ``weight``, E x h) and
  ``MixtralExperts`` holding fused 3-D parameters ``gate_up_proj`` (E, 2 ffn, h) and
  ``down_proj`` (E, h, ffn) -- no per-expert nn.Linear in transformers 5.
- granite: llama's modules (GraniteAttention / GraniteMLP, attention_bias on all four
  projections, mlp_bias on the MLP); its multipliers are python scalars, no parameters.
- phi3: fused ``qkv_proj`` ((a + 2 kv) hd rows) and ``gate_up_proj`` (2 ffn rows).
- gemma3 (multimodal ``Gemma3ForConditionalGeneration``): the gemma3_text decoder under
  ``model.language_model``, a SigLIP vision tower under ``model.vision_tower`` and the
  ``multi_modal_projector``.
- qwen (Qwen v1, remote code): from the published ``modeling_qwen.py`` of Qwen/Qwen-7B
  (mirror: github.com/zhangningboo/Qwen-7B
  @1ff20863b9e9c48b1550d42837331cb55ddfb4e0:modeling_qwen.py):
  ``transformer.h.{i}.attn.c_attn`` = Linear(h, 3 * kv_channels * a) with bias,
  ``attn.c_proj`` = Linear(h, kv_channels * a, bias=not no_bias), MLP ``w1``/``w2`` =
  Linear(h, intermediate_size // 2) and ``c_proj`` = Linear(intermediate_size // 2, h): the
  config's intermediate_size counts both SwiGLU branches.

Which modules bitsandbytes replaces (``quantizable``): transformers 5.23
``integrations/bitsandbytes.py::replace_with_bnb_linear`` converts a module only when
``type(module) is nn.Linear`` or it is a GPT-2 ``Conv1D``, and skips the names from
``quantizers/base.py::get_keys_to_not_convert`` (tied weights, the output embedding and the
module of the model's last parameter) plus ``_keep_in_fp32_modules``. Mixtral's router
(``MixtralTopKRouter``, a bare Parameter) and its fused 3-D experts (``MixtralExperts``) are not
nn.Linear, so they stay in the load dtype; ``quantizers/base.py`` patches experts into Linear
modules only for Llama4 (``MODULES_TO_PATCH_FOR_QUANTIZATION``). Checked on meta-device models
by ``tests/models/test_inventory.py::test_quantizable_matches_bitsandbytes``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from vramdoc.models._cfg import (
    Builder,
    Cfg,
    Summary,
    embedding,
    linear,
    lm_head,
    norm,
    param,
    score_head,
)
from vramdoc.models.spec import ATTN_ALL, EXPERTS, ROUTER, ParamGroup
from vramdoc.safeload import show

SEQ_CLS = "sequence-classification"

# Defaults of the transformers 5.23 config classes, used where config.json omits a field
# (checked against AutoConfig.for_model(model_type) by tests/models/test_config_defaults.py).
# kv None: num_key_value_heads falls back to num_attention_heads.
_DEFAULTS: dict[str, dict[str, Any]] = {
    "llama": dict(V=32000, h=4096, ffn=11008, L=32, a=32, kv=None, pos=2048, tie=False),
    "mistral": dict(V=32000, h=4096, ffn=14336, L=32, a=32, kv=8, pos=131_072, tie=False),
    "mixtral": dict(V=32000, h=4096, ffn=14336, L=32, a=32, kv=8, pos=131_072, tie=False),
    "qwen2": dict(V=151_936, h=4096, ffn=22016, L=32, a=32, kv=32, pos=32768, tie=False),
    "qwen3": dict(V=151_936, h=4096, ffn=22016, L=32, a=32, kv=32, pos=32768, tie=False, hd=128),
    "gemma": dict(V=256_000, h=3072, ffn=24576, L=28, a=16, kv=16, pos=8192, tie=True, hd=256),
    "gemma2": dict(V=256_000, h=2304, ffn=9216, L=26, a=8, kv=4, pos=8192, tie=True, hd=256),
    "gemma3_text": dict(V=262_208, h=2304, ffn=9216, L=26, a=8, kv=4, pos=131_072, tie=True,
                        hd=256),
    "phi3": dict(V=32064, h=3072, ffn=8192, L=32, a=32, kv=None, pos=4096, tie=False),
    # transformers 5.24 configuration_olmo2.py (Olmo2Config class defaults)
    "olmo2": dict(V=50304, h=4096, ffn=11008, L=32, a=32, kv=None, pos=2048, tie=False),
    # transformers 5.24 configuration_granite.py (GraniteConfig class defaults)
    "granite": dict(V=32000, h=4096, ffn=11008, L=32, a=32, kv=None, pos=2048, tie=False),
    # transformers 5.24 configuration_qwen2_moe.py (Qwen2MoeConfig class defaults)
    "qwen2_moe": dict(V=151_936, h=2048, ffn=5632, L=24, a=16, kv=16, pos=32768, tie=False),
    # transformers 5.24 configuration_qwen3_moe.py (Qwen3MoeConfig class defaults)
    "qwen3_moe": dict(V=151_936, h=2048, ffn=6144, L=24, a=32, kv=4, pos=32768, tie=False),
    # transformers 5.24 configuration_phimoe.py (PhimoeConfig class defaults)
    "phimoe": dict(V=32064, h=4096, ffn=6400, L=32, a=32, kv=8, pos=131_072, tie=False),
    # transformers 5.24 configuration_gpt_oss.py (GptOssConfig class defaults)
    "gpt_oss": dict(V=201_088, h=2880, ffn=2880, L=36, a=64, kv=8, pos=131_072, tie=False,
                    hd=64),
}
# Expert classes transformers 5.24 decorates with @use_experts_implementation: peft 0.21's
# all-linear wraps their fused parameters and the router (checked by building them)
_PEFT_WRAPS_EXPERTS = {"mixtral", "qwen3_moe"}
# MoE blocks whose experts are a fused Mixtral-like MixtralExperts block on every layer
_ALL_SPARSE = {"mixtral", "phimoe", "gpt_oss"}
_SLIDING_DEFAULT = {"mistral": 4096, "gemma2": 4096, "gemma3_text": 4096, "gpt_oss": 128}


def _sliding(c: Cfg, mt: str) -> int | None:
    # null means "no sliding window" here, unlike the numeric fields read through Cfg.get.
    sw = c.raw["sliding_window"] if "sliding_window" in c.raw else _SLIDING_DEFAULT.get(mt)
    if mt in ("qwen2", "qwen3", "qwen2_moe", "qwen3_moe") and not c.flag("use_sliding_window",
                                                               default=False):
        return None
    if sw is None or sw is False or sw == 0:
        return None
    number = not isinstance(sw, bool) and isinstance(sw, int | float)
    if not number or not 0 < sw <= 2**31 or sw != int(sw):
        c.problems.append(f"sliding_window must be a positive integer or null, got {show(sw)}")
        return None
    return int(sw)


def _decoder(c: Cfg, mt: str, prefix: str, task: str, num_labels: int,
             head_path: str = "lm_head") -> tuple[Summary, list[ParamGroup]]:
    """Embedding + L blocks + final norm + head of a llama-like decoder."""
    d = _DEFAULTS[mt]
    h = c.int("hidden_size", default=d["h"])
    L = c.int("num_hidden_layers", default=d["L"])
    a = c.int("num_attention_heads", default=d["a"])
    # An explicit null means "same as num_attention_heads" (the config classes' __post_init__);
    # an absent key takes the class default, which is not always num_attention_heads.
    kv_default = a if d["kv"] is None or ("num_key_value_heads" in c.raw) else d["kv"]
    kv = c.int("num_key_value_heads", default=kv_default)
    hd = c.int("head_dim", default=d.get("hd", max(1, h // a)))
    V = c.int("vocab_size", default=d["V"])
    # num_local_experts / num_experts_per_tok defaults: MixtralConfig 8 / 2, PhimoeConfig 16 / 2,
    # GptOssConfig 128 / 4 (transformers 5.24)
    experts = c.int("num_local_experts", "num_experts", default={
        "mixtral": 8, "phimoe": 16, "gpt_oss": 128}[mt]) if mt in _ALL_SPARSE else 0
    top_k = c.int("num_experts_per_tok", default=4 if mt == "gpt_oss" else 2) \
        if mt in _ALL_SPARSE else 0
    ffn = c.int("intermediate_size", default=d["ffn"])
    expert_ffn = ffn  # one expert's width (Mixtral: intermediate_size)
    sparse = L if mt in _ALL_SPARSE else 0  # layers whose MLP is a sparse MoE block
    if mt in ("qwen2_moe", "qwen3_moe"):
        q2 = mt == "qwen2_moe"
        experts = c.int("num_experts", default=60 if q2 else 128)
        top_k = c.int("num_experts_per_tok", default=4 if q2 else 8)
        expert_ffn = c.int("moe_intermediate_size", default=1408 if q2 else 768)
        shared_ffn = c.int("shared_expert_intermediate_size", default=5632) if q2 else 0
        sparse = _sparse_layers(c, L, experts)
    tie = c.flag("tie_word_embeddings", default=d["tie"])
    attn_bias = c.flag("attention_bias", default=mt == "gpt_oss") if mt in (
        "llama", "qwen3", "gemma", "gemma2", "gemma3_text", "olmo2", "granite",
        "qwen3_moe", "phimoe", "gpt_oss") else False
    mlp_bias = c.flag("mlp_bias", default=False) if mt in ("llama", "granite") else False
    blk = f"{prefix}.layers.{{i}}"
    g: list[ParamGroup] = [embedding(f"{prefix}.embed_tokens", V, h)]

    if mt == "phi3":
        g.append(linear(f"{blk}.self_attn.qkv_proj", h, (a + 2 * kv) * hd, bias=False, count=L))
    else:
        # Qwen2 hard-codes bias=True on q/k/v and bias=False on o_proj (modeling_qwen2.py).
        qkv_bias = True if mt == "qwen2" else (
            c.flag("qkv_bias", default=True) if mt == "qwen2_moe" else attn_bias)
        g += [linear(f"{blk}.self_attn.q_proj", h, a * hd, bias=qkv_bias, count=L),
              linear(f"{blk}.self_attn.k_proj", h, kv * hd, bias=qkv_bias, count=L),
              linear(f"{blk}.self_attn.v_proj", h, kv * hd, bias=qkv_bias, count=L)]
    g.append(linear(f"{blk}.self_attn.o_proj", a * hd, h, bias=attn_bias, count=L))
    if mt in ("qwen3", "gemma3_text", "qwen3_moe"):
        g += [norm(f"{blk}.self_attn.q_norm", hd, bias=False, count=L),
              norm(f"{blk}.self_attn.k_norm", hd, bias=False, count=L)]
    elif mt == "olmo2":  # Olmo2Attention: RMSNorm over the whole q and k projections
        g += [norm(f"{blk}.self_attn.q_norm", a * hd, bias=False, count=L),
              norm(f"{blk}.self_attn.k_norm", kv * hd, bias=False, count=L)]

    if mt == "gpt_oss":  # GptOssAttention.sinks: one learned logit per head
        g.append(param(f"{blk}.self_attn.sinks", a, count=L, in_block=True))
    if mt in ("phimoe", "gpt_oss"):
        g += _router_experts(mt, blk, h, experts, expert_ffn, L)
    elif sparse:
        g += [ParamGroup(path=f"{blk}.mlp.gate", leaf="gate", kind=ROUTER, in_features=h,
                         out_features=experts, weight_numel=experts * h, count=sparse,
                         in_block=True, all_linear=mt in _PEFT_WRAPS_EXPERTS),
              ParamGroup(path=f"{blk}.mlp.experts.gate_up_proj", leaf="gate_up_proj",
                         kind=EXPERTS, in_features=h, out_features=2 * expert_ffn,
                         weight_numel=experts * 2 * expert_ffn * h, count=sparse,
                         n_experts=experts, in_block=True, all_linear=mt in _PEFT_WRAPS_EXPERTS),
              ParamGroup(path=f"{blk}.mlp.experts.down_proj", leaf="down_proj", kind=EXPERTS,
                         in_features=expert_ffn, out_features=h,
                         weight_numel=experts * h * expert_ffn, count=sparse,
                         n_experts=experts, in_block=True, all_linear=mt in _PEFT_WRAPS_EXPERTS)]
    if mt in ("qwen2_moe", "qwen3_moe"):
        if sparse and mt == "qwen2_moe":
            # Qwen2MoeSparseMoeBlock: a dense shared expert and its sigmoid gate
            se = f"{blk}.mlp.shared_expert"
            g += [linear(f"{se}.gate_proj", h, shared_ffn, bias=False, count=sparse),
                  linear(f"{se}.up_proj", h, shared_ffn, bias=False, count=sparse),
                  linear(f"{se}.down_proj", shared_ffn, h, bias=False, count=sparse),
                  linear(f"{blk}.mlp.shared_expert_gate", h, 1, bias=False, count=sparse)]
        if L - sparse:  # mlp_only_layers / decoder_sparse_step: a dense Qwen2/3MoeMLP
            g += [linear(f"{blk}.mlp.gate_proj", h, ffn, bias=False, count=L - sparse),
                  linear(f"{blk}.mlp.up_proj", h, ffn, bias=False, count=L - sparse),
                  linear(f"{blk}.mlp.down_proj", ffn, h, bias=False, count=L - sparse)]
    elif mt == "phi3":
        g += [linear(f"{blk}.mlp.gate_up_proj", h, 2 * ffn, bias=False, count=L),
              linear(f"{blk}.mlp.down_proj", ffn, h, bias=False, count=L)]
    elif mt not in _ALL_SPARSE:
        g += [linear(f"{blk}.mlp.gate_proj", h, ffn, bias=mlp_bias, count=L),
              linear(f"{blk}.mlp.up_proj", h, ffn, bias=mlp_bias, count=L),
              linear(f"{blk}.mlp.down_proj", ffn, h, bias=mlp_bias, count=L)]

    norms = ["input_layernorm", "post_attention_layernorm"]
    if mt == "olmo2":  # Olmo2DecoderLayer: norms after attention and MLP only
        norms = ["post_attention_layernorm", "post_feedforward_layernorm"]
    if mt in ("gemma2", "gemma3_text"):
        norms += ["pre_feedforward_layernorm", "post_feedforward_layernorm"]
    ln_bias = mt == "phimoe"  # PhimoeDecoderLayer / PhimoeModel: nn.LayerNorm, with bias
    g += [norm(f"{blk}.{n}", h, bias=ln_bias, count=L) for n in norms]
    g.append(norm(f"{prefix}.norm", h, bias=ln_bias, in_block=False))
    g.append(_head(task, head_path, h, V, num_labels, tie, f"{prefix}.embed_tokens"))
    if mt == "phimoe" and task != SEQ_CLS and c.flag("lm_head_bias", default=False):
        g[-1] = dataclasses.replace(g[-1], bias_numel=V)

    summary = Summary(
        family="moe" if sparse else "llama",
        hidden_size=h, num_hidden_layers=L, num_attention_heads=a, num_key_value_heads=kv,
        head_dim=hd, intermediate_size=expert_ffn if sparse else ffn, vocab_size=V,
        max_position_embeddings=c.int("max_position_embeddings", default=d["pos"]),
        tie_word_embeddings=tie, gated_mlp=True, num_local_experts=experts,
        num_experts_per_tok=top_k, sliding_window=_sliding(c, mt),
        # transformers 5.23 Gemma2PreTrainedModel: _supports_sdpa = False (softcapping);
        # 5.24 GptOssPreTrainedModel: _supports_sdpa = False (attention sinks)
        attn_implementations=ATTN_ALL if mt not in ("gemma2", "gpt_oss") else tuple(
            x for x in ATTN_ALL if x != "sdpa"))
    return summary, g


def _router_experts(mt: str, blk: str, h: int, experts: int, f: int,
                    L: int) -> list[ParamGroup]:
    """Phi-3.5-MoE and gpt-oss MoE blocks (transformers 5.24 modeling_phimoe.py /
    modeling_gpt_oss.py). PhimoeTopKRouter subclasses nn.Linear: PEFT's all-linear wraps it
    (isinstance), bitsandbytes does not (``type(module) is nn.Linear``). GptOssTopKRouter is a
    bare weight + bias. GptOssExperts stores (E, h, 2f) and (E, f, h) with per-expert biases.
    peft 0.21's all-linear wraps neither model's fused experts (checked by building them)."""
    phi = mt == "phimoe"
    g = [ParamGroup(path=f"{blk}.mlp.router", leaf="router", kind=ROUTER, in_features=h,
                    out_features=experts, weight_numel=experts * h,
                    bias_numel=0 if phi else experts, count=L, in_block=True, all_linear=phi),
         ParamGroup(path=f"{blk}.mlp.experts.gate_up_proj", leaf="gate_up_proj", kind=EXPERTS,
                    in_features=h, out_features=2 * f, weight_numel=experts * 2 * f * h,
                    count=L, n_experts=experts, in_block=True, all_linear=False),
         ParamGroup(path=f"{blk}.mlp.experts.down_proj", leaf="down_proj", kind=EXPERTS,
                    in_features=f, out_features=h, weight_numel=experts * h * f, count=L,
                    n_experts=experts, in_block=True, all_linear=False)]
    if not phi:
        g += [param(f"{blk}.mlp.experts.gate_up_proj_bias", experts * 2 * f, count=L,
                    in_block=True),
              param(f"{blk}.mlp.experts.down_proj_bias", experts * h, count=L, in_block=True)]
    return g


def _sparse_layers(c: Cfg, L: int, experts: int) -> int:
    """Qwen2MoeDecoderLayer: layer i is sparse unless it is in mlp_only_layers, when
    num_experts > 0 and (i + 1) % decoder_sparse_step == 0 (transformers 5.24)."""
    step = c.int("decoder_sparse_step", default=1)
    only = c.raw.get("mlp_only_layers") or []
    if not isinstance(only, list) or not all(
            isinstance(i, int) and not isinstance(i, bool) for i in only):
        c.problems.append(f"mlp_only_layers must be a list of layer indices, got {show(only)}")
        only = []
    if not experts:
        return 0
    return sum(1 for i in range(L) if i not in only and (i + 1) % step == 0)


def _head(task: str, path: str, h: int, V: int, num_labels: int, tie: bool,
          embed: str) -> ParamGroup:
    if task == SEQ_CLS:
        return score_head("score", h, num_labels)
    return lm_head(path, h, V, tied_to=embed if tie else None)


def build_llama_like(mt: str) -> Builder:
    """The builder of a plain llama-like decoder (``model.*`` + ``lm_head``)."""

    def build(c: Cfg, task: str, num_labels: int) -> tuple[Summary, list[ParamGroup]]:
        return _decoder(c, mt, "model", task, num_labels)

    return build


def build_gemma3(c: Cfg, task: str, num_labels: int) -> tuple[Summary, list[ParamGroup]]:
    """Gemma3ForConditionalGeneration: text decoder + SigLIP vision tower + projector.

    ``AutoModelForCausalLM`` maps model_type "gemma3" to this class
    (transformers 5.23 models/auto/modeling_auto.py), so the vision tower is loaded and
    counted even for text-only fine-tuning.
    """
    text = c.sub("text_config", "text_config")
    summary, g = _decoder(text, "gemma3_text", "model.language_model", task, num_labels)
    # The top-level Gemma3Config decides the tie (default True), not text_config.
    tie = c.flag("tie_word_embeddings", default=True)
    g[-1] = _head(task, "lm_head", summary.hidden_size, summary.vocab_size, num_labels, tie,
                  "model.language_model.embed_tokens")
    vis = c.sub("vision_config", "vision_config")
    g += _siglip_vision(vis, "model.vision_tower")
    vh = vis.int("hidden_size", default=768)
    g += [param("model.multi_modal_projector.mm_input_projection_weight",
                vh * summary.hidden_size, in_f=vh, out_f=summary.hidden_size),
          norm("model.multi_modal_projector.mm_soft_emb_norm", vh, bias=False, in_block=False)]
    summary = dataclasses.replace(summary, tie_word_embeddings=tie)
    return summary, g


def _siglip_vision(v: Cfg, prefix: str) -> list[ParamGroup]:
    """SiglipVisionTransformer (transformers 5.23 models/siglip/modeling_siglip.py)."""
    h = v.int("hidden_size", default=768)
    ffn = v.int("intermediate_size", default=3072)
    L = v.int("num_hidden_layers", default=12)
    ch = v.int("num_channels", default=3)
    img = v.int("image_size", default=224)
    p = v.int("patch_size", default=16)
    blk = f"{prefix}.encoder.layers.{{i}}"
    g = [param(f"{prefix}.embeddings.patch_embedding.weight", h * ch * p * p),
         param(f"{prefix}.embeddings.patch_embedding.bias", h),
         embedding(f"{prefix}.embeddings.position_embedding", (img // p) ** 2, h),
         norm(f"{blk}.layer_norm1", h, bias=True, count=L),
         linear(f"{blk}.self_attn.q_proj", h, h, bias=True, count=L),
         linear(f"{blk}.self_attn.k_proj", h, h, bias=True, count=L),
         linear(f"{blk}.self_attn.v_proj", h, h, bias=True, count=L),
         linear(f"{blk}.self_attn.out_proj", h, h, bias=True, count=L),
         norm(f"{blk}.layer_norm2", h, bias=True, count=L),
         linear(f"{blk}.mlp.fc1", h, ffn, bias=True, count=L),
         linear(f"{blk}.mlp.fc2", ffn, h, bias=True, count=L),
         norm(f"{prefix}.post_layernorm", h, bias=True, in_block=False)]
    if v.flag("vision_use_head", default=True):
        hp = f"{prefix}.head"
        # nn.MultiheadAttention keeps in_proj as bare Parameters and its out_proj is a
        # NonDynamicallyQuantizableLinear, a subclass bitsandbytes does not replace.
        g += [param(f"{hp}.probe", h),
              param(f"{hp}.attention.in_proj_weight", 3 * h * h),
              param(f"{hp}.attention.in_proj_bias", 3 * h),
              linear(f"{hp}.attention.out_proj", h, h, bias=True, in_block=False,
                     quantizable=False),
              norm(f"{hp}.layernorm", h, bias=True, in_block=False),
              linear(f"{hp}.mlp.fc1", h, ffn, bias=True, in_block=False),
              linear(f"{hp}.mlp.fc2", ffn, h, bias=True, in_block=False)]
    return g


def build_qwen_v1(c: Cfg, task: str, num_labels: int) -> tuple[Summary, list[ParamGroup]]:
    """QWenLMHeadModel (remote code; see the module docstring for the source)."""
    # Defaults of the published configuration_qwen.py (QWenConfig.__init__).
    h = c.int("hidden_size", default=4096)
    L = c.int("num_hidden_layers", default=32)
    a = c.int("num_attention_heads", default=32)
    kvc = c.int("kv_channels", default=128)
    ffn2 = c.int("intermediate_size", default=22016) // 2  # QWenMLP: one SwiGLU branch
    V = c.int("vocab_size", default=151_936)
    bias = not c.flag("no_bias", default=True)
    tie = c.flag("tie_word_embeddings", default=False)
    proj = kvc * a
    blk = "transformer.h.{i}"
    g = [embedding("transformer.wte", V, h),
         norm(f"{blk}.ln_1", h, bias=False, count=L),
         linear(f"{blk}.attn.c_attn", h, 3 * proj, bias=True, count=L),
         linear(f"{blk}.attn.c_proj", h, proj, bias=bias, count=L),
         norm(f"{blk}.ln_2", h, bias=False, count=L),
         linear(f"{blk}.mlp.w1", h, ffn2, bias=bias, count=L),
         linear(f"{blk}.mlp.w2", h, ffn2, bias=bias, count=L),
         linear(f"{blk}.mlp.c_proj", ffn2, h, bias=bias, count=L),
         norm("transformer.ln_f", h, bias=False, in_block=False),
         lm_head("lm_head", h, V, tied_to="transformer.wte" if tie else None)]
    summary = Summary(
        family="llama", hidden_size=h, num_hidden_layers=L, num_attention_heads=a,
        num_key_value_heads=a, head_dim=kvc, intermediate_size=ffn2, vocab_size=V,
        max_position_embeddings=c.int("max_position_embeddings", "seq_length", default=8192),
        tie_word_embeddings=tie, gated_mlp=True, remote_code=True,
        # modeling_qwen.py: lm_logits[..., :-1, :].contiguous() -> CrossEntropyLoss, no upcast
        loss="shift")
    return summary, g
