"""Invariants of the estimator over generated setups (hypothesis).

- the components at the peak sum to the peak allocated bytes;
- allocated <= reserved <= device;
- doubling the micro-batch or the sequence length never lowers the peak;
- gradient checkpointing never raises the activations at the peak (beyond the one block input
  its checkpoint holds while the first block is recomputed: see the test's docstring).

Examples are bounded (``max_examples``) and derandomized so the suite stays fast and
reproducible; ``HYPOTHESIS_PROFILE=thorough`` runs many more locally.
"""

from __future__ import annotations

import os
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vramdoc.estimate import estimate
from vramdoc.models import resolve_model
from vramdoc.setup import setup_from_mapping

settings.register_profile("ci", max_examples=40, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", max_examples=1000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# One model per family the estimator walks differently: Llama (untied, GQA-free), Qwen2.5
# (tied, GQA, attention bias), Gemma 2 (sliding window, soft-capping), GPT-2 (Conv1D,
# learned positions, tied), Mixtral (experts), BERT (encoder, classification).
MODELS = ("llama-2-7b", "qwen2.5-0.5b", "gemma-2-2b", "gpt2", "mixtral-8x7b", "tinyllama-1.1b")
METHODS = ("full", "lora", "qlora")
OPTIMS = ("adamw_torch_fused", "adamw_torch", "adamw_8bit", "paged_adamw_8bit", "sgd",
          "adafactor")


@st.composite
def setups(draw: Any) -> dict[str, Any]:
    """A setup mapping (the file format), valid by construction."""
    model = draw(st.sampled_from(MODELS))
    method = draw(st.sampled_from(METHODS))
    dtype = draw(st.sampled_from(("bfloat16", "float32", "float16")))
    precision = draw(st.sampled_from(("none", "bf16", "fp16")))
    training: dict[str, Any] = {
        "per_device_train_batch_size": draw(st.integers(1, 8)),
        "gradient_checkpointing": draw(st.booleans()),
        "optim": draw(st.sampled_from(OPTIMS)),
        "bf16": precision == "bf16", "fp16": precision == "fp16",
    }
    out: dict[str, Any] = {
        "model": model,
        "model_kwargs": {"dtype": dtype,
                         "attn_implementation": draw(st.sampled_from(("eager", "sdpa")))},
        "training": training,
        "max_seq_length": draw(st.integers(1, 2048)),
    }
    if method != "full":
        out["lora"] = {"r": draw(st.sampled_from((4, 8, 16, 64))), "lora_alpha": 16,
                       "target_modules": draw(st.sampled_from(("all-linear", None)))}
        if out["lora"]["target_modules"] is None:
            del out["lora"]["target_modules"]
    if method == "qlora":
        out["quantization"] = {"load_in_4bit": True, "bnb_4bit_quant_type": "nf4",
                               "bnb_4bit_use_double_quant": draw(st.booleans()),
                               "bnb_4bit_compute_dtype": "bfloat16"}
    return out


def _est(mapping: dict[str, Any]) -> Any:
    return estimate(setup_from_mapping(mapping))


def _with(mapping: dict[str, Any], **training: Any) -> dict[str, Any]:
    return {**mapping, "training": {**mapping["training"], **training}}


@given(setups())
def test_components_sum_to_the_peak(m: dict[str, Any]) -> None:
    e = _est(m)
    assert sum(e.components.values()) == e.peak_allocated_bytes
    assert all(v >= 0 for comps in e.phase_components.values() for v in comps.values())
    assert e.peak_allocated_bytes == max(e.phases.values())


@given(setups())
def test_allocated_le_reserved_le_device(m: dict[str, Any]) -> None:
    e = _est(m)
    assert 0 < e.peak_allocated_bytes <= e.peak_reserved_bytes <= e.device_bytes


@given(setups())
def test_doubling_batch_never_lowers_the_peak(m: dict[str, Any]) -> None:
    b = m["training"]["per_device_train_batch_size"]
    assert (_est(_with(m, per_device_train_batch_size=2 * b)).peak_allocated_bytes
            >= _est(m).peak_allocated_bytes)


@given(setups())
def test_doubling_sequence_never_lowers_the_peak(m: dict[str, Any]) -> None:
    longer = {**m, "max_seq_length": 2 * m["max_seq_length"]}
    assert _est(longer).peak_allocated_bytes >= _est(m).peak_allocated_bytes


@given(setups())
def test_checkpointing_never_raises_the_activations_at_the_peak(m: dict[str, Any]) -> None:
    """Checkpointing keeps one thing a plain step does not: the first block's input, held by
    its checkpoint while that block is recomputed in backward (b*s*h elements, at most 4 B
    each). At that instant it adds exactly this; everywhere else it only removes. So the peak,
    and the activations at the same instant of the step (same phase, same gradients live),
    never grow by more than that one block input."""
    on = _est(_with(m, gradient_checkpointing=True))
    off = _est(_with(m, gradient_checkpointing=False))
    block_input = (m["training"]["per_device_train_batch_size"] * m["max_seq_length"]
                   * resolve_model(m["model"]).hidden_size * 4)
    assert on.peak_allocated_bytes <= off.peak_allocated_bytes + block_input
    if (on.peak_phase == off.peak_phase
            and on.components["gradients"] == off.components["gradients"]):
        assert on.components["activations"] <= off.components["activations"] + block_input


def test_checkpointing_on_short_sequences_of_a_full_fine_tune() -> None:
    """The case the property test found (issue 9): llama-2-7b, full, bf16, eager, batch 1."""
    for s in (1, 2, 16, 64):
        m = {"model": "llama-2-7b", "max_seq_length": s,
             "model_kwargs": {"dtype": "bfloat16", "attn_implementation": "eager"},
             "training": {"per_device_train_batch_size": 1}}
        on = _est(_with(m, gradient_checkpointing=True)).components["activations"]
        off = _est(_with(m, gradient_checkpointing=False)).components["activations"]
        assert on == off == s * 4096 * 2  # only the embedding output's gradient is live
