"""The probe's emulation of CUDA's memory-efficient SDPA for unequal q/k and v head widths
(vramdoc.probe.cuda_semantics): same numbers as torch's own kernel, and no b*a*s*s matrix kept
for backward."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from vramdoc.probe import cuda_semantics as cs  # noqa: E402


def _qkv(dv: int, dtype: object = torch.float32) -> tuple[object, object, object]:
    g = torch.Generator().manual_seed(0)
    b, a, s, d = 2, 4, 40, 24
    return tuple(torch.randn(b, a, s, w, generator=g, dtype=dtype).requires_grad_()
                 for w in (d, d, dv))


def test_takes_only_unequal_aligned_value_widths() -> None:
    q, k, v = _qkv(16)
    assert cs._mem_efficient_takes(q, k, v)
    assert not cs._mem_efficient_takes(q, k, _qkv(24)[2])  # equal widths: flash's case
    assert not cs._mem_efficient_takes(q, k, _qkv(18)[2])  # not a multiple of 4 (fp32)
    qh, kh, vh = _qkv(12, torch.bfloat16)
    assert not cs._mem_efficient_takes(qh, kh, vh)  # 16-bit needs multiples of 8


@pytest.mark.parametrize("causal", [True, False])
def test_same_output_and_gradients_as_torch(causal: bool) -> None:
    F = torch.nn.functional
    q, k, v = _qkv(16)
    ref = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    ref.sum().backward()
    grads = [t.grad.clone() for t in (q, k, v)]
    for t in (q, k, v):
        t.grad = None
    with cs._sdpa_unequal_value_dim():
        out = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    assert out.grad_fn is not None and "MemEfficient" in type(out.grad_fn).__name__
    out.sum().backward()
    torch.testing.assert_close(out, ref)
    for t, g in zip((q, k, v), grads, strict=True):
        torch.testing.assert_close(t.grad, g)


def test_keeps_no_attention_matrix() -> None:
    F = torch.nn.functional
    q, k, v = _qkv(16)
    saved: list[tuple[int, ...]] = []

    def pack(t: object) -> object:
        saved.append(tuple(t.shape))
        return t

    with cs._sdpa_unequal_value_dim(), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        F.scaled_dot_product_attention(q, k, v, is_causal=True)
    b, a, s = 2, 4, 40
    assert (b, a, s, s) not in saved
    assert (b, a, 64) in saved  # the fp32 log-sum-exp, padded to a multiple of 32 rows


def test_autocast_casts_fp32_inputs_before_the_kernel() -> None:
    """Autocast's lower_precision_fp policy for scaled_dot_product_attention (autocast_mode.cpp)
    casts fp32 q / k / v (QLoRA's MLA) to 16-bit before the kernel: what it keeps is 16-bit,
    and the output too."""
    F = torch.nn.functional
    q, k, v = _qkv(16)
    saved: list[tuple[tuple[int, ...], object]] = []

    def pack(t: object) -> object:
        saved.append((tuple(t.shape), t.dtype))
        return t

    with cs._sdpa_unequal_value_dim(), torch.autocast("cpu", torch.bfloat16), \
            torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    assert out.dtype == torch.bfloat16
    assert "MemEfficient" in type(out.grad_fn).__name__
    b, a, s = 2, 4, 40
    for shape in ((b, a, s, 24), (b, a, s, 16)):  # q / k and v, as their 16-bit copies
        assert (shape, torch.bfloat16) in saved
        assert (shape, torch.float32) not in saved
    out.float().sum().backward()
    assert q.grad is not None and q.grad.dtype == torch.float32
