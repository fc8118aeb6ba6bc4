"""Liger kernels (``TrainingArguments(use_liger_kernel=True)``): the fused linear cross-entropy.

Trainer calls ``liger_kernel.transformers._apply_liger_kernel_to_instance`` on the model; for
the model types of its ``MODEL_TYPE_TO_APPLY_LIGER_FN`` (Liger-Kernel
src/liger_kernel/transformers/monkey_patch.py @ 00218a0) the causal-LM forward is replaced by
one that, in training with labels, never materialises the logits: the final hidden states go
to ``LigerFusedLinearCrossEntropyFunction`` (src/liger_kernel/ops/fused_linear_cross_entropy.py
@ 00eba63), which computes loss *and* gradients during the forward, chunk by chunk:

- ``inc_factor = ceil(V / H)``, ``chunk = min(next_pow2(ceil(BT / inc_factor)), BT)``: the
  transient logits stay about BT x H elements whatever the vocabulary;
- it allocates ``grad_input`` (BT x H, like the hidden states), ``grad_weight`` (V x H, like
  the head's weight, only when the head trains), ``loss_1d`` (BT fp32) and, per chunk, the
  chunk's logits (chunk x V, in the matmul's dtype: 16-bit under autocast) whose gradient the
  cross-entropy kernel writes in place, then ``grad_input[chunk] = grad_logits @ W``;
- it saves ``grad_input`` and ``grad_weight`` for backward, nothing else (not its input).

Modelled here: that chain replaces transformers' logits chain (logits + fp32 copy +
log-softmax, then three fp32 b·s·V buffers at the start of backward). Where the head trains,
the head's saved input (BT x H, counted with the activations) stands for ``grad_input``, which
has the same shape: the fused function saves no input of its own. Liger's RMSNorm, SwiGLU and
RoPE kernels save fewer tensors than the Hugging Face modules (RMSNorm: input + fp32 rstd per
row; SwiGLU: gate and up only): their savings are *not* modelled, so the block activations are
those of the Hugging Face modules, an upper bound.
"""

from __future__ import annotations

from vramdoc.estimate.params import round_block

# Liger-Kernel monkey_patch.py MODEL_TYPE_TO_APPLY_LIGER_FN (commit 00218a0), causal-LM types
LIGER_MODEL_TYPES = frozenset({
    "deepseek_v3", "gemma", "gemma2", "gemma3", "gemma3_text", "glm4", "gpt_oss", "granite",
    "llama", "llama4", "llama4_text", "ministral", "mistral", "mixtral", "nemotron", "olmo2",
    "olmo3", "phi3", "qwen2", "qwen3", "qwen3_moe", "qwen3_next", "smollm3", "exaone4",
    "falcon_h1", "hunyuan_v1_dense", "hunyuan_v1_moe",
})


def liger_applies(model_type: str, task: str, is_encoder: bool) -> bool:
    """Whether Trainer's use_liger_kernel=True patches this model's loss (causal LM only)."""
    return model_type in LIGER_MODEL_TYPES and task == "causal-lm" and not is_encoder


def _next_pow2(n: int) -> int:
    return 1 if n <= 1 else 1 << (n - 1).bit_length()


def flce_chunk(rows: int, h: int, V: int) -> int:
    """Tokens per chunk of Liger's fused linear cross-entropy."""
    inc = -(-V // h)
    return min(_next_pow2(-(-rows // inc)), rows)


def flce_bytes(rows: int, h: int, V: int, hidden_elem: int, logit_elem: int, head_elem: int,
               head_trains: bool) -> tuple[int, int]:
    """(peak inside the fused forward, what it keeps for backward), in bytes.

    ``rows`` = b·s tokens, ``hidden_elem`` the final hidden states' element size,
    ``logit_elem`` the chunk matmul's output size (2 under autocast), ``head_elem`` the head
    weight's element size.
    """
    chunk = flce_chunk(rows, h, V)
    grad_input = 0 if head_trains else round_block(rows * h * hidden_elem)
    grad_weight = round_block(V * h * head_elem) if head_trains else 0
    loss = round_block(4 * rows) + round_block(rows)  # loss_1d (fp32) + target mask (bool)
    chunk_logits = round_block(chunk * V * logit_elem)
    chunk_grad_in = round_block(chunk * h * logit_elem)  # grad_logits @ W before the copy
    saved = grad_input + grad_weight
    return saved + loss + chunk_logits + chunk_grad_in, saved
