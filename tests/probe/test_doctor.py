"""The doctor context and the diagnoses the D rules draw from it."""

from __future__ import annotations

import math

import pytest

from tests.probe.conftest import tiny_setup
from vramdoc.engine import context_names
from vramdoc.probe import doctor
from vramdoc.probe.result import MemoryView, OomEvent, ProbeResult, StepRecord


def _view(peak: int) -> MemoryView:
    return MemoryView(peak_allocated_bytes=peak, peak_phase="backward",
                      phases={"load": peak // 2, "backward": peak},
                      components={"weights": peak // 2, "activations": peak - peak // 2},
                      phase_components={})


def _result(steps=(), **kw) -> ProbeResult:
    base = dict(model="tiny-llama", device="cpu", device_name="cpu", method="full",
                batch_size=2, seq_len=32, steps_requested=len(steps), steps_run=len(steps),
                n_params=1, n_trainable=1, measured=_view(100 << 20),
                trainable_dtypes=["float32"])
    base.update(kw)
    return ProbeResult(steps=list(steps), **base)


def _step(i, loss=2.0, grad_norm=1.0, **kw) -> StepRecord:
    return StepRecord(step=i, loss=loss, grad_norm=grad_norm, lr=1e-4, seconds=0.1, **kw)


def _codes(result, setup=None, gpu=None):
    return [f["code"] for f in doctor.diagnose(result, setup or tiny_setup(), None, gpu)]


def test_context_offers_exactly_the_declared_names():
    declared = set(context_names("doctor"))
    assert set(doctor.CONTEXT_NAMES) == declared
    ctx = doctor.doctor_context(_result([_step(0), _step(1)]), tiny_setup())
    assert set(ctx) == declared


def test_healthy_run_has_no_findings():
    steps = [_step(i, loss=3.0 - 0.1 * i, grad_norm=1.0 + 0.1 * i) for i in range(4)]
    assert _codes(_result(steps)) == []


def test_loss_spike():
    steps = [_step(0, 3.0), _step(1, 2.9), _step(2, 14.0)]
    result = _result(steps)
    assert _codes(result) == ["D130"]
    f = result.findings[0]
    assert f["kind"] == "loss_spike" and f["step"] == 2
    assert f["propose"] == {"training.learning_rate": pytest.approx(5e-6)}


def test_grad_explosion_with_and_without_clipping():
    steps = [_step(0, grad_norm=2.0), _step(1, grad_norm=3.0), _step(2, grad_norm=80.0)]
    assert _codes(_result(steps)) == ["D132"]
    unclipped = tiny_setup(max_grad_norm=0.0)
    result = _result(steps)
    assert _codes(result, unclipped) == ["D131"]
    assert result.findings[0]["propose"] == {"training.max_grad_norm": 1.0}


def test_nan_forward_names_the_module_and_the_hidden_loss():
    steps = [_step(0), _step(1, loss=math.nan, grad_norm=math.nan,
                          first_nonfinite_module="model.layers.1.input_layernorm",
                          first_nonfinite_value=math.nan,
                          nonfinite_grad_params=("model.layers.1.mlp.up_proj.weight",))]
    result = _result(steps, module_dtype={"model.layers.1.input_layernorm": "float32"})
    codes = _codes(result)
    assert codes == ["D110", "D111", "D140"]
    d110 = result.findings[0]
    assert d110["module"] == "model.layers.1.input_layernorm" and d110["step"] == 1
    assert "layers.{i}.mlp.up_proj.weight" in result.findings[1]["message"]


def test_fp16_overflow_proposes_bf16_or_fp32_module_by_gpu():
    from vramdoc.hardware import resolve_gpu

    steps = [_step(0, loss=math.nan, grad_norm=math.nan, scale=32768.0, skipped=True,
                   first_nonfinite_module="model.layers.0.mlp.down_proj",
                   first_nonfinite_value=math.inf),
             _step(1, loss=math.nan, grad_norm=math.nan, scale=16384.0, skipped=True,
                   first_nonfinite_module="model.layers.0.mlp.down_proj",
                   first_nonfinite_value=math.inf)]
    dtypes = {"model.layers.0.mlp.down_proj": "float16"}
    setup = tiny_setup(fp16=True)
    result = _result(steps, module_dtype=dtypes)
    assert _codes(result, setup, resolve_gpu("RTX-3090")) == ["D101", "D120", "D140"]
    assert result.findings[0]["propose"] == {"training.bf16": True, "training.fp16": False}
    result = _result(steps, module_dtype=dtypes)
    assert _codes(result, setup, resolve_gpu("T4"))[0] == "D102"
    assert "keep model.layers.0.mlp.down_proj in fp32" in result.findings[0]["message"]


def test_near_fp16_limit_warns_before_overflow():
    result = _result([_step(0), _step(1)], module_absmax={"model.layers.0.mlp.down_proj": 40000.0},
                     module_dtype={"model.layers.0.mlp.down_proj": "float16"})
    assert _codes(result, tiny_setup(fp16=True)) == ["D103"]
    assert "61 %" in result.findings[0]["message"]


def test_pure_fp16_training_is_named_as_the_cause():
    steps = [_step(0, nonfinite_params_after=("model.embed_tokens.weight",)),
             _step(1, loss=math.nan, first_nonfinite_module="model.embed_tokens",
                   first_nonfinite_value=math.nan,
                   nonfinite_params_after=("model.embed_tokens.weight",))]
    result = _result(steps, trainable_dtypes=["float16"])
    assert _codes(result, tiny_setup(dtype="float16")) == ["D113", "D140"]
    assert result.findings[0]["propose"] == {"model_kwargs.dtype": "float32",
                                             "training.fp16": True}


def test_estimate_drift_is_signed():
    result = _result([_step(0)], estimate=_view(80 << 20))
    assert _codes(result) == ["D160"]
    assert "-20.0 %" in result.findings[0]["message"]


def test_oom_reports_phase_components_and_plan(monkeypatch):
    from vramdoc.hardware import resolve_gpu

    monkeypatch.setattr(doctor, "next_plan", lambda setup, gpu: {
        "label": "LoRA r16 all-linear", "peak_allocated_bytes": 200 << 20, "setup": {}})
    oom = OomEvent(phase="optimizer_step", step=0, allocated_bytes=550 << 20,
                   request_bytes=64 << 20, limit_bytes=604 << 20, emulated=True,
                   components={"weights": 173 << 20, "optimizer_states": 346 << 20,
                               "gradients": 173 << 20})
    result = _result([], oom=oom)
    assert _codes(result, gpu=resolve_gpu("1GB")) == ["D150"]
    f = result.findings[0]
    assert (f["kind"], f["phase"], f["step"]) == ("oom", "optimizer_step", 0)
    assert "Largest: optimizer_states 346 MiB, then weights 173 MiB" in f["message"]
    assert "LoRA r16 all-linear (peak 200 MiB)" in f["message"]
