"""ModelSpec and ParamGroup: the architecture facts the estimator needs, with no torch.

A ModelSpec is derived from a Hugging Face ``config.json`` mapping (shipped in the offline
catalog, or read from a local file). ``param_groups`` lists every parameter tensor of the
model as HF builds it, grouped by identical role across layers; the sum of
``ParamGroup.numel`` over all groups equals ``sum(p.numel() for p in model.parameters())``
of the model built with ``AutoModelForCausalLM.from_config`` (or the task's auto class),
tied weights counted once. Tests check this on the ``meta`` device for every catalog entry.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Every attn_implementation a model may accept (vramdoc.setup.ATTN_IMPLEMENTATIONS).
ATTN_ALL = ("eager", "sdpa", "flash_attention_2", "flash_attention_3", "flex_attention")

# ParamGroup.kind values
LINEAR = "linear"  # nn.Linear (or GPT-2 Conv1D) inside the blocks or in the head: weight + bias
EMBEDDING = "embedding"  # token / position / token-type embeddings
NORM = "norm"  # LayerNorm / RMSNorm weights (+ biases)
EXPERTS = "experts"  # fused 3-D MoE expert parameter (transformers 5), shape (E, out, in)
ROUTER = "router"  # MoE gate (Mixtral: MixtralTopKRouter, a bare weight, not an nn.Linear,
#                    so bitsandbytes never converts it)
HEAD = "head"  # lm_head / classifier / pooler Linear outside the blocks
OTHER = "other"  # a bare nn.Parameter (vision probe, conv patch weight, projector matrix);
#                  like EXPERTS, its path names the parameter itself, not a module


@dataclass(frozen=True)
class ParamGroup:
    """One parameter role, repeated ``count`` times (once per layer for block modules).

    Attributes:
        path: HF module path with ``{i}`` for the layer index, e.g.
            ``model.layers.{i}.self_attn.q_proj``. For a fused expert parameter the path
            names the parameter itself, e.g. ``model.layers.{i}.mlp.experts.gate_up_proj``.
        leaf: the last path component PEFT's ``target_modules`` matches, e.g. ``q_proj``.
        kind: one of LINEAR, EMBEDDING, NORM, EXPERTS, ROUTER, HEAD, OTHER.
        in_features / out_features: for LINEAR/ROUTER/HEAD, the Linear's in and out sizes
            (for GPT-2 Conv1D, the equivalent Linear's). For EXPERTS: per-expert in/out.
        weight_numel: elements of the weight tensor per copy.
        bias_numel: elements of the bias per copy (0 when bias=False).
        count: number of copies in the model (num_hidden_layers for per-layer modules).
        n_experts: for EXPERTS, the number of experts fused in the tensor (else 1).
        in_block: True for modules inside the repeated transformer blocks.
        quantizable: True exactly for the modules transformers 5 (5.23) hands to bitsandbytes
            (``replace_with_bnb_linear``: ``type(module) is nn.Linear`` or GPT-2 Conv1D, minus
            tied weights, the output embedding and the module of the model's last parameter).
            That is the blocks' nn.Linear layers, but also BERT's pooler/classifier and OPT's
            project_in/out; never embeddings, norms, lm_head, ``score``, Mixtral's router and
            fused experts (not nn.Linear), Falcon's ``FalconLinear`` (an nn.Linear subclass).
            GPTQ/AWQ quantize the blocks' linear layers: use ``kind == LINEAR and in_block``.
        tied_to: path of the parameter this one shares storage with (lm_head tied to the
            embedding), in which case it adds no memory and is not counted in numel.
        all_linear: whether PEFT's ``all-linear`` wraps it: for ROUTER / EXPERTS (peft 0.21
            does for Mixtral's router and fused experts, not for Qwen2-MoE's, as built), and
            for a LINEAR PEFT leaves out (DeepSeek-V2's dense and shared-expert MLPs).
    """

    path: str
    leaf: str
    kind: str
    in_features: int = 0
    out_features: int = 0
    weight_numel: int = 0
    bias_numel: int = 0
    count: int = 1
    n_experts: int = 1
    in_block: bool = False
    quantizable: bool = False
    tied_to: str | None = None
    all_linear: bool = True

    @property
    def numel(self) -> int:
        """Parameters this group adds to the model (0 when tied)."""
        if self.tied_to is not None:
            return 0
        return (self.weight_numel + self.bias_numel) * self.count


@dataclass(frozen=True)
class ModelSpec:
    """Architecture of one model, as the estimator needs it.

    Numbers use Hugging Face config names; symbols in formulas follow Korthikanti et al.
    (h = hidden_size, a = num_attention_heads, L = num_hidden_layers, V = vocab_size).
    """

    name: str  # catalog short name, e.g. "llama-2-7b" (or the path / repo id for others)
    hf_id: str  # official Hugging Face repo id, e.g. "meta-llama/Llama-2-7b-hf"
    model_type: str  # config.json model_type: llama, mistral, mixtral, qwen2, gpt2, bert ...
    family: str  # activation family: "llama" (SwiGLU + RMSNorm, rotary), "gpt" (GELU MLP +
    #              LayerNorm), "moe" (SwiGLU experts), "encoder" (BERT-like), "parallel"
    #              (GPT-NeoX/Falcon parallel attention+MLP)
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    intermediate_size: int  # per expert for MoE
    vocab_size: int
    max_position_embeddings: int
    tie_word_embeddings: bool
    gated_mlp: bool  # SwiGLU/GeGLU (gate, up, down) vs plain two-matrix MLP
    num_local_experts: int = 0  # 0 for dense models
    num_experts_per_tok: int = 0
    is_encoder: bool = False  # BERT / RoBERTa: bidirectional encoder, no causal LM head
    checkpoint_dtype: str = "float32"  # config.json torch_dtype/dtype ("auto" resolves to it)
    sliding_window: int | None = None
    source: str = ""  # where the config numbers came from (URL@commit or file path)
    config: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    # config: the HF config.json mapping needed to rebuild the model with transformers
    # (model_type included). The probe builds from it; the estimator never reads it.
    # AutoConfig.for_model(model_type, **config) raises TypeError when config holds
    # model_type too: pass {k: v for k, v in config.items() if k != "model_type"}.
    remote_code: bool = False  # True when transformers has no built-in class (Qwen v1)
    aliases: tuple[str, ...] = ()
    n_params: int = 0  # exact total, = sum(g.numel for g in param_groups(spec))
    # How the causal-LM loss is computed: "transformers" (the library's ForCausalLMLoss, which
    # upcasts logits to fp32) or "shift" (the model's own code: CrossEntropyLoss on a
    # contiguous shifted copy of the logits in their dtype, e.g. Qwen v1's modeling_qwen.py).
    loss: str = "transformers"
    # attn_implementation values transformers accepts for this model (its _supports_sdpa /
    # _supports_flash_attn flags): Bloom is eager-only, Gemma 2 has no SDPA (softcapping).
    attn_implementations: tuple[str, ...] = ATTN_ALL
    # What one block keeps for backward depends on these (vramdoc.models._block):
    hidden_act: str = "silu"
    attention_dropout: float = 0.0
    hidden_dropout: float = 0.0
    embedding_dropout: float = 0.0
    rotary: bool = True  # rotary q/k (new tensors) vs learned/ALiBi positions
    qk_norm: bool = False  # per-head RMSNorm on q and k (Qwen3, Gemma 3)
    shared_block_norm: bool = False  # parallel block with one norm for attention and MLP
    use_cache: bool = True  # config.use_cache: a forward without checkpointing fills a KV cache,
    #                         whose torch.cat copies of k and v are what attention keeps
    attn_softcap: bool = False  # tanh soft-capping of the attention scores (Gemma 2)
    final_softcap: bool = False  # tanh soft-capping of the logits (Gemma 2)
    sandwich_norms: bool = False  # norms after attention and MLP too, 4 per block (Gemma 2/3)
    norm_unit_offset: bool = False  # Gemma RMSNorm: normed * (1 + weight) in fp32
    sliding_layers: int = 0  # layers with a sliding-window attention (masked when s >= window)
    always_mask: bool = False  # the causal mask is always materialized (Falcon)
    post_norms_only: bool = False  # norms after attention and MLP, none before (OLMo 2)
    norm_fp32_product: bool = False  # RMSNorm returns (weight * normed).to(dtype) (OLMo 2)
    qk_norm_full: bool = False  # q/k norms span the whole projection, not one head (OLMo 2)
    sdpa_repeat_kv: bool = True  # transformers' sdpa_attention_forward repeats k/v for GQA
    #                              under a mask; False: the model calls SDPA with fewer k/v heads
    layer_norm: bool = False  # nn.LayerNorm (mean, rstd; fp32 under CUDA autocast) in a
    #                           llama-like block (Phi-3.5-MoE), not an RMSNorm
    attn_sinks: bool = False  # gpt-oss eager attention: a learned sink column joins the
    #                           scores, softmax runs in the scores' dtype over s + 1 columns
    # non-persistent buffers the model keeps on the device (not parameters): GPTBigCodeModel's
    # boolean causal mask of n_positions x n_positions (transformers 5.24
    # modeling_gpt_bigcode.py, ``self.bias = nn.Buffer(torch.tril(...), persistent=False)``)
    buffer_bytes: int = 0
    sdpa_out_copy: bool = False  # SDPA's output is copied by transpose().contiguous() (its
    #                              layout follows a contiguous q: GPT-NeoX's rotary cat)
    moe_act: str = "swiglu"  # routed experts' activation: "swiglu" (act(gate) * up), or
    #                          "clamped_swiglu" (gpt-oss GptOssExperts._apply_gate)
    shared_expert_first: bool = False  # the shared expert runs before the router (Qwen2-MoE)
    router: str = "softmax_topk"  # how routing weights are made (vramdoc.models._block)
    expert_bias: bool = False  # experts carry biases, gathered per routed token (gpt-oss)
    attn_output_held: bool = False  # the layer holds its attention output through the MLP
    act_backward_temps: int = 0  # the MLP activation's backward: temporaries held at once
    returns_attn_weights: bool = False  # the decoder layer returns its attention weights
    probs_to_query_dtype: bool = True  # eager softmax's output is cast to q's dtype
    mla: tuple[int, ...] = ()  # DeepSeek-V2 multi-head latent attention: (q_lora_rank or 0,
    #                            kv_lora_rank, qk_nope_head_dim, qk_rope_head_dim, v_head_dim)
    # Bloom (transformers 5.24 modeling_bloom.py): BloomModel.word_embeddings_layernorm
    # normalises the embeddings (fp32 under CUDA autocast, so the residual stream is fp32);
    # ALiBi slopes times positions, (b*a, 1, s) in that dtype, go to every layer; BloomAttention
    # reshapes q, k and v of the interleaved query_key_value output into copies
    embedding_norm: bool = False
    alibi: bool = False
    qkv_copies: bool = False
    # the decoder layer returns its eager attention probabilities with the hidden states, and
    # the model's loop holds that tuple while the next layer runs: "softmax" (Falcon: the
    # softmax's own result), "probs" (Bloom: after .to(q's dtype)), "" (none)
    returned_attn: str = ""
    # the MLP's input (the second norm's output) is dropped once its first Linear ran: OPT's
    # decoder layer reassigns it inline (transformers 5.24 OPTDecoderLayer.forward). An
    # argument passed as a temporary (GPT-2's ``self.mlp(self.ln_2(h))``) stays referenced by
    # the caller's frame until the call returns (traced: gpt2 ln_2 output live in c_proj)
    mlp_input_freed: bool = False
    # learned position embeddings the model's forward binds to a local through the layer loop
    # (transformers 5.24): 1 = (1, s, h) from shared position ids (GPT2Model / GPTBigCodeModel
    # ``position_embeds = self.wpe(position_ids)``), 2 = (b, s, h) from the attention mask's
    # cumsum (OPTDecoder ``pos_embeds``), 0 = none
    position_embeds: int = 0
    # inputs_embeds scaled after the embedding module (Granite's embedding_multiplier): under
    # PEFT's enable_input_require_grads the embedding's own output is a leaf, kept by its
    # AccumulateGrad node through backward next to the scaled copy the first block reads
    embeddings_scaled_outside: bool = False
    # attention's and the MLP's outputs scaled by a python scalar before each residual add
    # (Granite's residual_multiplier): in backward each branch gets its own gradient tensor
    residual_multiplier: bool = False
    # fp32 copies of its input's size a block norm computed as an op chain keeps for the
    # input's gradient, measured on the built module (vramdoc.probe.generic.block_structure;
    # generic specs only): 2 for CohereLayerNorm's two ``x - mean``; 0: the family's norm
    norm_fp32_copies: int = 0
    # what a sequential layer's frame still holds while its MLP runs, read off the built
    # module (generic specs): "attn_in" (the first norm's output), "attn_out" (the
    # attention's output); a layer that rebinds its locals (Llama) holds neither
    mlp_frame_holds: tuple[str, ...] = ()
    generic: bool = False  # a model_type vramdoc has no builder for, inventoried from the
    #                        module tree transformers builds (vramdoc.models.generic):
    #                        activations follow a generic block, estimates say so
