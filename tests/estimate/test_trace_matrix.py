"""A fast slice of the trace matrix (tests/benchmarks/bench_trace_matrix.py) as a CI guard.

Each row traces a tiny model of one family on the probe's fake device with the tensors CUDA
kernels keep, and checks the estimator's peak against it within the issue-12 bar for one setup
(no more than 2 % over, no more than 1 % under). The rows cover the block facts the model spec
carries: KV-cache copies, SDPA masks on sliding-window layers (repeat_kv) and Falcon's math
kernel, Gemma's norms and soft-capping, qk-norm, fused qkv, parallel blocks, ALiBi eager,
NewGELU under autocast, DoRA's forward peak. The rows the estimator does not meet yet are
listed by the benchmark, not hidden here.
"""

from __future__ import annotations

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("peft")

from tests.benchmarks.bench_trace_matrix import BAR_UNDER, BAR_WORST, Case, run_case  # noqa: E402

ROWS = [
    Case("llama", "lora", "sdpa", False, 2, 128),
    Case("llama", "full", "sdpa", False, 2, 128),
    Case("llama", "qlora", "eager", False, 2, 128),
    Case("mistral", "lora", "sdpa", False, 2, 128),  # sliding window < s: mask + repeat_kv
    Case("gemma2", "lora", "eager", False, 2, 128),  # softcapping, four norms
    Case("gemma3", "lora", "sdpa", False, 2, 128),  # qk-norm, sliding layers
    Case("phi3", "lora", "sdpa", False, 2, 128),  # fused qkv + KV cache
    Case("gpt_neox", "lora", "sdpa", False, 2, 128),  # parallel block, partial rotary
    Case("falcon", "lora", "sdpa", False, 2, 128),  # MQA + mask: SDPA's math kernel
    Case("bloom", "lora", "eager", False, 2, 128),  # ALiBi, fp32 residual stream
    # DoRA's forward peak: W and BA casts, the identity graph, fp32 result products
    Case("llama", "dora", "sdpa", False, 2, 128),
    Case("phi3", "dora", "eager", False, 1, 256),  # fused qkv / gate_up under DoRA
]


@pytest.mark.parametrize("case", ROWS, ids=lambda c: c.label.replace(" ", "-"))
def test_estimate_matches_cuda_semantics_trace(case: Case) -> None:
    row = run_case(case)
    assert "error_pct" in row, row.get("error")
    assert BAR_UNDER <= row["error_pct"] <= BAR_WORST, row
