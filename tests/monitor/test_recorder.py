"""The recorder: strict JSON lines, flushed per step, never raising into training."""

from __future__ import annotations

import json
import math

import pytest

from vramdoc.monitor import Recorder, RunState
from vramdoc.monitor.follower import iter_events
from vramdoc.monitor.schema import SCHEMA_VERSION, decode_float, encode_value


def _lines(run_dir):
    return [json.loads(x) for x in (run_dir / "events.jsonl").read_text().splitlines()]


def test_header_steps_and_end_are_strict_json(tmp_path):
    plan = {"peak_allocated_bytes": 3 * 2**30, "components": {"weights": 2**30, "x": 2 * 2**30},
            "gpu": {"name": "T4", "memory_bytes": 15 * 2**30}}
    with Recorder(tmp_path / "run", plan=plan, args={"fp16": True}) as rec:
        rec.step(loss=2.5, grad_norm=float("inf"), lr=1e-4, tokens=512, samples=4)
        rec.step(loss=float("nan"), grad_norm=0.5, lr=1e-4, tokens=512, samples=4,
                 skipped=True, loss_scale=32768.0)
    text = (tmp_path / "run" / "events.jsonl").read_text()
    lines = [json.loads(x, parse_constant=pytest.fail) for x in text.splitlines()]  # strict
    assert [e["kind"] for e in lines] == ["header", "step", "step", "end"]
    assert all(e["v"] == SCHEMA_VERSION for e in lines)
    header = lines[0]
    assert header["plan"]["peak_allocated_bytes"] == 3 * 2**30
    assert header["plan"]["gpu_memory_bytes"] == 15 * 2**30
    assert header["args"] == {"fp16": True}
    assert header["device"]["type"] == "cpu"  # this machine has no CUDA
    s1, s2 = lines[1], lines[2]
    assert (s1["step"], s1["loss"], s1["grad_norm"]) == (1, 2.5, "Infinity")
    assert s2["loss"] == "NaN" and s2["skipped"] is True and s2["skipped_total"] == 1
    assert s2["tokens_per_s"] == pytest.approx(512 / s2["step_time_s"])
    assert s1["mem"] is None  # no CUDA allocator here
    assert lines[3]["reason"] == "finished"


@pytest.mark.parametrize("background", [True, False])
def test_each_step_is_on_disk_before_the_next(tmp_path, background):
    rec = Recorder(tmp_path, background=background)
    for i in range(3):
        rec.step(loss=float(i))
        if background:
            assert rec.flush()
        # read while the recorder is still open: flushed per event
        assert sum(1 for e in _lines(tmp_path) if e["kind"] == "step") == i + 1
    rec.close()
    rec.close()  # twice is harmless
    assert _lines(tmp_path)[-1]["kind"] == "end"


def test_tensors_and_numpy_like_values(tmp_path):
    torch = pytest.importorskip("torch")
    rec = Recorder(tmp_path)
    rec.step(loss=torch.tensor(float("nan")), grad_norm=torch.tensor(3.0), lr=torch.tensor(0.1))
    rec.close()
    step = _lines(tmp_path)[1]
    assert step["loss"] == "NaN" and step["grad_norm"] == 3.0
    assert step["lr"] == pytest.approx(0.1)


