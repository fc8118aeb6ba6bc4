"""Liger's fused linear cross-entropy (use_liger_kernel=True), modelled from its source."""

from __future__ import annotations

from vramdoc.estimate import estimate
from vramdoc.estimate.liger import flce_bytes, flce_chunk, liger_applies
from vramdoc.estimate.params import round_block
from vramdoc.setup import LoraSetup, TrainSetup, setup_from_mapping


def _setup(model: str, liger: bool, full: bool = False) -> TrainSetup:
    s = TrainSetup(model=model, torch_dtype="bfloat16", max_seq_length=2048,
                   lora=None if full else LoraSetup(r=16, lora_alpha=32,
                                                    target_modules=("all-linear",)))
    return s.replace_training(per_device_train_batch_size=4, bf16=True,
                              gradient_checkpointing=True, use_liger_kernel=liger)


def test_chunk_size_is_liger_s_own_example() -> None:
    # liger fused_linear_cross_entropy.py: "BT = 4096*4, V = 32000, H = 4096 ==> inc_factor = 8,
    # chunk_size = 2048"
    assert flce_chunk(4096 * 4, 4096, 32000) == 2048
    assert flce_chunk(100, 4096, 128256) == 4  # next power of two of ceil(100 / 32)
    assert flce_chunk(3, 4096, 4096) == 3  # never more than BT


def test_lora_bytes_are_grad_input_loss_and_one_chunk() -> None:
    rows, h, V = 4 * 2048, 4096, 128256
    fwd, saved = flce_bytes(rows, h, V, hidden_elem=2, logit_elem=2, head_elem=2,
                            head_trains=False)
    chunk = 256  # next_pow2(ceil(8192 / 32))
    assert saved == round_block(rows * h * 2)
    assert fwd == saved + round_block(4 * rows) + round_block(rows) + chunk * V * 2 + chunk * h * 2


def test_liger_replaces_the_logits_chain_of_llama_3() -> None:
    plain = estimate(_setup("llama-3.1-8b", False))
    liger = estimate(_setup("llama-3.1-8b", True))
    assert liger.peak_allocated_bytes < plain.peak_allocated_bytes - 8 * 2**30
    rows, h, V = 4 * 2048, 4096, 128256
    _fwd, saved = flce_bytes(rows, h, V, 2, 2, 2, False)
    assert liger.phase_components["backward"]["logits"] in (0, saved)
    # everything but the logits chain is unchanged
    for phase in ("load", "optimizer_step"):
        assert liger.phase_components[phase] == plain.phase_components[phase]


def test_full_fine_tune_keeps_the_head_gradient_in_the_fused_function() -> None:
    liger = estimate(_setup("qwen2.5-0.5b", True, full=True))
    plain = estimate(_setup("qwen2.5-0.5b", False, full=True))
    assert liger.peak_allocated_bytes < plain.peak_allocated_bytes


def test_models_liger_does_not_patch_are_unchanged() -> None:
    assert not liger_applies("gpt2", "causal-lm", False)
    assert not liger_applies("llama", "sequence-classification", False)
    a = estimate(_setup("gpt2", True, full=True))
    b = estimate(_setup("gpt2", False, full=True))
    assert a.phase_components == b.phase_components


def test_setup_files_read_and_write_it() -> None:
    s = setup_from_mapping({"model": "llama-2-7b", "training": {"use_liger_kernel": True}})
    assert s.training.use_liger_kernel is True
    from vramdoc.setup import setup_to_mapping

    assert setup_to_mapping(s)["training"]["use_liger_kernel"] is True
    plain = setup_to_mapping(setup_from_mapping({"model": "llama-2-7b"}))
    assert "use_liger_kernel" not in plain["training"]


def test_the_planner_uses_liger_where_it_wins() -> None:
    from vramdoc.emit import render_python
    from vramdoc.hardware import resolve_gpu
    from vramdoc.planner import PlanRequest, plan

    res = plan(PlanRequest(model="llama-3.1-8b", gpu=resolve_gpu("24GB,sm89"), seq_len=4096))
    best = res.best
    assert best.setup.training.use_liger_kernel and best.setup.method == "lora"
    assert "use_liger_kernel=True" in render_python(best, res.spec, res.gpu)
    # never offered for a model Liger does not patch
    res = plan(PlanRequest(model="gpt2", gpu=resolve_gpu("T4")))
    assert all(not p.setup.training.use_liger_kernel for p in res.plans)
