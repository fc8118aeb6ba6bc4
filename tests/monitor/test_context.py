"""The watch context and the alerts it raises on synthetic runs."""

from __future__ import annotations

import math

import pytest

from vramdoc.engine import context_names, load_rules, run_rule_tests
from vramdoc.monitor.context import ContextBuilder
from vramdoc.monitor.run import RunState

GiB = 2**30
MiB = 2**20


def _header(**args):
    return {"v": 1, "kind": "header", "args": args,
            "device": {"type": "cuda", "total_bytes": 16 * GiB},
            "plan": {"peak_allocated_bytes": 8 * GiB, "components": {}}}


def _step(i, loss=2.0, grad_norm=1.0, **extra):
    ev = {"v": 1, "kind": "step", "step": i, "loss": loss, "grad_norm": grad_norm, "lr": 1e-4,
          "step_time_s": 0.5, "tokens_per_s": 4000.0, "interrupted": False}
    ev.update(extra)
    return ev


def _mem(allocated, reserved, peak_alloc=None, retries=0):
    return {"allocated_bytes": allocated, "reserved_bytes": reserved,
            "peak_allocated_bytes": peak_alloc or allocated, "peak_reserved_bytes": reserved,
            "alloc_retries": retries, "ooms": 0}


def _run(events):
    state = RunState.with_rules()
    assert state.rules_error == ""
    state.feed(events)
    return state


def _codes(state):
    return [a.code for a in state.alerts]


def test_context_offers_exactly_the_declared_names():
    ctx = ContextBuilder(_header()).push(_step(1))
    assert set(ctx) == set(context_names("watch"))


def test_rule_cases_pass():
    results = run_rule_tests(scope="watch")
    assert len({r.code for r in results}) == len(load_rules(scope="watch")) >= 6
    assert [r.label + ": " + r.detail for r in results if not r.passed] == []


def test_healthy_run_raises_nothing():
    events = [_header(logging_nan_inf_filter=True)]
    events += [_step(i, loss=3.0 - 0.01 * i, grad_norm=1.0 + 0.01 * (i % 3),
                     mem=_mem(8 * GiB, 9 * GiB)) for i in range(1, 60)]
    state = _run(events)
    assert state.alerts == []
    assert state.last_context["drift_ratio"] == pytest.approx(1.0)


def test_masked_nan_and_unmasked_nan():
    steps = [_step(i) for i in range(1, 11)] + [_step(11, loss="NaN", grad_norm="NaN")]
    assert _codes(_run([_header(logging_nan_inf_filter=True), *steps])) == ["W102"]
    assert _codes(_run([_header(logging_nan_inf_filter=False), *steps])) == ["W101"]
    assert _codes(_run([{"v": 1, "kind": "header"}, *steps])) == ["W101"]  # plain loop


def test_nan_gradients_with_finite_loss():
    steps = [_step(i) for i in range(1, 11)] + [_step(11, grad_norm="NaN", skipped=False)]
    assert _codes(_run([_header(), *steps])) == ["W103"]
    skipped = [_step(i) for i in range(1, 11)] + [_step(11, grad_norm="Infinity", skipped=True)]
    assert _codes(_run([_header(fp16=True), *skipped])) == []


def test_fp16_overflow_streak_and_scale_collapse():
    steps = [_step(i, loss_scale=65536.0, skipped=False) for i in range(1, 6)]
    scale = 65536.0
    for i in range(6, 30):
        scale /= 2
        steps.append(_step(i, loss_scale=scale, skipped=True, grad_norm="Infinity"))
    state = _run([_header(fp16=True), *steps])
    assert _codes(state) == ["W104", "W105"]
    streak = state.alerts[0]
    assert (streak.first_step, streak.last_step) == (8, 29)  # one episode, from the 3rd skip
    assert state.alerts[1].first_step == 6 + 16  # 65536 / 2**17 = 0.5 < 1
    assert "0.5" in state.alerts[1].message


