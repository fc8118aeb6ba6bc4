"""Checkpointed MoE blocks against CUDA-semantics traces (tests/benchmarks/bench_trace_matrix.py).

A recomputed MoE block peaks either at the end of its recomputation, inside transformers 5.24
``grouped_mm_experts_forward`` (the gathered inputs, the down projection's output, the
routing-weight product and ``weighted_out[inv_perm]`` next to each other, with the gathered
product's gradient already made when that gather's save ends the recomputation), or in the
routed experts' backward (the gated product's gradients). Before these were walked the
checkpointed MoE rows kept a whole-block account: mixtral LoRA sdpa -8.0 %, qwen2_moe LoRA
sdpa -6.1 % / all-linear eager +14.2 %, phimoe LoRA sdpa -8.4 %, gpt_oss LoRA eager -7.6 %.
DeepSeek-V2's dense first layer is the last block recomputed (full eager +2.0 %), and for one
sequence its eager attention keeps kv_b_proj's whole output (-1.3 %); gpt-oss' layer 0 holds
only its own (sliding) mask once layer 1's backward released the full-attention one (+1.6 %).
Each row is held to the issue-12 bar (no more than 2 % over, no more than 1 % under).
"""

from __future__ import annotations

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("peft")

from tests.benchmarks.bench_trace_matrix import BAR_UNDER, BAR_WORST, Case, run_case  # noqa: E402

ROWS = [
    Case("mixtral", "lora", "sdpa", True, 2, 128),  # the experts' backward (f > h)
    Case("mixtral", "lora-all", "sdpa", True, 2, 128),  # peft's baddbmm factor copies
    Case("qwen2_moe", "lora", "sdpa", True, 2, 128),  # shared expert first, gated last
    Case("qwen2_moe", "lora-all", "eager", True, 1, 256),  # eager mask kept by the checkpoint
    Case("qwen3_moe", "lora-all", "eager", True, 2, 128),
    Case("phimoe", "lora", "eager", True, 1, 256),  # fp32 LayerNorm output gathered
    Case("gpt_oss", "lora", "eager", True, 2, 128),  # expert biases, stop at inv_perm
    Case("llama", "lora", "eager", True, 1, 256),  # the eager mask (dense blocks too)
    Case("gpt_oss", "full", "eager", True, 1, 256),  # layer 0: its own mask kind only
    Case("deepseek_v2", "full", "eager", True, 2, 128),  # dense layer 0 recomputed last
    Case("deepseek_v2", "lora", "eager", False, 1, 256),  # MLA keeps kv_b_proj's output
]


@pytest.mark.parametrize("case", ROWS, ids=lambda c: c.label.replace(" ", "-"))
def test_checkpointed_moe_matches_trace(case: Case) -> None:
    row = run_case(case)
    assert "error_pct" in row, row.get("error")
    assert BAR_UNDER <= row["error_pct"] <= BAR_WORST, row