def test_never_raises_and_reports_once(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    rec = Recorder(blocker / "run")  # cannot create a directory under a file
    rec.step(loss=1.0)
    rec.step(loss=2.0)
    rec.close()
    err = capsys.readouterr().err
    assert err.count("vramdoc: recorder error in open") == 1
    assert "training goes on" in err


def test_a_broken_value_does_not_stop_recording(tmp_path, capsys):
    class Weird:
        def item(self):
            raise RuntimeError("device lost")

    rec = Recorder(tmp_path, background=False)
    rec.step(loss=Weird())
    rec.step(loss=Weird())
    rec.step(loss=1.0)
    rec.close()
    err = capsys.readouterr().err
    assert err.count("device lost") == 1
    events = _lines(tmp_path)
    notes = [e for e in events if e["kind"] == "note"]
    assert len(notes) == 1 and "device lost" in notes[0]["detail"]
    assert [e["loss"] for e in events if e["kind"] == "step"] == [1.0]


def test_bad_plan_path_is_reported_not_raised(tmp_path, capsys):
    rec = Recorder(tmp_path, plan=tmp_path / "missing.json")
    rec.step(loss=1.0)
    rec.close()
    assert "plan file" in capsys.readouterr().err
    assert [e["kind"] for e in _lines(tmp_path)][-2:] == ["step", "end"]


def test_a_second_session_is_shown_alone(tmp_path):
    with Recorder(tmp_path) as rec:
        for _ in range(5):
            rec.step(loss=1.0)
    with Recorder(tmp_path) as rec:  # resumed from a checkpoint at step 3
        rec.step(loss=0.5, step=4)
        rec.step(loss=0.4, step=5)
    state = RunState()
    state.feed(list(iter_events(tmp_path)))
    assert state.sessions == 2
    assert state.step_numbers == [4, 5]
    assert state.series["loss"] == [0.5, 0.4]
    assert state.summary()["earlier_sessions"] == 1
    (earlier,) = state.earlier
    assert (earlier["steps"], earlier["last_step"]) == (5, 5)


def test_encode_decode_round_trip():
    values = [1.5, float("nan"), float("inf"), -float("inf"), None]
    encoded = encode_value(values)
    assert encoded == [1.5, "NaN", "Infinity", "-Infinity", None]
    back = [decode_float(v) for v in encoded]
    assert back[0] == 1.5 and math.isnan(back[1]) and back[2] == math.inf
    assert back[3] == -math.inf and back[4] is None


def test_plan_shapes_of_estimate_and_plan_documents():
    from vramdoc.monitor.plan import normalize_plan

    est = {"model": "llama-2-7b", "peak_allocated_bytes": 8, "peak_phase": "backward",
           "components": {"weights": 5, "activations": 3},
           "gpu": {"name": "T4", "memory_bytes": 16},
           "setup": {"lora": {"r": 16}, "quantization": {"load_in_4bit": True}}}
    p = normalize_plan(est)
    assert (p["model"], p["method"], p["gpu_name"], p["gpu_memory_bytes"]) == (
        "llama-2-7b", "qlora", "T4", 16)
    plan_doc = {"model": "llama-2-7b", "gpu": {"name": "6GB GPU (sm75, assumed)",
                                               "memory_bytes": 6},
                "plans": [{"label": "QLoRA ...", "method": "qlora", "peak_allocated_bytes": 5,
                           "components": {"weights": 5}, "setup": {"model": "llama-2-7b"}}]}
    p = normalize_plan(plan_doc)
    assert (p["peak_allocated_bytes"], p["gpu_memory_bytes"], p["label"]) == (5, 6, "QLoRA ...")
    assert normalize_plan({"plans": []}) is None


def test_setup_is_estimated_into_the_header(tmp_path):
    pytest.importorskip("vramdoc.estimate")
    setup = {"model": "llama-2-7b", "gpu": "T4", "max_seq_length": 512,
             "quantization": {"load_in_4bit": True}, "lora": {"r": 16},
             "training": {"per_device_train_batch_size": 1, "gradient_checkpointing": True}}
    with Recorder(tmp_path, setup=setup) as rec:
        rec.step(loss=1.0)
    header = _lines(tmp_path)[0]
    from vramdoc.estimate import estimate
    from vramdoc.setup import setup_from_mapping

    expected = estimate(setup_from_mapping(setup))
    assert header["plan"]["peak_allocated_bytes"] == expected.peak_allocated_bytes
    assert header["plan"]["method"] == "qlora" and header["plan"]["gpu_name"]
    assert header["setup"]["model"] == "llama-2-7b"


def test_a_crashed_script_still_ends_its_log(tmp_path):
    import subprocess
    import sys

    from tests.conftest import ROOT

    script = (f"from vramdoc.monitor import Recorder\n"
              f"rec = Recorder({str(tmp_path)!r})\n"
              "rec.step(loss=1.0)\n"
              "raise RuntimeError('CUDA out of memory')\n")
    r = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 1 and "CUDA out of memory" in r.stderr
    events = _lines(tmp_path)
    assert [e["kind"] for e in events] == ["header", "step", "end"]
    assert events[-1]["reason"] == "crashed"
    assert events[-1]["error"] == {"type": "RuntimeError", "message": "CUDA out of memory",
                                   "step": 2}