def test_loss_spike_and_grad_norm_explosion_are_one_episode_each():
    steps = [_step(i, loss=2.0 + 0.01 * (i % 2), grad_norm=1.0) for i in range(1, 26)]
    steps += [_step(26, loss=7.0, grad_norm=40.0), _step(27, loss=6.5, grad_norm=30.0)]
    steps += [_step(i, loss=2.0, grad_norm=1.0) for i in range(28, 35)]
    state = _run([_header(), *steps])
    assert _codes(state) == ["W106", "W107"]
    spike = state.alerts[0]
    assert (spike.first_step, spike.last_step, spike.count) == (26, 27, 2)
    assert "7 is 3.5x" in spike.message


def test_memory_creep_toward_the_limit():
    steps = [_step(i, mem=_mem(8 * GiB + i * 64 * MiB, 10 * GiB + i * 64 * MiB))
             for i in range(1, 30)]
    state = _run([_header(), *steps])
    assert "W108" in _codes(state)
    creep = next(a for a in state.alerts if a.code == "W108")
    assert creep.first_step == 10
    # (16 GiB - 10.625 GiB) / 64 MiB per step = 86 steps at step 10
    assert "64 MiB per step" in creep.message and "about 86 steps" in creep.message


def test_flat_memory_near_the_limit():
    steps = [_step(i, mem=_mem(14 * GiB, int(15.5 * GiB))) for i in range(1, 5)]
    assert _codes(_run([_header(), *steps])) == ["W109", "W112"]  # 97 %; 14 vs 8 GiB planned


def test_fragmentation_growth_and_allocator_retries():
    steps = [_step(i, mem=_mem(2 * GiB, 2 * GiB + i * 200 * MiB, peak_alloc=8 * GiB))
             for i in range(1, 12)]
    state = _run([_header(), *steps])
    assert _codes(state) == ["W110"]
    # step 5: 1000 MiB cached of 2.98 GiB reserved (33 %), 800 MiB more than at step 1
    assert state.alerts[0].first_step == 5
    assert state.alerts[0].message.startswith("1000 MiB reserved but not allocated (33% of")
    retries = [_step(1, mem=_mem(8 * GiB, 9 * GiB)),
               _step(2, mem=_mem(8 * GiB, 9 * GiB, retries=3))]
    assert _codes(_run([_header(), *retries])) == ["W110"]


def test_throughput_stall_needs_several_slow_steps():
    fast = [_step(i, tokens_per_s=4000.0) for i in range(1, 21)]
    one_slow = fast + [_step(21, tokens_per_s=500.0)] + [_step(i, tokens_per_s=4000.0)
                                                          for i in range(22, 26)]
    assert _codes(_run([_header(), *one_slow])) == []
    stall = fast + [_step(i, tokens_per_s=1200.0) for i in range(21, 26)]
    state = _run([_header(), *stall])
    assert _codes(state) == ["W111"]
    assert state.alerts[0].first_step == 23  # median of the last 5 falls at the 3rd slow step


def test_interrupted_steps_do_not_count_as_stalls():
    steps = [_step(i) for i in range(1, 21)]
    steps += [_step(i, tokens_per_s=100.0, interrupted=True) for i in range(21, 30)]
    assert _codes(_run([_header(), *steps])) == []


def test_estimate_drift_against_the_plan():
    steps = [_step(i, mem=_mem(10 * GiB, 11 * GiB)) for i in range(1, 5)]
    state = _run([_header(), *steps])
    assert _codes(state) == ["W112"]
    assert "1.25x the plan's 8.00 GiB" in state.alerts[0].message


def test_nan_loss_ratio_is_none_not_nan():
    b = ContextBuilder(_header())
    for i in range(1, 10):
        b.push(_step(i))
    ctx = b.push(_step(10, loss=math.nan))
    assert ctx["loss_nonfinite"] is True and ctx["loss_ratio"] is None
