"""The lever space, the step-time model and the context the rules read."""

from __future__ import annotations

import pytest
import yaml

from vramdoc.engine import context_names
from vramdoc.hardware import resolve_gpu
from vramdoc.models import resolve_model
from vramdoc.planner.context import gpu_context, memory_context, model_context, setup_context
from vramdoc.planner.space import (
    Candidate,
    Combo,
    combos,
    divisors,
    optim_state_bits,
    seq_lengths,
    to_setup,
)
from vramdoc.planner.steptime import model_dims, step_time, utilization
from vramdoc.setup import TrainingSetup, TrainSetup, setup_from_mapping, setup_to_mapping

BASE = TrainSetup(model="llama-2-7b", max_seq_length=512)


def test_space_size_and_ladders():
    n_combos = sum(1 for _ in combos(("full", "lora", "qlora")))
    assert n_combos * len(divisors(16)) >= 1000
    assert divisors(16) == (1, 2, 4, 8, 16) and divisors(12) == (1, 2, 3, 4, 6, 12)
    assert seq_lengths(1024, False) == (1024,)
    assert seq_lengths(1024, True) == (1024, 512, 256, 128)
    # k-bit bases always checkpoint (prepare_model_for_kbit_training turns it on)
    assert all(c.ckpt for c in combos(("qlora",)))


def test_optimizer_state_bits():
    assert optim_state_bits("adamw_torch", "float32") == 32
    assert optim_state_bits("adamw_torch", "bfloat16") == 16  # states follow the param dtype
    assert optim_state_bits("paged_adamw_32bit", "bfloat16") == 32  # bitsandbytes: fp32
    assert optim_state_bits("adamw_8bit", "float32") == 8
    assert optim_state_bits("adamw_torch_4bit", "float32") == 4
    assert optim_state_bits("adafactor", "float32") is None


@pytest.mark.parametrize("combo", [
    Combo("full", "float32", "bf16", "sdpa", True, "adamw_8bit", None, None),
    Combo("lora", "bfloat16", "bf16", "flash_attention_2", False, "adamw_torch_fused",
          "all-linear", 16),
    Combo("qlora", "float16", "fp16", "eager", True, "paged_adamw_8bit", "default", 8),
])
def test_candidate_setup_round_trips_through_the_file_format(combo):
    cand = Candidate(combo, 4, 4, 1024)
    s = to_setup(cand, BASE)
    assert s.effective_batch_size == 16 and s.max_seq_length == 1024
    assert s.method == combo.method and s.attn_implementation == combo.attn
    assert setup_from_mapping(setup_to_mapping(s)) == s


def test_context_offers_exactly_the_declared_names():
    spec = resolve_model("llama-2-7b")
    gpu = resolve_gpu("T4")
    from vramdoc.estimate import estimate

    cand = Candidate(Combo("qlora", "float16", "fp16", "sdpa", True, "paged_adamw_8bit",
                           "all-linear", 16), 2, 8, 512)
    s = to_setup(cand, BASE)
    ctx = setup_context(s, spec, {**model_context(spec), **gpu_context(gpu)})
    full = memory_context(ctx, estimate(s, spec, gpu), gpu.memory_bytes, 256 * 2**20)
    assert set(full) == set(context_names("plan"))
    assert full["gpu_cc"] == 75 and full["gpu_bf16"] is False and full["optim_paged"] is True
    assert full["method"] == "qlora" and full["bnb_4bit_compute_dtype"] == "float16"
    assert full["headroom_bytes"] == gpu.memory_bytes - full["device_bytes"] - 256 * 2**20
    assert 0 < full["activations_frac"] < 1
    # the declaration file is valid YAML and every name has a description
    import vramdoc.engine.loader as loader

    data = yaml.safe_load((loader.default_rules_dir() / "_contexts" / "plan.yaml").read_text())
    assert set(data) == set(full)


def _time(combo, mb=4, gpu="A100-80GB", seq=512, trainable=None):
    spec = resolve_model("llama-2-7b")
    dims = model_dims(spec)
    cand = Candidate(combo, mb, 16 // mb, seq)
    return step_time(cand, dims, resolve_gpu(gpu), 16,
                     trainable if trainable is not None else spec.n_params)


def test_step_time_accounts_recompute_frozen_base_and_dequant():
    full = Combo("full", "float32", "bf16", "sdpa", False, "adamw_torch_fused", None, None)
    ckpt = Combo("full", "float32", "bf16", "sdpa", True, "adamw_torch_fused", None, None)
    t0, t1 = _time(full), _time(ckpt)
    # PaLM appendix B: 6N per token, one more forward (2N) with checkpointing: 8/6; the
    # attention term (12 L h s, 16 L h s with recompute) keeps the same ratio
    assert t1.flops / t0.flops == pytest.approx(8 / 6, rel=1e-9)
    lora = Combo("lora", "bfloat16", "bf16", "sdpa", False, "adamw_torch_fused", "all-linear", 16)
    tl = _time(lora, trainable=40e6)
    assert tl.flops < 0.7 * t0.flops  # no weight gradients for a frozen base
    qlora = Combo("qlora", "bfloat16", "bf16", "sdpa", True, "paged_adamw_8bit", "all-linear", 16)
    tq = _time(qlora, trainable=40e6)
    assert tq.dequant_s > 0 and tl.dequant_s == 0
    eager = Combo("full", "float32", "bf16", "eager", False, "adamw_torch_fused", None, None)
    assert _time(eager).attention_s > 0 and t0.attention_s == 0
    # fp32 without autocast runs at the fp32 rate: much slower than bf16 tensor cores
    fp32 = Combo("full", "float32", None, "sdpa", False, "adamw_torch_fused", None, None)
    assert _time(fp32).compute_s > 10 * t0.compute_s
    # larger micro-batches use the GPU better; the helper's utilization from 4096 tokens on
    assert _time(full, mb=1).compute_s > _time(full, mb=16).compute_s
    assert utilization(4096) == utilization(8192)
    assert utilization(512) < utilization(2048) < utilization(4096)


def test_training_hyperparameters_of_base_are_kept():
    base = BASE.replace(training=TrainingSetup(learning_rate=1e-4, warmup_steps=0.1,
                                               lr_scheduler_type="cosine"))
    s = to_setup(Candidate(Combo("full", "float32", "bf16", "sdpa", True, "adamw_torch_fused",
                                 None, None), 2, 8, 512), base)
    assert s.training.learning_rate == 1e-4 and s.training.warmup_steps == 0.1
    assert s.training.lr_scheduler_type == "cosine"
