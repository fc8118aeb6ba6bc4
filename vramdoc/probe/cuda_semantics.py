"""Make a CPU (or fake-cpu) training step keep the tensors a CUDA step keeps for backward.

A CPU trace is not a GPU trace (shared/REFERENCE.md section 2). Two kernel-level differences
change what autograd saves, and both are emulated here while a cpu/fake probe runs:

- **Dropout.** ``aten::dropout`` on CUDA takes the fused path (``native_dropout``) whenever
  ``0 < p < 1`` and the input is not empty, which saves a 1-byte boolean mask; the CPU path
  multiplies by a noise tensor in the input's dtype and saves that
  (aten/src/ATen/native/Dropout.cpp, ``is_fused_kernel_acceptable``). :func:`_fused_dropout`
  routes ``F.dropout`` through ``torch.native_dropout`` in training.
- **Autocast op lists.** CUDA autocast runs the ``fp32`` list (``layer_norm``, ``pow``,
  ``exp``, ``rsqrt`` ...) on fp32 copies of its inputs and gives the ``fp32_set_opt_dtype`` list
  (``softmax``, ``log_softmax``, ``sum``, ``cumsum`` ...) an fp32 output; CPU autocast has
  different lists (torch 2.13 aten/src/ATen/autocast_mode.h ``AT_FORALL_FP32`` and
  ``AT_FORALL_FP32_SET_OPT_DTYPE``, used for CUDA, vs the ``AutocastCPU`` block of
  autocast_mode.cpp). :func:`_cuda_autocast_lists` registers CUDA's policies as the
  ``AutocastCPU`` kernels of those ops for the duration of the probe, and makes the ops CPU
  autocast runs in fp32 but CUDA leaves alone run unchanged.

- **Grouped GEMM dtypes.** CUDA's ``aten::_grouped_mm`` takes a CUTLASS fast path for bf16 and
  loops ``mm_out`` over the groups for other dtypes (aten/src/ATen/native/cuda/GroupedBlas.cpp,
  ``_grouped_mm_fallback``), but torch 2.13's meta registration (``_meta_grouped_mm_common``)
  rejects anything but bf16, so a fake trace of fp32 experts (QLoRA's k-bit upcast of MoE
  experts) dies where a GPU runs. :func:`_grouped_mm_any_dtype` runs non-bf16 grouped GEMMs of
  transformers' MoE layers through transformers' own fallback kernel (``grouped_mm_fallback``,
  which has a fake kernel), inside an autograd function that keeps what aten's
  ``GroupedMmBackward0`` keeps: the input only where the weight needs a gradient, and computes
  only the gradients needed. (transformers' own op keeps the input and builds a weight-sized
  gradient even for frozen experts, which CUDA's aten path never allocates; bf16 traces of
  frozen experts keep no expert input, tests/benchmarks mixtral lora.)

- **SDPA with a value head width unlike the query's** (DeepSeek-V2's MLA: q/k 192, v 128).
  CUDA's backend choice (torch aten/src/ATen/native/transformers/cuda/sdp_utils.cpp,
  ``select_sdp_backend``): flash needs equal q/k/v head widths (``check_head_dim_size_flash``),
  the memory-efficient kernel only q == k and both widths a multiple of the GEMM alignment (8
  for 16-bit on sm80+, ``check_head_dim_size_mem_efficient``), so CUDA runs memory-efficient
  attention; where cuDNN attention goes first (Hopper with cuDNN > 9.15), it takes these widths
  too and keeps the same tensors. The CPU backend has no memory-efficient kernel and its flash
  needs equal widths (sdp_utils_cpp.cpp, ``check_head_dim_size_cpp``), so a CPU trace falls to
  the math kernel, which keeps the b*a*s*s attention matrix. :func:`_sdpa_unequal_value_dim`
  runs those calls as the memory-efficient kernel does: it keeps q, k, v, the output (laid out
  b, s, a, d_v) and an fp32 log-sum-exp padded to 32 query rows (attention.cu,
  ``_efficient_attention_forward``, kAlignLSE), and the additive mask when one is given.

Other SDPA calls need no emulation beyond :func:`vramdoc.probe.devices._gpu_attention_dropout`:
with a 16-bit q/k/v and no mask CUDA picks the flash kernel, with a mask the memory-efficient
one (flash takes no mask); both keep q, k, v, the output and an fp32 log-sum-exp, and the
memory-efficient kernel the additive mask as well, which is what torch's CPU flash kernel
keeps (the boolean mask is converted to the query dtype first on both,
``convert_boolean_attn_mask`` in aten/src/ATen/native/transformers/attention.cpp).
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from typing import Any

import torch

# CUDA's fp32 policy: floating inputs are cast to fp32 (torch 2.13 autocast_mode.h,
# AT_FORALL_FP32; only the ops a transformer step can reach are listed).
_FP32 = ("acos", "asin", "cosh", "erfinv", "exp", "expm1", "log", "log10", "log2", "log1p",
         "reciprocal", "rsqrt", "sinh", "tan", "pow.Tensor_Scalar", "pow.Tensor_Tensor",
         "pow.Scalar", "softplus", "layer_norm", "native_layer_norm", "rms_norm", "group_norm",
         "nll_loss", "nll_loss2d", "kl_div", "l1_loss", "smooth_l1_loss", "huber_loss",
         "mse_loss", "binary_cross_entropy_with_logits", "logsumexp")
# CUDA's fp32_set_opt_dtype policy: an unset ``dtype`` argument becomes float32
# (AT_FORALL_FP32_SET_OPT_DTYPE).
_FP32_SET_OPT_DTYPE = ("prod", "prod.dim_int", "softmax.int", "log_softmax.int", "cumprod",
                       "cumsum", "sum", "sum.dim_IntList")
# Ops CPU autocast runs in fp32 that CUDA autocast leaves alone (they fall through there).
# cross_entropy_loss is composite: on CUDA its log_softmax and nll_loss meet the lists above.
_CPU_ONLY_FP32 = ("prod", "cdist", "binary_cross_entropy")

_LOW = (torch.bfloat16, torch.float16)


def _op(name: str) -> Any:
    base, _, overload = name.partition(".")
    packet = getattr(torch.ops.aten, base)
    return getattr(packet, overload or "default")


def _no_autocast() -> Any:
    return torch._C._ExcludeDispatchKeyGuard(
        torch._C.DispatchKeySet(torch._C.DispatchKey.AutocastCPU))


def _to_fp32(x: Any) -> Any:
    if isinstance(x, torch.Tensor) and x.dtype in _LOW:
        return x.float()
    if isinstance(x, list | tuple) and any(isinstance(t, torch.Tensor) for t in x):
        return type(x)(_to_fp32(t) for t in x)
    return x


def _fp32_kernel(op: Any) -> Any:
    def kernel(*args: Any, **kwargs: Any) -> Any:
        with _no_autocast():
            return op(*[_to_fp32(a) for a in args],
                      **{k: _to_fp32(v) for k, v in kwargs.items()})
    return kernel


def _set_opt_dtype_kernel(op: Any) -> Any:
    schema = op._schema
    names = [a.name for a in schema.arguments]
    pos = names.index("dtype") if "dtype" in names else None

    def kernel(*args: Any, **kwargs: Any) -> Any:
        with _no_autocast():
            first = args[0] if args else None
            eligible = isinstance(first, torch.Tensor) and first.is_floating_point() and \
                first.dtype != torch.float64
            if eligible and pos is not None:
                if len(args) > pos:
                    if args[pos] is None:
                        args = (*args[:pos], torch.float32, *args[pos + 1:])
                elif kwargs.get("dtype") is None:
                    kwargs["dtype"] = torch.float32
            return op(*args, **kwargs)
    return kernel


def _passthrough_kernel(op: Any) -> Any:
    def kernel(*args: Any, **kwargs: Any) -> Any:
        with _no_autocast():
            return op(*args, **kwargs)
    return kernel


@contextlib.contextmanager
def _cuda_autocast_lists() -> Iterator[None]:
    """CUDA autocast's fp32 and fp32_set_opt_dtype policies as the AutocastCPU kernels."""
    lib = torch.library.Library("aten", "IMPL")
    with warnings.catch_warnings():
        # "Overriding a previously registered kernel": the override is the point
        warnings.simplefilter("ignore", UserWarning)
        for name in _FP32:
            lib.impl(name, _fp32_kernel(_op(name)), "AutocastCPU")
        for name in _FP32_SET_OPT_DTYPE:
            lib.impl(name, _set_opt_dtype_kernel(_op(name)), "AutocastCPU")
        for name in _CPU_ONLY_FP32:
            if name not in _FP32_SET_OPT_DTYPE:
                lib.impl(name, _passthrough_kernel(_op(name)), "AutocastCPU")
    try:
        yield
    finally:
        lib._destroy()


