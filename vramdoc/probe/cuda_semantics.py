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
  experts) dies where a GPU runs. :func:`_grouped_mm_any_dtype` sends non-bf16 grouped GEMMs of
  transformers' MoE layers to transformers' own fallback op (``grouped_mm_fallback``, with a
  fake kernel), which keeps the same tensors for backward (input and weight) and returns the
  same output.

SDPA needs no emulation beyond :func:`vramdoc.probe.devices._gpu_attention_dropout`: with a
16-bit q/k/v and no mask CUDA picks the flash kernel, with a mask the memory-efficient one
(flash takes no mask); both keep q, k, v, the output and an fp32 log-sum-exp, and the
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


@contextlib.contextmanager
def _grouped_mm_any_dtype() -> Iterator[None]:
    """Non-bf16 grouped GEMMs of transformers' MoE experts through its fallback op."""
    try:
        from transformers.integrations import moe
    except ImportError:  # an older transformers: no fused experts
        yield
        return
    original = getattr(moe, "_can_use_grouped_mm", None)
    if original is None:
        yield
        return

    def can_use(input: torch.Tensor, weight: torch.Tensor, offs: torch.Tensor) -> bool:
        return weight.dtype == torch.bfloat16 and bool(original(input, weight, offs))

    moe._can_use_grouped_mm = can_use
    try:
        yield
    finally:
        moe._can_use_grouped_mm = original


@contextlib.contextmanager
def cuda_semantics() -> Iterator[None]:
    """The emulations of the module docstring."""
    with _cuda_autocast_lists(), _fused_dropout(), _grouped_mm_any_dtype():
        yield
