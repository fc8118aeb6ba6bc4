"""Stand-in quantized layers with the real storage layout, for fake-tensor (and GPTQ/AWQ) steps.

bitsandbytes' layers refuse fake tensors and GPTQ/AWQ kernels need CUDA, so a traced step swaps
in these modules. Each one holds exactly the tensors the real layer keeps resident, with the
real shapes and dtypes, and allocates in its forward and backward the temporaries the real
kernel path allocates for a training-sized input. Values are meaningless (fake or empty).

Sources (bitsandbytes 0.50):
- ``functional.quantize_4bit``: packed weight ``((n + 1) // 2, 1)`` in ``quant_storage``
  (uint8 by default; other storage dtypes pack the same bytes into fewer elements); absmax fp32
  per 64-weight block; the 4-bit code is a 16-entry fp32 table created per call
  (``get_4bit_type``). With double quantization (``compress_statistics``) the absmax is
  re-quantized blockwise to uint8 with blocksize 256 (``quantize_blockwise``): absmax uint8
  ``(n_blocks,)``, an fp32 offset scalar (``_absmax.mean()``), state2 absmax fp32
  ``(ceil(n_blocks / 256),)`` and a per-layer copy of the 256-entry fp32 dynamic map.
- ``backends/cuda/ops.py::_dequant_linear_fallback`` (the path CUDA takes for more than 1536
  rows, and below that wherever ``_gemm_4bit_use_custom_cuda`` prefers it): dequantize the
  nested absmax into a new fp32 buffer, add the offset (a second one), dequantize the weight
  to the input dtype ``(out, in)``, ``F.linear``; all three live until it returns.
  ``autograd/_functions.py::MatMul4Bit.backward``: ``matmul(grad, dequantize_4bit(B).to(grad
  dtype))``, the weight dequantized to ``quant_state.dtype`` (the dtype it was loaded in) with
  the nested absmax dequantized in place into one fp32 buffer (freed when dequantize_4bit
  returns); nothing is saved for backward but the packed weight (``ctx.tensors``, not
  ``save_for_backward``: checkpointing's saved-tensor hooks never see it).
- ``nn.Linear8bitLt``: int8 weight ``(out, in)`` + fp32 row scales ``SCB (out,)``.
- GPTQ (gptqmodel / auto-gptq ``QuantLinear``, 4 bits): qweight int32 ``(in / 8, out)``,
  qzeros int32 ``(in / g, out / 8)``, scales fp16 ``(in / g, out)``, g_idx int32 ``(in,)``;
  AWQ (``WQLinear_GEMM``): qweight int32 ``(in, out / 8)``, qzeros int32 ``(in / g, out / 8)``,
  scales fp16 ``(in / g, out)``. Training dequantizes to fp16 ``(out, in)`` per call.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

BNB_4BIT_BLOCK = 64  # bitsandbytes' default 4-bit blocksize (Linear4bit / quantize_4bit)
BNB_NESTED_BLOCK = 256  # blocksize of the double quantization of absmax


class _DequantLinear(torch.autograd.Function):
    """y = x @ W^T with W rebuilt from its packed form in forward and again in backward."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, layer: QuantStandIn, bias: torch.Tensor | None) -> Any:
        ctx.layer = layer
        # the temporaries the dequantization makes besides the weight stay live through the
        # GEMM (locals of bitsandbytes' _dequant_linear_fallback, freed at its return)
        keep = layer.dequant_temporaries(forward=True)
        w = layer.dequantize(x.dtype, direct=True)
        out = nn.functional.linear(x, w, bias)
        del keep, w
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> Any:
        w = ctx.layer.dequantize(grad.dtype, direct=False)
        return torch.matmul(grad, w), None, None


class QuantStandIn(nn.Module):
    """Base: a frozen quantized Linear whose forward dequantizes (see module docstring)."""

    in_features: int
    out_features: int
    compute_dtype: torch.dtype | None = None

    def dequantize(self, dtype: torch.dtype, direct: bool) -> torch.Tensor:
        """The (out, in) weight in ``dtype``; ``direct``: the kernel writes ``dtype`` itself,
        else it dequantizes to its own dtype and casts (one more temporary)."""
        raise NotImplementedError

    def quant_tensors(self) -> list[torch.Tensor]:
        """Resident tensors besides the weight (quantization constants)."""
        return []

    def dequant_temporaries(self, forward: bool) -> list[torch.Tensor]:
        """Buffers the forward's dequantization allocates before the weight and holds
        until the GEMM returns (none by default)."""
        return []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        inp_dtype = x.dtype
        if self.compute_dtype is not None:
            x = x.to(self.compute_dtype)
        bias = self.bias
        if bias is not None:
            bias = bias.to(x.dtype)
        return _DequantLinear.apply(x, self, bias).to(inp_dtype)


