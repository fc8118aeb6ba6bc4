"""Stand-in quantized layers hold exactly the storage of the real layers."""

from __future__ import annotations

import math

import pytest
import torch

from vramdoc.probe import standins

bnb = pytest.importorskip("bitsandbytes")


def _real_4bit(out_f: int, in_f: int, double_quant: bool, storage: torch.dtype) -> dict[str, int]:
    w = torch.randn(out_f, in_f, dtype=torch.bfloat16)
    p = bnb.nn.Params4bit(w, requires_grad=False, compress_statistics=double_quant,
                          quant_type="nf4", quant_storage=storage).to("cpu")
    qs = p.quant_state
    sizes = {"weight": p.untyped_storage().nbytes(), "absmax": qs.absmax.nbytes,
             "code": qs.code.nbytes}
    if double_quant:
        sizes.update(offset=qs.offset.nbytes, absmax2=qs.state2.absmax.nbytes,
                     code2=qs.state2.code.nbytes)
    return sizes


@pytest.mark.parametrize("shape", [(172, 64), (100, 30), (64, 64)])
@pytest.mark.parametrize("double_quant", [True, False])
@pytest.mark.parametrize("storage", [torch.uint8, torch.bfloat16])
def test_packed_4bit_layout_matches_bitsandbytes(shape, double_quant, storage):
    out_f, in_f = shape
    stand = standins.PackedLinear4bit(in_f, out_f, None, weight_dtype=torch.bfloat16,
                                      compute_dtype=torch.bfloat16, double_quant=double_quant,
                                      quant_storage=storage)
    ours = {"weight": stand.weight.untyped_storage().nbytes(), "absmax": stand.absmax.nbytes,
            "code": stand.code.nbytes}
    if double_quant:
        ours.update(offset=stand.offset.nbytes, absmax2=stand.absmax2.nbytes,
                    code2=stand.code2.nbytes)
    assert ours == _real_4bit(out_f, in_f, double_quant, storage)
    n_blocks = math.ceil(out_f * in_f / 64)
    assert ours["absmax"] == n_blocks * (1 if double_quant else 4)


def test_stand_in_forward_and_backward_shapes():
    stand = standins.PackedLinear4bit(64, 32, None, weight_dtype=torch.float32,
                                      compute_dtype=torch.float32, double_quant=True)
    x = torch.randn(2, 5, 64, requires_grad=True)
    y = stand(x)
    y.sum().backward()
    assert y.shape == (2, 5, 32) and x.grad.shape == x.shape


def test_group_quant_layouts():
    g = standins.GroupQuantLinear(4096, 11008, None, method="gptq", group_size=128,
                                  desc_act=False, device="meta")
    assert g.weight.shape == (512, 11008) and g.weight.dtype == torch.int32
    assert g.scales.shape == (32, 11008) and g.qzeros.shape == (32, 1376)
    assert g.g_idx is not None and g.g_idx.shape == (4096,)
    a = standins.GroupQuantLinear(4096, 11008, None, method="awq", group_size=128,
                                  desc_act=False, device="meta")
    assert a.weight.shape == (4096, 1376) and a.g_idx is None
