"""The watch's known hostile items, fixed: a header argument the alerts cannot read, a
non-number logged value in trainer_state.json, a negative MLflow step, a broken newest
checkpoint, and MLflow metric names written the TensorBoard / W&B way (``train/loss``).

Each test checks what a user sees: the alert still fires, the damage is named on the
``file`` line (``header_problems`` / ``file.problems`` in ``--json``), and the answer is the
one the readable part of the run gives.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

GiB = 2**30


def _line(kind: str, **fields: object) -> str:
    return json.dumps({"v": 1, "kind": kind, "time": 1.7e9, **fields}) + "\n"


def _log(tmp_path: Path, header_args: dict[str, object], steps: list[str]) -> Path:
    run = tmp_path / "run"
    run.mkdir()
    header = _line("header", source="loop",
                   device={"type": "cuda", "name": "T4", "total_bytes": 15 * GiB},
                   args=header_args)
    (run / "events.jsonl").write_text(header + "".join(steps), encoding="utf-8")
    return run


def _nan_at(n: int) -> list[str]:
    return [_line("step", step=i, loss="NaN" if i == n else 2.0, grad_norm=0.5, lr=1e-4)
            for i in range(1, 8)]


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_max_grad_norm_still_fires_alerts(tmp_path, run_cli, value) -> None:
    run = _log(tmp_path, {"fp16": True, "max_grad_norm": value, "max_steps": 10}, _nan_at(5))
    code, out, err = run_cli("watch", str(run), "--once")
    assert code == 1, out + err  # W101 (non-finite loss) is an error alert
    assert "W101" in out
    assert f"args.max_grad_norm '{value}' is not a finite number: read as 1.0" in out
    code, out, _ = run_cli("watch", str(run), "--once", "--json")
    summary = json.loads(out)
    assert summary["failed_events"] == 0
    assert [a["code"] for a in summary["alerts"]] == ["W101"]
    assert summary["header_problems"] == [
        f"header args.max_grad_norm '{value}' is not a finite number: read as 1.0 "
        "(TrainingArguments' default)"]


def test_clean_header_has_no_header_problems(tmp_path, run_cli) -> None:
    run = _log(tmp_path, {"fp16": True, "max_grad_norm": 1.0, "max_steps": 10}, _nan_at(5))
    code, out, _ = run_cli("watch", str(run), "--once", "--json")
    assert code == 1
    assert "header_problems" not in json.loads(out)


def test_clipping_uses_the_default_threshold_after_a_bad_one() -> None:
    """W121 (clipping saturation) compares grad_norm with the threshold: 1.0 after "NaN"."""
    from vramdoc.monitor.run import RunState

    state = RunState.with_rules()
    header = json.loads(_line("header", args={"max_grad_norm": "NaN"}))
    steps = [json.loads(_line("step", step=i, loss=2.0, grad_norm=3.0, lr=1e-4))
             for i in range(1, 201)]
    state.feed([header, *steps])
    assert state.failed_events == 0
    assert state.last_context["clip_threshold"] == 1.0
    assert state.last_context["clip_fraction"] == 1.0
    assert "W121" in {a.code for a in state.alerts}


@pytest.mark.parametrize(("args", "says"), [
    ({"max_grad_norm": True}, "args.max_grad_norm True is not a finite number: read as 1.0"),
    ({"warmup_steps": "lots"}, "args.warmup_steps 'lots' is not a finite number: read as 0"),
    ({"lr_scheduler_type": 5}, "args.lr_scheduler_type 5 is not a string: read as 'linear'"),
    ({"max_steps": 1.5}, "args.max_steps 1.5 is not a whole number: not used"),
    ({"learning_rate": float("nan")}, "args.learning_rate nan is not a finite number"),
    ({"fp16": "yes"}, "args.fp16 'yes' is not true or false: read as False"),
])
def test_clean_args_names_each_bad_argument(args, says) -> None:
    from vramdoc.monitor.header_args import clean_args

    clean, problems = clean_args(args)
    assert len(problems) == 1 and says in problems[0], problems
    (name,) = args
    assert repr(clean.get(name)) != repr(args[name])  # replaced or dropped


def test_tracker_params_with_a_nan_max_grad_norm(tmp_path, run_cli) -> None:
    """MLflow keeps TrainingArguments as text params: "nan" comes back as a float NaN."""
    run = tmp_path / "mlruns" / "0" / "abc"
    (run / "metrics").mkdir(parents=True)
    (run / "params").mkdir()
    (run / "meta.yaml").write_text("status: 3\n", encoding="utf-8")
    (run / "params" / "max_grad_norm").write_text("nan", encoding="utf-8")
    (run / "metrics" / "loss").write_text("".join(
        f"1700000000000 {'nan' if i == 3 else 1.5} {i}\n" for i in range(1, 6)), encoding="utf-8")
    code, out, err = run_cli("watch", str(run), "--once")
    assert "args.max_grad_norm nan is not a finite number: read as 1.0" in out, out + err


# --- trainer_state.json: values that are not numbers -----------------------------------
def _state(tmp_path: Path, history: list[dict[str, object]], ck: int = 3) -> Path:
    out = tmp_path / "out"
    (out / f"checkpoint-{ck}").mkdir(parents=True)
    (out / f"checkpoint-{ck}" / "trainer_state.json").write_text(json.dumps(
        {"global_step": ck, "max_steps": 10, "log_history": history}), encoding="utf-8")
    return out


@pytest.mark.parametrize(("value", "shown"), [
    (True, "True"), (False, "False"), ("abc", "'abc'"), ([1.0], "[1.0]"), ({"a": 1}, "{'a': 1}"),
])
def test_trainer_state_bad_loss_is_named(tmp_path, run_cli, value, shown) -> None:
    out = _state(tmp_path, [{"step": 1, "loss": 1.0}, {"step": 2, "loss": value},
                            {"step": 3, "loss": 0.9}])
    code, text, _ = run_cli("watch", str(out), "--once")
    assert code == 0
    assert f"1 logged value(s) that are not numbers skipped (first: step 2 loss {shown})" in text
    code, text, _ = run_cli("watch", str(out), "--once", "--json")
    s = json.loads(text)
    assert s["steps"] == 2 and s["loss_min"] == 0.9
    assert any("not numbers" in p for p in s["file"]["problems"])


def test_trainer_state_bad_eval_loss_and_grad_norm_are_counted(tmp_path, run_cli) -> None:
    out = _state(tmp_path, [{"step": 1, "loss": 1.0, "grad_norm": [2]},
                            {"step": 2, "eval_loss": True}, {"step": 3, "loss": 0.9}])
    _, text, _ = run_cli("watch", str(out), "--once")
    assert "2 logged value(s) that are not numbers skipped (first: step 1 grad_norm [2])" in text


def test_trainer_state_numeric_strings_and_nan_stay_values(tmp_path, run_cli) -> None:
    out = tmp_path / "out"
    (out / "checkpoint-2").mkdir(parents=True)
    (out / "checkpoint-2" / "trainer_state.json").write_text(
        '{"global_step": 2, "log_history": [{"step": 1, "loss": "1.5"}, '
        '{"step": 2, "loss": NaN}]}', encoding="utf-8")
    code, text, _ = run_cli("watch", str(out), "--once")
    assert "not numbers" not in text
    assert "1 non-finite" in text and code == 1


# --- MLflow: negative steps, and names with "/" ------------------------------------------
def _mlflow(tmp_path: Path, metrics: dict[str, str]) -> Path:
    run = tmp_path / "mlruns" / "0" / "abc"
    (run / "metrics").mkdir(parents=True)
    (run / "meta.yaml").write_text("status: 3\n", encoding="utf-8")
    for name, text in metrics.items():
        (run / "metrics" / name).parent.mkdir(parents=True, exist_ok=True)
        (run / "metrics" / name).write_text(text, encoding="utf-8")
    return run


@pytest.mark.parametrize("step", ["-5", "-1", str(2**63)])
def test_mlflow_step_out_of_range_is_damage(tmp_path, run_cli, step) -> None:
    run = _mlflow(tmp_path, {"loss": f"1700000000000 1.0 {step}\n1700000000001 0.8 2\n"})
    code, out, _ = run_cli("watch", str(run), "--once")
    out = out.replace(str(tmp_path), "<tmp>")  # pytest's folder name may hold the digits
    assert "finished at step 2" in out
    assert step not in out.split("file")[0]
    assert "1 damaged or unreadable record(s) skipped" in out


def test_mlflow_only_negative_steps_never_says_finished_at_a_negative_step(tmp_path,
                                                                           run_cli) -> None:
    run = _mlflow(tmp_path, {"loss": "1700000000000 1.0 -5\n"})
    _, out, _ = run_cli("watch", str(run), "--once")
    out = out.replace(str(tmp_path), "<tmp>")  # pytest's folder name may hold the digits
    assert "-5" not in out
    assert "1 damaged or unreadable record(s) skipped" in out


def test_mlflow_slash_names_read_like_tensorboard_and_wandb(tmp_path, run_cli) -> None:
    plain = _mlflow(tmp_path / "a", {
        "loss": "1700000000000 2.0 1\n1700000000001 1.5 2\n",
        "grad_norm": "1700000000000 0.5 1\n1700000000001 0.4 2\n",
        "eval_loss": "1700000000001 1.7 2\n"})
    slashed = _mlflow(tmp_path / "b", {
        "train/loss": "1700000000000 2.0 1\n1700000000001 1.5 2\n",
        "train/grad_norm": "1700000000000 0.5 1\n1700000000001 0.4 2\n",
        "eval/loss": "1700000000001 1.7 2\n"})
    from vramdoc.monitor.sources import read_events

    def shape(run: Path) -> list[tuple[object, ...]]:
        return [(e["kind"], e.get("step"), e.get("loss"), e.get("grad_norm"),
                 json.dumps(e.get("logs"), sort_keys=True)) for e in read_events(run, "mlflow")]

    assert shape(plain) == shape(slashed)
    _, a, _ = run_cli("watch", str(plain), "--once", "--json")
    _, b, _ = run_cli("watch", str(slashed), "--once", "--json")
    a_s, b_s = json.loads(a), json.loads(b)
    for key in ("steps", "last_step", "loss_last", "loss_min"):
        assert a_s[key] == b_s[key], key
    assert b_s["steps"] == 2 and b_s["loss_min"] == 1.5


# --- a broken newest checkpoint ----------------------------------------------------------
def _checkpoints(tmp_path: Path, states: dict[int, str]) -> Path:
    out = tmp_path / "out"
    for ck, text in states.items():
        (out / f"checkpoint-{ck}").mkdir(parents=True)
        (out / f"checkpoint-{ck}" / "trainer_state.json").write_text(text, encoding="utf-8")
    return out


def _good(step: int) -> str:
    return json.dumps({"global_step": step, "max_steps": 30,
                       "log_history": [{"step": s, "loss": 2.0 - s / 100}
                                       for s in range(5, step + 1, 5)]})


@pytest.mark.parametrize("broken", ['{"global_step": 20, "log_his', "", "[1, 2]",
                                    '{"log_history": 5}'])
def test_broken_latest_checkpoint_falls_back_with_a_warning(tmp_path, run_cli, broken) -> None:
    out = _checkpoints(tmp_path, {5: _good(5), 10: _good(10), 20: broken})
    code, text, err = run_cli("watch", str(out), "--once")
    assert code == 0, err
    assert "steps      2 (last 10)" in text
    assert f"could not read {out / 'checkpoint-20' / 'trainer_state.json'}" in text
    assert f"read {out / 'checkpoint-10' / 'trainer_state.json'} instead" in text
    _, js, _ = run_cli("watch", str(out), "--once", "--json")
    assert any("checkpoint-20" in p for p in json.loads(js)["file"]["problems"])


def test_two_broken_checkpoints_fall_back_to_the_third(tmp_path, run_cli) -> None:
    out = _checkpoints(tmp_path, {5: _good(5), 10: "{", 20: "{"})
    code, text, _ = run_cli("watch", str(out), "--once")
    assert code == 0 and "steps      1 (last 5)" in text
    for ck in (20, 10):
        assert f"could not read {out / f'checkpoint-{ck}' / 'trainer_state.json'}" in text
    assert f"read {out / 'checkpoint-5' / 'trainer_state.json'} instead" in text


def test_every_checkpoint_broken_is_still_exit_2(tmp_path, run_cli) -> None:
    out = _checkpoints(tmp_path, {5: "{", 10: "{"})
    code, _, err = run_cli("watch", str(out), "--once")
    assert code == 2
    assert err.startswith("error: ") and "checkpoint-10" in err


def test_a_good_latest_checkpoint_names_nothing(tmp_path, run_cli) -> None:
    out = _checkpoints(tmp_path, {5: "{", 10: _good(10)})
    code, text, _ = run_cli("watch", str(out), "--once")
    assert code == 0 and "could not read" not in text  # older checkpoints are not read
