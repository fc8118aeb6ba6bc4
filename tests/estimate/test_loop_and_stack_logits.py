"""The logits a run keeps: the training loop (``hold_outputs``) and the transformers release
(``stack``): which model computes its own loss, and in which dtype the output's logits are."""

from __future__ import annotations

from typing import Any

import pytest

from vramdoc.errors import ConfigError
from vramdoc.estimate import estimate
from vramdoc.estimate.stack import (
    logits_upcast_in_model,
    loss_shift_copy,
    model_computes_own_loss,
)
from vramdoc.setup import setup_from_mapping, setup_to_mapping

GiB = 2**30


def _fsdpq(**kw: Any) -> dict[str, Any]:
    """fsdp_qlora's LoRA benchmark run (Llama-2-7B, 2 GPUs, FSDP1, transformers 4.39)."""
    m: dict[str, Any] = {
        "model": "llama-2-7b", "num_gpus": 2,
        "stack": {"transformers": "4.39", "peft": "0.10"},
        "model_kwargs": {"dtype": "bfloat16", "attn_implementation": "sdpa"},
        "lora": {"r": 64, "lora_alpha": 16,
                 "target_modules": ["k_proj", "q_proj", "v_proj", "up_proj", "down_proj",
                                    "gate_proj"]},
        "training": {"per_device_train_batch_size": 4, "gradient_checkpointing": True,
                     "fsdp": "full_shard auto_wrap",
                     "fsdp_config": {"version": 1, "limit_all_gathers": True}},
        "max_seq_length": 2048,
    }
    m.update(kw)
    return m


def test_release_thresholds_read_from_the_wheels() -> None:
    # 4.48.1 loss/loss_utils.py shifts the fp32 logits with .contiguous(); 4.49.0 pads labels
    assert loss_shift_copy("4.48.1") and not loss_shift_copy("4.49.0")
    # 4.48.1 modeling_gpt_bigcode.py: CrossEntropyLoss on lm_logits[..., :-1, :].contiguous();
    # 4.49.0: self.loss_function
    assert model_computes_own_loss("gpt_bigcode", "4.48.1")
    assert not model_computes_own_loss("gpt_bigcode", "4.49.0")
    assert not model_computes_own_loss("llama", "4.39")
    # 4.39 LlamaForCausalLM: logits = logits.float(); 4.48.1 leaves them to ForCausalLMLoss
    assert logits_upcast_in_model("4.39") and not logits_upcast_in_model("4.48.1")


def test_hold_outputs_keeps_the_fp32_logits_through_backward_and_the_step() -> None:
    plain = estimate(setup_from_mapping(_fsdpq()))
    held = estimate(setup_from_mapping(_fsdpq(hold_outputs=True)))
    # transformers 4.39 returns the fp32 logits (b * s * V * 4 bytes)
    logits = 4 * 2048 * 32000 * 4
    step0, step1 = (e.phase_components["optimizer_step"] for e in (plain, held))
    assert sum(step1.values()) - sum(step0.values()) == logits
    assert step1["logits"] == logits
    bwd0, bwd1 = (e.phase_components["backward"] for e in (plain, held))
    assert sum(bwd1.values()) - sum(bwd0.values()) >= logits
    # the forward is the loop's own business only after the loss: unchanged
    assert held.phase_components["forward"] == plain.phase_components["forward"]
    assert held.peak_allocated_bytes > plain.peak_allocated_bytes


def test_hold_outputs_holds_the_head_dtype_logits_on_a_newer_release() -> None:
    m = _fsdpq(hold_outputs=True, stack={"transformers": "4.48.1"})
    plain = estimate(setup_from_mapping({**m, "hold_outputs": False}))
    held = estimate(setup_from_mapping(m))
    step0, step1 = (e.phase_components["optimizer_step"] for e in (plain, held))
    assert step1["logits"] - step0["logits"] == 4 * 2048 * 32000 * 2  # bf16


def test_hold_outputs_round_trips_and_refuses_a_non_boolean() -> None:
    s = setup_from_mapping(_fsdpq(hold_outputs=True))
    assert s.hold_outputs
    assert setup_from_mapping(setup_to_mapping(s)) == s
    assert "hold_outputs" not in setup_to_mapping(setup_from_mapping(_fsdpq()))
    with pytest.raises(ConfigError, match="hold_outputs"):
        setup_from_mapping(_fsdpq(hold_outputs="sometimes"))


def test_upcast_in_the_model_frees_the_16_bit_logits() -> None:
    # 4.39: lm_head's bf16 logits are dropped by logits = logits.float() before the loss;
    # 4.48.1 keeps them in the caller while ForCausalLMLoss upcasts (2 bytes per logit more)
    old = estimate(setup_from_mapping(_fsdpq(stack={"transformers": "4.39"})))
    new = estimate(setup_from_mapping(_fsdpq(stack={"transformers": "4.48.1"})))
    n = 4 * 2048 * 32000
    fwd_old = old.phase_components["forward"]["logits"]
    fwd_new = new.phase_components["forward"]["logits"]
    assert fwd_new - fwd_old == 2 * n


def test_gpt_bigcode_computes_its_bf16_loss_before_4_49() -> None:
    def est(version: str) -> Any:
        return estimate(setup_from_mapping({
            "model": "santacoder", "stack": {"transformers": version},
            "model_kwargs": {"dtype": "bfloat16"},
            "training": {"per_device_train_batch_size": 4, "gradient_checkpointing": True},
            "max_seq_length": 2048}))

    n = 4 * 2048 * 49280
    # 4.48.1: the bf16 logits, their shifted copy and log_softmax's bf16 result (6 bytes);
    # 4.49: ForCausalLMLoss: bf16 logits, fp32 copy, fp32 log_softmax (10 bytes)
    assert est("4.48.1").phase_components["forward"]["logits"] == 6 * n
    assert est("4.49.0").phase_components["forward"]["logits"] == 10 * n
