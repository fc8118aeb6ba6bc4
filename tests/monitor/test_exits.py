"""How a recorded run ends: crashes, Ctrl-C, SIGTERM, SIGKILL, and what the watch says of each.

The training processes are real subprocesses (a plain loop with the Recorder, or a tiny CPU
Trainer with the callback) so that exceptions, signals and kills happen as they do in the field.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import ROOT
from vramdoc.monitor import Recorder, RunState
from vramdoc.monitor.follower import iter_events
from vramdoc.monitor.outcome import STALE_AFTER_S, from_end, without_end


def _events(run_dir):
    return list(iter_events(run_dir))


def _python(script: str, **kw):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def _status(run_cli, run_dir) -> str:
    code, out, err = run_cli("watch", str(run_dir), "--once", "--json")
    assert err == "" and code in (0, 1)
    return json.loads(out)["status"]["text"]


LOOP = """
import sys, time
from vramdoc.monitor import Recorder
rec = Recorder({run!r})
for i in range({steps}):
    rec.step(loss=1.0 / (i + 1))
rec.flush()
{then}
"""


def test_an_exception_in_a_loop_is_recorded_and_read_as_a_crash(tmp_path, run_cli):
    p = _python(LOOP.format(run=str(tmp_path), steps=4,
                            then="raise RuntimeError('CUDA out of memory. Tried to allocate')"))
    _, err = p.communicate(timeout=60)
    assert p.returncode == 1 and "CUDA out of memory" in err
    end = _events(tmp_path)[-1]
    assert end["kind"] == "end" and end["reason"] == "crashed" and end["step"] == 4
    assert end["error"] == {"type": "RuntimeError",
                            "message": "CUDA out of memory. Tried to allocate", "step": 5}
    assert _status(run_cli, tmp_path) == \
        "crashed at step 5: RuntimeError: CUDA out of memory. Tried to allocate"
    code, out, _ = run_cli("watch", str(tmp_path), "--once")
    assert "status     crashed at step 5: RuntimeError: CUDA out of memory" in out


def test_ctrl_c_reads_as_interrupted(tmp_path, run_cli):
    p = _python(LOOP.format(run=str(tmp_path), steps=2, then="raise KeyboardInterrupt"))
    p.communicate(timeout=60)
    end = _events(tmp_path)[-1]
    assert (end["reason"], end["error"]["type"]) == ("interrupted", "KeyboardInterrupt")
    assert _status(run_cli, tmp_path) == "interrupted at step 3 by KeyboardInterrupt"


def test_sigterm_is_recorded_and_the_process_still_dies_by_it(tmp_path, run_cli):
    p = _python(LOOP.format(run=str(tmp_path), steps=3,
                            then="print('ready', flush=True)\ntime.sleep(60)"))
    assert p.stdout.readline().strip() == "ready"
    p.send_signal(signal.SIGTERM)
    p.communicate(timeout=60)
    assert p.returncode == -signal.SIGTERM  # the default action still happened
    end = _events(tmp_path)[-1]
    assert (end["kind"], end["reason"], end["signal"], end["step"]) == (
        "end", "interrupted", "SIGTERM", 3)
    assert _status(run_cli, tmp_path) == "interrupted at step 4 by SIGTERM"


def test_sigterm_chains_to_the_handler_that_was_there(tmp_path, run_cli):
    script = """
import signal, sys, time
def handler(signum, frame):
    print('theirs', flush=True)
    sys.exit(3)
