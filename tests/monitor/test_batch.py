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
from tests.monitor.test_fastdecode import COUNTERS, SID, _varied_log, dumps, full_step, header
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


# --- the column path (fastdecode.ColumnRun) on hostile and mixed lines ------------------------

def _mem_variant(kind: str, ev: dict[str, Any]) -> None:
    mem = ev["mem"]
    if kind == "missing":
        del mem["ooms"]
    elif kind == "extra":
        mem["active_bytes"] = 5
    elif kind == "none":
        ev["mem"] = None
    elif kind == "null_value":
        mem["alloc_retries"] = None
    elif kind == "float":
        mem["reserved_bytes"] = float(mem["reserved_bytes"])
    elif kind == "huge":
        mem["allocated_bytes"] = 2**62
    elif kind == "negative":
        mem["alloc_retries"] = -1
    elif kind == "reordered":
        ev["mem"] = dict(reversed(list(mem.items())))


_HOSTILE = ["none", "missing", "extra", "null_value", "float", "huge", "negative",
            "reordered", "gpu_none", "gpu_total_none", "loss_none", "nan", "neg_zero",
            "step_none", "step_huge", "step_back", "step_repeat", "other_session",
            "no_session", "skipped", "interrupted", "escape", "unicode", "spaces",
            "duplicate_key", "bad_type", "extra_field", "bool_int", "blank", "junk",
            "two_objects", "crlf", "exponent", "big_float", "int_figures"]


