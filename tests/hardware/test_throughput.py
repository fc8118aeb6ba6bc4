"""The step-time model: peaks per dtype, the two-term time, FLOP and byte helpers."""

from __future__ import annotations

import pytest

from vramdoc.hardware import resolve_gpu
from vramdoc.hardware.throughput import (
    ASSUMED_BANDWIDTH_EFFICIENCY,
    ASSUMED_UTILIZATION,
    DEQUANT_4BIT_BYTES_PER_PARAM,
    adamw_step_bytes,
    canonical_dtype,
    dequant_4bit_bytes,
    peak_tflops,
    step_time_s,
    train_flops_per_token,
)


def test_peak_per_dtype():
    a100 = resolve_gpu("a100-80gb")
    assert peak_tflops(a100, "bf16") == 312.0
    assert peak_tflops(a100, "torch.bfloat16") == 312.0
    assert peak_tflops(a100, "float16") == 312.0
    assert peak_tflops(a100, "fp32") == 19.5
    t4 = resolve_gpu("t4")
    # no bf16 tensor math on sm75: half the fp32 rate (measured ratios 0.53-0.73)
    assert peak_tflops(t4, "bf16") == pytest.approx(8.1 * 0.5)
    assert peak_tflops(t4, "fp16") == 65.0


def test_canonical_dtype_rejects_unknown():
    assert canonical_dtype("Half") == "fp16"
    with pytest.raises(ValueError, match="unknown compute dtype 'int8'"):
        canonical_dtype("int8")


def test_step_time_compute_bound():
    # 7B full fine-tune, 4096 tokens per step: 6N FLOPs/token (PaLM appendix B, no attention)
    n, tokens = 7_000_000_000, 4096
    flops = train_flops_per_token(n) * tokens
    a100 = resolve_gpu("a100-80gb")
    t = step_time_s(flops, 0, a100, "bf16")
    assert t == pytest.approx(flops / (312e12 * ASSUMED_UTILIZATION), rel=1e-12)
    assert t == pytest.approx(1.5753, abs=1e-3)  # 1.72e17 FLOP / (312 TF x 0.35)


def test_step_time_adds_memory_bound_work():
    h100 = resolve_gpu("h100")
    moved = adamw_step_bytes(1_000_000_000)  # 28 GB of fp32 AdamW traffic
    assert moved == 28e9
    t = step_time_s(0, moved, h100, "bf16")
    assert t == pytest.approx(28e9 / (3350e9 * ASSUMED_BANDWIDTH_EFFICIENCY), rel=1e-12)
    both = step_time_s(1e15, moved, h100, "bf16")
    assert both == pytest.approx(t + step_time_s(1e15, 0, h100, "bf16"), rel=1e-12)


def test_faster_gpu_is_faster():
    flops = train_flops_per_token(7e9, weight_grads=False, recompute=True) * 2048
    times = [step_time_s(flops, 0, resolve_gpu(g), "fp16") for g in ("t4", "rtx 3090", "h100")]
    assert times == sorted(times, reverse=True)


def test_step_time_validates():
    g = resolve_gpu("t4")
    with pytest.raises(ValueError, match=">= 0"):
        step_time_s(-1, 0, g, "fp16")
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        step_time_s(1, 0, g, "fp16", utilization=0)
    assert step_time_s(1e12, 0, g, "fp16", utilization=1.0) == pytest.approx(1 / 65)


def test_train_flops_terms():
    n = 1_000
    assert train_flops_per_token(n) == 6 * n  # Kaplan/PaLM 6N
    assert train_flops_per_token(n, weight_grads=False) == 4 * n  # frozen base (LoRA)
    assert train_flops_per_token(n, recompute=True) == 8 * n  # + one more forward
    # PaLM appendix B attention term 12 L h T (L=32, h=4096, T=2048)
    assert train_flops_per_token(0, n_layers=32, hidden_size=4096, seq_len=2048) == \
        12 * 32 * 4096 * 2048


def test_dequant_bytes():
    assert DEQUANT_4BIT_BYTES_PER_PARAM == 2.5
    assert dequant_4bit_bytes(1_000) == 5_000.0  # forward + backward
    assert dequant_4bit_bytes(1_000, recompute=True) == 7_500.0


def test_adamw_bytes_by_state_dtype():
    assert adamw_step_bytes(1, state_bytes=1) == 4 + 4 + 2 + 4 + 2  # 8-bit states
    assert adamw_step_bytes(10, param_bytes=2, grad_bytes=2, state_bytes=2) == 10 * 14
