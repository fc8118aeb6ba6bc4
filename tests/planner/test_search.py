"""The search: it finds what brute force finds, keeps what the user fixed, says no well."""

from __future__ import annotations

import pytest

from vramdoc.estimate import estimate
from vramdoc.hardware import resolve_gpu
from vramdoc.planner import PlanRequest, plan
from vramdoc.planner.search import _Search, default_margin
from vramdoc.setup import TrainSetup


def _req(model, gpu, **kw):
    return PlanRequest(model=model, gpu=resolve_gpu(gpu), **kw)


@pytest.mark.parametrize("model, gpu", [("llama-2-7b", "6GB"), ("llama-2-7b", "RTX-4090"),
                                        ("qwen2.5-0.5b", "T4")])
def test_lazy_walk_finds_what_brute_force_finds(model, gpu):
    """Bounds and bisection skip estimates, never answers: the best fitting candidate of each
    method equals the first fitting one in rank order when every candidate is estimated."""
    req = _req(model, gpu, top_k=1)
    from vramdoc.models import resolve_model

    spec = resolve_model(model)
    base = TrainSetup(model=model, task="causal-lm", max_seq_length=req.seq_len)
    lazy = _Search(req, spec, base, default_margin(req.gpu.memory_bytes))
    ranked = lazy.judge()
    chosen = lazy.walk(ranked)
    brute = _Search(req, spec, base, default_margin(req.gpu.memory_bytes))
    expected = {}
    for _key, cand in ranked:
        m = cand.combo.method
        if m not in expected and brute.fits(cand):
            expected[m] = cand
    assert {c.combo.method: c for c in chosen} == expected
    assert lazy.stats.estimated < len(ranked) / 10  # far fewer than estimating them all


def test_device_view_grows_with_micro_batch_under_accumulation():
    """The bisection relies on it: with accumulation > 1 more micro-batch never needs less
    memory, and micro-batch 1 without accumulation is below every rung."""
    from vramdoc.models import resolve_model
    from vramdoc.planner.space import Candidate, combos, to_setup

    spec = resolve_model("llama-2-7b")
    gpu = resolve_gpu("A100-80GB")
    base = TrainSetup(model="llama-2-7b")
    for i, combo in enumerate(combos(("full", "lora", "qlora"))):
        if i % 37:
            continue
        views = [estimate(to_setup(Candidate(combo, mb, 16 // mb, 512), base), spec,
                          gpu).device_bytes for mb in (1, 2, 4, 8, 16)]
        assert views[:4] == sorted(views[:4]), combo
        floor = estimate(to_setup(Candidate(combo, 1, 1, 512), base), spec, gpu).device_bytes
        assert floor <= min(views), combo


def test_llama2_7b_on_6gb_gets_a_fitting_qlora_plan():
    r = plan(_req("llama-2-7b", "6GB"))
    assert r.fits and r.stats.candidates >= 1000
    best = r.best
    assert best.setup.method == "qlora" and best.fits and best.headroom_bytes >= 0
    assert best.setup.quantization.bnb_4bit_use_double_quant
    assert best.setup.effective_batch_size == 16 and best.setup.max_seq_length == 512
    # Turing (assumed for a bare size): no bf16, no FlashAttention-2
    assert not best.setup.training.bf16 and best.setup.attn_implementation != "flash_attention_2"
    assert r.stats.rejected_by_rule["H101"] > 0 and r.stats.rejected_by_rule["H103"] > 0
    # guidance rules set the QLoRA hyperparameters
    t = best.setup.training
    assert (t.learning_rate, t.max_grad_norm, t.warmup_steps) == (2e-4, 0.3, 0.03)
    assert {c for c, *_ in best.applied} >= {"T303", "T305", "T308"}
    # one model, two doors: the plan's numbers are estimate() on its setup
    again = estimate(best.setup, r.spec, r.gpu)
    assert again.peak_allocated_bytes == best.estimate.peak_allocated_bytes
    assert again.device_bytes == best.estimate.device_bytes


def test_big_gpu_prefers_full_fine_tune_and_shows_other_methods():
    r = plan(_req("llama-2-7b", "A100-80GB"))
    methods = [p.setup.method for p in r.plans]
    assert methods[0] == "full" and {"lora", "qlora"} <= set(methods)
    assert all(p.fits for p in r.plans)
    assert r.best.setup.training.bf16 and r.best.setup.attn_implementation == "flash_attention_2"


def test_nothing_fits_reports_closest_missing_and_what_would_fit():
    r = plan(_req("llama-2-13b", "4GB"))
    assert not r.fits and r.plans == ()
    assert r.closest is not None and r.missing_bytes > 0
    assert r.missing_bytes == -r.closest.headroom_bytes
    assert any(s.startswith("a larger GPU:") for s in r.suggestions)
    assert any(s.startswith("more GPUs:") for s in r.suggestions)


def test_sequence_length_is_kept_unless_shorter_is_allowed():
    # seq 4096 fits 6 GB since the k-bit upcast and Liger are levers; 8192 does not
    strict = plan(_req("llama-2-7b", "6GB", seq_len=8192))
    assert not strict.fits
    assert any("--allow-shorter-seq" in s for s in strict.suggestions)
    loose = plan(_req("llama-2-7b", "6GB", seq_len=8192, allow_shorter_seq=True))
    assert loose.fits
    assert loose.best.setup.max_seq_length < 8192
    assert loose.best.setup.effective_batch_size == 16


def test_methods_can_be_restricted_and_counted():
    r = plan(_req("llama-2-7b", "A100-80GB", methods=("lora",)))
    assert {p.setup.method for p in r.plans} == {"lora"}
    assert r.stats.candidates >= 1000


def test_user_config_is_judged(tmp_path):
    from vramdoc.setup import TrainingSetup

    base = TrainSetup(model="llama-2-7b", training=TrainingSetup(
        per_device_train_batch_size=4, gradient_accumulation_steps=4, bf16=True))
    r = plan(PlanRequest(model="llama-2-7b", gpu=resolve_gpu("T4"), base=base,
                         effective_batch=16, judge_base=True))
    assert r.user_plan is not None
    assert "H101" in {f.code for f in r.user_plan.findings}  # bf16 on a T4


def test_bad_request():
    from vramdoc.errors import UsageError

    with pytest.raises(UsageError, match="unknown method 'qlora4'"):
        plan(_req("llama-2-7b", "T4", methods=("qlora4",)))


def test_config_lora_settings_are_kept():
    from vramdoc.setup import LoraSetup

    base = TrainSetup(model="llama-2-7b", task="causal-lm",
                      lora=LoraSetup(r=8, lora_alpha=16, lora_dropout=0.1))
    r = plan(PlanRequest(model="llama-2-7b", gpu=resolve_gpu("RTX-4090"), base=base,
                         methods=("lora", "qlora")))
    assert r.plans and all(p.setup.lora.lora_dropout == 0.1 for p in r.plans)
