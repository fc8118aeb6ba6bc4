"""Saved activations per transformer block, the logits / cross-entropy chain, checkpointing.

The block is walked op by op with ``vramdoc.estimate.graph`` (see there for the per-op
rules), using the block's real Linear shapes from the parameter inventory, so GQA / MQA,
fused projections, gated MLPs and MoE routing come from the architecture. Symbols follow
Korthikanti et al. 2022 (arXiv 2205.05198): b micro-batch, s sequence, h hidden, a heads,
L layers, V vocabulary; f is the MLP width.

What each layer of a Hugging Face decoder keeps, checked against traced steps (tests):
- RMSNorm (LlamaRMSNorm, transformers 5): upcasts its input to fp32 and keeps it (4bsh) with
  the fp32 rsqrt (4bs); keeps the normalised input in the input dtype when its weight trains.
- Linear: keeps its input when its weight trains (full fine-tune); PEFT LoRA keeps the input
  cast to the adapter dtype (fp32) per wrapped module, plus A's output (b*s*r).
- attention: q and k after rotary, v, the output and an fp32 log-sum-exp (fused kernels) or the
  fp32 softmax of b*a*s*s (eager).
- SwiGLU MLP: the gate output (for SiLU), SiLU's output and the up output (for the product),
  and the product when down_proj trains.

Gradient checkpointing (transformers 5 default: non-reentrant) keeps each block's input
(b*s*h in the residual dtype) and recomputes one block at a time in backward.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from vramdoc.estimate.graph import Graph, T
from vramdoc.models.spec import EMBEDDING, EXPERTS, HEAD, LINEAR, ROUTER, ModelSpec, ParamGroup

# Activation functions whose HF implementation is a chain of python ops (NewGELUActivation:
# 0.5*x*(1+tanh(sqrt(2/pi)*(x+0.044715*x**3)))) keep 4 tensors; single-kernel ones keep 1.
# bitsandbytes' 4-bit blocksize (Linear4bit / quantize_4bit default): one absmax per 64 weights
BNB_4BIT_BLOCK = 64
_ACT_SAVED_TENSORS = {"gelu_new": 4, "gelu_fast": 4, "quick_gelu": 2}
_ATTN_OUT_LEAVES = {"o_proj", "out_proj", "c_proj", "dense", "wo", "out_lin"}
_MLP_OUT_LEAVES = {"down_proj", "fc2", "c_proj", "dense_4h_to_h", "w2_out", "dense"}


@dataclass(frozen=True)
class ActSetup:
    """Everything the block walk needs, resolved from the setup once."""

    b: int
    s: int
    r: int  # residual-stream element bytes (4 when weights are fp32, incl. k-bit upcast)
    weight_elem: int  # bytes per element of the unquantized weights
    autocast: bool  # Trainer bf16/fp16 with some fp32 weights in play
    full: bool  # dense weights train (full fine-tune)
    lora: frozenset[str]  # LoRA-wrapped leaves
    lora_r: int
    lora_dropout: float
    quantized: frozenset[str]  # leaves whose base is a k-bit layer (output cast to input dtype)
    attn: str  # eager | sdpa | flash_attention_2 | ...
    adapter_elem: int = 4
    kv_cache: bool = False  # the forward fills a KV cache (config.use_cache, no checkpointing)
    # from_pretrained(use_cache=False) turns the config's cache off (None: the config's)
    use_cache: bool | None = None
    # the cache copies what it is given (stack.cache_copies: transformers >= 4.56), else it
    # keeps the very key and value tensors
    cache_copies: bool = True
    # a checkpointed forward still fills the cache: each layer's present, a view of its fused
    # QKV output, stays in the returned output (stack.checkpointing_keeps_presents)
    presents_held: bool = False
    dora: bool = False  # LoRA with use_dora: weight-decomposed adapters
    lora_skip: frozenset[str] = frozenset()  # paths of unwrapped roles with a wrapped leaf name
    kbit: bool = False  # the setup asks for a quantized base (even where no layer is quantized)
    # the k-bit bases dequantize a 16-bit weight for every GEMM, forward and backward:
    # bitsandbytes 4-bit (NF4 / FP4) layers, and GPTQ's QuantLinear (the triton kernels
    # auto-gptq / gptqmodel train with: dequantize, then matmul)
    dequant_gemm: bool = False
    double_quant: bool = False  # bnb_4bit_use_double_quant: the absmax is quantized again
    # MoE experts are fused 3-D parameters run by grouped_mm_experts_forward (transformers
    # >= 5), not per-expert nn.Linear modules in a python loop (stack.experts_are_linear)
    fused_experts: bool = True
    emb_elem: int = 0  # the input embeddings' output dtype where it is not r's (Bloom), else 0


@dataclass(frozen=True)
class BlockLinears:
    attn_in: tuple[ParamGroup, ...]
    attn_out: ParamGroup | None
    mlp_in: tuple[ParamGroup, ...]
    mlp_out: ParamGroup | None
    router: ParamGroup | None
    experts: tuple[ParamGroup, ...]
    # Qwen2-MoE's shared expert (gate_proj, up_proj, down_proj) and its sigmoid gate
    shared: tuple[ParamGroup, ...] = ()


def block_linears(groups: tuple[ParamGroup, ...]) -> BlockLinears:
    """Sort a block's Linear roles into attention in/out and MLP in/out by their paths."""
    attn_in: list[ParamGroup] = []
    mlp_in: list[ParamGroup] = []
    attn_out = mlp_out = router = None
    experts: list[ParamGroup] = []
    shared: list[ParamGroup] = []
    for g in groups:
        if not g.in_block:
            continue
        if ".shared_expert" in g.path and g.kind == LINEAR:
            shared.append(g)
            continue
        if g.kind == EXPERTS:
            experts.append(g)
            continue
        if g.kind == ROUTER:
            router = g
            continue
        if g.kind != LINEAR:
            continue
        path = g.path.lower()
        is_attn = any(k in path for k in ("attn", "attention"))
        if is_attn and not path.endswith("output.dense") or ".attention.dense" in path:
            if g.leaf in _ATTN_OUT_LEAVES or path.endswith("attention.dense"):
                attn_out = g
            else:
                attn_in.append(g)
        elif path.endswith("attention.output.dense"):
            attn_out = g
        else:
            if g.leaf in _MLP_OUT_LEAVES or path.endswith("output.dense"):
                # BERT: intermediate.dense is the input, output.dense the output
                if "intermediate" in path:
                    mlp_in.append(g)
                else:
                    mlp_out = g
            else:
                mlp_in.append(g)
    return BlockLinears(tuple(attn_in), attn_out, tuple(mlp_in), mlp_out, router, tuple(experts),
                        tuple(shared))


