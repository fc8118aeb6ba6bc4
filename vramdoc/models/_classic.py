"""Parameter inventories of GPT-style decoders and BERT-style encoders.

Shapes and names follow transformers 5.23 ``models/<type>/modeling_<type>.py``:

- gpt2: ``Conv1D`` layers (weight stored (in, out); listed here as the equivalent Linear),
  learned positions ``wpe``, LayerNorms with bias, MLP width ``n_inner`` (default 4h).
- gpt_bigcode: as gpt2 with nn.Linear and multi-query ``c_attn`` = h + 2 * kv_dim rows,
  kv_dim = head_dim when ``multi_query`` else h.
- gpt_neox: fused ``query_key_value`` (3h), biases (``attention_bias``, default True).
- falcon: ``query_key_value`` rows = (2 kv + a) hd (new decoder architecture), h + 2 hd
  (multi-query) or 3h; ``FalconLinear`` is an nn.Linear *subclass*, which
  ``replace_with_bnb_linear`` (``type(module) is nn.Linear``) does not quantize.
- opt: learned positions with 2 extra rows (``OPTLearnedPositionalEmbedding.offset = 2``),
  ``project_in/out`` when ``word_embed_proj_dim != hidden_size``.
- bloom: ALiBi (no position table), ``word_embeddings_layernorm``, MLP width 4h.
- bert / roberta (sequence classification): embeddings with token types, post-LN blocks,
  BERT's ``pooler`` + ``classifier``; RoBERTa's ``classifier.dense`` + ``classifier.out_proj``.
"""

from __future__ import annotations

from dataclasses import replace

from vramdoc.models._cfg import (
    Builder,
    Cfg,
    Summary,
    embedding,
    linear,
    lm_head,
    norm,
    score_head,
)
from vramdoc.models.spec import HEAD, ParamGroup

SEQ_CLS = "sequence-classification"


def _head(task: str, h: int, V: int, num_labels: int, tie: bool, embed: str) -> ParamGroup:
    if task == SEQ_CLS:
        return score_head("score", h, num_labels)
    return lm_head("lm_head", h, V, tied_to=embed if tie else None)


def _gpt_summary(family: str, h: int, L: int, a: int, kv: int, ffn: int, V: int, pos: int,
                 tie: bool) -> Summary:
    return Summary(family=family, hidden_size=h, num_hidden_layers=L, num_attention_heads=a,
                   num_key_value_heads=kv, head_dim=h // a, intermediate_size=ffn, vocab_size=V,
                   max_position_embeddings=pos, tie_word_embeddings=tie, gated_mlp=False)


def build_gpt2(c: Cfg, task: str, num_labels: int) -> tuple[Summary, list[ParamGroup]]:
    """GPT2LMHeadModel / GPT2ForSequenceClassification."""
    return _gpt2_like(c, task, num_labels, bigcode=False)


def build_gpt_bigcode(c: Cfg, task: str, num_labels: int) -> tuple[Summary, list[ParamGroup]]:
    """GPTBigCodeForCausalLM (santacoder, starcoder)."""
    return _gpt2_like(c, task, num_labels, bigcode=True)