class PackedLinear4bit(QuantStandIn):
    """bitsandbytes ``Linear4bit`` (NF4/FP4, optional double quantization), same storage."""

    def __init__(self, in_features: int, out_features: int, bias: nn.Parameter | None, *,
                 weight_dtype: torch.dtype, compute_dtype: torch.dtype | None,
                 double_quant: bool, quant_storage: torch.dtype = torch.uint8,
                 quant_type: str = "nf4", device: str | torch.device = "cpu") -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.compute_dtype = compute_dtype
        self.weight_dtype = weight_dtype  # quant_state.dtype: the dtype it was quantized from
        self.quant_type = quant_type
        self.double_quant = double_quant
        n = in_features * out_features
        packed_bytes = (n + 1) // 2
        itemsize = torch.empty((), dtype=quant_storage).element_size()
        self.weight = nn.Parameter(
            torch.empty((packed_bytes // itemsize, 1), dtype=quant_storage, device=device),
            requires_grad=False)
        self.bias = bias
        n_blocks = math.ceil(n / BNB_4BIT_BLOCK)
        self.code = torch.empty(16, dtype=torch.float32, device=device)
        if double_quant:
            self.absmax = torch.empty(n_blocks, dtype=torch.uint8, device=device)
            self.offset = torch.empty((), dtype=torch.float32, device=device)
            self.absmax2 = torch.empty(math.ceil(n_blocks / BNB_NESTED_BLOCK),
                                       dtype=torch.float32, device=device)
            # quantize_blockwise keeps its own copy of the 256-entry dynamic map per layer
            # (``code.to(A.device, copy=True)``)
            self.code2 = torch.empty(256, dtype=torch.float32, device=device)
        else:
            self.absmax = torch.empty(n_blocks, dtype=torch.float32, device=device)
        self.n_blocks = n_blocks

    def quant_tensors(self) -> list[torch.Tensor]:
        out = [self.code, self.absmax]
        if self.double_quant:
            out += [self.offset, self.absmax2, self.code2]
        return out

    def dequant_temporaries(self, forward: bool) -> list[torch.Tensor]:
        # backends/cuda/ops.py _dequant_linear_fallback (the forward): ``absmax_dq =
        # torch.empty_like(absmax_8bit, dtype=torch.float32)``, dequantized into, then
        # ``absmax = absmax_dq + absmax_offset`` (a second fp32 buffer); both are locals
        # until the function returns F.linear's output
        if not (forward and self.double_quant):
            return []
        absmax_dq = torch.empty(self.n_blocks, dtype=torch.float32, device=self.weight.device)
        return [absmax_dq, absmax_dq + self.offset]

    def dequantize(self, dtype: torch.dtype, direct: bool) -> torch.Tensor:
        dev = self.weight.device
        absmax = None
        if self.double_quant and not direct:
            # functional.dequantize_4bit (MatMul4Bit.backward): ``absmax =
            # dequantize_blockwise(...)`` then ``absmax += quant_state.offset`` in place; it is
            # live while the weight is dequantized and freed when dequantize_4bit returns
            absmax = torch.empty(self.n_blocks, dtype=torch.float32, device=dev)
            absmax += self.offset
        wdtype = dtype if direct else self.weight_dtype
        w = torch.empty((self.out_features, self.in_features), dtype=wdtype, device=dev)
        del absmax
        return w if dtype == wdtype else w.to(dtype)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"{self.quant_type}, double_quant={self.double_quant} (stand-in)")


class Int8Linear(QuantStandIn):
    """bitsandbytes ``Linear8bitLt`` (LLM.int8, no fp16 weights), same storage."""

    def __init__(self, in_features: int, out_features: int, bias: nn.Parameter | None,
                 device: str | torch.device = "cpu") -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = nn.Parameter(torch.empty((out_features, in_features), dtype=torch.int8,
                                               device=device), requires_grad=False)
        self.SCB = torch.empty(out_features, dtype=torch.float32, device=device)
        self.bias = bias

    def quant_tensors(self) -> list[torch.Tensor]:
        return [self.SCB]

    def dequantize(self, dtype: torch.dtype, direct: bool) -> torch.Tensor:
        # MatMul8bitLt's backward dequantizes the int8 weight to fp16 (bnb autograd
        # _functions.py); the forward's int8 GEMM output is modelled by the same temporary.
        w = torch.empty((self.out_features, self.in_features), dtype=torch.float16,
                        device=self.weight.device)
        return w if dtype == torch.float16 else w.to(dtype)


class GroupQuantLinear(QuantStandIn, nn.Linear):
    """GPTQ / AWQ 4-bit ``QuantLinear`` with group-wise fp16 scales, same storage.

    An ``nn.Linear`` subclass (without nn.Linear's float weight) so that PEFT wraps it with
    its LoRA Linear and resolves ``target_modules: all-linear`` to it, as it does for the real
    GPTQ/AWQ layers; the forward is the stand-in's.
    """

    def __init__(self, in_features: int, out_features: int, bias: nn.Parameter | None, *,
                 method: str, group_size: int, desc_act: bool,
                 device: str | torch.device = "cpu") -> None:
        nn.Module.__init__(self)
        self.in_features, self.out_features = in_features, out_features
        g = in_features if group_size == -1 else group_size
        groups = math.ceil(in_features / g)
        i32 = torch.int32
        if method == "gptq":
            qweight = torch.empty((in_features // 8, out_features), dtype=i32, device=device)
        else:
            qweight = torch.empty((in_features, out_features // 8), dtype=i32, device=device)
        self.weight = nn.Parameter(qweight, requires_grad=False)
        self.qzeros = torch.empty((groups, out_features // 8), dtype=i32, device=device)
        self.scales = torch.empty((groups, out_features), dtype=torch.float16, device=device)
        self.g_idx = (torch.empty(in_features, dtype=i32, device=device)
                      if method == "gptq" else None)
        self.bias = bias
        self.compute_dtype = None

    def quant_tensors(self) -> list[torch.Tensor]:
        return [t for t in (self.qzeros, self.scales, self.g_idx) if t is not None]

    forward = QuantStandIn.forward

    def dequantize(self, dtype: torch.dtype, direct: bool) -> torch.Tensor:
        w = torch.empty((self.out_features, self.in_features), dtype=torch.float16,
                        device=self.weight.device)
        return w if dtype == torch.float16 else w.to(dtype)