class BlockWalker:
    """Walks one block of ``spec`` and records what autograd keeps."""

    def __init__(self, spec: ModelSpec, lin: BlockLinears, st: ActSetup,
                 masked: bool = False) -> None:
        self.spec = spec
        self.masked = masked  # SDPA gets an explicit mask (sliding window, Falcon)
        self._act_out: T | None = None  # the MLP activation's output (encoders' peak)
        self._attn_weights: T | None = None  # eager attention's returned weights (encoders)
        self._held_weights: T | None = None  # ... and a decoder's (see attention)
        # what the layer's frames hold beyond _ctx, counted by the k-bit instants only
        # (kbit_base, kbit_adapter): the attention weights and, where spec.attn_output_held,
        # the attention output
        self._kbit_held: list[T] = []
        # a parallel block's attention output gradient, where the residual sum cast it to
        # the output's own dtype: made before the block's recomputation (see _kbit_recompute)
        self.kbit_attn_grad = 0
        self.recompute_end = 0  # encoders: live at the end of the recomputed forward
        # The instant the MLP's backward peaks (see mlp_backward_extra): the gradient buffers
        # live then, and the saved bytes recorded from the MLP's output projection on (freed
        # by then). None where the block has no dense MLP walked this way (MoE).
        self.mlp_bwd_buffers: int | None = None
        self.mlp_bwd_recompute_buffers: int | None = None
        self.mlp_out_mark: int | None = None
        # eager attention's softmax backward (see attention): bytes live at that instant
        self.attn_bwd_bytes = 0
        # the KV cache's torch.cat copies of k and v that attention did not keep (it kept
        # repeat_kv's or matmul's copies instead): the cache holds them to the end of forward
        self.cache_held = 0
        # what one layer's present keeps (stack.checkpointing_keeps_presents): the fused QKV
        # output it is a view of, else the key and value
        self.present_bytes = 0
        # the element bytes of the block's output (set by the walk's caller)
        self.out_elem = 0
        # what the calling frames hold while a LoRA layer runs (block input, residual, the
        # MLP's input) and the decoder model's inputs_embeds, live through the whole loop
        self._ctx: list[T] = []
        self._ctx_bytes = 0
        # what the block's frame holds beyond _ctx while a recomputation runs (a parallel
        # block's attention output and second norm output during its MLP)
        self._rec_ctx: list[T] = []
        # the largest forward-only peak inside the block (LoRA, DoRA), saved bytes included
        self.fwd_transient = 0
        # instants of the block's forward as a checkpointed block's recomputation sees them
        # (see recompute_forward_peak): (saved entries so far, live bytes, the instant saves)
        self._rec: list[tuple[int, int, bool]] = []
        self._block_in: T | None = None  # the block's input (the checkpointed tensor)
        # gradients an adapter's output makes in backward before any saved tensor is needed,
        # and the saved entries after that adapter: live through a recomputation that the
        # adapter triggers when it is the block's last saving op
        self._tail_grads = (0, -1)
        self.bwd_proxy = 0
        # k-bit (QLoRA) bases recomputed under checkpointing: the block's instants inside each
        # LoRA-wrapped k-bit Linear (see kbit_adapter); the block input's uid (the checkpointed
        # input, counted outside the block)
        self.kbit_instants: list[tuple[int, int, bool]] = []
        self._input_uid = 0
        # ... and inside the 4-bit layers' dequantizing GEMMs (kbit_base): the recomputed
        # forward's largest, and the MLP output projection's in backward
        self.kbit_fwd = 0
        self.kbit_bwd = 0
        self.mlp_out_end: int | None = None  # saved bytes once the MLP's output projection ran
        self.moe_bwd = 0  # LoRA on fused experts: their backward's peak (see moe)
        # checkpointing, a layer returning its attention probabilities: the first forward's
        # softmax instant beyond the checkpointed inputs (see attention); the block's locals
        self.ckpt_fwd_attn = 0
        self._locals: list[T] = []
        self.mlp_out_bwd = 0  # the MLP output projection's backward beyond all saved (mlp)
        # a block that ends in a norm (Gemma 2/3, OLMo 2 post_feedforward_layernorm): its
        # backward, the block's first, with all the block saved (see post_norm_backward)
        self.post_norm_bwd = 0
        # the MLP branch's own output gradient (Granite's residual_multiplier), live where
        # backward waits in the MLP's last op for the recomputation
        self.branch_grad = 0
        self._tail_holds_out_grad = False
        self.lin = lin
        self.st = st
        self.g = Graph()
        self.rows = st.b * st.s
        self.act_name = spec.hidden_act
        self.attn_dropout = spec.attention_dropout
        self.resid_dropout = spec.hidden_dropout
        self.embd_dropout = spec.embedding_dropout
        # (a norm measured as an op chain on the built module, generic specs, is no
        # native_layer_norm whatever the family)
        self.layer_norm = (spec.family in ("gpt", "encoder", "parallel") or spec.layer_norm) \
            and not spec.norm_fp32_copies

    # --- building blocks ---------------------------------------------------------------
    def norm(self, x: T, trainable: bool, dim: int = 0) -> T:
        g, st = self.g, self.st
        dim = dim or self.spec.hidden_size
        rows = x.numel // dim  # one statistic per normalised row
        if self.layer_norm:
            xs = g.cast(x, 4) if st.autocast else x
            if x.grad or trainable:
                g.save(xs)
                g.save_bytes(2 * 4 * rows)  # mean and rstd, fp32
                if st.autocast and st.weight_elem != 4:
                    # CUDA autocast's fp32 policy casts the 16-bit weight and bias too, and
                    # native_layer_norm keeps both for backward
                    g.save_bytes(2 * 4 * dim)
            return g.new(x.numel, 4 if st.autocast else x.elem, x.grad or trainable)
        if self.spec.norm_fp32_copies > 1:
            # an op-chain LayerNorm (CohereLayerNorm, transformers 5.24 modeling_cohere.py):
            # in fp32, ``(x - mean)`` is computed twice, one kept by pow, one by the product
            # with rsqrt (norm_fp32_copies, measured), with rsqrt's result; the fp32 weight
            # is kept for the input's gradient, the normalised fp32 input for the weight's
            if x.grad:
                g.save_bytes(self.spec.norm_fp32_copies * 4 * x.numel)
                g.save_bytes(4 * rows)  # rsqrt result
                g.save_bytes(4 * dim)  # weight.to(torch.float32)
            if trainable:
                g.save_bytes(4 * x.numel)
            return g.new(x.numel, x.elem, x.grad or trainable)
        xf = g.cast(x, 4)  # LlamaRMSNorm: hidden_states.to(torch.float32)
        if x.grad or trainable:
            g.save(xf)
            g.save_bytes(4 * rows)  # rsqrt result
        hn = g.new(x.numel, 4, x.grad or trainable)
        if self.spec.norm_fp32_product:
            # Olmo2RMSNorm: (weight * normed).to(input_dtype), the product in fp32
            if trainable:
                g.save(hn)
            return g.new(x.numel, x.elem, x.grad or trainable)
        if self.spec.norm_unit_offset:
            # GemmaRMSNorm: normed * (1.0 + weight.float()) in fp32, then .type_as(x)
            if x.grad or trainable:
                g.save_bytes(4 * dim)  # (1 + weight), fp32
            if trainable:
                g.save(hn)
            return g.new(x.numel, x.elem, x.grad or trainable)
        hn_c = g.cast(hn, x.elem)
        if trainable:
            g.save(hn_c)
        return g.new(x.numel, max(x.elem, st.weight_elem), x.grad or trainable)

    def linear(self, x: T, grp: ParamGroup, out_features: int | None = None) -> T:
        g, st = self.g, self.st
        n_out = out_features or grp.out_features
        quant = grp.leaf in st.quantized
        w_trains = st.full and not quant
        if st.autocast:
            if w_trains:
                g.save(g.cast(x, 2))
            if not quant and st.weight_elem == 4 and (w_trains or x.grad):
                g.save_bytes(2 * grp.weight_numel)  # autocast's bf16/fp16 copy of the weight
            out_elem = x.elem if quant else 2
        else:
            if w_trains:
                g.save(x)
            out_elem = x.elem if quant else st.weight_elem
        if not w_trains and not quant and x.grad:
            # a frozen Linear whose input needs a gradient keeps its weight (a parameter: no
            # bytes) for it, before it runs: a recomputation runs to it with its input live,
            # even past the block's last saved activation (traced: stablelm lora ckpt, the
            # recomputed block ends at down_proj with gate * up made)
            self._rec_instant(self._unsaved(*[t for t in self._ctx + self._rec_ctx
                                              if t is not self._block_in], x), saves=True)
        if quant:
            # dequantized weight (bnb gemm_4bit / backward dequantize_4bit): transient
            g.transient(2 * grp.weight_numel + 2 * self.rows * grp.in_features)
            if st.dequant_gemm:
                self.kbit_base(grp, x, n_out)
        lora = grp.leaf in st.lora and grp.path not in st.lora_skip
        if not lora and not quant:
            # recomputation: the plain Linear's output next to its input and what the frames
            # hold (traced: gpt_bigcode LoRA on c_attn, the recomputed block's peak at the
            # frozen c_proj's output, the GELU output its unsaved input, before the dropout
            # mask after it ends the recomputation)
            self._rec_instant(self._unsaved(*[t for t in self._ctx + self._rec_ctx
                                               if t is not self._block_in], x)
                              + self.rows * n_out * out_elem)
        if lora:
            xa = g.cast(x, st.adapter_elem)
            xd = g.dropout(xa, st.lora_dropout)
            # the input cast to the adapter dtype and its dropout output are both live until
            # lora_A has run (traced: llama LoRA on down_proj, the recomputed block's peak)
            g.live((xa.nbytes if xa is not x else 0) + (xd.nbytes if xd is not xa else 0))
            before_lora = g.saved_bytes
            if st.autocast:
                # lora_A input cast back by autocast; peft's LoRA Linear4bit does not cast x
                # under autocast (peft 0.21 tuners/lora/bnb.py: ``requires_conversion = not
                # torch.is_autocast_enabled()``), so without LoRA dropout (nn.Identity) a
                # 16-bit x is what lora_A keeps itself: SDPA's output, kept by the kernel too,
                # counts once (traced: deepseek_v2 qlora sdpa, o_proj's lora_A keeps the
                # (b, s, a, d_v) bf16 output of _MemEfficientSDPA, no copy); with dropout it
                # keeps the dropout's 16-bit output (traced: llama qlora sdpa, native_dropout)
                own_x = quant and st.dequant_gemm and x.elem == 2 and st.lora_dropout == 0
                g.save(x if own_x else g.new(x.numel, 2, True))
                # autocast's 16-bit copies of the fp32 A and B weights, kept for backward:
                # A's for the input's gradient only (traced: opt lora layer 0 keeps B's)
                g.save_bytes(2 * st.lora_r * ((grp.in_features if x.grad else 0) + n_out))
                a_out = g.new(self.rows * st.lora_r, 2)
            else:
                g.save(xd)
                a_out = g.new(self.rows * st.lora_r, st.adapter_elem)
            g.save(a_out)
            # A recomputed block's frames hold the same locals, but the block input is the
            # checkpointed tensor (counted with the checkpoints), and inputs_embeds is one too
            rec_held = (self._unsaved(*[t for t in self._ctx + self._rec_ctx
                                        if t is not self._block_in],
                                      x, xa, xd) + self.rows * n_out * out_elem)
            # result + lora_B(...) * scaling in fp32: a few output-sized transients (the
            # proxy backward uses for a block's temporaries)
            self.backward_proxy(3 * st.adapter_elem * self.rows * n_out)
            # live while peft's Linear.forward runs ``result + lora_B(lora_A(dropout(x))) *
            # scaling`` (peft 0.21 tuners/lora/layer.py): the caller's input, the base output,
            # x cast to the adapter dtype and its dropout copy, then lora_B's output and its
            # scaled copy (16-bit under autocast); what backward keeps is counted already
            b_elem = 2 if st.autocast else st.adapter_elem
            held = (self._unsaved(*self._ctx, x, xa, xd) + self._ctx_bytes
                    + self.rows * n_out * out_elem)
            # the dropout copy is an argument of lora_A only: unless kept for backward it is
            # freed before lora_B's output exists (traced: falcon lora-all dense_4h_to_h,
            # whose peak is lora_A's output next to the fp32 input and its dropout copy)
            xd_only = self._unsaved(xd) if xd is not xa and xd is not x else 0
            self.forward_transient(held - xd_only
                                   + max(xd_only, 2 * b_elem * self.rows * n_out))
            if st.dora:
                # DoRA computes the weight norm before lora_A(x): A's input cast and output
                # are not made yet then; autocast's A and B weight copies are (the eye graph)
                ab = 2 * st.lora_r * (grp.in_features + n_out) if st.autocast else 0
                self.dora(x, grp, n_out, out_elem, held,
                          rec=(rec_held, g.saved_bytes - before_lora - ab))
            else:
                # recomputation: A's output is saved with the input copies live (the stop
                # instant when it is the block's last saved tensor), then B's output and its
                # scaled copy, the dropout copy freed with lora_A's call (as in forward above;
                # traced: gemma3 lora-all, down_proj's fp32 dropout output ends before lora_B)
                self._rec_instant(rec_held, saves=True)
                self._rec_instant(rec_held - xd_only + 2 * b_elem * self.rows * n_out)
                # backward of ``result + lora_B(...) * scaling`` (peft 0.21): the add passes
                # the gradient on (cast where the sum was promoted), ``* scaling`` makes one;
                # neither needs a saved tensor, so both come before the recomputation
                res = max(out_elem, b_elem)
                # and where the block adds the MLP's output to a wider residual (Bloom's fp32
                # stream), that sum's backward casts the gradient to the output's dtype first
                # (traced: bloom lora-all, aten._to_copy (b, s, h) bf16 before recomputing)
                # (k-bit setups count theirs in _kbit_recompute / the account)
                promoted = out_elem if (grp is self.lin.mlp_out and st.r > max(res, out_elem)
                                        and self.spec.family != "encoder"
                                        and not st.kbit) else 0
                self._tail_grads = (self.rows * n_out * (
                    (res + out_elem if res != out_elem else 0) + b_elem + promoted),
                    len(g.saved))
                # unpromoted, the add hands the output's own gradient to the base layer,
                # whose backward waits for the recomputation with it (Granite: branch_grad)
                self._tail_holds_out_grad = res == out_elem
            if quant and not st.dora:
                self.kbit_adapter(grp, x, n_out, out_elem)
        return g.new(self.rows * n_out, out_elem, x.grad or w_trains or lora)

    def kbit_base(self, grp: ParamGroup, x: T, n_out: int) -> None:
        """bitsandbytes' 4-bit Linear in a recomputed block: its dequantizing GEMM, forward and
        backward (bitsandbytes 0.50 nn.Linear4bit.forward, MatMul4Bit, backends/cuda/ops.py).

        Forward: x cast to the compute dtype (16-bit), then ``_dequant_linear_fallback``: with
        double quantization two fp32 absmax buffers (the dequantized one and ``+ offset``), the
        weight dequantized to the compute dtype (out x in), F.linear's 16-bit output; all live
        until it returns; then the output cast back to x's dtype.
        Backward (``MatMul4Bit.backward``): the output gradient cast to the compute dtype,
        ``dequantize_4bit`` (one fp32 absmax buffer, freed when it returns, next to the
        dequantized weight), ``matmul(grad, W)``: the 16-bit input gradient, then cast to x's
        dtype. For the MLP's output projection, whose backward runs first in the block, the
        adapter's input gradient (x's dtype) is already made (peft runs the base layer first,
        so autograd reaches the adapter first).
        """
        st, g = self.st, self.g
        rows, n_in = self.rows, grp.in_features
        w16 = 2 * grp.weight_numel  # the compute (and load) dtype: bf16 / fp16
        n_blocks = -(-grp.weight_numel // BNB_4BIT_BLOCK)
        absmax = 4 * n_blocks if st.double_quant else 0
        ctx = [t for t in self._ctx + self._kbit_held if t.uid != self._input_uid]
        held = g.saved_bytes + self._unsaved(*ctx, x)
        x16 = rows * n_in * 2 if x.elem != 2 else 0
        out16 = rows * n_out * 2
        gemm = w16 + 2 * absmax + out16
        back = out16 + rows * n_out * x.elem if x.elem != 2 else 0
        self.kbit_fwd = max(self.kbit_fwd, held + x16 + max(gemm, back))
        if grp is self.lin.mlp_out:
            lora = grp.leaf in st.lora and grp.path not in st.lora_skip
            adapter_grad = rows * n_in * x.elem if lora else 0
            grad16 = out16 if x.elem != 2 else 0
            self.kbit_bwd = g.saved_bytes + adapter_grad + grad16 + w16 + max(
                absmax, rows * n_in * 2)
            if lora and self.mlp_out_mark is not None:
                # then autograd sums x's two gradients (torch's InputBuffer.accumulate): the
                # base's (MatMul4Bit's, cast to x's dtype) and the adapter's (through LoRA's
                # dropout), both live next to their sum; the projection's own saved tensors
                # are freed by then (traced: opt qlora, aten.add (b*s, f) fp32 next to
                # native_dropout_backward's and _to_copy's outputs, the step's peak)
                self.kbit_bwd = max(self.kbit_bwd, self.mlp_out_mark + 3 * rows * n_in * x.elem)

    def kbit_adapter(self, grp: ParamGroup, x: T, n_out: int, out_elem: int) -> None:
        """The instants inside peft's LoRA ``Linear4bit.forward`` (peft 0.21 tuners/lora/bnb.py)
        of a block recomputed by checkpointing, on top of what the block saved so far.

        ``result = base_layer(x).clone()`` (bitsandbytes' output, cast back to x's dtype and
        defensively cloned: b*s*out in x's dtype, live to the end), then ``lora_B(lora_A(
        dropout(x))) * scaling``, added to it. Under autocast peft does not cast x to the
        adapter dtype (``requires_conversion = not torch.is_autocast_enabled()``): the dropout
        output is in x's dtype and lora_A keeps its autocast copy (16-bit), so an fp32 dropout
        output is live (unsaved) until lora_A has run; a 16-bit one is what lora_A keeps.
        Recorded, on top of the saved bytes and the calling frames' unsaved tensors:
        - A: after lora_A (its input copy and output saved), the dropout output still live;
        - B: ``result + output``: lora_B's scaled output (16-bit under autocast) and the sum.
        The bitsandbytes base keeps nothing for backward (MatMul4Bit keeps the packed weight,
        a parameter); its dequantized weight is gone before these instants.
        """
        st, g = self.st, self.g
        rows = self.rows
        ctx = [t for t in self._ctx + self._kbit_held if t.uid != self._input_uid]
        held = self._unsaved(*ctx, x) + rows * n_out * out_elem
        if st.lora_dropout > 0:
            if st.autocast:
                drop = x.nbytes if x.elem != 2 else 0
            else:
                drop = x.numel * st.adapter_elem if x.elem != st.adapter_elem else 0
        else:
            drop = 0
        b_elem = 2 if st.autocast else st.adapter_elem
        b_out = rows * n_out * b_elem
        at_a = g.saved_bytes + held + drop
        at_b = g.saved_bytes + held + max(2 * b_out, b_out + rows * n_out * max(out_elem,
                                                                                b_elem))
        self.kbit_instants.append((at_a, at_b, grp is self.lin.mlp_out))

    def backward_proxy(self, n_bytes: int) -> None:
        """A LoRA / DoRA buffer that stands for the block's temporaries in backward only."""
        self.bwd_proxy = max(self.bwd_proxy, n_bytes)

    def forward_transient(self, n_bytes: int) -> None:
        """A forward-only peak of ``n_bytes`` on top of what the block has saved so far."""
        self.fwd_transient = max(self.fwd_transient, self.g.saved_bytes + n_bytes)

    def _unsaved(self, *ts: T) -> int:
        """Bytes of the distinct tensors among ``ts`` that backward does not keep."""
        seen: dict[int, int] = {t.uid: t.nbytes for t in ts if t.uid not in self.g.saved}
        return sum(seen.values())

    def _rec_instant(self, n_bytes: int, saves: bool = False, unsaved: int = 0) -> None:
        """An instant of the block's forward, ``n_bytes`` live beyond what is saved so far
        (less ``unsaved`` bytes of it not saved yet); ``saves``: this op, or one of the same
        layer after it, saves a tensor, so a recomputation runs to it even when nothing is
        saved after the layer."""
        self._rec.append((len(self.g.saved), self.g.saved_bytes - unsaved + n_bytes, saves))

    @property
    def recompute_forward_peak(self) -> int:
        """The recomputed block's forward peak under non-reentrant checkpointing, without
        the block's input.

        torch.utils.checkpoint (use_reentrant=False, early stop) recomputes a block until
        the last tensor its backward needs is saved, then raises ``_StopRecomputationError``
        from the saved-tensor hook: only the instants up to that save happen (an op's inputs
        are saved before it runs, so an op whose input is the last saved tensor never makes
        its output: traced, llama lora-all and DoRA on down_proj). The interrupted
        frames' locals are freed as the exception unwinds (torch 2.13 catches it in the
        unpack hook, traced: llama lora-all, the down_proj adapter's input copies end before
        the MLP's backward starts).
        """
        total = len(self.g.saved)
        peak = max((b for n, b, saves in self._rec if n < total or saves), default=0)
        grads, entries = self._tail_grads
        return peak + (grads if entries == total else 0)

    @property
    def reentrant_forward_peak(self) -> int:
        """The recomputed block's forward peak under reentrant checkpointing
        (torch.utils.checkpoint CheckpointFunction.backward): the whole forward reruns before
        any of the block's backward, so every instant happens and no gradient is live yet."""
        return max((b for _n, b, _saves in self._rec), default=0)

    def dora(self, x: T, grp: ParamGroup, n_out: int, out_elem: int, held: int,
             rec: tuple[int, int] = (0, 0)) -> None:
        """What peft's DoraLinearLayer.forward (peft 0.21 tuners/lora/dora.py) adds.

        ``result_dora = (m / ||W + sBA|| - 1) * base + (m / ||W + sBA||) * lora_B(lora_A(x)) * s``:
        both products keep their tensor operand (base and lora_result, b*s*out each) and the
        scale vectors. With LoRA dropout the base is recomputed as ``F.linear(dropout(x), W)``
        on the adapter-dtype input: autocast's 16-bit copy of W (a new tensor each call, not a
        leaf, so never cached) is kept for the input's gradient. Without dropout the base layer's
        own output is reused.

        ``held`` is what the surrounding LoRA forward holds (input, base output, the adapter-
        dtype input and its dropout copy).
        """
        g, st = self.g, self.st
        e = 2 if st.autocast else st.adapter_elem
        rows = self.rows
        before = g.saved_bytes
        if st.lora_dropout > 0:
            if x.grad:
                g.save_bytes(grp.weight_numel * e)  # W cast for F.linear, kept for grad of x
            g.save_bytes(rows * n_out * e)  # base_result
        else:
            g.save_bytes(rows * n_out * out_elem)  # the base layer's output, reused
        g.save_bytes(rows * n_out * e)  # lora_result
        # ||W + sBA|| (fp32), m / norm and (m / norm - 1): out-sized vectors
        g.save_bytes(4 * n_out)
        g.save_bytes(4 * n_out)
        if x.grad:
            g.save_bytes(4 * n_out)
        later = g.saved_bytes - before  # saved after the weight norm
        # Held until forward returns: get_lora_weight's lora_B(lora_A(eye(in))) graph keeps
        # the (autocast-cast) identity and A's output; W and BA cast to the input's (adapter)
        # dtype stay bound to locals. Peaks on top: in the weight norm, s * BA and W + s * BA
        # (out x in), before the saved tensors above exist; at the return, the three b*s*out
        # products of the result expression, fp32 by type promotion with the fp32 magnitude.
        graph = e * grp.in_features * (grp.in_features + st.lora_r)
        casts = 2 * st.adapter_elem * grp.weight_numel
        norm = 2 * st.adapter_elem * grp.weight_numel - later
        products = 3 * max(st.adapter_elem, e) * rows * n_out
        self.forward_transient(held + graph + casts + max(norm, products))
        # inside get_lora_weight (peft 0.21 dora.py): the identity in the adapter dtype
        # (x_eye, a local until it returns) next to its autocast copy, A's output and
        # lora_B's (in x out) output (traced: gpt2 DoRA c_proj, the recomputed block's peak
        # at aten.mm (in, out) with aten.eye (in, in) fp32 live)
        eye = st.adapter_elem * grp.in_features ** 2 + e * grp.in_features * n_out
        # (lora_A(x)'s input copy and output, saved since, are not made yet then)
        self.forward_transient(held + graph + eye - later - rec[1])
        # recomputation: the weight norm runs before the LoRA input copy, A's output and the
        # saves above; the result expression's second product (m / norm times lora_result)
        # saves its inputs before it runs, so when they are the block's last saved tensors
        # recomputation stops with only the first product made; otherwise the second, the
        # third (* scaling, a scalar: nothing saved) and the sum follow
        rec_held, not_yet = rec
        product = max(st.adapter_elem, e) * rows * n_out
        self._rec_instant(rec_held + graph + casts + 2 * st.adapter_elem * grp.weight_numel,
                          saves=True, unsaved=later + not_yet)
        self._rec_instant(rec_held + graph + eye, saves=True, unsaved=later + not_yet)
        self._rec_instant(rec_held + graph + casts + product, saves=True)
        self._rec_instant(rec_held + graph + casts + 3 * product)
        # backward reaches the block's last op first: ``result + result_dora`` (fp32 by
        # promotion) cast back to the base dtype, then ``* scaling``; their gradients (the
        # cast's, the base operand's cast back, the product's) need no saved tensor, so they
        # are made before the recomputation starts
        p_elem = max(st.adapter_elem, e)
        res = max(out_elem, p_elem)
        self._tail_grads = (rows * n_out * ((res + out_elem if res != out_elem else 0)
                                           + p_elem), len(g.saved))
        # the proxy backward uses for a block's temporaries: the weight norm's buffers
        self.backward_proxy(e * grp.in_features ** 2 + 4 * st.adapter_elem * grp.weight_numel)

    def activation(self, x: T) -> T:
        n = _ACT_SAVED_TENSORS.get(self.act_name, 1)
        if self.act_name == "relu":
            return self.g.unary_saves_result(x)
        if self.act_name in ("gelu_new", "gelu_fast") and x.grad:
            # NewGELUActivation: 0.5 * x * (1 + tanh(c * (x + 0.044715 * pow(x, 3)))). Kept:
            # pow's input, tanh's result, 0.5 * x and (1 + tanh). CUDA autocast runs pow in fp32
            # (its fp32 list), so from pow on the chain is fp32 and the output is too.
            g = self.g
            inner = 4 if self.st.autocast else x.elem
            g.save(g.cast(x, inner))
            g.save_bytes(x.numel * x.elem)  # 0.5 * x
            g.save_bytes(2 * x.numel * inner)  # tanh result, 1 + tanh
            return g.new(x.numel, max(x.elem, inner), True)
        out = self.g.unary_saves_input(x)
        for _ in range(n - 1):
            self.g.save_bytes(x.nbytes)
        return out

    def attention(self, q: T, k: T, v: T, v_storage: T | None = None, d_v: int = 0,
                  k_view: bool = False) -> T:
        g, st, spec = self.g, self.st, self.spec
        a, kv, d = spec.num_attention_heads, spec.num_key_value_heads, spec.head_dim
        dv = d_v or d  # value / output head width (MLA: v_head_dim, not the q/k width)
        b, s = st.b, st.s
        fused = st.attn.startswith("flash") or st.attn == "sdpa"
        if fused:
            e = 2 if (st.attn.startswith("flash") or st.autocast) else q.elem
            # (a fused projection's fp32 output, k-bit's: autocast copies each slice alone)
            qs = q if q.elem == e else g.new(b * s * a * d, e)
            ks = k if k.elem == e else g.new(b * s * kv * d, e)
            vs = v if v.elem == e else g.new(b * s * kv * dv, e)
            if st.attn == "sdpa" and self.masked:
                if kv < a and not spec.sdpa_repeat_kv:
                    # fewer k/v heads and a mask: neither fused kernel takes it, CUDA runs
                    # torch's math kernel (_scaled_dot_product_attention_math), which upcasts
                    # 16-bit q/k/v to fp32 and keeps the scaled q, the scaled k^T, v and the
                    # fp32 softmax. matmul folds (b, heads) into bmm's batch: with one
                    # sequence k and v broadcast over the heads as views (kept at their kv
                    # heads); with more, the fold needs copies, k and v at all heads (traced:
                    # falcon sdpa b=1 aten.mul.Scalar (1, kv, d, s); b=2 aten.clone (2, a, d, s))
                    g.save_bytes(4 * b * s * (a + 2 * (kv if b == 1 else a)) * d)
                    g.save_bytes(4 * b * a * s * s)
                    # softmax's backward: the fp32 gradients of the probabilities and of
                    # the scores and v's gradient (fp32), on top of all saved so far
                    # v (fp32, at the heads the fold made) is freed once the last matmul's
                    # backward ran, and the fold's backward (made after softmax, so run
                    # before it) sums v's gradient to the k/v heads (traced: falcon sdpa b=2
                    # checkpointing, no (b, a, s, d) v gradient at softmax's backward)
                    self.attn_bwd_bytes = (g.saved_bytes + 2 * 4 * b * a * s * s
                                           - 4 * b * s * (kv if b == 1 else a) * d
                                           + 4 * b * s * kv * d)
                    return g.new(b * s * a * d, e)
                if kv < a:
                    # sdpa_attention_forward: no enable_gqa under a mask, repeat_kv copies
                    ks, vs = g.new(b * s * a * d, e), g.new(b * s * a * d, e)
                    v_storage = None
                # the boolean mask converted to an additive one in q's dtype, per call, kept
                # by the memory-efficient kernel (flash takes no mask)
                g.save_bytes(b * s * s * e)
            g.save(qs, ks)
            g.save(vs if (vs is not v or v_storage is None) else v_storage)
            out = g.new(b * s * a * dv, e)
            g.save(out)
            g.save_bytes(4 * b * a * s)  # log-sum-exp, fp32
            # (a masked call runs CUDA's memory-efficient kernel, whose output is allocated
            # (b, s, a, d) whatever q's layout: no copy)
            if spec.sdpa_out_copy and not (st.attn == "sdpa" and self.masked):
                return g.new(b * s * a * dv, e)  # transpose(1, 2).contiguous(): a copy
            return out
        # eager attention (transformers eager_attention_forward / BERT self-attention)
        e = 2 if st.autocast else q.elem
        # repeat_kv copies k and v to all heads; a model that hands matmul its fewer k/v heads
        # (Falcon-7B's MQA) has them broadcast, as views for one sequence and copied by
        # matmul's fold of (b, heads) for more (traced: falcon eager b=1 aten.cat (1, 1, s, d))
        # With a single k/v head repeat_kv's expand + reshape is a view too (the merged head
        # dimension keeps stride 0: traced, gpt_bigcode eager b=1 keeps the cache's
        # aten.cat (1, 1, s, d) copies only)
        # (unless autocast then casts it: a copy of the expanded shape, k-bit's fp32 k)
        rep = kv < a and ((spec.sdpa_repeat_kv and (kv > 1 or k.elem != e)) or b > 1)
        k_rep = g.new(b * s * a * d, k.elem, k.grad) if rep else k
        v_rep = g.new(b * s * a * d, v.elem, v.grad) if rep else v
        # matmul(q, k^T) folds q to (b*a, s, d): q, a transposed view of the projection (or
        # of rotary's output, which keeps its strides), is copied to a contiguous tensor first.
        # Each operand is kept for the other's gradient only: in the first block of a LoRA on
        # q and v, k needs none and q is not kept (traced: opt lora layer 0)
        # For one sequence the fold is a view and q itself is kept: the fused projection's
        # whole output when q is a slice of it (traced: gpt2 eager b=1, aten.addmm (s, 3h))
        # A projection that returns fp32 (a k-bit base returns its input's dtype, fp32 after
        # k-bit preparation) is copied by autocast to 16-bit: only q's (k's) own slice of it
        # (traced: gpt2 qlora eager b=1, aten._to_copy (1, a, s, d) for q and k)
        if k.grad:
            g.save(q if (b == 1 or spec.qkv_copies) and q.elem == e
                   else g.new(b * s * a * d, e))
        if q.grad:
            # k^T of a head view of the projection's output ((b, s, a, d) in memory: GPT-2's
            # c_attn, OPT's k_proj) is copied by matmul's fold when b > 1, as q is (traced:
            # gpt2 eager b=2 aten.clone (b, a, d, s)); for one sequence the fold is a view
            k_fold = k_view and b > 1 and not rep
            g.save(g.new(b * s * a * d, e) if k_fold else k_rep if k_rep.elem == e
                   else g.new(b * s * (a if rep else kv) * d, e))
        scores_grad = q.grad or k.grad
        scores = b * a * s * s
        if spec.attn_sinks:
            # gpt-oss eager_attention_forward (transformers 5.24 modeling_gpt_oss.py): the sink
            # logits join the scores (cat: b*a*s*(s+1)), the row max is subtracted and softmax
            # runs in the scores' dtype; its result is kept, and the probabilities matmul keeps
            # a slice of that same storage, then v
            cols = b * a * s * (s + 1)
            g.save_bytes(8 * b * a * s)  # combined_logits.max(dim=-1): its int64 indices
            # torch.cat with the sinks parameter promotes the scores to its dtype (fp32 after
            # k-bit preparation): then matmul keeps its autocast copy of the probabilities
            # (traced: gpt_oss qlora, aten._softmax (b, a, s, s + 1) fp32 and aten._to_copy
            # (b, a, s, s) bf16)
            pe = max(e, st.weight_elem)
            g.save_bytes(cols * pe)
            g.transient(2 * cols * pe)
            if pe != e:
                g.save_bytes(scores * e)
            g.save(g.cast(v_rep, e) if v_storage is None else g.new(b * s * a * dv, e))
            return g.new(b * s * a * d, e)
        if spec.attn_softcap:
            g.save_bytes(scores * e)  # tanh(scores / softcap): its result
        encoder = self.spec.family == "encoder"
        # softmax: fp32 by HF's dtype=float32 (decoders) or by CUDA autocast; BERT's softmax
        # takes no dtype, so without autocast it runs in q's dtype
        probs32 = g.new(scores, 4 if not encoder or st.autocast else q.elem, scores_grad)
        if scores_grad:
            g.save(probs32)
        # In backward, softmax's backward runs once everything saved after it is freed: live
        # are what the block saved up to here, the fp32 gradient of the probabilities and
        # softmax's fp32 result (2 * 4 * b*a*s*s) and the gradient of the attention output
        # (b*s*a*d). Traced (llama eager, s=256, checkpointing): the block's peak.
        # The last is v's gradient, at the heads matmul saw (Falcon-7B b=1: kv heads).
        # (repeat_kv's expand runs before softmax, so its backward, which sums v's gradient
        # back to the k/v heads, comes after softmax's: the gradient is at every head even
        # where repeat_kv is a view, traced: gpt_bigcode eager b=1 aten.bmm (a, s, d))
        # Where matmul itself broadcasts v (Falcon-7B), the fold is made after softmax and its
        # backward sums v's gradient to the k/v heads first (traced: falcon eager b=2,
        # aten.sum (b, kv, s, d) live at softmax's backward)
        v_grad = b * s * (a if spec.sdpa_repeat_kv else kv) * dv
        self.attn_bwd_bytes = g.saved_bytes + 2 * 4 * scores + v_grad * e
        g.transient(scores * (e + 4))
        if spec.returned_attn:
            # a checkpointed layer's first forward keeps nothing, but the previous layer's
            # returned probabilities are held while softmax runs (see ModelSpec.returned_attn),
            # next to the scores in q's dtype, their masked copy, softmax's fp32 input cast
            # and its fp32 result, and the layer's locals: the norm output, the projection's
            # output, q, k and v (traced: falcon / bloom eager LoRA, checkpointing, the
            # forward's peak at aten._softmax in layer 1)
            prev = scores * (4 if spec.returned_attn == "softmax" else e)
            # without checkpointing the same instant is on top of all saved so far: the raw
            # scores (FalconAttention / BloomAttention keep them bound to attention_scores),
            # their masked sum and softmax's fp32 input cast next to its saved result, with
            # what the frames hold (traced: falcon eager LoRA b=1, the forward's peak at
            # layer 1's aten._softmax)
            self.forward_transient(scores * (2 * e + 4) + self._ctx_bytes + self._unsaved(
                *self._ctx, *self._locals, q, k, v))
            self.ckpt_fwd_attn = prev + scores * (2 * e + 8) + sum(
                {t.uid: t.nbytes for t in self._locals + [q, k, v]}.values())
        if encoder:
            # BERT's eager_attention_forward (transformers 5.24 modeling_bert.py): dropout on
            # softmax's own output, then matmul casts it; the dropout output is returned as
            # attn_weights, held by the layer until it returns
            probs_d = g.dropout(probs32, self.attn_dropout)
            self._attn_weights = probs_d
        else:
            # softmax(...).to(query.dtype) (or .type(value.dtype)): q's own dtype, fp32 in a
            # k-bit block; the dropout output is returned as the attention weights, which the
            # decoder layer binds (``attn_output, _ = self.attn(...)``) until it returns
            probs_d = g.dropout(g.cast(probs32, q.elem) if spec.probs_to_query_dtype
                                else probs32, self.attn_dropout)
            self._held_weights = probs_d
        # v the same way, unless it is contiguous already (a KV-cache or repeat_kv copy)
        if v.grad:
            g.save(g.cast(probs_d, e))
        if probs_d.grad:
            if v_storage is not None and b == 1 and (
                    (spec.mla and v_storage.elem == e) or (v_rep is v and v.elem == e)):
                # one sequence: matmul's fold of v's head view is a view, and bmm keeps the
                # fused projection's output itself (traced: gpt2 eager b=1, no v copy); MLA's
                # v is a view of kv_b_proj's output, kept whole (traced: deepseek_v2 eager
                # b=1, aten.add.Tensor (1, 1, s, a * (nope + v)) kept by layer 1)
                g.save(v_storage)
            else:
                g.save(g.cast(v_rep, e) if v_storage is None else g.new(b * s * a * dv, e))
        return g.new(b * s * a * dv, e)  # transpose(1, 2).contiguous()

    # --- one block ------------------------------------------------------------------------
    def walk(self, x: T) -> T:
        spec, st, lin, g = self.spec, self.st, self.lin, self.g
        a, kv, d = spec.num_attention_heads, spec.num_key_value_heads, spec.head_dim
        rows = self.rows
        ln_trains = st.full
        # post-LN encoders (BERT) normalise after the residual add, OLMo 2 after attention
        # and MLP: no norm on the way in
        pre = spec.family != "encoder" and not spec.post_norms_only
        self._block_in = x
        self._input_uid = x.uid
        if spec.family != "encoder":
            self._ctx, self._ctx_bytes = [x], rows * spec.hidden_size * (st.emb_elem or st.r)
            if spec.always_mask:
                # FalconModel's 4-D causal mask (b, 1, s, s), held by the model's forward
                # through every layer: boolean for SDPA (traced: aten.le), additive in the
                # model's dtype for eager attention (aten.where)
                self._ctx_bytes += st.b * st.s * st.s * (
                    st.weight_elem if st.attn == "eager" else 1)
            elif st.attn == "eager" and spec.family != "llama":
                # the eager 4-D causal mask, in the embeddings' dtype, held by the model's
                # forward through every layer (masking_utils.create_causal_mask; traced:
                # gpt_bigcode eager aten.where (b, 1, s, s)); llama-like decoders count
                # theirs in account_activations (_mask_bytes)
                self._ctx_bytes += st.b * st.s * st.s * st.weight_elem
            if spec.position_embeds:
                # the learned position embeddings the model keeps in a local (ModelSpec)
                self._ctx_bytes += (st.b if spec.position_embeds == 2 else 1) * st.s \
                    * spec.hidden_size * st.weight_elem
        else:  # BertModel's embedding output is counted with the block's transients
            self._ctx, self._ctx_bytes = [x], 0
        n1 = self.norm(x, ln_trains) if pre else x
        # attention projections
        if spec.mla:
            attn_out = self.mla(n1)
        elif len(lin.attn_in) == 1:  # fused qkv (c_attn, qkv_proj, query_key_value, W_pack)
            qkv = self.linear(n1, lin.attn_in[0])
            self._locals = [n1, qkv]
            q = g.new(rows * a * d, qkv.elem, qkv.grad)
            k = g.new(rows * kv * d, qkv.elem, qkv.grad)
            v_storage: T | None = qkv  # v stays a view of the fused output
            v = g.new(rows * kv * d, qkv.elem, qkv.grad)
            if not spec.rotary:
                q = k = qkv
            if spec.qkv_copies and st.b > 1:
                # BloomAttention._reshape: q, k, v are transposed views of the interleaved
                # (b, s, a, 3, d) output; reshape(b * a, s, d) copies each (traced: bloom
                # aten.clone (b, a, s, d) three times), and baddbmm / bmm keep the copies.
                # For one sequence the reshape merges a size-1 dimension: views of the output
                q, k = g.new(rows * a * d, qkv.elem, qkv.grad), g.new(rows * kv * d, qkv.elem,
                                                                     qkv.grad)
                v, v_storage = g.new(rows * kv * d, qkv.elem, qkv.grad), None
            elif spec.qkv_copies:
                v = qkv
            copies = st.kv_cache and st.cache_copies
            if copies:
                # DynamicLayer.update: torch.cat([empty, k]) -> k and v are fresh copies
                k = g.new(rows * kv * d, qkv.elem, qkv.grad)
                v, v_storage = g.new(rows * kv * d, qkv.elem, qkv.grad), None
            attn_out = self.attention(q, k, v, v_storage=v_storage, k_view=not (
                spec.rotary or spec.qkv_copies or copies))
            if st.kv_cache:
                # without copies the cache keeps k and v themselves: v (and k without
                # rotary) a view that keeps the whole fused output
                self._cache_held(k, v if v_storage is None else v_storage)
            # GPTBigCode's present (key_value = c_attn(x).split(...)) keeps this whole output
            self.present_bytes = qkv.nbytes
        else:
            outs = [self.linear(n1, grp) for grp in lin.attn_in]
            q, k, v = (outs + outs[-1:] * 3)[:3]
            # rotary (q * cos + rotate_half(q) * sin) makes new q and k and saves only cos/sin
            if spec.rotary:
                q = g.new(q.numel, q.elem, q.grad)
                k = g.new(k.numel, k.elem, k.grad)
            if spec.qk_norm:
                q = self.norm(q, ln_trains, a * d if spec.qk_norm_full else d)
                k = self.norm(k, ln_trains, kv * d if spec.qk_norm_full else d)
            copies = st.kv_cache and st.cache_copies
            if copies:  # torch.cat copies in the cache (see above)
                k, v = g.new(k.numel, k.elem, k.grad), g.new(v.numel, v.elem, v.grad)
            attn_out = self.attention(q, k, v, k_view=not (
                spec.rotary or spec.qk_norm or copies))
            if st.kv_cache:
                self._cache_held(k, v)
            self.present_bytes = k.nbytes + v.nbytes
        # the attention module holds the weights it got back while its output projection
        # runs, the layer (``attn_output, _ = self.attn(...)``) until it returns
        self._kbit_held = [self._held_weights] if self._held_weights is not None else []
        o = self.linear(attn_out, lin.attn_out) if lin.attn_out else attn_out
        o_attn = o  # the attention's output, as the layer's frame may hold it
        if spec.sandwich_norms or spec.post_norms_only:
            o = self.norm(o, ln_trains)  # post_attention_layernorm (Gemma 2/3, OLMo 2)
        o = g.dropout(o, self.resid_dropout)
        if spec.attn_output_held:
            self._kbit_held.append(o)
        if spec.family == "parallel":
            # GPT-NeoX / Falcon: x + attn(ln1(x)) + mlp(ln2(x)) (Falcon-7B shares ln1)
            n2 = n1 if spec.shared_block_norm else self.norm(x, ln_trains)
            self._rec_ctx = [o, n2]
            # FalconDecoderLayer / GPTNeoXLayer hold the residual, the MLP's norm output
            # (Falcon-7B's shared one) and the attention output while the MLP runs; GPT-NeoX's
            # attention norm output was a temporary, freed
            self._ctx = [x, n2, o]
            self.kbit_attn_grad = o.nbytes if o.elem != x.elem else 0
            if spec.shared_block_norm and self.attn_bwd_bytes and n1.grad:
                # backward runs the MLP branch first: its gradient of the shared norm's
                # output waits for attention's to be added to it (traced: falcon, fp32)
                self.attn_bwd_bytes += n1.nbytes
            m = self.mlp(n2)
            return g.add(g.add(x, o), m)
        x1 = g.add(x, o)
        if spec.family == "encoder":  # post-LN: LayerNorm(x + attn)
            x1 = self.norm(x1, ln_trains)
            # held while the MLP's LoRA layers run: the block input, attention_output and
            # the attention weights BertLayer keeps until it returns
            self._ctx = [t for t in (x, x1, self._attn_weights) if t is not None]
            m = self.mlp(x1)
            out = self.norm(g.add(x1, m), ln_trains)
            # live at the output LayerNorm (the forward's peak for a classifier): BertLayer
            # still holds attention_output and intermediate_output, BertOutput the dropout
            # result; saved ones are counted already
            # (and BertEncoder's loop its input, the previous block's output)
            held = [t for t in (x, x1, self._act_out, self._attn_weights) if t is not None]
            # (a forward-only peak: the recomputed block's own end is recompute_end below)
            g.transient_peak = max(g.transient_peak, sum(
                t.nbytes for t in held if t.uid not in g.saved) + m.nbytes + out.nbytes)
            # checkpointing: recomputation stops after the last op that saves, the output
            # LayerNorm, so the recomputed block ends with all it saved, its output and what
            # BertLayer still holds (before any of its backward has run); the block input is
            # the checkpointed one, counted apart
            self.recompute_end = g.saved_bytes + m.nbytes + out.nbytes + sum(
                t.nbytes for t in held[1:] if t.uid not in g.saved)
            return out
        n2 = x1 if spec.post_norms_only else self.norm(x1, ln_trains)
        # the MLP's first Linear gets n2 as its own input; the layer keeps it beyond that
        # unless the model drops it (ModelSpec.mlp_input_freed)
        self._ctx = [x, x1] if spec.mlp_input_freed else [x, x1, n2]
        if spec.attn_output_held:
            self._ctx.append(o)
        # locals the layer never rebinds, held by its frame while the MLP runs (read off
        # the built module for generic specs: StableLmDecoderLayer keeps the first norm's
        # output as ``hidden_states`` and ``self_attn_output``)
        holds = spec.mlp_frame_holds
        self._ctx += [t for k, t in (("attn_in", n1), ("attn_out", o_attn))
                      if k in holds and t is not x]
        m = self.mlp(n2)
        if spec.residual_multiplier:
            # ``hidden_states * residual_multiplier`` saves nothing (a python scalar), but its
            # backward makes the MLP output's gradient as a tensor of its own, next to the
            # block output's: live while the MLP's last op waits for the recomputation
            # (traced: granite lora-all, aten.mul (b, s, h) live at lora_A of down_proj;
            # DoRA's output cast consumes it first: freed before the recomputation)
            self.branch_grad = m.nbytes
            grads, entries = self._tail_grads
            if entries == len(g.saved) and self._tail_holds_out_grad:
                self._tail_grads = (grads + m.nbytes, entries)
            m = g.new(m.numel, m.elem, m.grad)
        if spec.sandwich_norms or spec.post_norms_only:
            before, m_in = g.saved_bytes, m
            m = self.norm(m, ln_trains)  # post_feedforward_layernorm
            self.post_norm_backward(m, before, m_in.elem)
        return g.add(x1, m)

    def post_norm_backward(self, out: T, before: int, in_elem: int) -> None:
        """The backward of the RMSNorm that ends the block, the first op backward runs in it.

        Gemma2RMSNorm / Olmo2RMSNorm (transformers 5.24): ``xf = x.float()``, ``xf *
        rsqrt(xf.pow(2).mean(-1) + eps)``, times the weight, cast back. Backward, with every
        tensor the block saved still live: the product's gradients, then rsqrt's and mean's,
        then pow's (torch 2.13 FunctionsManual.cpp ``pow_backward``: ``grad * (exponent *
        self.pow(exponent - 1))``, three fp32 buffers as large as x at once) next to the first
        product's gradient of xf and mean's expanded gradient: five fp32 b*s*h buffers. By
        then the norm's saved rsqrt, (1 + weight) and normed input (a trained weight's) are
        freed; its fp32 copy of x is not. Traced (gemma2 / olmo2, lora and full, with
        checkpointing): the recomputed block's peak, at pow's backward.
        """
        if self.layer_norm or not out.grad:
            return
        self.post_norm_bwd = before + 4 * out.numel + 5 * 4 * out.numel
        # the norm's last op, the cast back to x's dtype, needs no saved tensor: its fp32
        # gradient is made before the product's backward unpacks one and so starts the
        # recomputation, and lives through it (traced: gemma2 lora, aten._to_copy (b, s, h)
        # fp32 made before the recomputed block's first op, freed by the product's backward)
        self._tail_grads = (4 * out.numel if in_elem != 4 else 0, len(self.g.saved))

    def _cache_held(self, k: T, v: T) -> None:
        held = {t.uid: t.nbytes for t in (k, v) if t.uid not in self.g.saved}
        self.cache_held = sum(held.values())

    @property
    def mlp_backward_extra(self) -> int | None:
        """Bytes the block holds at its MLP's backward peak, beyond all it saved.

        Backward runs the block in reverse, so the MLP goes first, with every tensor the
        block saved still live. Once the output projection's backward is done (its saved input
        and everything saved after it, dropout masks and post-norms, are freed), a gated MLP
        holds d(prod) while ``mul``'s backward makes d(act) and d(up); a plain one holds
        d(act) while the activation's backward makes d(hidden). Fake-tensor traces of
        llama / gpt_neox blocks (CUDA semantics) peak exactly there.
        """
        if self.mlp_bwd_buffers is None or self.mlp_out_mark is None:
            return None
        return max(self.mlp_bwd_buffers - (self.g.saved_bytes - self.mlp_out_mark),
                   self.mlp_out_bwd)

    @property
    def mlp_recompute_backward_extra(self) -> int | None:
        """``mlp_backward_extra`` inside a recomputed (checkpointed) block."""
        extra = self.mlp_backward_extra
        if extra is None or self.mlp_bwd_recompute_buffers is None or self.mlp_out_mark is None:
            return extra
        return max(self.mlp_bwd_recompute_buffers - (self.g.saved_bytes - self.mlp_out_mark),
                   self.mlp_out_bwd)

    def mla(self, n1: T) -> T:
        """DeepSeek-V2 multi-head latent attention (transformers 5.24 modeling_deepseek_v2.py,
        DeepseekV2Attention.forward): q through q_proj (or q_a_proj, its RMSNorm and q_b_proj),
        the compressed kv latent through kv_a_proj_with_mqa and kv_a_layernorm, rotary on the
        rope parts in fp32 (apply_rotary_emb upcasts both and multiplies them as complex
        numbers, keeping the fp32 copies), then kv_b_proj expands the latent to per-head k_nope
        and v (v stays a view of its output); query = cat(q_nope, q_pe) and key = a new tensor
        filled from k_nope and the shared k_pe are fresh (b*s*a*(nope + rope)) tensors."""
        g, st, spec = self.g, self.st, self.spec
        q_rank, kv_rank, nope, rope, v_hd = spec.mla
        a, rows, ln = spec.num_attention_heads, self.rows, st.full
        by = {x.leaf: x for x in self.lin.attn_in}
        if q_rank:
            qa = self.linear(n1, by["q_a_proj"])
            q = self.linear(self.norm(qa, ln, q_rank), by["q_b_proj"])
        else:
            q = self.linear(n1, by["q_proj"])
        ckv = self.linear(n1, by["kv_a_proj_with_mqa"])
        kv_nope = g.new(rows * kv_rank, ckv.elem, ckv.grad)
        latent = self.norm(kv_nope, ln, kv_rank)
        if ckv.elem == 4 and kv_nope.uid in g.saved:
            # an fp32 latent (k-bit's fp32 projection outputs): the RMSNorm's
            # ``.to(torch.float32)`` returns the split view itself, so what it keeps is
            # kv_a_proj_with_mqa's whole output, k_pe's columns too (traced: deepseek_v2
            # qlora, aten.add.Tensor (b, s, kv_rank + rope) fp32 kept by layer 1)
            g.save_bytes(4 * rows * rope)
        # apply_rotary_emb multiplies fp32 complex views of q_pe / k_pe by freqs_cis, which
        # needs no gradient: the product keeps freqs_cis only, the fp32 copies are transient
        g.transient(4 * rows * (a + 1) * rope)
        if st.kv_cache:  # DynamicLayer.update: torch.cat copies of the latent (and k_pe)
            latent = g.new(latent.numel, latent.elem, latent.grad)
        kvb = self.linear(latent, by["kv_b_proj"])
        qs = g.new(rows * a * (nope + rope), q.elem, True)
        ks = g.new(rows * a * (nope + rope), kvb.elem, True)
        v = g.new(rows * a * v_hd, kvb.elem, True)
        return self.attention(qs, ks, v, v_storage=kvb, d_v=v_hd)

    def mlp(self, n2: T) -> T:
        spec, _st, lin, g = self.spec, self.st, self.lin, self.g
        if lin.experts:
            return self.moe(n2)
        f = spec.intermediate_size
        if spec.gated_mlp:
            if len(lin.mlp_in) == 1:  # fused gate_up (phi3) -> chunk: views of one tensor
                gu = self.linear(n2, lin.mlp_in[0])
                g.save(gu)  # act's input and the product's up half keep the fused storage
                act = g.new(self.rows * f, gu.elem, gu.grad)
                g.save(act)
                prod = g.new(self.rows * f, gu.elem, gu.grad)
                buffers = 3 * prod.nbytes
            else:
                gate = self.linear(n2, lin.mlp_in[0])
                up = self.linear(n2, lin.mlp_in[1])
                act = self.activation(gate)
                prod = g.mul(act, up)
                buffers = prod.nbytes + act.nbytes + up.nbytes  # d(prod), d(act), d(up)
        else:
            hidden = self.linear(n2, lin.mlp_in[0])
            prod = self.activation(hidden)
            self._act_out = prod
            # d(act), d(hidden) (or the activation backward's temporaries, spec)
            buffers = prod.nbytes + max(1, spec.act_backward_temps) * hidden.nbytes
            if self.act_name in ("gelu_new", "gelu_fast") and hidden.grad:
                # NewGELU's chain (0.5 * x * (1 + tanh(...)), fp32 from pow on): the last
                # mul's backward makes d(0.5 * x) and d(1 + tanh) next to d(act).
                # Traced without checkpointing (gpt2, aten.mul.Tensor (b, s, f) fp32 twice)
                # the moment also holds a d(hidden)-sized buffer; inside a recomputed block
                # (non-reentrant checkpoint) it does not: the three gradients alone match
                # those traces (-1.5 to +0.5 %), the plain account over-counts them by +1.7 to
                # +3.6 %. Which buffer it is was not pinned down; both are trace-checked
                # (tests/estimate/test_decoder_traces.py, test_ckpt_adapter_last.py).
                self.mlp_bwd_recompute_buffers = 3 * prod.nbytes if prod.grad else None
                buffers += 2 * hidden.numel * (4 if self.st.autocast else hidden.elem)
        self.mlp_bwd_buffers = buffers if prod.grad else None
        self.mlp_out_mark = g.saved_bytes
        out = self.linear(prod, lin.mlp_out) if lin.mlp_out else prod
        self.mlp_out_end = g.saved_bytes
        if lin.mlp_out is not None and prod.grad and self.resid_dropout > 0 \
                and not self.spec.is_encoder and not self.st.kbit:
            # the output projection's own backward, with every tensor the block saved live:
            # the dropout's gradient (the output's dtype) and the gradient of its input
            # (traced: gpt_bigcode full, aten.native_dropout_backward and aten.mm (b*s, f))
            self.mlp_out_bwd = out.nbytes + prod.numel * out.elem
        return g.dropout(out, self.resid_dropout)

    def moe(self, n2: T) -> T:
        """Sparse MoE with transformers 5's fused experts, run by grouped_mm_experts_forward
        (transformers 5.24 integrations/moe.py): top-k token copies per expert.

        Walked in the order the module runs (its saves, and the instants a checkpointed
        block's recomputation reaches, ``_rec_instant``), with the instants of the experts'
        backward (``mlp_bwd_buffers``): see ``_moe_backward``."""
        spec, st, lin, g = self.spec, self.st, self.lin, self.g
        k = max(spec.num_experts_per_tok, 1)
        n_e = max(spec.num_local_experts, 1)
        f = spec.intermediate_size
        h = spec.hidden_size
        rows = self.rows
        # what the calling frames hold while the block is recomputed (the block input is the
        # checkpointed tensor, counted apart)
        held_ts = [t for t in self._ctx + self._rec_ctx if t is not self._block_in]
        shared_out: T | None = None
        if lin.shared and spec.shared_expert_first:
            # Qwen2MoeSparseMoeBlock.forward: shared_expert(x) first, its output held by the
            # block's frame through the router and the routed experts
            shared_out = self.shared_expert_mlp(n2)
            held_ts.append(shared_out)
        w_elem = 4  # the routing weights' bytes per element
        if lin.router is not None:
            logits = self.linear(n2, lin.router)
            w_elem = self.router(logits, k, n_e)
            g.transient(logits.nbytes)
        held = self._unsaved(*held_ts)  # (the router keeps the MoE input when it trains)
        rec_mark = len(self._rec)
        quantized = any(x.leaf in st.quantized for x in lin.experts)
        # k-bit expert layers cast their output back to the input dtype (bnb Linear4bit);
        # transformers 5's grouped_mm experts are not autocast: they cast the input to the
        # experts' dtype (integrations/moe.py _grouped_mm), fp32 after QLoRA's k-bit upcast
        e = n2.elem if quantized else st.weight_elem
        w_trains = st.full and not quantized
        tokens = S = rows * k
        # LoRA leaves are names: Qwen2-MoE's shared expert has a down_proj of its own
        shared_leaves = {x.leaf for x in lin.shared}
        lora_experts = any(x.leaf in st.lora and x.leaf not in shared_leaves
                           for x in lin.experts)
        # grouped_mm_experts_forward, in order. Its locals live to its return: expert_ids_g
        # (int64, from torch.sort), the histc input (int32 on CUDA) and histc's counts
        bias_ids = spec.expert_bias and st.full and n2.grad
        ids = (0 if bias_ids else 8 * S) + 4 * S + 4 * n_e
        if n2.grad:
            self.dispatch_indices(S, n_e)  # perm // top_k, perm, offsets (, expert_ids_g)
        else:
            ids += 8 * S  # perm: a local
        sel_saved = w_trains or lora_experts
        if sel_saved:
            g.save_bytes(tokens * h * e)  # gathered expert inputs, kept by grouped_mm
        # hidden_states[perm // top_k], a local in the MoE input's dtype (fp32 after a
        # LayerNorm under CUDA autocast: Phi-3.5-MoE); _grouped_mm casts it to the experts'
        # dtype (``input.to(weight.dtype)``), the copy grouped_mm keeps or drops
        sel = 0 if sel_saved and n2.elem == e else S * h * n2.elem
        cast_in = S * h * e if n2.elem != e and not sel_saved else 0
        if lora_experts:
            # peft's ParamWrapper materialises W + B@A for every expert on each forward and
            # grouped_mm keeps it for backward: one full copy of the expert weights per layer
            g.save_bytes(sum(x.weight_numel for x in lin.experts) * e)
            # ... as ``baddbmm(W, lhs, rhs)`` (peft 0.21 _LoraFactorsProxy, for one adapter on
            # a 16-bit stack), whose factors get_delta_factors casts to W's dtype: baddbmm
            # keeps both copies (rank r per expert, 2r for the fused gate_up, as params.py)
            for x in lin.experts:
                if x.leaf in st.lora and st.adapter_elem != e:
                    r = st.lora_r * x.n_experts * (2 if x.leaf == "gate_up_proj" else 1)
                    g.save_bytes(r * (x.in_features + x.out_features) * e)
        g.save_bytes(tokens * 2 * f * e)  # gate_up output (gate for act, up for the product)
        # gpt-oss: ``selected_biases = gate_up_proj_bias[expert_ids_g]`` (S, 2f), then the
        # same local rebound to ``down_proj_bias[expert_ids_g]`` (S, h), live to the return;
        # _grouped_linear adds it to grouped_mm's output (both (S, 2f) at the add)
        bias_gu = 2 * S * 2 * f * e if spec.expert_bias else 0
        self._rec_instant(held + ids + sel + cast_in + bias_gu)
        bias_gu //= 2
        g.save_bytes(tokens * f * e)  # act(gate)
        if spec.moe_act == "clamped_swiglu":
            # GptOssExperts._apply_gate: clamp(gate), gate * alpha -> sigmoid (result kept),
            # glu = gate * sigmoid (both kept), (up + 1) kept for the product with glu
            g.save_bytes(3 * tokens * f * e)
        m_mul = g.saved_bytes  # the gated product made: its saved inputs are all kept
        bias_dn = S * h * e if spec.expert_bias else 0
        self._rec_instant(held + ids + sel + bias_gu + S * f * e)
        if w_trains or lora_experts:
            g.save_bytes(tokens * f * e)  # gate*up product, input of down
        prod = 0 if w_trains or lora_experts else S * f * e
        m_prod = g.saved_bytes
        # the down projection's output, (S, h) in the experts' dtype
        self._rec_instant(held + ids + sel + bias_dn + prod + S * h * e)
        # ``proj_out * sample_weights_g``: keeps the expert output and the gathered weights
        # when the routing weights need a gradient; the product follows type promotion
        we = max(e, w_elem)
        g.save_bytes(tokens * h * e)  # expert output, kept for the routing-weight product
        if n2.grad:
            g.save_bytes(tokens * w_elem)  # sample_weights_g
        m_w = g.saved_bytes
        live = held + ids + sel + bias_dn
        self._rec_instant(live + S * h * we)
        if n2.grad:
            # ``inv_perm = empty_like(perm); inv_perm[perm] = arange(S)`` runs before the
            # gather that keeps inv_perm: live even when that gather's save ends the
            # recomputation (traced: gpt_oss lora eager, aten.arange at the block's peak)
            self._rec_instant(live + S * h * we + 2 * 8 * S, saves=True)
            g.save_bytes(8 * tokens)  # inv_perm, kept by ``weighted_out[inv_perm]``
            # backward reaches that gather after ``.to(dtype)``, ``.sum(dim=1)`` and
            # ``.view(tokens, top_k, h)``, whose backward needs no saved tensor, so their
            # gradients come before the recomputation: the sum's is an expanded view of its
            # output's gradient, made an (S, h) tensor in the product's dtype by the view's
            # backward (a reshape of an expanded tensor: traced, phimoe aten.clone (b*s, k,
            # h) fp32) or by the cast back from the sum's dtype (CUDA autocast's fp32 sum of a
            # 16-bit product; traced: gpt_oss aten._to_copy (b*s, k, h) bf16)
            if st.fused_experts:
                self._tail_grads = (S * h * we, len(g.saved))
        # weighted_out[inv_perm] next to the product it gathers from
        self._rec_instant(live + 2 * S * h * we)
        # the same instant inside a k-bit (QLoRA) block's recomputation (_kbit_recompute)
        if st.fused_experts:
            self.kbit_fwd = max(self.kbit_fwd, g.saved_bytes + live + 2 * S * h * we)
        # ``.view(tokens, top_k, h).sum(dim=1)`` (CUDA autocast: sum in fp32, its
        # fp32_set_opt_dtype list: no input copy), then ``.to(hidden_states.dtype)``; the
        # product it gathered from is freed by then
        se = 4 if st.autocast else we
        cast = rows * h * n2.elem if se != n2.elem else 0
        self._rec_instant(live + S * h * we + rows * h * se + cast)
        out = g.new(rows * h, n2.elem, True)
        if lin.shared:
            if shared_out is None:
                # DeepseekV2Moe.forward: the shared experts run after the routed ones, the
                # routed output held by the block's frame
                rec_ctx = self._rec_ctx
                self._rec_ctx = [*rec_ctx, out]
                y = self.shared_expert_mlp(n2)
                self._rec_ctx = rec_ctx
                pending = n2.nbytes  # their input gradient, waiting for the router's
            else:
                y = self.shared_gate(n2, shared_out)
                # the gate's input gradient and d(shared_expert_output) wait for the routed
                # experts' backward (the shared expert ran first: lower sequence numbers)
                pending = n2.nbytes + shared_out.nbytes
            out = g.add(out, y)
        else:
            pending = 0
        # the down projection's weight gradient, made by its grouped_mm backward: with LoRA
        # on the experts, of the materialised W + B@A (an activation until peft's backward
        # reaches B and A; traced: mixtral lora-all, aten._grouped_mm (E, h, f))
        down = min((x.weight_numel for x in lin.experts), default=0)
        if st.fused_experts:
            self._moe_backward(S, f, h, e, we, pending, m_mul, m_prod, m_w,
                               down * e if lora_experts else 0)
        else:
            # transformers < 5: per-expert nn.Linear modules in a python loop, whose
            # instants are not walked here: the block keeps the whole-block account, and
            # its recomputed forward instants are dropped (the calibration runs FMS-19 / 21,
            # transformers 4.48, stay where they were)
            self._rec = self._rec[:rec_mark]
        if lora_experts:
            # the experts' backward, first their down projection's (grouped_mm's backward):
            # everything the block saved so far (the expert output's gradient in place of the
            # output), the gradient of its input (tokens x f) and of the materialised weight
            # W + B@A of every expert (traced: mixtral qlora, the recomputed block's peak)
            # (the down projection: the smaller of the fused gate_up / down tensors)
            self.moe_bwd = g.saved_bytes + tokens * f * e + down * e
        return out

    def _moe_backward(self, S: int, f: int, h: int, e: int, we: int, pending: int,
                      m_mul: int, m_prod: int, m_w: int, w_grad: int) -> None:
        """The routed experts' backward instants, as ``mlp_bwd_buffers`` over ``mlp_out_mark``
        (the bytes live beyond everything the block saved).

        Backward reaches what ran after the routed experts first (Qwen2-MoE's gated shared
        output, DeepSeek-V2's shared experts: their saves are freed, their gradients of the
        MoE input, and Qwen2-MoE's d(shared output), wait), then, in grouped_mm_experts_forward
        reversed: ``weighted_out[inv_perm]``'s backward (a fresh (S, h) gradient) and the
        routing-weight product's (grad * weights and grad * output, (S, h) each, in the
        product's dtype); the down projection's grouped_mm backward (d(output) and d(input),
        (S, f)); the gated product's backward: d(prod), d(act), d(up), (S, f) each, once the
        down projection's and the weighting's saved tensors are freed (traced: mixtral lora
        sdpa with checkpointing, aten.mul.Tensor (S, f) twice next to grouped_mm's (S, f))."""
        g = self.g
        end = g.saved_bytes
        # freed by each instant: inv_perm and what ran after the experts (the weighting's
        # own saved tensors are live through its backward); then the weighting's saves; then
        # the down projection's saved input
        at_weighting = pending + 3 * S * h * we - (end - m_w)
        at_down = pending + S * h * e + S * f * e + w_grad - (end - m_prod)
        at_gate = pending + 3 * S * f * e - (end - m_mul)
        self.mlp_bwd_buffers = max(at_weighting, at_down, at_gate)
        self.mlp_out_mark = end

    def shared_expert_mlp(self, n2: T) -> T:
        """A dense SwiGLU shared expert (Qwen2MoeMLP, DeepseekV2MLP) on every token."""
        g = self.g
        by_leaf = {x.leaf: x for x in self.lin.shared}
        gate = self.linear(n2, by_leaf["gate_proj"])
        up = self.linear(n2, by_leaf["up_proj"])
        prod = g.mul(self.activation(gate), up)
        return self.linear(prod, by_leaf["down_proj"])

    def shared_gate(self, n2: T, y: T) -> T:
        """Qwen2MoeSparseMoeBlock: ``sigmoid(shared_expert_gate(x)) * shared_expert_output``;
        the product keeps both operands, sigmoid its (b*s x 1) result."""
        g = self.g
        by_leaf = {x.leaf: x for x in self.lin.shared}
        if "shared_expert_gate" not in by_leaf:
            return y
        sig = g.unary_saves_result(self.linear(n2, by_leaf["shared_expert_gate"]))
        return g.mul(sig, y)

    def router(self, logits: T, k: int, n_e: int) -> int:
        """The top-k router's saved tensors (spec.router, vramdoc.models._block); returns the
        routing weights' bytes per element."""
        g, rows = self.g, self.rows
        g.save_bytes(8 * rows * k)  # torch.topk keeps its int64 indices for backward
        if self.spec.router == "topk_softmax":
            # GptOssTopKRouter: softmax(top-k logits, dtype=their dtype) keeps its result
            g.save_bytes(rows * k * logits.elem)
            return logits.elem
        g.save(g.new(rows * n_e, 4))  # softmax(router_logits, dtype=float) result
        if self.spec.router == "softmax_topk_norm":
            # MixtralTopKRouter: top_value /= top_value.sum(-1, keepdim=True): div_ keeps the
            # divisor and a copy of the values it overwrites
            g.save_bytes(4 * rows)
            g.save_bytes(4 * rows * k)
        if self.spec.router == "softmax_topk_cast":
            return logits.elem  # Qwen2/3-MoE: .to(router_logits.dtype)
        return 4

    def dispatch_indices(self, tokens: int, n_e: int) -> None:
        """The indices grouped_mm_experts_forward (transformers 5.24 integrations/moe.py)
        keeps to route ``tokens`` = b*s*k token copies before the experts run: those of its
        gathers ``hidden_states[perm // top_k]`` and ``sample_weights[perm]``, the int32
        group offsets (kept by grouped_mm) and, where experts have trainable biases, the
        sorted expert ids that gather them. (``weighted_out[inv_perm]``'s indices and the
        gathered routing weights are kept later, by the walk in ``moe``.)"""
        g = self.g
        g.save_bytes(8 * tokens)  # perm // top_k
        g.save_bytes(8 * tokens)  # perm
        g.save_bytes(4 * n_e)  # offsets: cumsum(tokens_per_expert, dtype=int32)
        if self.spec.expert_bias and self.st.full:
            # expert_ids_g, the index of gate_up_proj_bias[...] / down_proj_bias[...]: kept
            # where the biases train
            g.save_bytes(8 * tokens)


@dataclass(frozen=True)
class ActivationAccount:
    """Activation bytes for one micro-batch."""

    per_layer_bytes: int  # what one block keeps for backward (no checkpointing)
    layer_transient_bytes: int  # largest short-lived buffer inside a block
    checkpoint_bytes: int  # block inputs kept by gradient checkpointing (all layers)
    other_bytes: int  # outside the blocks: embedding indices, final norm, lm_head input
    saved_total_bytes: int  # everything kept for backward at the end of forward (no logits)
    logits_forward_bytes: int  # logits + fp32 copy + log_softmax at the end of forward
    logits_backward_bytes: int  # loss gradient chain at the start of backward
    logits_saved_bytes: int  # what the loss keeps for backward (log_softmax result)
    recompute_bytes: int  # one block recomputed in backward (checkpointing), else 0
    autocast_cache_bytes: int = 0  # autocast's cached 16-bit weight copies during forward
    # checkpointing (non-reentrant): the recomputed block at its MLP's backward peak (all it
    # saved, the MLP's gradient buffers, the block's output gradient); 0 where not modelled
    recompute_peak_bytes: int = 0
    recompute_attn_peak_bytes: int = 0  # the same block at eager softmax's backward
    ids_bytes: int = 0  # token ids, labels and rotary tables: live through all of backward
    # of other_bytes, what the final norm and the head save: allocated after the last block,
    # so not live at a peak inside it
    after_blocks_bytes: int = 0
    # the largest buffer inside a block during forward, with what the calling frames hold
    # (LoRA / DoRA layers); layer_transient_bytes stands for backward's temporaries
    forward_transient_bytes: int = 0
    # no checkpointing: the activations live when the last block's softmax backward runs
    # (every block's saved tensors but what the last one saved after its softmax, the softmax
    # gradients, the block's output gradient, the ids); 0 where the walk does not model it
    attn_backward_bytes: int = 0
    # live at the loss besides the logits chain, not saved (the decoder's output, the KV
    # cache's copies): counted with the activations of the forward's loss instant
    loss_held_bytes: int = 0
    # no checkpointing: the activations live at the last block's MLP backward; 0 where the
    # walk does not model it
    mlp_backward_bytes: int = 0
    # checkpointing (k-bit bases, and decoders under non-reentrant checkpointing): the
    # recomputed forward's peak inside the block (before any gradient of the block exists),
    # counted like recompute_peak_bytes; 0 where not modelled
    recompute_fwd_peak_bytes: int = 0
    # what the embeddings' LayerNorm and dropout keep (encoders; decoders other than k-bit
    # ones, with PEFT's embedding-output leaf under checkpointing): the embeddings' backward
    # runs last, so these stay through the whole backward (checkpointing's instants count them)
    embedding_saved_bytes: int = 0
    # encoders under checkpointing: the recomputed block at its forward's end (all it saved,
    # its output, the held attention weights) with the block's output gradient; a block
    # ending in a norm (Gemma 2/3, OLMo 2): that norm's backward; 0 elsewhere
    recompute_end_bytes: int = 0
    # checkpointing: the layers' other inputs, which torch.utils.checkpoint keeps with the
    # hidden states until each layer's backward (the 4-D attention mask, Bloom's ALiBi);
    # counted with recompute_peak_bytes where that is modelled, else 0
    checkpoint_args_bytes: int = 0
    # the logits tensor the model returns in its output (``output.logits``), in their dtype
    logits_output_bytes: int = 0
    # checkpointing, MoE models whose layer 0 is dense: that layer's recompute_peak_bytes and
    # recompute_attn_peak_bytes (0: layer 0 is a block like the others)
    recompute_peak_layer0_bytes: int = 0
    recompute_attn_peak_layer0_bytes: int = 0
    # what the returned output holds besides the logits, from the blocks' forward through the
    # loss (GPTBigCode's presents under checkpointing, stack.checkpointing_keeps_presents):
    # live at every forward instant; freed with the output before backward unless the
    # training loop keeps it
    output_held_bytes: int = 0


def _head_group(groups: tuple[ParamGroup, ...]) -> ParamGroup | None:
    heads = [g for g in groups if g.kind == HEAD]
    return heads[-1] if heads else None


def account_activations(spec: ModelSpec, groups: tuple[ParamGroup, ...], st: ActSetup,
                        checkpointing: bool, task: str = "causal-lm", num_labels: int = 2,
                        lm_head_trains: bool = False, head_elem: int = 2,
                        loss_shift_copy: bool = False,
                        reentrant: bool = False,
                        logits_upcast: bool = False,
                        own_loss: bool = False) -> ActivationAccount:
    """Activations of one micro-batch of ``st.b`` sequences of ``st.s`` tokens."""
    lin = block_linears(groups)
    b, s, h, V = st.b, st.s, spec.hidden_size, spec.vocab_size
    L = spec.num_hidden_layers
    rows = b * s
    # A forward without checkpointing fills the KV cache when config.use_cache is on
    # (transformers' merge_with_config_defaults turns it off under checkpointing).
    use_cache = spec.use_cache and st.use_cache is not False
    st = replace(st, kv_cache=use_cache and not checkpointing)
    emb_elem = st.r  # the input embeddings' output dtype
    if spec.embedding_norm and st.autocast:
        # Bloom: CUDA autocast runs word_embeddings_layernorm in fp32 and the residual adds
        # keep that dtype, so every block's input and output is fp32 (traced: bloom
        # aten.add.Tensor (b, s, h) float32, the checkpointed inputs)
        st = replace(st, r=4, emb_elem=emb_elem)
    # Which layers hand SDPA an explicit mask: all of them (Falcon), or the sliding-window
    # layers once the sequence reaches the window (masking_utils._ignore_causal_mask_sdpa).
    n_sliding = spec.sliding_layers if (
        spec.sliding_window and s >= spec.sliding_window) else 0
    n_masked = L if spec.always_mask else min(n_sliding, L)

    # A post-LN encoder block's input is a LayerNorm's output (the embeddings' or the previous
    # block's): fp32 under CUDA autocast, whatever the weights' dtype, so each of the query,
    # key and value Linears casts (and keeps) its own 16-bit copy, and checkpointing keeps
    # the fp32 input
    x_elem = 4 if spec.family == "encoder" and st.autocast else st.r

    def walk_block(input_grad: bool, masked: bool, elem: int = 0) -> BlockWalker:
        w = BlockWalker(spec, lin, st, masked)
        w.out_elem = w.walk(w.g.new(rows * h, elem or x_elem, input_grad)).elem
        return w

    kinds = ([True] if n_masked > 0 else []) + ([False] if n_masked < L else [])
    walks = {m: walk_block(True, m) for m in kinds}
    # A block may hand on a wider residual stream than it got: under autocast a k-bit MLP
    # (bitsandbytes casts its output back to its input's dtype) after an nn.LayerNorm (fp32
    # under CUDA autocast) returns fp32, and ``residual + mlp_out`` is fp32 from layer 0 on
    # (GPT-2-era models with an un-upcast QLoRA base; measured: fms-acceleration's santacoder
    # QLoRA rows, -9 % without this). The first block runs on the embeddings' dtype, every
    # later one on the wider stream. Only k-bit bases for now: PhiMoE's MoE output (cast to its
    # fp32 LayerNorm input) widens it too, but its checkpointed instants are fitted to traces
    # on the narrow stream (bench_trace_matrix phimoe: worst 1.09 -> 1.40 % with it)
    first_elem = x_elem
    widened = max(w.out_elem for w in walks.values())
    if st.quantized and not spec.is_encoder and spec.family != "encoder" and widened > x_elem:
        first_elem, x_elem = x_elem, widened
        st = replace(st, r=widened, emb_elem=st.emb_elem or first_elem)
        walks = {m: walk_block(True, m) for m in kinds}
    per_layer = max(w.g.saved_bytes for w in walks.values())
    transient = max(max(w.g.transient_peak, w.bwd_proxy) for w in walks.values())
    # the decoder's forward holds its attention masks through the layer loop: live at the
    # walked LoRA / DoRA instants (llama-like decoders). The largest transient stays as it
    # was: for eager attention it counts softmax's fp32 result once more, though that is
    # saved, on top of every tensor the block saves after it (traced: llama LoRA eager, the
    # masks added there put the forward 1.4-1.8 % over its trace)
    masks = _mask_bytes(spec, st, n_sliding) if spec.family == "llama" else 0
    fwd_transient = max(max(w.g.transient_peak, w.fwd_transient - w.g.saved_bytes + masks)
                        for w in walks.values())
    # the KV cache's copies nothing saved stay live to the end of forward (every layer's)
    cache_held = L * max(w.cache_held for w in walks.values())
    # a checkpointed forward that still fills the cache (stack.checkpointing_keeps_presents):
    # nothing inside the blocks is saved, so every layer's present is held on top
    presents = L * max(w.present_bytes for w in walks.values()) if (
        checkpointing and st.presents_held and use_cache) else 0
    fwd_transient += cache_held
    if spec.is_encoder:
        # BertModel holds embedding_output (LayerNorm's output: fp32 under autocast) through
        # the whole encoder loop
        transient += rows * h * (4 if st.autocast else st.r)
        fwd_transient += rows * h * (4 if st.autocast else st.r)
    # Gemma 2/3 lay sliding layers out first in each pattern: layer 0 is a masked one
    first_masked = n_masked > 0
    # Without checkpointing, the first block's input needs no gradient unless the embedding
    # trains: its first norm keeps nothing. Checkpointing with PEFT calls
    # enable_input_require_grads(), so every block input needs a gradient there.
    first_grad = st.full or checkpointing
    first_layer = walks[first_masked].g.saved_bytes if (
        first_grad and first_elem == x_elem) else walk_block(
        first_grad, first_masked, first_elem).g.saved_bytes
    blocks_total = (n_masked * walks[True].g.saved_bytes if n_masked else 0) + (
        (L - n_masked) * walks[False].g.saved_bytes if n_masked < L else 0)
    blocks_total += first_layer - walks[first_masked].g.saved_bytes
    # MoE models with dense layers (DeepSeek-V2 first_k_dense_replace, Qwen-MoE mlp_only_layers /
    # decoder_sparse_step): those layers run the dense MLP of the inventory, not the experts
    n_sparse = max((x.count for x in groups if x.kind == EXPERTS and x.in_block), default=L)
    wd: BlockWalker | None = None
    if lin.experts and lin.mlp_in and lin.mlp_out and n_sparse < L:
        dense_lin = replace(lin, experts=(), router=None, shared=())
        kind = kinds[-1]
        wd = BlockWalker(spec, dense_lin, st, kind)
        wd.walk(wd.g.new(rows * h, st.r, True))
        blocks_total += (L - n_sparse) * (wd.g.saved_bytes - walks[kind].g.saved_bytes)
        per_layer = max(per_layer, wd.g.saved_bytes)
        transient = max(transient, wd.g.transient_peak)
    ckpt_bytes = rows * h * (first_elem + (L - 1) * x_elem) if checkpointing else 0

    # Outside the blocks: token ids and labels (int64), rotary cos/sin, the final norm and
    # the head's input (when the head trains) or its autocast weight copy (fp32 head).
    tail = BlockWalker(spec, lin, st)
    x = tail.g.new(rows * h, st.r, True)
    head = _head_group(groups)
    encoder = task == "sequence-classification" or spec.is_encoder
    if not spec.is_encoder:
        x = tail.norm(x, st.full)
    if head is not None and not encoder:
        # a head tied to a trainable input embedding trains with it (its weight is the
        # embedding's): it keeps its input like any trained Linear
        head_trains = lm_head_trains or (head.tied_to is not None and st.full)
        head_st = st if head_trains == st.full else _with_full(st, head_trains)
        tail.st = head_st
        tail.linear(x, head)
    # saved after the last block: not yet allocated while that block runs
    after_blocks = tail.g.saved_bytes
    if checkpointing and spec.returned_attn and not st.kbit:
        # the first forward's softmax instant in a layer after the first (BlockWalker.attention),
        # with the layers' other inputs (mask, ALiBi) held by the model; the forward counts it
        # on top of everything saved, the final norm's and the head's (not made yet) aside
        transient = max(transient, max(w.ckpt_fwd_attn for w in walks.values())
                        + _ckpt_args(spec, st, emb_elem, n_sliding, n_masked) - after_blocks)
    if encoder or spec.family == "gpt":
        # embeddings: LayerNorm (BERT) and dropout after the embedding sum
        # the embedding output needs a gradient only when the embeddings train, or under
        # checkpointing (PEFT's enable_input_require_grads); else its LayerNorm (BERT) and
        # dropout keep nothing (traced: opt / gpt2 LoRA, bert LoRA)
        emb = tail.g.new(rows * h, emb_elem, st.full or checkpointing)
        if spec.is_encoder and checkpointing and not st.full:
            # enable_input_require_grads (transformers 5.24 modeling_utils.py) makes the
            # frozen word embedding's output a leaf that requires grad: its AccumulateGrad
            # node holds it to the end of backward. BERT's is summed with the position and
            # token-type embeddings first, so it is one more b*s*h tensor (traced: bert lora
            # ckpt, aten.embedding (b, s, h) live from the embeddings to the end of backward;
            # decoders: below)
            tail.g.save_bytes(rows * h * emb_elem)
        if spec.is_encoder or spec.embedding_norm:
            emb = tail.norm(emb, st.full)
        tail.g.dropout(emb, tail.embd_dropout)
    # the embeddings' backward runs last: what their norm and dropout keep is live through
    # the whole backward (checkpointing's instants count it)
    # (k-bit setups keep their own account of these: _kbit_recompute, main's ids)
    embedding_saved = tail.g.saved_bytes - after_blocks if (
        spec.is_encoder or not st.kbit) else 0
    if checkpointing and not st.full and not st.kbit and not spec.is_encoder and (
            spec.embedding_norm or tail.embd_dropout > 0
            or sum(1 for x in groups if x.kind == EMBEDDING) > 1):
        # PEFT's enable_input_require_grads (called for checkpointing) makes the frozen
        # embedding's output a leaf that requires grad: autograd's AccumulateGrad node holds
        # it through the whole backward. Where learned positions are added to it, or a norm
        # or dropout follows, it is not the first block's (checkpointed) input (traced: gpt2 /
        # bloom LoRA, aten.embedding (b, s, h) live at the backward's peak)
        embedding_saved += rows * h * emb_elem
        leaf = rows * h * emb_elem  # live from the embedding's forward on (counted in other)
    else:
        leaf = 0
    # token ids and labels (int64): one label per sequence for a classifier
    ids = 8 * rows + 8 * (b if encoder else rows)
    if spec.rotary and spec.mla:
        # DeepseekV2RotaryEmbedding.forward (transformers 5.24): one complex64 freqs_cis
        # (1, s, rope / 2), torch.polar of fp32 freqs, not cos and sin at the q/k head width
        # (traced: deepseek_v2, aten.mul.Tensor (1, s, rope / 2) complex64)
        ids += 8 * s * (spec.mla[3] // 2)
    elif spec.rotary:
        ids += 2 * s * spec.head_dim * (4 if st.autocast and st.weight_elem == 4 else st.r)
    if spec.embeddings_scaled_outside and checkpointing and not st.full:
        # PEFT's checkpointing calls enable_input_require_grads (transformers 5.24
        # modeling_utils.py: a forward hook runs ``output.requires_grad_(True)`` on the
        # embedding's output), which makes the frozen embedding's output a leaf: its
        # AccumulateGrad node holds it through backward. Where the model scales it outside
        # the module (Granite), the scaled copy is the first block's input and this leaf is
        # one more b*s*h in the embeddings' dtype (fp32 after k-bit preparation). Traced:
        # granite lora / qlora with checkpointing, aten.embedding live at the peak.
        ids += rows * h * st.r
    other = tail.g.saved_bytes + ids + leaf
    n_out = num_labels if encoder else V
    # Logits chain (transformers 5 ForCausalLMLoss: logits.float() then cross_entropy):
    # forward end: logits (head dtype) + fp32 copy + log_softmax result (fp32);
    # backward start: saved log_softmax + grad of nll + grad of log_softmax (fp32 each).
    tokens = rows if not encoder else b
    logit_elem = 2 if st.autocast else head_elem
    out_elem = logit_elem  # the dtype of the output's logits
    n = tokens * n_out
    if (spec.loss == "shift" or own_loss) and not encoder:
        # the model's own loss (own_loss: stack.model_computes_own_loss): a shifted
        # contiguous copy in the logits dtype, then
        # cross_entropy in that dtype (autocast runs it in fp32: one more cast copy)
        ce = 4 if st.autocast else logit_elem
        fwd = n * logit_elem * 2 + (n * ce if ce != logit_elem else 0) + n * ce
        bwd = 3 * n * ce
        saved = n * ce
    else:
        # transformers' ForCausalLMLoss: logits.float(), then cross_entropy in fp32
        fwd = n * logit_elem + (4 * n if logit_elem != 4 else 0) + 4 * n
        if loss_shift_copy and not encoder:
            fwd += 4 * n  # logits[..., :-1, :].contiguous() of the fp32 logits (< 4.50)
        if logits_upcast and not encoder and logit_elem != 4:
            # < 4.46 the model's own ``logits = logits.float()`` drops its 16-bit logits
            # (stack.logits_upcast_in_model): the output returns the fp32 ones
            fwd -= n * logit_elem
            out_elem = 4
        bwd = 3 * 4 * n
        saved = 4 * n
    if spec.final_softcap and not encoder:
        # Gemma 2: logits = tanh(logits / cap) * cap in the logits' dtype; tanh keeps its result
        fwd += n * logit_elem
        bwd += n * logit_elem
        saved += n * logit_elem
    f32 = saved
    loss_held = 0
    if not encoder:
        # live at the loss besides the logits chain: the KV cache's copies (traced: falcon
        # aten.cat (b, 1, s, d)). The decoder's output (the final norm's, returned as
        # last_hidden_state) is live too unless the head keeps that very tensor, but counting
        # it moves the measured QLoRA run FMS-15 (tests/validate) from +4.5 to +5.8 %: left
        # out until QLoRA's own account is settled
        loss_held = cache_held
    # torch.autocast caches the 16-bit copy of every fp32 leaf weight that requires grad for
    # the whole autocast region (aten/src/ATen/autocast_mode.cpp, cached_cast), also inside
    # checkpointed blocks running without grad; without checkpointing those copies are
    # counted above, as saved for backward.
    cache = 0
    if st.autocast and st.weight_elem == 4 and st.full and checkpointing:
        cache = 2 * sum(g.weight_numel * g.count for g in groups
                        if g.kind in (LINEAR, HEAD) and g.tied_to is None)
    recompute_peak = attn_peak = attn_backward = mlp_backward = fwd_peak = recompute_end = 0
    recompute_peak0 = attn_peak0 = 0
    ckpt_args = 0
    if checkpointing:
        saved_total = ckpt_bytes + other
        recompute = per_layer
        extras = [w.mlp_recompute_backward_extra for w in walks.values()]
        # Not modelled yet, so these keep the whole-block account (recompute_bytes +
        # transient):
        # - k-bit bases: bitsandbytes 4-bit ones have their own instants (_kbit_recompute:
        #   the dequantizing GEMMs, peft's Linear4bit, reentrant or early-stopped
        #   recomputation) where the block is one _kbit_modelled covers; others keep this;
        # - other activations run as a chain of python ops (quick_gelu): their backward's
        #   gradients are not walked (NewGELU's are: mlp_bwd_buffers).
        chain_act = spec.hidden_act in _ACT_SAVED_TENSORS and spec.hidden_act not in (
            "gelu_new", "gelu_fast")
        # With an adapter on the MLP output, quantized setups (their backward is modelled
        # apart) keep the whole-block account they had before recompute_forward_peak was
        # modelled. Encoders do not: post-LN, the output LayerNorm saves after the adapter,
        # so recomputation runs through it and every recorded instant counts (traced: bert
        # lora-all / DoRA ckpt, -6.5 to -16 % with the whole-block account, within 0.3 %)
        adapter_last = lin.mlp_out is not None and lin.mlp_out.leaf in st.lora
        keep_block = adapter_last and st.kbit and bool(st.quantized)
        if all(x is not None for x in extras) and not st.quantized and not chain_act \
                and not keep_block:
            # + the gradient of the block's output, in the residual dtype
            # the MLP's backward, or the recomputed forward's own peak (LoRA's adapter-dtype
            # input copies next to everything saved before them; with an adapter on the
            # MLP's output projection, recomputation runs into it and stops at its last
            # save, DoRA's weight norm on the way: BlockWalker.recompute_forward_peak). An
            # encoder's recomputed forward ends at its output LayerNorm (recompute_end below:
            # its forward-time transients hold the checkpointed input, counted apart), an
            # instant of its own: before the MLP output projection's weight gradient exists,
            # which the instants here come with (traced: bert full eager ckpt, layer 0's
            # recomputation ends with layer 1's gradients only)
            # Reentrant checkpointing (a k-bit-prepared model whose layers stayed unquantized,
            # Falcon's FalconLinear; see _kbit_recompute) reruns the whole block before any of
            # its backward and holds the recomputed output (and the zero gradient of returned
            # attention weights) through it
            rerun, held = _reentrant_extras(spec, st, walks) if reentrant else (0, 0)
            # where the block's first op keeps the block input itself (k-bit preparation's or
            # Bloom's fp32 residual under its first norm), that is the checkpointed input,
            # counted apart (as in _kbit_recompute)
            own = {m: w.g.saved.get(w._input_uid, 0) for m, w in walks.items()}
            # + the attention masks, inputs of every checkpointed layer that the checkpoint
            # keeps for the recomputation through the whole backward (_mask_bytes: eager's
            # float mask per kind of layer, SDPA's boolean one for sliding layers; traced:
            # llama / gemma3 / mixtral / qwen2_moe eager, aten.where.self (b, 1, s, s) live at
            # the recomputed block's peak). GPT-style and parallel decoders count theirs, with
            # Bloom's ALiBi, in ckpt_args below.
            own_mask = spec.family in ("llama", "moe") and not spec.is_encoder
            mask = _mask_bytes(spec, st, n_sliding) if own_mask else 0
            out_grad = rows * h * x_elem + mask
            # the recomputed forward's instants come before any weight gradient of the block
            # (the MLP output projection's included): a decoder's are counted apart under
            # non-reentrant checkpointing, as for k-bit bases (traced: opt / gpt2 lora-all,
            # the recomputation's peak in fc2's / c_proj's lora_A with none of the layer's
            # gradients made)
            apart = not spec.is_encoder and not reentrant and not st.kbit
            recompute_peak = max(max(w.g.saved_bytes + (w.mlp_recompute_backward_extra or 0)
                                     + held, 0 if apart else w.g.live_peak,
                                     0 if apart else (w.reentrant_forward_peak if reentrant
                                                      else w.recompute_forward_peak))
                                 - own[m] for m, w in walks.items()) + out_grad + rerun
            attn_peak = max(w.attn_bwd_bytes - own[m] if w.attn_bwd_bytes else 0
                            for m, w in walks.items())
            attn_peak = attn_peak + out_grad + rerun + held if attn_peak else 0
            if apart:
                fwd_peak = max(max(w.g.live_peak, w.recompute_forward_peak) - own[m]
                               for m, w in walks.items())
                fwd_peak = fwd_peak + out_grad if fwd_peak else 0
            if st.kbit:
                # an unquantized k-bit-prepared block (Falcon's FalconLinear): its attention
                # mask, an input of every checkpointed layer (in the fp32 embeddings' dtype for
                # eager, boolean for SDPA; llama-like and MoE decoders count theirs in
                # out_grad), and under non-reentrant checkpointing the MLP output's gradient
                # cast down from the fp32 residual sum before recomputation (traced: falcon
                # qlora, aten._to_copy (b, s, h) bf16 next to ``* scaling``'s)
                kmask = 0 if own_mask or spec.is_encoder else (
                    b * s * s * st.r if st.attn == "eager" else (b * s * s if n_masked else 0))
                cast = rows * h * 2 if not reentrant and st.autocast and st.r == 4 else 0
                recompute_peak += kmask + cast
                attn_peak += kmask if attn_peak else 0
                fwd_peak += kmask + cast if fwd_peak else 0
            elif not spec.is_encoder and not own_mask:
                # torch.utils.checkpoint (non-reentrant) keeps each layer's arguments until
                # its backward: the 4-D causal mask create_causal_mask makes (transformers
                # 5.24 masking_utils: eager always, a float mask in the embeddings' dtype, one
                # per kind of layer; SDPA a boolean one where a layer is masked), and Bloom's
                # ALiBi tensor (BloomModel.build_alibi_tensor: (b * a, 1, s) in the hidden
                # states' dtype). Traced: gpt2 / bloom eager LoRA, aten.where (b, 1, s, s)
                # and bloom aten.repeat (b * a, 1, s) live at the backward's peak
                ckpt_args = _ckpt_args(spec, st, emb_elem, n_sliding, n_masked)
            if fwd_peak:
                # core counts recompute_fwd_peak_bytes with the checkpointed inputs and ids
                fwd_peak += embedding_saved + ckpt_args
            # the instants before the MLP output projection's weight gradient exists: an
            # encoder's recomputed forward end, the backward of a norm ending the block
            end = max(max(w.recompute_end, w.post_norm_bwd) for w in walks.values())
            recompute_end = end + out_grad if end else 0
            # layer 0, the last block recomputed: the checkpoints of the layers after it
            # were released with their backward, and the masks only they took with them
            # (traced: gpt_oss full eager b1 s256, the full-attention layer's mask freed once
            # layer 1's backward ends, the sliding one live at layer 0's peak)
            n_kinds = 1 + (1 if 0 < n_sliding < L else 0)
            mask0 = mask // n_kinds if st.attn == "eager" else mask
            if wd is not None:
                # MoE models' dense layers come first (DeepSeek-V2 first_k_dense_replace,
                # Qwen-MoE decoder_sparse_step > 1): layer 0 is one
                own0 = wd.g.saved.get(wd._input_uid, 0)
                peak0 = max(wd.g.saved_bytes + (wd.mlp_recompute_backward_extra or 0) + held,
                            0 if apart else wd.g.live_peak,
                            0 if apart else wd.recompute_forward_peak) - own0
                recompute_peak0 = peak0 + rows * h * x_elem + mask0 + rerun
                if apart:
                    fwd0 = max(wd.g.live_peak, wd.recompute_forward_peak) - own0
                    if fwd0:
                        fwd_peak = max(fwd_peak, fwd0 + rows * h * x_elem + mask0
                                       + embedding_saved + ckpt_args)
                attn_peak0 = wd.attn_bwd_bytes + rows * h * x_elem + mask0 \
                    if wd.attn_bwd_bytes else 0
            elif mask0 != mask:
                recompute_peak0 = recompute_peak - mask + mask0
                attn_peak0 = attn_peak - mask + mask0 if attn_peak else 0
        elif st.dequant_gemm and _kbit_modelled(spec, lin) and all(
                w.kbit_instants or w.kbit_fwd for w in walks.values()):
            fwd_peak, recompute_peak, attn_peak = _kbit_recompute(
                spec, st, walks, adapter_last, reentrant, n_sliding)
    else:
        saved_total = blocks_total + other
        recompute = 0
        # the last block's MLP backward (BlockWalker.mlp_backward_extra), every block's
        # saved tensors live, and the block's output gradient
        mlp_extra = max((x for x in (w.mlp_backward_extra for w in walks.values())
                         if x is not None), default=None)
        # (a decoder's embedding norm / dropout keeps its tensors to the end of backward)
        emb_live = 0 if spec.is_encoder else embedding_saved
        if mlp_extra is not None:
            mlp_backward = blocks_total + ids + emb_live + mlp_extra + rows * h * st.r
        bwd_extra = max((w.attn_bwd_bytes - w.g.saved_bytes for w in walks.values()
                         if w.attn_bwd_bytes), default=None)
        if bwd_extra is not None:
            # backward reaches the last block first: the final norm's and the head's saved
            # tensors are freed by then, the other blocks' are all live
            attn_backward = blocks_total + ids + emb_live + bwd_extra + rows * h * st.r
    return ActivationAccount(
        per_layer_bytes=per_layer, layer_transient_bytes=transient, checkpoint_bytes=ckpt_bytes,
        other_bytes=other, saved_total_bytes=saved_total, logits_forward_bytes=fwd,
        logits_backward_bytes=bwd, logits_saved_bytes=f32, recompute_bytes=recompute,
        autocast_cache_bytes=cache, recompute_peak_bytes=recompute_peak,
        recompute_attn_peak_bytes=attn_peak, ids_bytes=ids, after_blocks_bytes=after_blocks,
        forward_transient_bytes=fwd_transient, attn_backward_bytes=attn_backward,
        loss_held_bytes=loss_held, mlp_backward_bytes=mlp_backward,
        recompute_fwd_peak_bytes=fwd_peak, embedding_saved_bytes=embedding_saved,
        recompute_end_bytes=recompute_end, logits_output_bytes=n * out_elem,
        recompute_peak_layer0_bytes=recompute_peak0, recompute_attn_peak_layer0_bytes=attn_peak0,
        checkpoint_args_bytes=ckpt_args, output_held_bytes=presents,
    )


def _ckpt_args(spec: ModelSpec, st: ActSetup, emb_elem: int, n_sliding: int,
               n_masked: int) -> int:
    """The layers' inputs besides the hidden states that the model holds through them: the
    4-D causal mask(s) and Bloom's ALiBi (see ActivationAccount.checkpoint_args_bytes)."""
    b, s, L = st.b, st.s, spec.num_hidden_layers
    n = 0
    if st.attn == "eager":
        n = (1 + (1 if 0 < n_sliding < L else 0)) * b * s * s * emb_elem
    elif n_masked:
        n = s * s  # boolean, (1, 1, s, s) without a padding mask (traced: falcon aten.le)
    if spec.alibi:
        n += b * spec.num_attention_heads * s * st.r
    return n


def _kbit_modelled(spec: ModelSpec, lin: BlockLinears) -> bool:
    """The blocks whose recomputation over k-bit bases _kbit_recompute models, as checked
    against traces (bench_trace_matrix --method qlora: llama, mistral, qwen2/3, gemma 1/2/3,
    phi3, olmo2, granite, mixtral, qwen2/3-MoE, gpt2, gpt_bigcode, opt, bloom, gpt_neox,
    gpt_oss): sequential pre-norm decoders with a gated or plain MLP, parallel blocks, and MoE
    blocks with fused experts, Qwen2-MoE's shared expert included (its bitsandbytes Linears
    walk like a dense MLP's; with non-bf16 grouped GEMMs keeping what aten's
    GroupedMmBackward0 keeps: qwen2_moe qlora b2 s128 -3.7 / -2.1 / -5.2 / -3.4 % -> -0.1 /
    -0.1 / +0.8 / +0.9 %), and DeepSeek-V2's MLA blocks (BlockWalker.mla; deepseek_v2 qlora
    +1.0 / +9.5 / +2.8 / +11.2 % eager, -4.4 / -4.5 / -2.6 / -2.7 % SDPA with the whole-block
    account, within 0.5 % this way)."""
    if spec.family in ("llama", "gpt", "parallel"):
        return True
    return spec.family == "moe"


def _kbit_recompute(spec: ModelSpec, st: ActSetup, walks: dict[bool, BlockWalker],
                    adapter_last: bool, reentrant: bool, n_sliding: int
                    ) -> tuple[int, int, int]:
    """A bitsandbytes 4-bit (QLoRA) block recomputed in backward: the peaks of its recomputed
    forward, of its MLP's backward and of eager softmax's backward, beyond the checkpointed
    inputs and token ids, as ``recompute_peak_bytes`` counts them.

    The recomputed forward peaks inside a LoRA-wrapped bitsandbytes Linear
    (BlockWalker.kbit_adapter), next to what the block saved before it. Live besides:
    - the gradient of the block's output (residual dtype), held by the checkpoint's backward;
    - non-reentrant checkpointing (torch.utils.checkpoint, use_reentrant=False) recomputes when
      backward first unpacks a saved tensor of the block: with an adapter on the MLP output
      that is lora_B's, after ``result + lora_B(...) * scaling``'s backward made the gradient
      of the scaled output (16-bit under autocast); recomputation stops once the last tensor
      the block saves exists (lora_B's weight copy), so that adapter's ``result + output``
      never runs. Reentrant checkpointing (use_reentrant=True: what peft's
      prepare_model_for_kbit_training gets, it passes ``gradient_checkpointing_kwargs={}``
      and torch 2.13 defaults to reentrant) reruns the whole block before its backward;
    - the attention mask, an input of every checkpointed layer: eager builds a float mask
      (b, 1, s, s) in the embeddings' dtype (transformers 5 masking_utils.eager_mask), one
      per kind of layer (full, sliding); SDPA gets a boolean one only for masked layers.
    The block input is the checkpointed input (counted outside): where a norm keeps it, it
    is not counted again.
    Traced (bench_trace_matrix, llama / qwen2 qlora, CUDA semantics): the peak is lora_A of
    the MLP's output projection.
    """
    rows, h = st.b * st.s, spec.hidden_size
    # the MLP output's adapter keeps the block's last saved tensor unless a post-norm or a
    # dropout after it saves more (OLMo 2, Gemma 2/3): then that one triggers and ends the
    # recomputation, and the adapter's forward runs whole
    stops = {w.masked: adapter_last and not reentrant and w.mlp_out_end is not None
             and w.g.saved_bytes == w.mlp_out_end for w in walks.values()}
    out_grad = rows * h * st.r
    if any(stops.values()):
        out_grad += rows * h * (2 if st.autocast else st.adapter_elem)
        # Granite: the MLP output's own gradient (``* residual_multiplier``), held by the base
        # layer's backward (BlockWalker.branch_grad)
        out_grad += max((w.branch_grad for w in walks.values() if w._tail_holds_out_grad),
                        default=0)
    mask = _mask_bytes(spec, st, n_sliding)
    peak = bwd = attn = 0
    for w in walks.values():
        own = w.g.saved.get(w._input_uid, 0)
        for at_a, at_b, last in w.kbit_instants:
            inst = at_a if (last and stops[w.masked]) else max(at_a, at_b)
            peak = max(peak, inst - own)
        peak = max(peak, w.kbit_fwd - own)
        bwd = max(bwd, w.kbit_bwd - own, w.moe_bwd - own,
                  w.g.saved_bytes + (w.mlp_recompute_backward_extra or 0) - own)
        if w.attn_bwd_bytes:
            attn = max(attn, w.attn_bwd_bytes - own)
    # in backward: the block output's gradient, the attention mask, and under reentrant
    # checkpointing the recomputed block's output (CheckpointFunction.backward holds
    # ``outputs`` while it runs torch.autograd.backward through the block)
    live = rows * h * st.r + mask
    if not reentrant:
        # a parallel block's output sum hands its 16-bit attention output a gradient cast
        # down from the residual dtype before anything of the block is unpacked: live until
        # the attention branch's backward (traced: gpt_neox qlora, aten._to_copy (b, s, h)
        # bf16 from before the recomputation to the dense projection's backward)
        par = max(w.kbit_attn_grad for w in walks.values())
        live += par
        peak += par
    if reentrant:
        zeros, out = _reentrant_extras(spec, st, walks)
        live += zeros + out
        peak += zeros
    if spec.family == "gpt":
        # GPT-style models add positions (or LayerNorm, BLOOM) to the embedding output, which
        # enable_input_require_grads (peft, under checkpointing) made a leaf requiring grad:
        # its AccumulateGrad node keeps it to the end of backward (traced: gpt2 qlora,
        # aten.embedding (b, s, h) fp32 freed after the last block's backward), with the
        # embedding dropout's mask (GPT2Model.drop)
        held = rows * h * st.r + (rows * h if spec.embedding_dropout > 0 else 0)
        live += held
        peak += held
    return peak + out_grad + mask, bwd + live, attn + live if attn else 0


def _reentrant_extras(spec: ModelSpec, st: ActSetup, walks: dict[bool, BlockWalker]
                      ) -> tuple[int, int]:
    """What reentrant checkpointing (torch.utils.checkpoint CheckpointFunction) adds to a
    recomputed block: (live from before its recomputation, live through its backward).

    - the layer's eager attention weights, where it returns them, are an output of the
      checkpointed function: its backward (an autograd.Function, materialize_grads) gets a
      zero-filled gradient for them, made before the recomputation and live to the end of the
      block's backward (traced: bloom qlora, aten.zeros (b, a, s, s) fp32);
    - CheckpointFunction.backward holds the recomputed ``outputs`` while it runs
      torch.autograd.backward through the block.
    """
    zeros = 0
    if spec.returns_attn_weights:
        zeros = max((w._held_weights.nbytes for w in walks.values()
                     if w._held_weights is not None), default=0)
    return zeros, st.b * st.s * spec.hidden_size * st.r


def _mask_bytes(spec: ModelSpec, st: ActSetup, n_sliding: int) -> int:
    """The attention masks the decoder's forward holds through its layer loop, and a
    checkpointed step through backward: the decoder passes them to every checkpointed layer,
    whose recomputation keeps its inputs (torch 2.13 torch/utils/checkpoint.py,
    non-reentrant: the recompute closure holds ``args``). Eager attention gets a float
    (b, 1, s, s) mask in the embeddings' dtype (transformers 5.24 masking_utils.eager_mask),
    one per kind of layer (full, sliding); SDPA a boolean one only for the sliding layers
    (``_ignore_causal_mask_sdpa`` skips the full-attention one). Without checkpointing no
    autograd node keeps a mask: it dies with the forward (traced: gemma3 DoRA eager, the two
    aten.where masks live at the last block's forward peak)."""
    b, s = st.b, st.s
    if st.attn == "eager":
        return (1 + (1 if 0 < n_sliding < spec.num_hidden_layers else 0)) * b * s * s * st.r
    return (1 if n_sliding else 0) * b * s * s


def _with_full(st: ActSetup, full: bool) -> ActSetup:
    return replace(st, full=full)
