"""VramdocCallback forwards its alerts to the trackers of report_to; vramdoc reads them back."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from tests.monitor.tiny import nan_trainer_class, tiny_trainer
from vramdoc.monitor.forward import TB_TAG, AlertForwarder, trackers_of

pytest.importorskip("transformers")
pytest.importorskip("tensorboard")


def _tb_texts(logdir) -> list[tuple[int, str]]:
    from tensorboard.backend.event_processing import event_accumulator
    from tensorboard.util import tensor_util

    acc = event_accumulator.EventAccumulator(str(logdir), size_guidance={"tensors": 0})
    acc.Reload()
    if f"{TB_TAG}/text_summary" not in acc.Tags()["tensors"]:
        return []
    return [(e.step, tensor_util.make_ndarray(e.tensor_proto).item().decode())
            for e in acc.Tensors(f"{TB_TAG}/text_summary")]


def _train(tmp_path, **kwargs):
    from vramdoc.monitor import VramdocCallback

    out = tmp_path / "out"
    cb = VramdocCallback(tmp_path / "vd", **kwargs)
    trainer = tiny_trainer(out, [cb], max_steps=8, trainer_cls=nan_trainer_class(5),
                           report_to="tensorboard", logging_steps=1)
    trainer.train()
    logdirs = [p for p in (out / "runs").iterdir() if p.is_dir()]
    assert len(logdirs) == 1  # TensorBoardCallback's OUTPUT_DIR/runs/<date>_<host>
    return cb, logdirs[0]


def test_a_real_trainer_run_reports_its_alerts_to_tensorboard_and_reads_back(tmp_path, run_cli,
                                                                             capsys):
    cb, logdir = _train(tmp_path)
    capsys.readouterr()  # what training printed
    assert ("tensorboard", "W102", 5) in cb.forwarder.sent
    texts = _tb_texts(logdir)
    assert texts and texts[0][0] == 5 and texts[0][1].startswith("**W102 masked-nan** (error")
    # the same event files, read by vramdoc watch: Trainer logged a finite loss at step 5
    # (logging_nan_inf_filter) and grad_norm nan
    code, out, _err = run_cli("watch", str(logdir), "--once", "--json")
    s = json.loads(out)
    assert code == 1 and s["source"] == "tensorboard" and s["steps"] == 8
    w102 = next(a for a in s["alerts"] if a["code"] == "W102")
    assert w102["first_step"] == 5 and "gradient norm nan" in w102["message"]


def test_forwarding_can_be_turned_off(tmp_path):
    cb, logdir = _train(tmp_path, forward_alerts=False)
    assert cb.forwarder is None and _tb_texts(logdir) == []


def test_tracker_errors_are_swallowed_with_one_warning(capsys):
    class Broken:
        def add_text(self, *a):
            raise OSError("disk full")

    tb_cb = type("TensorBoardCallback", (), {"tb_writer": Broken()})()
    trainer = type("Trainer", (), {})()  # weak-referenceable, as a real Trainer
    trainer.callback_handler = SimpleNamespace(callbacks=[tb_cb])
    fw = AlertForwarder(["tensorboard", "wandb", "none"], trainer=trainer)
    assert fw.targets == ["wandb", "tensorboard"]
    finding = SimpleNamespace(code="W114", name="plateau", severity="warning", message="m",
                              fix="f")
    fw.forward(finding, 10)
    fw.forward(finding, 20)
    err = capsys.readouterr().err
    assert err.count("could not send alerts to tensorboard: OSError: disk full") == 1
    assert fw.sent == []  # no W&B run active: nothing sent there either


def test_only_new_episodes_are_forwarded():
    fw = AlertForwarder("tensorboard")
    calls = []
    fw.forward = lambda f, step: calls.append((f.code, step))  # type: ignore[method-assign]
    fw({"kind": "header", "args": {"max_grad_norm": 1.0}})
    for i in range(1, 31):
        fw({"kind": "step", "step": i, "loss": 2.0 - i / 100, "grad_norm": 3.0, "lr": 1e-4})
    assert calls == [("W121", 10)]  # clipping from the 10th step on: one episode, sent once


def test_trackers_of():
    assert trackers_of("all") == [] and trackers_of(["mlflow", "wandb"]) == ["wandb", "mlflow"]
    assert trackers_of(None) == [] and trackers_of("tensorboard") == ["tensorboard"]


def test_wandb_alert_when_a_run_is_active(monkeypatch):
    wandb = pytest.importorskip("wandb")
    calls = []
    monkeypatch.setattr(wandb, "alert", lambda **kw: calls.append(kw))
    finding = SimpleNamespace(code="W113", name="overfitting", severity="warning",
                              message="evaluation loss rising", fix="keep it")
    fw = AlertForwarder(["wandb"])
    monkeypatch.setattr(wandb, "run", None)
    fw.forward(finding, 350)
    assert calls == [] and fw.sent == []  # no active run: nothing to alert
    monkeypatch.setattr(wandb, "run", object())
    fw.forward(finding, 350)
    assert fw.sent == [("wandb", "W113", 350)]
    assert calls == [{"title": "vramdoc W113 overfitting",
                      "text": "**W113 overfitting** (warning, step 350): evaluation loss rising"
                              "\n\nfix: keep it",
                      "level": wandb.AlertLevel.WARN}]


def test_mlflow_tag_on_the_active_run(monkeypatch):
    tags = []
    active = [None]
    fake = SimpleNamespace(active_run=lambda: active[0],
                           set_tag=lambda key, value: tags.append((key, value)))
    monkeypatch.setitem(__import__("sys").modules, "mlflow", fake)
    fw = AlertForwarder(["mlflow"])
    finding = SimpleNamespace(code="W116", name="divergence", severity="error",
                              message="the loss diverged", fix="lower the rate")
    fw.forward(finding, 40)
    assert tags == [] and fw.sent == []  # no active MLflow run
    active[0] = object()
    fw.forward(finding, 40)
    assert tags == [("vramdoc.W116", "step 40: the loss diverged")]
    assert fw.sent == [("mlflow", "W116", 40)]
