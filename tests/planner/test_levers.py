"""Levers the planner pulls and the estimator models: the k-bit upcast, numerics facts,
a closest plan that passes the rules."""

from __future__ import annotations

from vramdoc.emit import render_python
from vramdoc.estimate import estimate
from vramdoc.hardware import resolve_gpu
from vramdoc.planner import PlanRequest, plan


def _plan(model: str, gpu: str, **kw):
    return plan(PlanRequest(model=model, gpu=resolve_gpu(gpu), **kw))


def test_llama_3_1_8b_on_an_8gb_card_skips_the_kbit_upcast() -> None:
    res = _plan("llama-3.1-8b", "8GB")
    assert res.fits
    best = res.best
    assert best.setup.method == "qlora" and not best.setup.prepare_model_for_kbit_training
    assert "M222" in {f.code for f in best.findings}
    # the plan's numbers are the estimate of the emitted setup
    assert estimate(best.setup, gpu=res.gpu).device_bytes == best.estimate.device_bytes
    code = render_python(best, res.spec, res.gpu)
    assert "prepare_model_for_kbit_training" not in code.split("# prepare_model")[0]
    assert "model.enable_input_require_grads()" in code
    assert "activation_checkpointing=True" in code


def test_the_upcast_is_kept_when_it_fits() -> None:
    best = _plan("llama-3.1-8b", "RTX-4090").best
    assert best.setup.method != "qlora" or best.setup.prepare_model_for_kbit_training
    for p in _plan("llama-3.1-8b", "12GB").plans:
        if p.setup.method == "qlora":
            assert p.setup.prepare_model_for_kbit_training


def test_skipping_the_upcast_keeps_embeddings_and_head_16_bit() -> None:
    res = _plan("llama-3.1-8b", "8GB")
    s = res.best.setup
    kept = estimate(s.replace(prepare_model_for_kbit_training=True), gpu=res.gpu)
    skipped = res.best.estimate
    # embeddings + lm_head of Llama 3.1 8B: 2 x 128,256 x 4096 values, 2 bytes saved on each
    saved = kept.phase_components["load"]["weights"] - skipped.phase_components["load"]["weights"]
    assert saved >= 2 * 128_256 * 4096 * 2


def test_gemma_2_on_a_t4_gets_no_silent_fp16_plan() -> None:
    res = _plan("gemma-2-2b", "T4", top_k=5)
    assert res.plans
    for p in res.plans:
        t = p.setup.training
        if t.fp16 or p.setup.torch_dtype == "float16":
            assert "H120" in {f.code for f in p.findings}


def test_gemma_3_on_a_t4_gets_no_fp16_plan_at_all() -> None:
    res = _plan("gemma-3-1b", "T4", top_k=5)
    assert res.plans and res.stats.rejected_by_rule["H119"] > 0
    for p in res.plans:
        assert not p.setup.training.fp16 and p.setup.torch_dtype != "float16"


def test_gemma_3_on_ampere_trains_in_bf16() -> None:
    best = _plan("gemma-3-1b", "RTX-3090").best
    assert not best.setup.training.fp16


def test_the_closest_plan_passes_the_hardware_and_numerics_rules() -> None:
    res = _plan("llama-3.1-8b", "6GB")
    assert not res.fits and res.closest is not None
    warned = {f.code for f in res.closest.findings if f.severity in ("warning", "error")
              and f.rule.kind == "constraint"}
    assert not warned, warned
    q = res.closest.setup.quantization
    assert q is not None and q.bnb_4bit_compute_dtype == "float16"
    # suggestions derive from it: the larger GPU named fits the closest plan
    assert res.suggestions and "fits the closest plan" in res.suggestions[0]
