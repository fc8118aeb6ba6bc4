"""Differences between transformers releases that change training memory.

The estimator models transformers 5 by default. A setup may say ``stack: {transformers:
4.48.1}`` for a run on an older release; these are the differences that matter, each read
from the library's source at the named release:

- Loss: up to 4.48 ``ForCausalLMLoss`` (transformers/loss/loss_utils.py) shifted the upcast
  logits with ``logits[..., :-1, :].contiguous()``, one more fp32 copy of the logits alive at
  the end of forward; 4.49 pads the labels instead. Up to 4.48 the GPT-2-era models (GPT-2,
  OPT, BLOOM, Falcon, GPT-NeoX, GPTBigCode) computed their own loss in the logits' dtype.
- Logits: up to the 4.45 releases Llama-like models upcast their logits to fp32 in their own
  forward (``logits = logits.float()``), so the output they return holds fp32 logits.
- KV cache: a forward without checkpointing fills the cache (``config.use_cache``). From
  4.56 ``DynamicLayer.update`` starts each layer's cache with ``torch.cat`` of an empty tensor
  and the new keys and values: copies. Before (4.36-4.55 ``DynamicCache``, and the tuples of
  earlier releases) the cache keeps the tensors it is given, so it holds only what attention
  did not save anyway.
- GPTBigCode (santacoder, StarCoder) and checkpointing: up to 4.52 its model never turns
  ``use_cache`` off under gradient checkpointing, so every layer's ``present``, a view of its
  whole fused ``c_attn`` output, stays in the returned output until the loss is computed;
  4.53 turns it off; from 4.54 to 4.57 the layers call no checkpoint function at all (lost in
  the attention refactor, huggingface/transformers#38635; restored in 5.0 by #41818), so
  ``gradient_checkpointing=True`` saves nothing.
- Linear subclasses: from 5.5 bitsandbytes replaces only modules of type exactly nn.Linear,
  so Falcon's FalconLinear projections stay 16-bit; before, it quantized them too.
- MoE experts: before transformers 5, Mixtral's experts were separate ``nn.Linear`` modules
  (``MixtralBlockSparseTop2MLP``: w1, w2, w3) and its router an ``nn.Linear``, so
  bitsandbytes quantized them; transformers 5 fuses each layer's experts into 3-D parameters
  that bitsandbytes leaves unquantized (see vramdoc/models/_llama_like.py).

and ``stack: {torch: "1.12"}`` (quoted: YAML reads 1.12 as a number, and 2.10 as 2.1):

- Optimizer: from torch 2.0 ``torch.optim`` picks the multi-tensor (foreach) implementation by
  default on CUDA (``_default_to_fused_or_foreach``); before, the per-parameter loop, whose
  step temporaries are one parameter's worth at a time.
- CUDA context: lazy module loading is PyTorch's default from 1.13 with CUDA >= 11.7; before,
  every kernel image loads at start-up: 1,343 MiB measured on a V100 (HF transformers docs,
  "Efficient training on a single GPU", transformers v4.21).
- Gradients: before torch 2.0, ``zero_grad()`` defaulted to ``set_to_none=False``, so gradient
  buffers stay allocated (zeroed) through the next forward instead of being freed.

and ``stack: {peft: 0.10}``:

- LoRA adapter dtype: from peft 0.12 ``get_peft_model`` upcasts adapters to fp32 on a 16-bit
  base (``autocast_adapter_dtype=True``); before, ``_move_adapter_to_device_of_base_layer``
  gave them the base weight's dtype when it is a float (bf16 / fp16 bases, and 4-bit bases
  stored as bf16 / fp16 with ``bnb_4bit_quant_storage``).
"""

from __future__ import annotations


def version_tuple(version: str) -> tuple[int, int]:
    parts = [int(p) for p in version.split(".")[:2]]
    return (parts[0], parts[1] if len(parts) > 1 else 0)


def loss_shift_copy(version: str) -> bool:
    """True when the causal-LM loss makes a contiguous shifted copy of the fp32 logits: up to
    4.48 (``ForCausalLMLoss`` in loss/loss_utils.py); 4.49.0 pads the labels instead."""
    return version_tuple(version) < (4, 49)


# Causal LMs that computed their own loss up to transformers 4.48: ``CrossEntropyLoss`` on
# ``lm_logits[..., :-1, :].contiguous()`` in the logits' dtype, no fp32 upcast (4.48.1
# modeling_gpt2.py, modeling_opt.py, modeling_bloom.py, modeling_falcon.py,
# modeling_gpt_neox.py, modeling_gpt_bigcode.py); 4.49.0 gives each ``self.loss_function``
OWN_LOSS_MODEL_TYPES = frozenset({"gpt2", "opt", "bloom", "falcon", "gpt_neox", "gpt_bigcode"})