def _gpt2_like(c: Cfg, task: str, num_labels: int,
               bigcode: bool) -> tuple[Summary, list[ParamGroup]]:
    h = c.int("n_embd", "hidden_size", default=768)
    L = c.int("n_layer", "num_hidden_layers", default=12)
    a = c.int("n_head", "num_attention_heads", default=12)
    V = c.int("vocab_size", default=50257)
    P = c.int("n_positions", "max_position_embeddings", default=1024)
    ffn = c.int("n_inner", default=4 * h)
    tie = c.flag("tie_word_embeddings", default=True)
    if c.flag("add_cross_attention", default=False):
        c.problems.append("add_cross_attention (encoder-decoder GPT-2) is not supported")
    mq = bigcode and c.flag("multi_query", default=True)
    kv_rows = (h // a) if mq else h
    blk = "transformer.h.{i}"
    g = [embedding("transformer.wte", V, h),
         embedding("transformer.wpe", P, h),
         norm(f"{blk}.ln_1", h, bias=True, count=L),
         linear(f"{blk}.attn.c_attn", h, h + 2 * kv_rows, bias=True, count=L),
         linear(f"{blk}.attn.c_proj", h, h, bias=True, count=L),
         norm(f"{blk}.ln_2", h, bias=True, count=L),
         linear(f"{blk}.mlp.c_fc", h, ffn, bias=True, count=L),
         linear(f"{blk}.mlp.c_proj", ffn, h, bias=True, count=L),
         norm("transformer.ln_f", h, bias=True, in_block=False),
         _head(task, h, V, num_labels, tie, "transformer.wte")]
    return _gpt_summary("gpt", h, L, a, 1 if mq else a, ffn, V, P, tie), g


def build_gpt_neox(c: Cfg, task: str, num_labels: int) -> tuple[Summary, list[ParamGroup]]:
    """GPTNeoXForCausalLM (GPT-NeoX-20B, Pythia)."""
    # GPTNeoXConfig defaults are GPT-NeoX-20B's numbers.
    h = c.int("hidden_size", default=6144)
    L = c.int("num_hidden_layers", default=44)
    a = c.int("num_attention_heads", default=64)
    ffn = c.int("intermediate_size", default=24576)
    V = c.int("vocab_size", default=50432)
    ab = c.flag("attention_bias", default=True)
    tie = c.flag("tie_word_embeddings", default=False)
    blk = "gpt_neox.layers.{i}"
    g = [embedding("gpt_neox.embed_in", V, h),
         norm(f"{blk}.input_layernorm", h, bias=True, count=L),
         norm(f"{blk}.post_attention_layernorm", h, bias=True, count=L),
         linear(f"{blk}.attention.query_key_value", h, 3 * h, bias=ab, count=L),
         linear(f"{blk}.attention.dense", h, h, bias=ab, count=L),
         linear(f"{blk}.mlp.dense_h_to_4h", h, ffn, bias=True, count=L),
         linear(f"{blk}.mlp.dense_4h_to_h", ffn, h, bias=True, count=L),
         norm("gpt_neox.final_layer_norm", h, bias=True, in_block=False),
         _head(task, h, V, num_labels, tie, "gpt_neox.embed_in")]
    family = "parallel" if c.flag("use_parallel_residual", default=True) else "gpt"
    pos = c.int("max_position_embeddings", default=2048)
    return _gpt_summary(family, h, L, a, a, ffn, V, pos, tie), g


def build_falcon(c: Cfg, task: str, num_labels: int) -> tuple[Summary, list[ParamGroup]]:
    """FalconForCausalLM: every projection is a FalconLinear (not quantized by bnb)."""
    h = c.int("hidden_size", "n_embed", default=4544)
    L = c.int("num_hidden_layers", default=32)
    a = c.int("num_attention_heads", default=71)
    V = c.int("vocab_size", default=65024)
    ffn = c.int("ffn_hidden_size", default=4 * h)
    hd = h // a
    new = c.flag("new_decoder_architecture", default=False)
    mq = c.flag("multi_query", default=True)
    parallel = c.flag("parallel_attn", default=True)
    bias = c.flag("bias", default=False)
    tie = c.flag("tie_word_embeddings", default=True)
    kv_heads = c.int("num_kv_heads", default=a)
    if new:
        qkv = (2 * kv_heads + a) * hd
    elif mq:
        qkv, kv_heads = h + 2 * hd, 1
    else:
        qkv = 3 * h
    n_ln = c.get("num_ln_in_parallel_attn", default=2 if new else 1)
    blk = "transformer.h.{i}"
    g = [embedding("transformer.word_embeddings", V, h)]
    if not parallel and not new:
        g += [norm(f"{blk}.input_layernorm", h, bias=True, count=L),
              norm(f"{blk}.post_attention_layernorm", h, bias=True, count=L)]
    elif n_ln == 2:
        g += [norm(f"{blk}.ln_attn", h, bias=True, count=L),
              norm(f"{blk}.ln_mlp", h, bias=True, count=L)]
    else:
        g.append(norm(f"{blk}.input_layernorm", h, bias=True, count=L))
    g += [linear(f"{blk}.self_attention.query_key_value", h, qkv, bias=bias, count=L,
                 quantizable=False),
          linear(f"{blk}.self_attention.dense", h, h, bias=bias, count=L, quantizable=False),
          linear(f"{blk}.mlp.dense_h_to_4h", h, ffn, bias=bias, count=L, quantizable=False),
          linear(f"{blk}.mlp.dense_4h_to_h", ffn, h, bias=bias, count=L, quantizable=False),
          norm("transformer.ln_f", h, bias=True, in_block=False),
          _head(task, h, V, num_labels, tie, "transformer.word_embeddings")]
    family = "parallel" if (parallel or new) else "gpt"
    pos = c.int("max_position_embeddings", default=2048)
    return _gpt_summary(family, h, L, a, kv_heads, ffn, V, pos, tie), g


def build_opt(c: Cfg, task: str, num_labels: int) -> tuple[Summary, list[ParamGroup]]:
    """OPTForCausalLM."""
    h = c.int("hidden_size", default=768)
    L = c.int("num_hidden_layers", default=12)
    a = c.int("num_attention_heads", default=12)
    V = c.int("vocab_size", default=50272)
    ffn = c.int("ffn_dim", default=3072)
    P = c.int("max_position_embeddings", default=2048)
    proj = c.int("word_embed_proj_dim", default=h)
    bias = c.flag("enable_bias", default=True)
    affine = c.flag("layer_norm_elementwise_affine", default=True)
    tie = c.flag("tie_word_embeddings", default=True)
    d = "model.decoder"
    blk = f"{d}.layers.{{i}}"
    g = [embedding(f"{d}.embed_tokens", V, proj),
         embedding(f"{d}.embed_positions", P + 2, h)]
    if proj != h:
        # Outside the blocks, not tied, not last: replace_with_bnb_linear converts them.
        g += [linear(f"{d}.project_out", h, proj, bias=False, in_block=False),
              linear(f"{d}.project_in", proj, h, bias=False, in_block=False)]
    if c.flag("do_layer_norm_before", default=True) and not c.flag(
            "_remove_final_layer_norm", default=False) and affine:
        g.append(norm(f"{d}.final_layer_norm", h, bias=True, in_block=False))
    g += [linear(f"{blk}.self_attn.{p}", h, h, bias=bias, count=L)
          for p in ("k_proj", "v_proj", "q_proj", "out_proj")]
    g.append(linear(f"{blk}.fc1", h, ffn, bias=bias, count=L))
    if affine:  # LayerNorm(elementwise_affine=False) has no parameters
        g += [linear(f"{blk}.fc2", ffn, h, bias=bias, count=L),
              norm(f"{blk}.self_attn_layer_norm", h, bias=True, count=L),
              norm(f"{blk}.final_layer_norm", h, bias=True, count=L)]
    elif task == SEQ_CLS or not tie or bias:
        g.append(linear(f"{blk}.fc2", ffn, h, bias=bias, count=L))
    else:
        # No norm parameters, no biases and a tied head: the model's last parameter is the
        # last layer's fc2.weight, whose module get_keys_to_not_convert keeps unquantized.
        g += [linear(f"{blk}.fc2", ffn, h, bias=False, count=L - 1),
              linear(f"{d}.layers.{L - 1}.fc2", ffn, h, bias=False, quantizable=False)]
    g.append(_head(task, proj, V, num_labels, tie, f"{d}.embed_tokens"))
    return _gpt_summary("gpt", h, L, a, a, ffn, V, P, tie), g


def build_bloom(c: Cfg, task: str, num_labels: int) -> tuple[Summary, list[ParamGroup]]:
    """BloomForCausalLM (ALiBi positions: no position table)."""
    h = c.int("hidden_size", "n_embed", default=64)
    L = c.int("n_layer", "num_hidden_layers", default=2)
    a = c.int("n_head", "num_attention_heads", default=8)
    V = c.int("vocab_size", default=250880)
    tie = c.flag("tie_word_embeddings", default=True)
    ffn = 4 * h  # BloomMLP: dense_h_to_4h = Linear(h, 4h)
    blk = "transformer.h.{i}"
    g = [embedding("transformer.word_embeddings", V, h),
         norm("transformer.word_embeddings_layernorm", h, bias=True, in_block=False),
         norm(f"{blk}.input_layernorm", h, bias=True, count=L),
         linear(f"{blk}.self_attention.query_key_value", h, 3 * h, bias=True, count=L),
         linear(f"{blk}.self_attention.dense", h, h, bias=True, count=L),
         norm(f"{blk}.post_attention_layernorm", h, bias=True, count=L),
         linear(f"{blk}.mlp.dense_h_to_4h", h, ffn, bias=True, count=L),
         linear(f"{blk}.mlp.dense_4h_to_h", ffn, h, bias=True, count=L),
         norm("transformer.ln_f", h, bias=True, in_block=False),
         _head(task, h, V, num_labels, tie, "transformer.word_embeddings")]
    # ALiBi has no learned length limit; BLOOM was trained on 2048-token sequences
    # (BigScience, arXiv 2211.05100, section 3.5), which configs record as seq_length.
    pos = c.int("seq_length", default=2048)
    # BloomPreTrainedModel (transformers 5.23) supports neither SDPA nor FlashAttention (ALiBi)
    return replace(_gpt_summary("gpt", h, L, a, a, ffn, V, pos, tie),
                   attn_implementations=("eager",)), g


def build_encoder(prefix: str) -> Builder:
    """BertForSequenceClassification (prefix "bert") or RobertaForSequenceClassification."""

    def build(c: Cfg, task: str, num_labels: int) -> tuple[Summary, list[ParamGroup]]:
        h = c.int("hidden_size", default=768)
        L = c.int("num_hidden_layers", default=12)
        a = c.int("num_attention_heads", default=12)
        ffn = c.int("intermediate_size", default=3072)
        V = c.int("vocab_size", default=30522 if prefix == "bert" else 50265)
        P = c.int("max_position_embeddings", default=512)
        T = c.int("type_vocab_size", default=2)
        e = f"{prefix}.embeddings"
        blk = f"{prefix}.encoder.layer.{{i}}"
        g = [embedding(f"{e}.word_embeddings", V, h),
             embedding(f"{e}.position_embeddings", P, h),
             embedding(f"{e}.token_type_embeddings", T, h),
             norm(f"{e}.LayerNorm", h, bias=True, in_block=False)]
        g += [linear(f"{blk}.attention.self.{p}", h, h, bias=True, count=L)
              for p in ("query", "key", "value")]
        g += [linear(f"{blk}.attention.output.dense", h, h, bias=True, count=L),
              norm(f"{blk}.attention.output.LayerNorm", h, bias=True, count=L),
              linear(f"{blk}.intermediate.dense", h, ffn, bias=True, count=L),
              linear(f"{blk}.output.dense", ffn, h, bias=True, count=L),
              norm(f"{blk}.output.LayerNorm", h, bias=True, count=L)]
        # bitsandbytes converts these heads too: the model's last parameter is a *bias*
        # ("classifier.bias"), and get_keys_to_not_convert only strips ".weight", so the
        # skip pattern names no module (quantizers/base.py, transformers 5.23).
        if prefix == "bert":
            g += [linear("bert.pooler.dense", h, h, bias=True, in_block=False, kind=HEAD),
                  linear("classifier", h, num_labels, bias=True, in_block=False, kind=HEAD)]
        else:
            g += [linear("classifier.dense", h, h, bias=True, in_block=False, kind=HEAD),
                  linear("classifier.out_proj", h, num_labels, bias=True, in_block=False,
                         kind=HEAD)]
        summary = Summary(family="encoder", hidden_size=h, num_hidden_layers=L,
                          num_attention_heads=a, num_key_value_heads=a, head_dim=h // a,
                          intermediate_size=ffn, vocab_size=V, max_position_embeddings=P,
                          tie_word_embeddings=False, gated_mlp=False, is_encoder=True)
        return summary, g

    return build