@st.composite
def _column_logs(draw: Any) -> bytes:
    """Long stretches of the writer's plain step lines (the column path) broken by lines of
    every kind the column path must refuse or place exactly."""
    n = draw(st.integers(80, 400))
    hostile = draw(st.dictionaries(st.integers(1, n), st.sampled_from(_HOSTILE), max_size=12))
    args = draw(st.sampled_from([{}, {"fp16": True, "bf16": False}, {"max_steps": n // 2}]))
    parts = [header(**args)]
    step = 0
    for i in range(1, n + 1):
        step += 1
        ev = full_step(step)
        what = hostile.get(i)
        if args.get("fp16"):
            ev["loss_scale"] = 65536.0 / (1 + (i > n // 2))
        if what in ("none", "missing", "extra", "null_value", "float", "huge", "negative",
                    "reordered"):
            _mem_variant(what, ev)
        elif what == "gpu_none":
            ev["gpu"] = None
        elif what == "gpu_total_none":
            ev["gpu"]["total_bytes"] = None
        elif what == "loss_none":
            ev["loss"] = None
        elif what == "nan":
            ev["loss"] = "NaN"
        elif what == "neg_zero":
            ev["grad_norm"] = -0.0
        elif what == "step_none":
            ev["step"] = None
        elif what == "step_huge":
            ev["step"] = 2**53 + 1
        elif what == "step_back":
            ev["step"] = max(1, step - 5)
        elif what == "step_repeat":
            ev["step"] = max(1, step - 1)
        elif what == "other_session":
            ev["session"] = "zz"
        elif what == "no_session":
            ev["session"] = None
        elif what == "skipped":
            ev["skipped"] = True
        elif what == "interrupted":
            ev["interrupted"] = True
        elif what == "escape":
            ev["gpu"]["name"] = "RTX \u00e9"
        elif what == "exponent":
            ev["lr"] = 1e-22
        elif what == "big_float":
            ev["tokens_per_s"] = 1e300
        elif what == "int_figures":
            ev["loss"], ev["lr"] = 2, 0
        elif what == "bool_int":
            ev["interrupted"] = 1
        elif what == "bad_type":
            ev["tokens"] = "many"
        elif what == "extra_field":
            ev["extra"] = {"note": 1}
        line = dumps(ev)
        if what == "unicode":
            line = line.replace(b"GeForce", "GeF\u00f6rce".encode())
        elif what == "spaces":
            line = json.dumps(ev).encode() + b"\n"
        elif what == "duplicate_key":
            line = line.replace(b'"loss":', b'"loss":7.5,"loss":', 1)
        elif what == "blank":
            line = b"\n" + line
        elif what == "junk":
            line = b"{not json\n" + line
        elif what == "two_objects":
            line = line[:-1] + line
        elif what == "crlf":
            line = line[:-1] + b"\r\n"
        parts.append(line)
    if draw(st.booleans()):
        parts.append(dumps({"v": 1, "kind": "end", "session": SID, "step": step,
                            "reason": "finished", "time": 1.7e9}))
    return b"".join(parts)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(log=_column_logs(), chunk=st.sampled_from([50_000, 120_000, 16 * MiB]))
def test_column_runs_read_the_same_as_the_per_step_path(log, chunk, tmp_path, monkeypatch):
    """Whatever breaks a stretch of plain lines (a mem object of another shape, a None, a
    NaN, a -0.0, a step going back, another session, an escape, a duplicate key, junk ...),
    the column path gives what the per-step path gives, and read chunk by chunk too."""
    import vramdoc.monitor.follower as follower

    monkeypatch.setattr(follower, "RUN_CHUNK_BYTES", chunk)
    path = tmp_path / "events.jsonl"
    path.write_bytes(log)
    same(path)
    _columns_match_their_lines(path)
    path.write_bytes(log[:len(log) * 3 // 4])  # cut mid-line, no end event
    same(path)


def test_a_plain_log_is_read_as_column_runs(tmp_path):
    from vramdoc.monitor.fastdecode import ColumnRun

    path = tmp_path / "events.jsonl"
    path.write_bytes(header() + b"".join(dumps(full_step(i)) for i in range(1, 500)))
    got = Follower(path).poll_runs()
    assert [type(e) for e in got][1:] == [ColumnRun] and len(got[1]) == 499
    assert same(path).batched_steps == 499


def _columns_match_their_lines(path: Path) -> None:
    """Every ColumnRun's columns hold, row by row, the figures of the event its line decodes
    to on the per-line path (json.loads + check_event + decode_step)."""
    from vramdoc.monitor.fastdecode import ColumnRun
    from vramdoc.monitor.run import decode_step

    f = Follower(path)
    plain = Follower(path)  # the reference decoder (no msgspec)
    plain.fast = False
    while True:
        before = f.offset
        for run in f.poll_runs():
            if type(run) is not ColumnRun:
                continue
            for k in range(len(run)):
                events: list[Any] = []
                plain._decode_lines([run.line(k)], events)
                (ev,) = events
                ev = decode_step(ev)
                mem, gpu = ev["mem"] or {}, ev["gpu"] or {}
                want = {**{n: ev[n] for n in ("step", "loss", "grad_norm", "lr", "loss_scale",
                                               "tokens_per_s", "step_time_s")},
                        **{n: mem.get(n) for n in ("allocated_bytes", "reserved_bytes",
                                                   "peak_allocated_bytes",
                                                   "peak_reserved_bytes", "alloc_retries")},
                        "gpu_total_bytes": gpu.get("total_bytes"),
                        "skipped": ev["skipped"] is True, "interrupted": ev["interrupted"] is True}
                # numbers as float64 holds them (a step past 2**53 rounded: the batch path
                # refuses such a run, the per-step path takes the line's own event)
                want = {n: float(v) if type(v) is int else v for n, v in want.items()}
                got = {n: col[k].item() for n, col in run.cols.items()}
                got = {n: None if v != v else v for n, v in got.items()}
                assert got == want, (k, got, want)
                assert run.sessions[k] == ev["session"]
        if f.at_end() or f.offset == before:
            break


def test_without_the_numpy_line_scan_struct_runs_read_the_same(tmp_path, monkeypatch):
    """The follower's path without numpy's line scan (StepRun stretches) stays exact."""
    import vramdoc.monitor.follower as follower
    from vramdoc.monitor.fastdecode import ColumnRun, StepRun

    monkeypatch.setattr(follower, "_line_scanner", lambda: None)
    path = tmp_path / "events.jsonl"
    path.write_bytes(_random_log(3, 1500))
    assert same(path).batched_steps > 0
    kinds = {type(e) for e in Follower(path).poll_runs()}
    assert StepRun in kinds and ColumnRun not in kinds