signal.signal(signal.SIGTERM, handler)
""" + LOOP.format(run=str(tmp_path), steps=2, then="print('ready', flush=True)\ntime.sleep(60)")
    p = _python(script)
    assert p.stdout.readline().strip() == "ready"
    p.send_signal(signal.SIGTERM)
    out, _ = p.communicate(timeout=60)
    assert p.returncode == 3 and "theirs" in out  # their handler ran and decided
    kinds = [(e["kind"], e.get("what"), e.get("reason")) for e in _events(tmp_path)]
    assert ("note", "signal", None) in kinds
    assert kinds[-1] == ("end", None, "interrupted")
    assert _status(run_cli, tmp_path) == "interrupted at step 3 by SIGTERM"


def test_an_ignored_sigterm_stays_ignored(tmp_path):
    script = "import signal\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n" + LOOP.format(
        run=str(tmp_path), steps=1,
        then="print('ready', flush=True)\ntime.sleep(1.5)\nrec.close()")
    p = _python(script)
    assert p.stdout.readline().strip() == "ready"
    p.send_signal(signal.SIGTERM)
    p.communicate(timeout=60)
    assert p.returncode == 0
    assert _events(tmp_path)[-1]["reason"] == "finished"


def test_after_sigkill_the_run_reads_as_interrupted_not_running(tmp_path, run_cli):
    p = _python(LOOP.format(run=str(tmp_path), steps=3,
                            then="print('ready', flush=True)\ntime.sleep(60)"))
    assert p.stdout.readline().strip() == "ready"
    assert _status(run_cli, tmp_path) == f"running (pid {p.pid}) after step 3"
    p.kill()
    p.communicate(timeout=60)
    assert [e["kind"] for e in _events(tmp_path)][-1] == "step"  # no end event
    assert _status(run_cli, tmp_path) == \
        "interrupted after step 3 (no end event; the process is gone)"


def test_a_reused_pid_is_not_taken_for_the_writer(tmp_path):
    header = {"pid": os.getpid(), "host": os.uname().nodename, "pid_start": 1}
    from vramdoc.monitor.outcome import process_start

    if process_start(os.getpid()) in (None, 1):
        pytest.skip("no /proc start times here")
    assert without_end(header, None, 7).state == "interrupted"


def test_a_stale_log_of_another_host_reads_as_interrupted(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_text("")
    header = {"pid": 12345, "host": "some-other-machine"}
    assert without_end(header, path, 9).text == \
        "no end event yet after step 9 (still training, or stopped elsewhere)"
    old = time.time() - STALE_AFTER_S - 2 * 3600
    os.utime(path, (old, old))
    out = without_end(header, path, 9)
    assert out.state == "interrupted"
    assert out.text == "interrupted after step 9 (no end event; nothing written for 2 h 30 min)"


def test_end_reasons_of_older_logs_and_exits_without_close():
    assert from_end({"reason": "error: ValueError", "step": 4}, 4).text == \
        "crashed at step 5: ValueError"
    assert from_end({"reason": "process exited before the run was closed", "step": 4},
                    4).text == "ended at step 4: process exited before the run was closed"
    assert from_end({"reason": "exited", "step": 4}, 4).state == "exited"
    long = "x" * 500 + "\nsecond line"
    text = from_end({"reason": "crashed", "step": 1,
                     "error": {"type": "E", "message": long}}, 1).text
    assert text.startswith("crashed at step 2: E: xxx") and text.endswith("...")
    assert len(text) < 250


def test_context_manager_and_explicit_exception(tmp_path):
    with pytest.raises(ValueError), Recorder(tmp_path / "a") as rec:
        rec.step(loss=1.0)
        raise ValueError("bad batch")
    state = RunState()
    state.feed(_events(tmp_path / "a"))
    assert state.outcome().text == "crashed at step 2: ValueError: bad batch"

    rec = Recorder(tmp_path / "b")
    rec.step(loss=1.0)
    rec.exception(MemoryError("caught and carried on"))
    rec.step(loss=0.5)
    rec.close()
    state = RunState()
    state.feed(_events(tmp_path / "b"))
    assert state.last_error["type"] == "MemoryError"
    assert state.outcome().text == "finished at step 2"  # carried on: it finished


def test_a_caught_exception_then_exit_without_close_reads_as_the_crash(tmp_path, run_cli):
    then = ("try:\n    raise OSError('disk full')\nexcept OSError as e:\n    rec.exception(e)\n"
            "sys.exit(2)")
    p = _python(LOOP.format(run=str(tmp_path), steps=2, then=then))
    p.communicate(timeout=60)
    assert p.returncode == 2
    assert _status(run_cli, tmp_path) == "crashed at step 3: OSError: disk full"


def test_a_loop_that_forgets_close_reads_as_exited(tmp_path, run_cli):
    p = _python(LOOP.format(run=str(tmp_path), steps=2, then=""))
    p.communicate(timeout=60)
    assert _status(run_cli, tmp_path) == "ended at step 2: exited"


TRAINER = """
import sys
sys.path.insert(0, {root!r})
from tests.monitor.tiny import tiny_trainer
from transformers import Trainer
from vramdoc.monitor import VramdocCallback

class Boom(Trainer):
    def compute_loss(self, model, inputs, **kw):
        if self.state.global_step + 1 == {at}:
            raise RuntimeError("CUDA error: an illegal memory access was encountered")
        return super().compute_loss(model, inputs, **kw)

tiny_trainer({out!r}, [VramdocCallback({run!r})], max_steps=6, trainer_cls=Boom).train()
"""


def test_an_exception_inside_trainer_is_recorded_with_its_step(tmp_path, run_cli):
    pytest.importorskip("transformers")
    p = _python(TRAINER.format(root=str(ROOT), out=str(tmp_path / "out"),
                               run=str(tmp_path / "run"), at=4))
    _, err = p.communicate(timeout=300)
    assert p.returncode == 1, err[-2000:]
    events = _events(tmp_path / "run")
    assert [e["step"] for e in events if e["kind"] == "step"] == [1, 2, 3]
    note = next(e for e in events if e["kind"] == "note" and e["what"] == "exception")
    assert note["error"]["type"] == "RuntimeError" and note["error"]["step"] == 4
    assert events[-1]["reason"] == "crashed"
    assert _status(run_cli, tmp_path / "run") == (
        "crashed at step 4: RuntimeError: CUDA error: an illegal memory access was encountered")


def test_train_again_on_the_same_callback_closes_the_first_session(tmp_path):
    pytest.importorskip("transformers")
    from tests.monitor.tiny import tiny_trainer
    from vramdoc.monitor import VramdocCallback

    cb = VramdocCallback(tmp_path / "run")
    calls = {"n": 0}

    from transformers import Trainer

    class FailsOnce(Trainer):  # type: ignore[misc]
        def compute_loss(self, model, inputs, **kw):
            calls["n"] += 1
            if calls["n"] == 3:
                raise MemoryError("simulated OOM")
            return super().compute_loss(model, inputs, **kw)

    trainer = tiny_trainer(tmp_path / "out", [cb], max_steps=4, trainer_cls=FailsOnce)
    with pytest.raises(MemoryError):
        trainer.train()
    trainer.train()  # a retry, as auto_find_batch_size does
    events = _events(tmp_path / "run")
    ends = [e for e in events if e["kind"] == "end"]
    assert [e["reason"] for e in ends] == ["crashed", "finished"]
    assert ends[0]["error"]["type"] == "MemoryError"
    state = RunState()
    state.feed(events)
    assert state.sessions == 2 and state.outcome().state == "finished"
    assert state.earlier[0]["status"].startswith("crashed at step 3: MemoryError")
