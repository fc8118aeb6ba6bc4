"""W rules left out of a session because its header makes them silent (run.live_rules).

Two things make that exact: the names ContextBuilder.constants() lists hold the same value in
every step's context, and a rule is left out only when a part of its ``and`` chain that reads
such names alone is false. Both are checked here, and the alerts with and without the pruning
are compared on logs whose headers switch each constant on and off.
"""

from __future__ import annotations

import json

import pytest

from tests.monitor.test_fastdecode import dumps, full_step
from tests.tui.runs import gpu_header
from vramdoc.monitor import run as run_mod
from vramdoc.monitor.context import ContextBuilder
from vramdoc.monitor.run import RunState, live_rules
from vramdoc.monitor.schema import encode_value

HEADER_ARGS = [
    {},
    {"fp16": True, "bf16": False},
    {"logging_nan_inf_filter": False},
    {"logging_nan_inf_filter": None, "max_grad_norm": None},
    {"lr_scheduler_type": "constant", "warmup_steps": 10},
    {"lr_scheduler_type": "cosine", "warmup_steps": 0, "max_steps": None},
    {"max_grad_norm": "NaN"},
]
HEADER_TOP = [{}, {"method": "lora"}, {"method": "full", "loss_logged": True}]


def _log(args: dict, top: dict) -> bytes:
    h = gpu_header()
    h["session"] = "s9"
    h["args"] = {**h["args"], **args}
    h.update(top)
    lines = [dumps(h)]
    for i in range(1, 260):
        over: dict = {"session": "s9"}
        if i in (40, 41):
            over["loss"] = "NaN"
        if i == 50:
            over["grad_norm"] = "Infinity"
        if 60 <= i < 64:
            over.update(skipped=True, loss_scale=2.0 ** (10 - i + 60))
        if i == 90:
            over["loss"] = 30.0
        if i > 120:
            over["lr"] = 2e-4 * (1 + (i - 120) / 10)
        lines.append(dumps(full_step(i, **over)))
    return b"".join(lines)


def _feed(data: bytes, tmp_path) -> RunState:
    path = tmp_path / "events.jsonl"
    path.write_bytes(data)
    from vramdoc.commands.watch import read_to_end
    from vramdoc.monitor.follower import Follower

    state = RunState.with_rules()
    read_to_end(Follower(path), state)
    return state


def _alerts(state: RunState) -> str:
    return json.dumps(encode_value(
        [[a.code, a.first_step, a.last_step, a.count, a.message, a.last_message]
         for a in state.alerts] + [state.failed_events, state.failed_reason]))


@pytest.mark.parametrize("top", HEADER_TOP, ids=lambda t: ",".join(t) or "plain")
@pytest.mark.parametrize("args", HEADER_ARGS, ids=lambda a: ",".join(a) or "default")
def test_pruning_changes_no_alert(args, top, tmp_path, monkeypatch):
    data = _log(args, top)
    pruned = _feed(data, tmp_path)
    monkeypatch.setattr(run_mod, "live_rules", lambda rules, constants: list(rules))
    full = _feed(data, tmp_path)
    assert _alerts(pruned) == _alerts(full)
    assert json.dumps(encode_value(pruned.summary())) == json.dumps(encode_value(full.summary()))


@pytest.mark.parametrize("top", HEADER_TOP, ids=lambda t: ",".join(t) or "plain")
# max_grad_norm "NaN" makes every step's context raise (clip_text formats it with :g); the
# pruning test above shows the same steps failing with and without pruning
@pytest.mark.parametrize("args", HEADER_ARGS[:-1], ids=lambda a: ",".join(a) or "default")
def test_the_constants_hold_at_every_step(args, top):
    h = gpu_header()
    h["args"] = {**h["args"], **args}
    h.update(top)
    builder = ContextBuilder(h)
    constants = builder.constants()
    for i in range(1, 120):
        ctx = builder.push(full_step(i, lr=2e-4 * (1 + i / 50)), texts=False)
        for name, value in constants.items():
            assert ctx[name] == value or (value != value and ctx[name] != ctx[name]), name


def test_some_rules_are_left_out_and_none_that_can_fire():
    rules = RunState.with_rules().rules
    live = {r.code for r in live_rules(rules, ContextBuilder(gpu_header()).constants())}
    left_out = {r.code for r in rules} - live
    # a bf16 run with Trainer's NaN filter: the fp16 rules and W101 cannot fire
    assert {"W101", "W104", "W105"} <= left_out
    fp16 = gpu_header()
    fp16["args"] = {**fp16["args"], "fp16": True, "logging_nan_inf_filter": False}
    live16 = {r.code for r in live_rules(rules, ContextBuilder(fp16).constants())}
    assert {"W101", "W104", "W105"} <= live16
