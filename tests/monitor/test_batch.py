"""The watch's run path (Follower.poll_runs + vramdoc.monitor.batch) against the per-step path.

Every test reads the same bytes twice: with ``poll_runs`` (runs of step lines decoded at once,
their contexts and alerts computed over columns) and with ``poll`` fed event by event (the
reference, as before the run path existed). It asserts the same summary, alerts (with their
messages and last messages), earlier sessions, chart window, follower counts, last context and
the context builder's whole state at the end (so the live path would carry on identically),
and that the run path was actually taken where it should be.
"""

from __future__ import annotations

import json
import math
import random
from collections import deque
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import vramdoc.monitor.batch as batch
from tests.monitor.test_fastdecode import COUNTERS, _varied_log, dumps, full_step, header
from vramdoc.commands.watch import read_to_end
from vramdoc.monitor.fastdecode import DecodedStep
from vramdoc.monitor.follower import Follower
from vramdoc.monitor.run import RunState
from vramdoc.monitor.schema import encode_value

MiB = 2**20


@pytest.fixture(autouse=True)
def _strict(monkeypatch):
    monkeypatch.setattr(batch, "STRICT", True)  # a fault in the run path fails the test


def _plain(value: Any) -> Any:
    if isinstance(value, deque | list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    return value


def builder_state(state: RunState) -> dict[str, Any]:
    b = state._ctx
    out = {k: _plain(v) for k, v in vars(b).items() if k != "curves"}
    out.update({f"curves.{k}": _plain(v) for k, v in vars(b.curves).items()})
    return out


def _read(path: Path, runs: bool) -> tuple[str, RunState, Follower]:
    follower = Follower(path)
    state = RunState.with_rules()
    state.skipped_sessions = follower.skip_to_last_session()
    if runs:
        read_to_end(follower, state)
    else:
        while True:
            before = follower.offset
            state.feed(follower.poll())
            if follower.at_end() or follower.offset == before:
                break
        state.feed(follower.finish())
    s = state.summary(path)
    s["file"] = [getattr(follower, n) for n in COUNTERS]
    s["alerts_detail"] = [(a.code, a.first_step, a.last_step, a.count, a.message,
                           a.last_message) for a in state.alerts]
    s["earlier"] = list(state.earlier)
    s["window"] = [json.dumps(encode_value(e), sort_keys=True) for e in state.steps]
    s["last_context"] = {k: repr(v) for k, v in state.last_context.items()}
    s["builder"] = builder_state(state)
    s["failed"] = (state.failed_events, state.failed_reason)
    return json.dumps(encode_value(s), sort_keys=True, default=repr), state, follower


def same(path: Path) -> RunState:
    """Read ``path`` both ways, assert equal results, return the run path's state."""
    fast, state, _ = _read(path, runs=True)
    slow, _, _ = _read(path, runs=False)
    if fast != slow:  # a readable diff of the first keys that differ
        a, b = json.loads(fast), json.loads(slow)
        diff = {k: (a.get(k), b.get(k)) for k in set(a) | set(b) if a.get(k) != b.get(k)}
        for k, (x, y) in diff.items():
            if isinstance(x, dict) and isinstance(y, dict):
                diff[k] = {n: (x.get(n), y.get(n)) for n in set(x) | set(y)
                           if x.get(n) != y.get(n)}
        raise AssertionError(json.dumps(diff, default=repr)[:6000])
    return state


def bench_log(steps: int, sessions: int = 1) -> bytes:
    """The benchmark's own lines (tests/benchmarks/bench_watch_once.py)."""
    from tests.benchmarks.bench_watch_once import _header, _step_lines

    out = []
    for k in range(sessions):
        sid = f"sess{k:08d}"
        out.append(_header(sid))
        out.append(_step_lines(sid, 1, steps))
        out.append(json.dumps({"v": 1, "kind": "end", "session": sid, "step": steps,
                               "reason": "finished", "time": 1.7e9}) + "\n")
    return "".join(out).encode()


def test_the_benchmarks_log_reads_the_same_and_takes_the_run_path(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_bytes(bench_log(6000, sessions=2))
    state = same(path)
    assert state.batched_steps > 5900
    assert {a.code for a in state.alerts} >= {"W109", "W112", "W114", "W116"}


def test_a_varied_log_reads_the_same(tmp_path):
    """Crashes, several writers, late and repeated steps, NaNs, loss-scale changes, hostile
    lines, evaluations, notes (tests/monitor/test_fastdecode.py), whole and cut mid-line."""
    path = tmp_path / "events.jsonl"
    log = _varied_log()
    path.write_bytes(log)
    state = same(path)
    assert state.batched_steps > 100
    for cut in (log.index(b'"kind":"end"') + 200, len(log) // 3, len(log) // 2 + 17,
                len(log) - 7):
        path.write_bytes(log[:cut])
        same(path)


def _random_log(seed: int, n: int) -> bytes:
    """A long session with what W rules look at, drawn at random: warmup and decay, noisy and
    spiking losses and gradient norms, fp16 scale drops and skips, memory creep and retries,
    stalls, interruptions, missing figures, late and repeated steps, another writer's lines,
    evaluations, notes and bad lines."""
    rnd = random.Random(seed)
    args: dict[str, Any] = {}
    if rnd.random() < 0.5:
        args.update(fp16=True, bf16=False)
    if rnd.random() < 0.3:
        args["max_grad_norm"] = rnd.choice([None, 0.3, 1.0, 5])
    if rnd.random() < 0.3:
        args["max_steps"] = rnd.choice([n, 2 * n, n // 3 + 1])
    if rnd.random() < 0.2:
        args["lr_scheduler_type"] = "constant"
        args["warmup_steps"] = 10
    parts = [header(**args)]
    warm = rnd.choice([0, 5, 40, n // 2])
    peak = rnd.choice([2e-4, 1e-7, 5e-3])
    loss = rnd.uniform(1, 5)
    scale = 65536.0
    alloc = int(9 * 2**30)
    retries = 0
    late: list[bytes] = []
    step = 0
    for _ in range(n):
        step += rnd.choice([1] * 12 + [2, 3])
        over: dict[str, Any] = {}
        lr = peak * min(1.0, (step + 1) / (warm + 1)) if warm else peak
        if step > n * 0.6 and rnd.random() < 0.7:
            lr = max(0.0, peak * (1 - step / (1.2 * n)))
        over["lr"] = rnd.choice([lr] * 30 + [None])
        loss = max(0.01, loss * rnd.uniform(0.97, 1.02))
        value = loss * (rnd.choice([1.0] * 40 + [3.0, 10.0]))
        over["loss"] = rnd.choice([value] * 60 + [None, 0.0])
        over["grad_norm"] = rnd.choice([rnd.uniform(0.1, 2.0)] * 40 + [50.0, None])
        if rnd.random() < 0.002:  # non-finite values: the plain path, between runs
            over[rnd.choice(["loss", "grad_norm"])] = rnd.choice(["NaN", "Infinity"])
        if args.get("fp16"):
            if rnd.random() < 0.05:
                scale /= 2
                over["skipped"] = True
            elif rnd.random() < 0.01:
                scale *= 2
            over["loss_scale"] = rnd.choice([scale] * 20 + [None, 0.5])
        alloc += rnd.choice([0, 0, 0, MiB, 3 * MiB, 64 * MiB]) if rnd.random() < 0.3 else 0
        retries += rnd.random() < 0.01
        ev = full_step(step, **over)
        ev["mem"].update(allocated_bytes=alloc, peak_allocated_bytes=alloc + 2**30,
                         reserved_bytes=alloc + rnd.choice([600, 600, 4000]) * MiB,
                         alloc_retries=retries)
        if rnd.random() < 0.05:
            ev["mem"] = rnd.choice([None, {}, {"allocated_bytes": 0}])
        if rnd.random() < 0.05:
            ev["gpu"] = None
        if rnd.random() < 0.05:
            ev["tokens_per_s"] = rnd.choice([None, 0.0, 100.0])
        if rnd.random() < 0.03:
            ev["interrupted"] = True
        if rnd.random() < 0.03:
            ev["step_time_s"] = rnd.choice([None, 0.0, 50.0])
        line = dumps(ev)
        if rnd.random() < 0.01:
            late.append(line)  # written later: out of order
            continue
        parts.append(line)
        r = rnd.random()
        if r < 0.004 and late:
            parts.append(late.pop())
        elif r < 0.006:
            parts.append(dumps(full_step(step, session="zz")))
        elif r < 0.008:
            parts.append(line)  # a repeat
        elif r < 0.012:
            parts.append(dumps({"v": 1, "kind": "log", "session": "a1b2c3d4e5f6", "step": step,
                                "logs": {"eval_loss": rnd.uniform(0.5, 3)}, "time": 1.7e9}))
        elif r < 0.013:
            parts.append(b"{not json\n")
        elif r < 0.014:
            parts.append(dumps(full_step(step + 1, step="x")))
    parts.extend(late)
    if rnd.random() < 0.5:
        parts.append(dumps({"v": 1, "kind": "end", "session": "a1b2c3d4e5f6", "step": step,
                            "reason": "finished", "time": 1.7e9}))
    return b"".join(parts)


@pytest.mark.parametrize("seed", range(6))
def test_random_long_sessions_read_the_same(seed, tmp_path):
    path = tmp_path / "events.jsonl"
    log = _random_log(seed, 3000)
    path.write_bytes(log)
    state = same(path)
    assert state.batched_steps > 0
    path.write_bytes(log[:len(log) * 2 // 3])  # cut mid-line, no end event
    same(path)


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32), n=st.integers(40, 700))
def test_random_logs_read_the_same(seed, n, tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_bytes(_random_log(seed, n))
    same(path)


def test_runs_with_odd_lines_inside_read_the_same(tmp_path):
    """Lines the run decoder must refuse as a whole (two objects on a line, an escape, a
    wrong type) inside a run of good ones: the run is read line by line instead."""
    good = [dumps(full_step(i)) for i in range(1, 300)]
    odd = [good[10].rstrip(b"\n") + b"," + good[11],
           good[20].replace(b'"a1b2c3d4e5f6"', b'"\\u0061b"'),
           good[30].replace(b'"tokens":8192', b'"tokens":"8192"'),
           good[40].rstrip(b"\n") + b" \n",
           good[50].replace(b'"v":1', b'"v":1.0')]
    for k, bad in enumerate(odd):
        lines = list(good)
        lines[100 + k] = bad
        path = tmp_path / "events.jsonl"
        path.write_bytes(header() + b"".join(lines))
        same(path)


def test_the_run_path_needs_no_msgspec_struct_for_the_live_screen(tmp_path):
    """The live screen's poll() still hands out dict events only."""
    from vramdoc.monitor.fastdecode import ColumnRun, StepRun

    path = tmp_path / "events.jsonl"
    path.write_bytes(bench_log(500))
    f = Follower(path)
    assert all(type(e) is DecodedStep or type(e) is dict for e in f.poll())
    f2 = Follower(path)
    assert any(type(e) is ColumnRun for e in f2.poll_runs())
    with_mem = [json.loads(line) for line in bench_log(500).splitlines()[1:200]]
    for e in with_mem[::7]:
        e["mem"]["extra_bytes"] = 1  # a mem object of another shape: the Struct run path
    path.write_bytes(path.read_bytes().split(b"\n")[0] + b"\n" + b"".join(
        dumps(e) for e in with_mem))
    f4 = Follower(path)
    assert any(type(e) is StepRun for e in f4.poll_runs())


def test_numpy_stays_off_the_plan_path():
    import subprocess
    import sys

    code = ("import sys, io, contextlib\n"
            "from vramdoc.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            "    main(['plan', '--model', 'llama-2-7b', '--gpu', '6GB', '--json'])\n"
            "print('numpy' in sys.modules, 'vramdoc.monitor.batch' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["False", "False"]