@contextlib.contextmanager
def _fused_dropout() -> Iterator[None]:
    """``F.dropout`` in training as CUDA runs it: ``native_dropout``, a saved bool mask."""
    fn = torch.nn.functional
    original = fn.dropout

    def dropout(input: torch.Tensor, p: float = 0.5, training: bool = True,
                inplace: bool = False) -> torch.Tensor:
        if training and 0.0 < p < 1.0 and not inplace and input.numel() > 0:
            return torch.native_dropout(input, p, True)[0]
        return original(input, p, training, inplace)

    fn.dropout = dropout
    try:
        yield
    finally:
        fn.dropout = original


class _GroupedMmAsAten(torch.autograd.Function):
    """``aten::_grouped_mm`` as autograd runs it on CUDA for a dtype the meta kernel refuses:
    transformers' fallback kernel forward and backward, saving ``input`` only where ``weight``
    needs a gradient (``weight``, a parameter or its view, costs nothing) and making only the
    gradients asked for (torch's GroupedMmBackward0, grad_input_mask)."""

    @staticmethod
    def forward(ctx: Any, input: torch.Tensor, weight: torch.Tensor,
                offs: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(input if weight.requires_grad else None, weight)
        ctx.offs = offs
        return torch.ops.transformers.grouped_mm_fallback(input, weight, offs)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> Any:
        input, weight = ctx.saved_tensors
        grad_input = grad_weight = None
        if ctx.needs_input_grad[1]:
            grad_input, grad_weight = torch.ops.transformers.grouped_mm_fallback_backward(
                input, weight, ctx.offs, grad)
            if not ctx.needs_input_grad[0]:
                grad_input = None
        elif ctx.needs_input_grad[0]:
            # grad @ weight[i].T per group: the fallback kernel on the transposed weight
            grad_input = torch.ops.transformers.grouped_mm_fallback(
                grad, weight.transpose(-2, -1), ctx.offs)
        return grad_input, grad_weight, None


@contextlib.contextmanager
def _grouped_mm_any_dtype() -> Iterator[None]:
    """Non-bf16 grouped GEMMs of transformers' MoE experts through its fallback kernel."""
    try:
        from transformers.integrations import moe
    except ImportError:  # an older transformers: no fused experts
        yield
        return
    original = getattr(moe, "_grouped_mm", None)
    if original is None or not hasattr(torch.ops.transformers, "grouped_mm_fallback"):
        yield
        return

    def grouped_mm(input: torch.Tensor, weight: torch.Tensor, offs: torch.Tensor) -> Any:
        if weight.dtype == torch.bfloat16:
            return original(input, weight, offs)
        return _GroupedMmAsAten.apply(input.to(weight.dtype), weight, offs)

    moe._grouped_mm = grouped_mm
    try:
        yield
    finally:
        moe._grouped_mm = original


def _mem_efficient_takes(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> bool:
    """Where CUDA runs memory-efficient attention but a CPU trace would run the math kernel:
    q and k of one head width, v of another, both aligned (sdp_utils.cpp,
    check_head_dim_size_mem_efficient: minimum_gemm_alignment is 8 elements for 16-bit
    inputs, 4 for fp32 on sm80+)."""
    if q.dim() != 4 or k.dim() != 4 or v.dim() != 4:
        return False
    dq, dk, dv = q.shape[-1], k.shape[-1], v.shape[-1]
    align = 8 if q.dtype in _LOW else 4
    return dq == dk and dq != dv and dq % align == 0 and dv % align == 0 and dv > 0


def _head_mask(mask: torch.Tensor | None, h: int) -> torch.Tensor | None:
    """Head ``h``'s slice of a (b, a, s, s) mask; a mask broadcast over heads as it is."""
    if mask is None or mask.dim() < 4 or mask.shape[1] == 1:
        return mask
    return mask[:, h:h + 1]


class _MemEfficientSDPA(torch.autograd.Function):
    """SDPA that keeps for backward what CUDA's memory-efficient kernel keeps.

    Forward and backward compute one head at a time with the CPU kernel, so neither holds the
    whole b*a*s*s attention matrix the math kernel would keep; the figures are torch's own.
    """

    @staticmethod
    def forward(ctx: Any, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                mask: torch.Tensor | None, is_causal: bool, scale: float | None,
                sdpa: Any) -> torch.Tensor:
        b, a, s, _ = q.shape
        kv = k.shape[1]
        # _scaled_dot_product_efficient_attention_cuda allocates the output as (b, s, a, d_v)
        # and returns it transposed
        out = q.new_empty(b, s, a, v.shape[-1]).transpose(1, 2)
        with torch.no_grad():
            for h in range(a):
                hk = h * kv // a
                m = _head_mask(mask, h)
                out[:, h:h + 1] = sdpa(q[:, h:h + 1], k[:, hk:hk + 1], v[:, hk:hk + 1],
                                       attn_mask=m, is_causal=is_causal, scale=scale)
        # log-sum-exp: (b, a, ceil(s / 32) * 32) fp32 (attention.cu kAlignLSE = 32)
        lse = q.new_empty(b, a, -(-s // 32) * 32, dtype=torch.float32)
        ctx.save_for_backward(q, k, v, out, lse, mask)
        ctx.is_causal, ctx.scale, ctx.sdpa = is_causal, scale, sdpa
        return out

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[Any, ...]:
        q, k, v, _out, _lse, mask = ctx.saved_tensors
        a, kv = q.shape[1], k.shape[1]
        gq, gk, gv = torch.empty_like(q), torch.zeros_like(k), torch.zeros_like(v)
        for h in range(a):
            hk = h * kv // a
            m = _head_mask(mask, h)
            qh = q[:, h:h + 1].detach().requires_grad_()
            kh = k[:, hk:hk + 1].detach().requires_grad_()
            vh = v[:, hk:hk + 1].detach().requires_grad_()
            with torch.enable_grad():
                oh = ctx.sdpa(qh, kh, vh, attn_mask=m, is_causal=ctx.is_causal, scale=ctx.scale)
                dq, dk, dv = torch.autograd.grad(oh, (qh, kh, vh), grad_out[:, h:h + 1])
            gq[:, h:h + 1] = dq
            gk[:, hk:hk + 1] += dk
            gv[:, hk:hk + 1] += dv
        return gq, gk, gv, None, None, None, None


@contextlib.contextmanager
def _sdpa_unequal_value_dim() -> Iterator[None]:
    """SDPA with v's head width unlike q's as CUDA's memory-efficient kernel runs it."""
    fn = torch.nn.functional
    original = fn.scaled_dot_product_attention

    def sdpa(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
             attn_mask: torch.Tensor | None = None, dropout_p: float = 0.0,
             is_causal: bool = False, scale: float | None = None, enable_gqa: bool = False,
             **kwargs: Any) -> torch.Tensor:
        # autocast's lower_precision_fp policy for scaled_dot_product_attention (torch 2.13
        # aten/src/ATen/autocast_mode.cpp, KERNEL_CUDA(scaled_dot_product_attention,
        # lower_precision_fp); CPU autocast has it too): floating arguments are cast to the
        # autocast dtype before any kernel runs. This Python-level wrapper sits above that
        # dispatch, so it casts them itself: QLoRA's fp32 MLA q / k / v (k-bit preparation's
        # fp32 residual through fp32 LoRA sums) reach the memory-efficient kernel as 16-bit
        # copies, which it keeps, while the fp32 originals die with the forward
        dev = query.device.type
        if torch.is_autocast_enabled(dev):
            low = torch.get_autocast_dtype(dev)

            def cast(t: Any) -> Any:
                return t.to(low) if isinstance(t, torch.Tensor) and t.is_floating_point() \
                    and t.dtype != low else t
            query, key, value, attn_mask = cast(query), cast(key), cast(value), cast(attn_mask)
        if kwargs or not _mem_efficient_takes(query, key, value):
            return original(query, key, value, attn_mask=attn_mask, dropout_p=dropout_p,
                            is_causal=is_causal, scale=scale, enable_gqa=enable_gqa, **kwargs)
        if attn_mask is not None and attn_mask.dtype == torch.bool:
            # convert_boolean_attn_mask: an additive mask in the query's dtype, kept
            attn_mask = torch.zeros(attn_mask.shape, dtype=query.dtype,
                                    device=query.device).masked_fill_(~attn_mask,
                                                                      float("-inf"))
        return _MemEfficientSDPA.apply(query, key, value, attn_mask, is_causal, scale, original)

    fn.scaled_dot_product_attention = sdpa
    try:
        yield
    finally:
        fn.scaled_dot_product_attention = original


@contextlib.contextmanager
def cuda_semantics() -> Iterator[None]:
    """The emulations of the module docstring."""
    with _cuda_autocast_lists(), _fused_dropout(), _grouped_mm_any_dtype(), \
            _sdpa_unequal_value_dim():
        yield
