"""Tracker sources read by `vramdoc watch`: Trainer output dirs, MLflow, TensorBoard, W&B.

Each maps to the same events, so the same history gives the same alerts whatever wrote it.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from tests.monitor.trainer_runs import (
    masked_nan_run,
    overfitting_history,
    overfitting_run,
    plateau_run,
    write_run,
)
from vramdoc.monitor.run import RunState
from vramdoc.monitor.sources import SourceFollower, detect, open_follower, read_events

DATA = Path(__file__).resolve().parent / "data"


def _once(run_cli, path) -> tuple[int, dict]:
    code, out, err = run_cli("watch", str(path), "--once", "--json")
    assert err == "" or code != 2, err
    return code, json.loads(out)


def _alerts(summary: dict) -> dict[str, dict]:
    return {a["code"]: a for a in summary["alerts"]}


def _state(path) -> RunState:
    state = RunState.with_rules()
    state.feed(read_events(path))
    return state


# --- Trainer output dirs: the three runs of the issue -------------------------------------
def test_overfitting_run_names_the_best_step_and_checkpoint(tmp_path, run_cli):
    out = overfitting_run(tmp_path / "out")
    code, s = _once(run_cli, out)
    assert code == 0  # a warning, not an error
    assert s["source"] == "trainer_state" and s["steps"] == 60 and s["last_step"] == 600
    a = _alerts(s)["W113"]
    assert a["kind"] == "overfitting" and a["severity"] == "warning"
    # best evaluation at 250; the second evaluation without improvement is at 350
    assert (a["first_step"], a["last_step"]) == (350, 600)
    assert "1.5 at step 250" in a["message"]
    assert "the model to keep is checkpoint-250" in a["message"]
    assert "load_best_model_at_end" in a["fix"] and "EarlyStoppingCallback" in a["fix"]
    assert set(_alerts(s)) == {"W113"}


def test_plateau_run(tmp_path, run_cli):
    code, s = _once(run_cli, plateau_run(tmp_path / "out"))
    assert code == 0
    assert set(_alerts(s)) == {"W114"}
    a = _alerts(s)["W114"]
    # the loss stops falling at step 100; its 5-point median last improves by 1 % at step
    # 120, and the alert waits 50 steps and 8 logged points without a 1 % improvement
    assert a["kind"] == "plateau" and (a["first_step"], a["last_step"]) == (200, 500)
    assert "best 1.9 at step 120" in a["message"]


def test_plateau_at_a_tiny_learning_rate_says_the_rate_is_too_low(tmp_path, run_cli):
    _code, s = _once(run_cli, plateau_run(tmp_path / "out", peak_lr=1e-5))
    alerts = _alerts(s)
    assert "W114" not in alerts and alerts["W115"]["kind"] == "plateau"
    assert "the learning rate is too low" in alerts["W115"]["message"]
    assert "5e-05..0.0005 for lora (rule T302)" in alerts["W115"]["message"]
    assert alerts["W120"]["severity"] == "info"


def test_masked_nan_run_is_an_error_at_the_first_nan_gradient(tmp_path, run_cli):
    code, s = _once(run_cli, masked_nan_run(tmp_path / "out"))
    assert code == 1
    a = _alerts(s)["W102"]
    assert a["kind"] == "masked_nan" and a["severity"] == "error"
    assert (a["first_step"], a["last_step"], a["count"]) == (120, 200, 9)
    assert "gradient norm nan" in a["message"]
    assert "W103" not in _alerts(s)  # Trainer's filter may hide the NaN loss: W102, not W103


def test_healthy_trainer_run_is_silent(tmp_path, run_cli):
    from tests.monitor.trainer_runs import history

    rows = history(400, 10, 50, loss=lambda s: 2.5 - s / 400, eval_loss=lambda s: 2.4 - s / 500)
    code, s = _once(run_cli, write_run(tmp_path / "out", rows, total=400, logging=10, save=100,
                                       eval_every=50))
    assert code == 0 and s["alerts"] == []


def test_latest_checkpoint_wins_and_the_text_summary(tmp_path, run_cli):
    out = overfitting_run(tmp_path / "out")
    shutil.rmtree(out / "checkpoint-600")  # the run's latest state is now checkpoint-550
    code, text, _ = run_cli("watch", str(out), "--once")
    assert code == 0
    assert "steps      55 (last 550)" in text
    assert "memory     not recorded (trainer state logs hold no memory figures" in text
    assert "W113 warning overfitting (steps 350-550)" in text


def test_top_level_state_and_the_file_itself(tmp_path):
    out = overfitting_run(tmp_path / "out")
    state_file = out / "checkpoint-600" / "trainer_state.json"
    assert detect(state_file) == "trainer_state"
    top = tmp_path / "top"
    top.mkdir()
    shutil.copy(state_file, top / "trainer_state.json")
    for path in (state_file, top):
        codes = [a.code for a in _state(path).alerts]
        assert codes == ["W113"], path


def test_unreadable_state_exits_2(tmp_path, run_cli):
    ck = tmp_path / "out" / "checkpoint-10"
    ck.mkdir(parents=True)
    (ck / "trainer_state.json").write_text('{"log_history": [')
    code, out, err = run_cli("watch", str(tmp_path / "out"), "--once")
    assert code == 2 and out == ""
    assert "trainer_state.json: not valid JSON" in err and "Traceback" not in err
    (ck / "trainer_state.json").write_text('{"global_step": 3}')
    code, _out, err = run_cli("watch", str(tmp_path / "out"), "--once")
    assert code == 2 and "not a Trainer state (no log_history list)" in err


def test_nothing_there_names_every_format(tmp_path, run_cli):
    code, _out, err = run_cli("watch", str(tmp_path), "--once")
    assert code == 2 and "Trainer output dir, mlruns/<exp>/<run-id>" in err


def test_follower_streams_new_checkpoints(tmp_path):
    rows = overfitting_history()
    out = tmp_path / "out"
    write_run(out, rows, total=600, logging=10, save=100, eval_every=50, upto=200)
    follower = open_follower(out)
    assert isinstance(follower, SourceFollower)
    state = RunState.with_rules()
    state.feed(follower.poll())
    assert state.steps[-1]["step"] == 200 and state.sessions == 1
    assert follower.poll() == [] and follower.at_end()
    write_run(out, rows, total=600, logging=10, save=100, eval_every=50)  # training went on
    assert not follower.at_end()
    new = follower.poll()
    assert new[0]["kind"] == "step" and new[0]["step"] == 210  # only what is new
    state.feed(new)
    assert state.sessions == 1 and len(state.steps) == 60 and follower.resets == 0
    assert [a.code for a in state.alerts] == ["W113"]
    assert follower.status.value == "ended"


def test_follower_waits_out_a_half_written_state(tmp_path):
    out = tmp_path / "out"
    (out / "checkpoint-10").mkdir(parents=True)
    (out / "checkpoint-10" / "trainer_state.json").write_text('{"log_history": [{"lo')
    follower = SourceFollower(out, "trainer_state")
    assert follower.poll() == [] and "not valid JSON" in follower.describe()
    write_run(out, overfitting_history(), total=600, logging=10, save=10, upto=10)
    assert [e["kind"] for e in follower.poll()] == ["header", "step"]


# --- MLflow -------------------------------------------------------------------------------
def _mlflow_run(root: Path, rows: list[dict], status: int = 3) -> Path:
    """An MLflow file-store run as MLflowCallback leaves it (metrics/<key>: 'ts value step')."""
    run = root / "mlruns" / "0" / "3f2a9c"
    (run / "metrics").mkdir(parents=True)
    (run / "params").mkdir()
    (run / "meta.yaml").write_text(
        "artifact_uri: file:///x/mlruns/0/3f2a9c/artifacts\nend_time: 1796179999000\n"
        "experiment_id: '0'\nlifecycle_stage: active\nrun_id: 3f2a9c\nrun_name: demo\n"
        f"start_time: 1796179000000\nstatus: {status}\nuser_id: me\n")
    lines: dict[str, list[str]] = {}
    for i, row in enumerate(rows):
        for key, value in row.items():
            if key != "step":
                lines.setdefault(key, []).append(f"{1796179000000 + i} {value} {row['step']}")
    for key, ls in lines.items():
        (run / "metrics" / key).write_text("\n".join(ls) + "\n")
    for key, value in {"learning_rate": "0.0002", "max_steps": "600", "max_grad_norm": "1.0",
                       "logging_nan_inf_filter": "True", "save_steps": "50",
                       "lr_scheduler_type": "cosine", "warmup_steps": "20"}.items():
        (run / "params" / key).write_text(value)
    return run


def test_mlflow_run_gives_the_alerts_of_the_same_trainer_run(tmp_path, run_cli):
    run = _mlflow_run(tmp_path, overfitting_history())
    assert detect(run) == "mlflow"
    code, s = _once(run_cli, run)
    trainer = _once(run_cli, overfitting_run(tmp_path / "out"))[1]
    assert code == 0 and s["source"] == "mlflow" and s["file"]["status"] == "ended"
    key = ("code", "first_step", "last_step", "message")
    assert [[a[k] for k in key] for a in s["alerts"]] == \
        [[a[k] for k in key] for a in trainer["alerts"]]
    state = _state(run)
    assert state.args["max_grad_norm"] == 1.0 and state.args["logging_nan_inf_filter"] is True


def test_mlflow_store_root_asks_for_one_run(tmp_path, run_cli):
    _mlflow_run(tmp_path, overfitting_history())
    code, _out, err = run_cli("watch", str(tmp_path / "mlruns" / "0"), "--once")
    assert code == 2  # an experiment folder is not one run
    from vramdoc.errors import UsageError
    from vramdoc.monitor.sources import mlflow

    with pytest.raises(UsageError, match="holds 1 MLflow run"):
        mlflow.read(tmp_path / "mlruns" / "0")


# --- TensorBoard --------------------------------------------------------------------------
def _tb_run(logdir: Path, rows: list[dict]) -> Path:
    """Event files as TensorBoardCallback writes them (rewrite_logs names, args as text)."""
    pytest.importorskip("tensorboard")
    from torch.utils.tensorboard import SummaryWriter

    w = SummaryWriter(log_dir=str(logdir))
    w.add_text("args", json.dumps({"max_steps": 600, "max_grad_norm": 1.0, "save_steps": 50,
                                   "learning_rate": 2e-4, "logging_nan_inf_filter": True}))
    for row in rows:
        for key, value in row.items():
            if key == "step":
                continue
            tag = "eval/" + key[5:] if key.startswith("eval_") else "train/" + key
            w.add_scalar(tag, value, row["step"])
    w.close()
    return logdir


def test_tensorboard_run_gives_the_alerts_of_the_same_trainer_run(tmp_path, run_cli):
    logdir = _tb_run(tmp_path / "runs" / "Dec02_10-00-00_host", overfitting_history())
    assert detect(logdir) == "tensorboard"
    code, s = _once(run_cli, logdir)
    trainer = _once(run_cli, overfitting_run(tmp_path / "out"))[1]
    assert code == 0 and s["source"] == "tensorboard"
    assert [(a["code"], a["first_step"], a["message"]) for a in s["alerts"]] == \
        [(a["code"], a["first_step"], a["message"]) for a in trainer["alerts"]]
    assert _state(logdir).args["save_steps"] == 50


def test_tensorboard_without_the_package_exits_2(tmp_path, run_cli, monkeypatch):
    logdir = tmp_path / "tb"
    logdir.mkdir()
    (logdir / "events.out.tfevents.1.host").write_bytes(b"")
    monkeypatch.setitem(sys.modules, "tensorboard", None)
    monkeypatch.setitem(sys.modules, "tensorboard.backend.event_processing", None)
    code, out, err = run_cli("watch", str(logdir), "--once")
    assert code == 2 and out == ""
    assert "needs the 'tensorboard' package" in err and 'pip install "vramdoc[tb]"' in err


# --- W&B ----------------------------------------------------------------------------------
def test_wandb_offline_run_gives_the_alerts_of_the_same_trainer_run(tmp_path, run_cli):
    pytest.importorskip("wandb")
    run = DATA / "wandb-offline-run"  # a real offline run of wandb 0.31 (make_wandb_run.py)
    assert detect(run) == "wandb"
    code, s = _once(run_cli, run)
    trainer = _once(run_cli, overfitting_run(tmp_path / "out"))[1]
    assert code == 0 and s["source"] == "wandb" and s["file"]["status"] == "ended"
    assert [(a["code"], a["first_step"], a["message"]) for a in s["alerts"]] == \
        [(a["code"], a["first_step"], a["message"]) for a in trainer["alerts"]]
    assert _state(run).args["max_grad_norm"] == 1.0


def test_wandb_record_framing(tmp_path):
    from vramdoc.monitor.sources.wandb import records

    data = next((DATA / "wandb-offline-run").glob("*.wandb")).read_bytes()
    payloads, corrupt = records(data)
    assert corrupt == 0 and len(payloads) > 100
    cut, corrupt = records(data[:-10])  # a live run mid-write: the last record is left out
    assert corrupt == 0 and len(cut) == len(payloads) - 1
    flipped = bytearray(data)
    flipped[200] ^= 0xFF
    assert records(bytes(flipped))[1] == 1


def test_wandb_without_the_package_exits_2(run_cli, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)
    monkeypatch.setitem(sys.modules, "wandb.proto", None)
    code, _out, err = run_cli("watch", str(DATA / "wandb-offline-run"), "--once")
    assert code == 2 and 'pip install "vramdoc[wandb]"' in err
