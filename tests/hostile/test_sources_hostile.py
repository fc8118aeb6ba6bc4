"""Tracker sources with contents their formats never hold: `vramdoc watch --once` answers
with an exit code and a message, never a traceback (issue 9's promise, for issue 10's readers)."""

from __future__ import annotations

from pathlib import Path

import pytest

from vramdoc.cli import main

TRAINER_STATES = [
    b'{"log_history": "x"}',
    b'[1, 2]',
    b'{"log_history": [{"step": "x", "loss": "nan"}]}',
    b'{"log_history": [{"step": 1e400, "loss": 1}]}',
    b'{"log_history": [{"step": 1, "loss": NaN, "grad_norm": Infinity}], "max_steps": -5}',
    b'{"log_history": [null, 5, {"step": 2, "eval_loss": [1]}]}',
    b'{"log_history": [{"step": 2, "loss": {"a": 1}, "learning_rate": "high"}]}',
    b'\xff\xfe{',
    b'',
]
MLFLOW_META = [b"FINISHED", b"- 1\n- 2\n", b"status: [1]\n", b"status: 3\nrun_id: abc\n", b": :\n"]
MLFLOW_METRIC = [b"x y z\n1 nan 2\n", b"1 nan 2\n5 1.5\n", b"1e400 1 9e99\n", b"\x00\x01\n", b""]


def _once(path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["watch", str(path), "--once"])
    out = capsys.readouterr()
    return code, out.out + out.err


@pytest.mark.parametrize("content", TRAINER_STATES)
def test_trainer_state(tmp_path: Path, content: bytes, capsys: pytest.CaptureFixture[str]) -> None:
    ckpt = tmp_path / "checkpoint-1"
    ckpt.mkdir()
    (ckpt / "trainer_state.json").write_bytes(content)
    code, text = _once(tmp_path, capsys)
    assert code in (0, 1, 2)
    assert "Traceback" not in text


@pytest.mark.parametrize("meta", MLFLOW_META)
@pytest.mark.parametrize("metric", MLFLOW_METRIC)
def test_mlflow_run(tmp_path: Path, meta: bytes, metric: bytes,
                    capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "mlruns" / "0" / "abc"
    (run / "metrics").mkdir(parents=True)
    (run / "meta.yaml").write_bytes(meta)
    (run / "metrics" / "loss").write_bytes(metric)
    code, text = _once(run, capsys)
    assert code in (0, 1, 2)
    assert "Traceback" not in text
