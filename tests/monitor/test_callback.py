"""VramdocCallback on real (tiny, CPU) Trainer runs."""

from __future__ import annotations

import json
import math

import pytest

pytest.importorskip("transformers")

from tests.monitor.tiny import nan_trainer_class, tiny_trainer  # noqa: E402
from vramdoc.monitor import RunState, VramdocCallback  # noqa: E402
from vramdoc.monitor.follower import iter_events  # noqa: E402


def _events(run_dir):
    return list(iter_events(run_dir))


def test_records_every_step_with_trainers_own_numbers(tmp_path):
    cb = VramdocCallback(tmp_path / "run")
    trainer = tiny_trainer(tmp_path / "out", [cb], max_steps=6, gradient_accumulation_steps=2)
    trainer.train()
    events = _events(tmp_path / "run")
    steps = [e for e in events if e["kind"] == "step"]
    logs = {e["step"]: e["logs"] for e in events if e["kind"] == "log" and "loss" in e["logs"]}
    assert [s["step"] for s in steps] == [1, 2, 3, 4, 5, 6]
    for s in steps:  # logging_steps=1: Trainer logged each step; finite losses agree exactly
        assert s["loss"] == pytest.approx(logs[s["step"]]["loss"], rel=1e-6)
        assert s["grad_norm"] == pytest.approx(logs[s["step"]]["grad_norm"], rel=1e-6)
        assert s["lr"] == pytest.approx(logs[s["step"]]["learning_rate"], rel=1e-9)
        assert (s["tokens"], s["samples"]) == (2 * 4 * 32, 2 * 4)  # 2 micro-batches of 4 x 32
        assert s["tokens_per_s"] > 0
    header = events[0]
    assert header["source"] == "trainer"
    assert header["args"]["gradient_accumulation_steps"] == 2
    assert header["args"]["logging_nan_inf_filter"] is True
    assert header["args"]["model"]["model_type"] == "llama"
    assert header["versions"]["transformers"]
    assert events[-1]["kind"] == "end"
    assert cb.mode == "trainer"
    # wrappers removed: the instance uses the class's methods again
    assert "training_step" not in trainer.__dict__ and "_get_grad_norm" not in trainer.__dict__


def test_nan_is_recorded_although_trainer_logs_a_finite_loss(tmp_path):
    cb = VramdocCallback(tmp_path / "run")
    trainer = tiny_trainer(tmp_path / "out", [cb], max_steps=5,
                           trainer_cls=nan_trainer_class(4))
    trainer.train()
    events = _events(tmp_path / "run")
    steps = {e["step"]: e for e in events if e["kind"] == "step"}
    logged = {e["step"]: e["logs"] for e in events if e["kind"] == "log" and "loss" in e["logs"]}
    assert steps[4]["loss"] == "NaN" and steps[4]["grad_norm"] == "NaN"
    assert math.isfinite(logged[4]["loss"])  # Trainer's filter hid it
    assert steps[3]["loss"] != "NaN"
    state = RunState.with_rules()
    state.feed(events)
    masked = [a for a in state.alerts if a.code == "W102"]
    assert masked and masked[0].first_step == 4


def test_records_only_on_the_main_process(tmp_path):
    cb = VramdocCallback(tmp_path / "run")

    class State:
        is_world_process_zero = False

    cb.on_train_begin(None, State(), None)
    assert cb.recorder is None and not (tmp_path / "run").exists()


def test_errors_inside_the_callback_never_reach_training(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    cb = VramdocCallback(blocker / "run", plan={"not": "an estimate"})
    trainer = tiny_trainer(tmp_path / "out", [cb], max_steps=3)
    trainer.train()  # must not raise
    err = capsys.readouterr().err
    assert err.count("vramdoc: recorder error in open") == 1


def test_forward_hook_fallback_when_the_trainer_is_not_found(tmp_path, monkeypatch):
    import vramdoc.monitor.callback as callback_mod

    monkeypatch.setattr(callback_mod, "_find_trainer", lambda: None)
    cb = VramdocCallback(tmp_path / "run")
    trainer = tiny_trainer(tmp_path / "out", [cb], max_steps=3, gradient_accumulation_steps=2)
    trainer.train()
    assert cb.mode == "hook"
    events = _events(tmp_path / "run")
    steps = [e for e in events if e["kind"] == "step"]
    logs = {e["step"]: e["logs"] for e in events if e["kind"] == "log" and "loss" in e["logs"]}
    for s in steps:
        assert s["loss"] == pytest.approx(logs[s["step"]]["loss"], rel=1e-5)
        assert s["grad_norm"] is None
    assert any(e["kind"] == "note" and e["what"] == "degraded" for e in events)
    assert not trainer.model._forward_hooks  # removed at train end


def test_lines_are_strict_json(tmp_path):
    cb = VramdocCallback(tmp_path / "run")
    tiny_trainer(tmp_path / "out", [cb], max_steps=2).train()
    for line in (tmp_path / "run" / "events.jsonl").read_text().splitlines():
        json.loads(line, parse_constant=pytest.fail)
