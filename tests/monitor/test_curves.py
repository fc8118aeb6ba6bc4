"""Curve figures (vramdoc/monitor/curves.py) and the curve rules on whole runs."""

from __future__ import annotations

import math

import pytest

from vramdoc.engine import evaluate, load_rules
from vramdoc.monitor.curves import LR_RANGES, CurveTracker
from vramdoc.monitor.run import RunState


def _header(method=None, **args):
    return {"v": 1, "kind": "header", "args": args, "device": {}, "plan": None,
            "method": method}


def _step(i, loss=2.0, lr=2e-4, grad_norm=0.5, **extra):
    return {"v": 1, "kind": "step", "step": i, "loss": loss, "grad_norm": grad_norm, "lr": lr,
            **extra}


def _codes(events):
    state = RunState.with_rules()
    state.feed(events)
    return {a.code: a for a in state.alerts}


@pytest.mark.parametrize("method, rule", [("full", "T301"), ("lora", "T302")])
def test_lr_ranges_are_the_t_rules_ranges(method, rule):
    """The bounds the curve rules use are where the plan's T rules start to fire."""
    low, high, cited = LR_RANGES[method]
    assert cited == rule
    t = next(r for r in load_rules("plan") if r.code == rule)
    ctx = {"method": method, "model_params": 7e9}
    for lr, fires in ((low, False), (high, False), (low * 0.9, True), (high * 1.1, True)):
        assert bool(evaluate([t], {**ctx, "learning_rate": lr})) is fires, (rule, lr)


def test_qlora_range_is_the_union_of_t303_and_t304():
    low, high, _ = LR_RANGES["qlora"]
    t303, t304 = (next(r for r in load_rules("plan") if r.code == c) for c in ("T303", "T304"))
    assert not evaluate([t304], {"method": "qlora", "model_params": 33e9, "learning_rate": low})
    assert evaluate([t304], {"method": "qlora", "model_params": 33e9, "learning_rate": low * .9})
    assert not evaluate([t303], {"method": "qlora", "model_params": 7e9, "learning_rate": high})
    assert evaluate([t303], {"method": "qlora", "model_params": 7e9, "learning_rate": high * 1.1})


def test_flat_loss_during_warmup_is_not_a_plateau():
    events = [_header("lora", max_steps=1000)]
    events += [_step(i, loss=2.0, lr=2e-4 * i / 300) for i in range(1, 300)]
    assert "W114" not in _codes(events) and "W115" not in _codes(events)
    # the same flat loss after warmup is one
    events += [_step(i, loss=2.0, lr=2e-4) for i in range(300, 400)]
    a = _codes(events)["W114"]
    assert a.first_step == 350  # 50 steps after warmup ended, the first point that counts


def test_flat_loss_at_the_end_of_a_decayed_schedule_is_convergence():
    events = [_header("lora", max_steps=200)]
    events += [_step(i, loss=1.5, lr=2e-4 * (1 - i / 200)) for i in range(1, 200)]
    codes = _codes(events)
    assert codes["W114"].last_step < 185  # silent once the rate fell under 10 % of its peak


def test_divergence_is_sustained_not_a_spike():
    base = [_header("full", max_steps=500)] + [_step(i, loss=3 - i / 100, lr=2e-5)
                                               for i in range(1, 100)]
    spike = base + [_step(100, loss=20.0, lr=2e-5)] + [_step(i, loss=2.0, lr=2e-5)
                                                       for i in range(101, 130)]
    assert "W116" not in _codes(spike)
    diverged = base + [_step(i, loss=2.0 + (i - 99) * 0.5, lr=2e-5) for i in range(100, 130)]
    a = _codes(diverged)["W116"]
    assert a.severity == "error" and a.kind == "divergence"
    assert "1e-06..0.0001 for full (rule T301)" in a.message


def test_clipping_saturation_against_recorded_and_default_threshold():
    clipped = [_step(i, grad_norm=2.5) for i in range(1, 30)]
    a = _codes([_header(max_grad_norm=1.0), *clipped])["W121"]
    assert a.first_step == 10 and "max_grad_norm 1 at 100%" in a.message
    assert "W121" not in _codes([_header(max_grad_norm=5.0), *clipped])
    assert "W121" not in _codes([_header(), *clipped])  # no threshold known: silent
    tracker_header = {**_header(), "loss_logged": True}  # a Trainer source: its default 1.0
    assert "Trainer's default" in _codes([tracker_header, *clipped])["W121"].message


def test_loss_scale_churn_over_a_long_window():
    steps = [_step(i, loss_scale=65536.0 / (2 ** (i // 40)) * (1 if i % 40 else 1),
                   loss=2.0 - i / 1000) for i in range(1, 400)]
    codes = _codes([_header(fp16=True), *steps])
    assert "W122" in codes and codes["W122"].first_step == 320  # the 8th drop
    assert "W122" not in _codes([_header(fp16=False), *steps])


def test_throughput_decay_over_long_windows():
    steps = [_step(i, loss=3 - i / 1000, tokens_per_s=4000.0 if i < 80 else 2900.0)
             for i in range(1, 200)]
    a = _codes([_header(), *steps])["W123"]
    # the "now" window holds its 50 points from point 110 on, most of them already slower
    assert a.first_step == 110
    assert "W111" not in _codes([_header(), *steps])  # 0.72 is not a stall


def test_masked_nan_from_a_recorder_run_keeps_its_message():
    events = [_header(logging_nan_inf_filter=True)] + [_step(i) for i in range(1, 5)]
    events += [_step(5, loss=math.nan, grad_norm=math.nan)]
    a = _codes(events)["W102"]
    assert a.message.startswith("step 5: loss nan, gradient norm nan")


def test_history_stays_bounded():
    tracker = CurveTracker(_header(fp16=True, max_grad_norm=1.0))
    for i in range(1, 5001):
        tracker.push(i, {"loss": 2.0, "lr": 1e-4, "grad_norm": 2.0,
                         "loss_scale": 2.0 ** (10 + i % 2)}, 100.0)
    assert len(tracker.recent) == 5 and len(tracker.clipped) == 20
    assert len(tracker.scale_drops) <= 250 and len(tracker.tput_base) == 50
    assert len(tracker.tput_now) == 50


def test_schedule_checks_on_a_run():
    # warmup over 300 of 1000 steps, then a cosine decay built for 400 steps
    events = [_header("lora", max_steps=1000, lr_scheduler_type="constant", warmup_steps=300)]
    events += [_step(i, loss=3 - i / 1000, lr=2e-4 * i / 300) for i in range(1, 301)]
    events += [_step(i, loss=3 - i / 1000,
                     lr=max(0.0, 2e-4 * 0.5 * (1 + math.cos(math.pi * (i - 300) / 100))))
               for i in range(301, 500)]
    codes = _codes(events)
    assert codes["W118"].first_step == 1  # constant ignores warmup_steps
    assert codes["W117"].first_step == 201  # warmup still rising past 20 % of the run
    assert "W120" not in codes  # 2e-4 is a LoRA rate
    decayed = codes["W119"]
    assert 380 < decayed.first_step < 400 and "of the run's 1000 steps" in decayed.message