def trainer_checkpointing_reentrant(version: str) -> bool:
    """Whether Trainer's ``gradient_checkpointing`` flag runs torch's reentrant checkpoint when
    no ``gradient_checkpointing_kwargs`` are given: ``gradient_checkpointing_enable`` defaults to
    ``{"use_reentrant": True}`` from 4.35 to 4.57 (and passed nothing to torch before, whose
    default was reentrant); transformers 5 defaults to ``{"use_reentrant": False}``."""
    return version_tuple(version) < (5, 0)


def checkpoint_outside_layer(version: str) -> bool:
    """Whether the model's layer loop checkpoints each decoder layer's ``__call__`` from outside
    (``self._gradient_checkpointing_func(decoder_layer.__call__, ...)``, up to 4.51), so that a
    wrapper around the layer, FSDP1's unit, runs inside the checkpoint; from 4.52 each layer is
    a ``GradientCheckpointingLayer`` (modeling_layers.py) that checkpoints inside its own
    ``__call__``, inside any wrapper."""
    return version_tuple(version) < (4, 52)


def model_computes_own_loss(model_type: str, version: str) -> bool:
    """True when the model's forward computes its loss in the logits' dtype (the "shift"
    loss of vramdoc.models.spec) rather than through transformers' ForCausalLMLoss."""
    return model_type in OWN_LOSS_MODEL_TYPES and version_tuple(version) < (4, 49)


def logits_upcast_in_model(version: str) -> bool:
    """True when a causal LM's forward replaces its logits by an fp32 copy before the loss.

    Up to the 4.45 releases LlamaForCausalLM and the models copied from it (Mistral, Qwen2,
    Gemma, ...) ran ``logits = self.lm_head(hidden_states)`` then ``logits = logits.float()``
    (modeling_llama.py), so the output's ``logits`` are fp32 and the 16-bit ones are freed;
    4.46 moved the upcast into ``ForCausalLMLoss`` (loss/loss_utils.py), leaving the output's
    logits in the head's dtype."""
    return version_tuple(version) < (4, 46)


def cache_copies(version: str) -> bool:
    """True when the KV cache a forward fills copies the keys and values it is given
    (``DynamicLayer.update``'s ``torch.cat`` from 4.56, cache_utils.py); before, it keeps the
    very tensors (4.36-4.55 ``DynamicCache.update`` appends them; earlier, tuples)."""
    return version_tuple(version) >= (4, 56)


def checkpointing_keeps_presents(model_type: str, version: str) -> bool:
    """True when a checkpointed forward still fills the KV cache: GPTBigCode from its first
    release (4.28) to 4.52 passes ``use_cache`` (``config.use_cache``, True by default) into
    its checkpointed blocks and collects each block's ``present``, ``key_value = c_attn(x)
    .split(...)``: a view that keeps the layer's whole fused QKV output alive in the returned
    output. 4.53 sets ``use_cache = False`` under checkpointing (modeling_gpt_bigcode.py)."""
    return model_type == "gpt_bigcode" and version_tuple(version) < (4, 53)


def checkpointing_ignored(model_type: str, version: str) -> bool:
    """True when ``gradient_checkpointing_enable()`` has no effect on the model: GPTBigCode's
    layers call no checkpoint function from 4.54.0 to 4.57.x (its blocks are plain
    ``nn.Module`` and the layer loop calls them directly, modeling_gpt_bigcode.py); 5.0
    restores ``GradientCheckpointingLayer`` (huggingface/transformers#41818)."""
    return model_type == "gpt_bigcode" and (4, 54) <= version_tuple(version) < (5, 0)


def bnb_skips_linear_subclasses(version: str) -> bool:
    """True when bitsandbytes quantizes only modules whose type is exactly nn.Linear (or GPT-2's
    Conv1D): ``type(module) is nn.Linear`` in integrations/bitsandbytes.py from 5.5.0; before,
    ``isinstance(module, (nn.Linear, Conv1D))`` also took subclasses such as Falcon's
    FalconLinear. A bare "5" (the default stack) is the current 5.x release."""
    if "." not in version:
        return int(version) >= 5
    return version_tuple(version) >= (5, 5)


def experts_are_linear(version: str) -> bool:
    """True when MoE experts are per-expert nn.Linear modules (quantizable by bitsandbytes)."""
    return version_tuple(version) < (5, 0)


def foreach_default(torch_version: str) -> bool:
    """True when torch's optimizers default to the multi-tensor (foreach) path on CUDA."""
    return version_tuple(torch_version) >= (2, 0)


def lazy_module_loading(torch_version: str) -> bool:
    """True when CUDA kernels load lazily (a smaller CUDA context)."""
    return version_tuple(torch_version) >= (1, 13)


def grads_freed_after_step(torch_version: str) -> bool:
    """True when zero_grad() frees gradients (set_to_none=True default, torch >= 2.0)."""
    return version_tuple(torch_version) >= (2, 0)


def adapters_fp32(peft_version: str) -> bool:
    """True when PEFT upcasts LoRA adapters on 16-bit bases to fp32 (peft >= 0.12)."""
    return version_tuple(peft_version) >= (0, 12)
