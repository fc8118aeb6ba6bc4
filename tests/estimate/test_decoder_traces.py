"""GPT-style decoders (Falcon, OPT, GPT-2, GPT-NeoX, GPTBigCode) against CUDA-semantics traces.

Each row traces a tiny model on the probe's fake device with the tensors CUDA kernels keep
(tests/benchmarks/bench_trace_matrix.py) and checks the estimator's peak to within 0.5 %
either way (the issue-12 median bar, tighter than its worst-row bar). Each row exercises one
fact of these blocks (vramdoc.estimate.activations), with the error before it was modelled:

- Falcon-7B's multi-query attention under a mask runs SDPA's math kernel, and matmul
  broadcasts the single k/v head: kept as views for one sequence (-3.1 %, the peak at the
  last block's softmax backward);
- the same with two sequences: matmul's fold copies k and v to every head (-8.0 %);
- Falcon eager with LoRA on every Linear: the forward peaks inside the MLP's output adapter,
  the dropout copy freed before lora_B runs, the causal mask held (-1.3 %);
- OPT's first block under LoRA on q/v keeps no q for k's gradient, and OPT has no dropout
  after its embeddings (+1.4 %);
- GPT-2 eager for one sequence keeps q as a view of c_attn's output (-3.7 %), and its
  backward peaks in NewGELU's chain (-2.8 %);
- GPT-NeoX's SDPA output is copied by transpose().contiguous() (-0.6 %);
- GPTBigCode keeps an n_positions^2 boolean causal-mask buffer on the device (-2.6 %).
"""

from __future__ import annotations

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("peft")

from tests.benchmarks.bench_trace_matrix import Case, run_case  # noqa: E402

ROWS = [
    Case("falcon", "full", "sdpa", False, 1, 256),
    Case("falcon", "lora", "sdpa", False, 2, 128),
    Case("falcon", "lora-all", "eager", False, 2, 128),
    Case("opt", "lora", "eager", False, 2, 128),
    Case("gpt2", "lora", "eager", False, 1, 256),
    Case("gpt2", "full", "sdpa", False, 2, 128),
    Case("gpt_neox", "full", "sdpa", False, 2, 128),
    Case("gpt_bigcode", "lora", "sdpa", False, 2, 128),
]


@pytest.mark.parametrize("case", ROWS, ids=lambda c: c.label.replace(" ", "-"))
def test_decoder_peak_matches_trace(case: Case) -> None:
    row = run_case(case)
    assert "error_pct" in row, row.get("error")
    assert -0.5 <= row["error_pct"] <= 0.5, row
