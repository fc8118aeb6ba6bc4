"""The follower's fast path (msgspec, vramdoc.monitor.fastdecode) against the plain per-line path.

Every test reads the same bytes twice, with ``Follower(fast=True)`` and ``Follower(fast=False)``
(``json.loads`` + ``check_event`` on every line, the reference), and asserts the same events,
the same counts and first-problem message, and, fed to RunState, the same summary and alerts.
The fast path must take the recorder's plain lines (or it is no faster) and nothing else.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.tui.runs import gpu_header
from vramdoc.commands.watch import read_to_end
from vramdoc.monitor.fastdecode import DecodedStep, step_decoder
from vramdoc.monitor.follower import Follower
from vramdoc.monitor.run import RunState, decode_step
from vramdoc.monitor.schema import encode_value

GiB = 2**30
MiB = 2**20
SID = "a1b2c3d4e5f6"
COUNTERS = ("corrupt", "foreign", "foreign_version", "truncated", "invalid", "first_invalid",
            "oversized", "line_no", "status", "offset")


def full_step(n: int, session: str = SID, **over: Any) -> dict[str, Any]:
    """A step event as the Recorder writes it: every field present."""
    alloc = int(9.9 * GiB) + (n % 50) * MiB
    ev: dict[str, Any] = {
        "v": 1, "kind": "step", "step": n, "epoch": n / 400,
        "loss": 2.2 * math.exp(-n / 60) + 0.9 + 0.03 * math.sin(n),
        "grad_norm": 0.4 + 0.05 * (n % 4), "lr": 2e-4, "loss_scale": None, "skipped": None,
        "skipped_total": 0, "tokens": 8192, "samples": 16, "step_time_s": 2.0 + 0.01 * (n % 5),
        "tokens_per_s": 8192 / (2.0 + 0.01 * (n % 5)), "samples_per_s": 16 / 2.0,
        "interrupted": False,
        "mem": {"allocated_bytes": alloc - 2 * GiB, "reserved_bytes": alloc + 600 * MiB,
                "peak_allocated_bytes": alloc, "peak_reserved_bytes": alloc + 600 * MiB,
                "alloc_retries": 0, "ooms": 0},
        "gpu": {"name": "NVIDIA GeForce RTX 3060", "used_bytes": alloc + 1100 * MiB,
                "total_bytes": 12 * GiB, "util_pct": 97.0, "temp_c": 71.0, "power_w": 168.0},
        "session": session, "time": 1.7e9 + n,
    }
    ev.update(over)
    return ev


def dumps(ev: Any) -> bytes:
    return json.dumps(ev, separators=(",", ":")).encode() + b"\n"


def header(session: str = SID, **args: Any) -> bytes:
    h = gpu_header()
    h["session"] = session
    h["args"] = {**h["args"], **args}
    return dumps(h)


def read(path: Path, fast: bool) -> tuple[Follower, list[dict[str, Any]]]:
    f = Follower(path, fast=fast)
    return f, f.read_all()


def same_reading(path: Path) -> list[dict[str, Any]]:
    """Read ``path`` both ways; assert the same events and counts; return the fast events."""
    slow_f, slow = read(path, fast=False)
    fast_f, fast = read(path, fast=True)
    assert fast == slow
    for name in COUNTERS:
        assert getattr(fast_f, name) == getattr(slow_f, name), name
    return fast


def summaries(path: Path) -> tuple[Any, Any]:
    out = []
    for fast in (True, False):
        follower = Follower(path, fast=fast)
        state = RunState.with_rules()
        state.skipped_sessions = follower.skip_to_last_session()
        read_to_end(follower, state)
        s = state.summary(path)
        s["file"] = [getattr(follower, n) for n in COUNTERS]
        s["alerts_detail"] = [(a.code, a.first_step, a.last_step, a.count, a.message,
                               a.last_message) for a in state.alerts]
        s["earlier"] = list(state.earlier)
        s["window"] = [json.dumps(encode_value(e), sort_keys=True) for e in state.steps]
        out.append(json.dumps(encode_value(s), sort_keys=True))
    return out[0], out[1]


def test_the_recorders_lines_take_the_fast_path(tmp_path):
    fast = step_decoder()
    assert fast is not None, "msgspec is a core dependency"
    line = dumps(full_step(7))
    ev = fast(line)
    assert type(ev) is DecodedStep
    assert ev == json.loads(line) == decode_step(json.loads(line))
    path = tmp_path / "events.jsonl"
    path.write_bytes(header() + b"".join(dumps(full_step(i)) for i in range(1, 50)))
    events = same_reading(path)
    assert sum(type(e) is DecodedStep for e in events) == 49


# One field at a time set to a value of another type or range: each must give the plain path's
# answer (taken, skipped as invalid with the same message, or corrupt).
ODD_VALUES: list[Any] = [None, "x", "", "NaN", "Infinity", "-Infinity", 1, 0, -1, 1.5, -0.0,
                         2**53 + 1, 2**63 - 1, 2**63, -(2**63) + 1, -(2**63), 2**70, 1e300,
                         -1e300, 9.3e18, True, False, [], [1], {}, {"a": 1}, "\ud800", "é" * 3]
FIELDS = [k for k in full_step(1) if k not in ("mem", "gpu")]
MEM_FIELDS = list(full_step(1)["mem"]) + ["other"]
GPU_FIELDS = list(full_step(1)["gpu"]) + ["other"]


def _variants() -> list[tuple[str, bytes]]:
    out = []
    for value in ODD_VALUES:
        for name in FIELDS + ["extra", "unknown"]:
            out.append((f"{name}={value!r}", dumps(full_step(3, **{name: value}))))
        for name in MEM_FIELDS:
            ev = full_step(3)
            ev["mem"][name] = value
            out.append((f"mem.{name}={value!r}", dumps(ev)))
        for name in GPU_FIELDS:
            ev = full_step(3)
            ev["gpu"][name] = value
            out.append((f"gpu.{name}={value!r}", dumps(ev)))
    for name in FIELDS:
        ev = full_step(3)
        del ev[name]
        out.append((f"no {name}", dumps(ev)))
    good = dumps(full_step(3)).rstrip(b"\n")
    texts = {
        "bom": b"\xef\xbb\xbf" + good, "spaces": b"  " + good + b" \t\r", "blank": b"   ",
        "nan literal": good.replace(b'"lr":0.0002', b'"lr":NaN'),
        "huge exponent": good.replace(b'"lr":0.0002', b'"lr":1e400'),
        "duplicate key, bad last": good.replace(b'"step":3', b'"step":3,"step":"x"'),
        "duplicate key, bad first": good.replace(b'"step":3', b'"step":"x","step":3'),
        "lone surrogate escape": good.replace(SID.encode(), b"\\ud800"),
        "escaped letter": good.replace(SID.encode(), b"\\u0061bc"),
        "invalid utf-8": good.replace(SID.encode(), b"\xff\xfe"),
        "encoded surrogate": good.replace(SID.encode(), b"\xed\xa0\x80"),
        "control char": good.replace(SID.encode(), b"a\x01"),
        "trailing junk": good + b" x", "cut": good[:-5], "array": b"[" + good + b"]",
        "nul": good + b"\x00", "version 2": good.replace(b'"v":1', b'"v":2'),
        "version 1.0": good.replace(b'"v":1', b'"v":1.0'),
        "version true": good.replace(b'"v":1', b'"v":true'),
        "kind note": good.replace(b'"kind":"step"', b'"kind":"note"'),
        "kind other": good.replace(b'"kind":"step"', b'"kind":"stop"'),
        "int exponent": good.replace(b'"tokens":8192', b'"tokens":8.192e3'),
    }
    out.extend((name, text + b"\n") for name, text in texts.items())
    return out


VARIANTS = _variants()


@pytest.mark.parametrize("bad", [b for _, b in VARIANTS], ids=[n for n, _ in VARIANTS])
def test_every_odd_line_reads_as_on_the_plain_path(bad, tmp_path):
    path = tmp_path / "events.jsonl"
    # the odd line between good ones, so a problem's line number is checked too
    path.write_bytes(header() + dumps(full_step(1)) + dumps(full_step(2)) + bad
                     + dumps(full_step(4)))
    same_reading(path)


def test_the_odd_lines_cover_every_outcome(tmp_path):
    """The variants above are not all taken or all refused: each outcome occurs."""
    outcomes = set()
    for _, bad in VARIANTS:
        path = tmp_path / "events.jsonl"
        path.write_bytes(header() + bad)
        f, events = read(path, fast=True)
        taken = any(type(e) is DecodedStep for e in events)
        outcomes.add("fast" if taken else "plain-kept" if len(events) == 2 else
                     "invalid" if f.invalid else "corrupt" if f.corrupt else
                     "foreign" if f.foreign else "other")
    assert {"fast", "plain-kept", "invalid", "corrupt", "foreign"} <= outcomes


_value = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False), st.sampled_from(["NaN", "Infinity", "x"]),
    st.just([]), st.just({}))


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(over=st.dictionaries(st.sampled_from(FIELDS + ["extra", "zz"]), _value, max_size=3),
       mem=st.dictionaries(st.sampled_from(MEM_FIELDS), _value, max_size=2),
       gpu=st.dictionaries(st.sampled_from(GPU_FIELDS), _value, max_size=2),
       drop=st.sets(st.sampled_from(FIELDS), max_size=2))
def test_random_step_lines_read_as_on_the_plain_path(over, mem, gpu, drop, tmp_path):
    ev = full_step(5, **over)
    if isinstance(ev.get("mem"), dict):
        ev["mem"].update(mem)
    if isinstance(ev.get("gpu"), dict):
        ev["gpu"].update(gpu)
    for name in drop:
        ev.pop(name, None)
    path = tmp_path / "events.jsonl"
    path.write_bytes(header() + dumps(ev) + dumps(full_step(6)))
    events = same_reading(path)
    for e in events:
        if type(e) is DecodedStep:  # taken fast: exactly what decode_step makes of the line
            assert e == decode_step(json.loads(json.dumps(e)))


def _varied_log() -> bytes:
    """Several sessions with what a real folder collects: bad lines, late and repeated steps,
    non-finite losses, fp16 skips, Trainer logs and evaluations, notes, a crash, an end."""
    parts: list[bytes] = []
    # session 1: finished cleanly, with logs and an evaluation that worsens (W113's inputs)
    parts.append(header("s1"))
    for i in range(1, 120):
        parts.append(dumps(full_step(i, session="s1")))
        if i % 10 == 0:
            parts.append(dumps({"v": 1, "kind": "log", "session": "s1", "step": i,
                                "logs": {"loss": 1.0, "eval_loss": 1.0 + i / 100},
                                "time": 1.7e9}))
    parts.append(dumps({"v": 1, "kind": "end", "session": "s1", "step": 119,
                        "reason": "finished", "time": 1.7e9}))
    # session 2: fp16, skips, a loss-scale collapse, NaN losses, spikes, bad lines, crash
    parts.append(header("s2", fp16=True, bf16=False))
    scale = 65536.0
    for i in range(1, 400):
        over: dict[str, Any] = {"session": "s2"}
        if 50 <= i < 56:
            over.update(skipped=True, skipped_total=i - 49)
            scale /= 2
        if i in (80, 81):
            over["loss"] = "NaN"
        if i == 90:
            over["grad_norm"] = "Infinity"
        if i == 100:
            over["loss"] = 40.0
        if i == 120:
            over["grad_norm"] = 500.0
        if 200 <= i < 230:
            scale = scale / 4
        over["loss_scale"] = scale
        if i == 67:  # written late, below
            continue
        if i >= 300:  # memory creeping to the limit
            ev = full_step(i, **over)
            ev["mem"]["allocated_bytes"] += (i - 300) * 40 * MiB
            ev["mem"]["peak_reserved_bytes"] += (i - 300) * 40 * MiB
            parts.append(dumps(ev))
        else:
            parts.append(dumps(full_step(i, **over)))
        if i == 60:
            parts.append(b"this is not json\n")
        if i == 61:
            parts.append(dumps(full_step(61, session="s2", step="x")))
        if i == 62:
            parts.append(dumps(full_step(62, session="other")))  # another writer
        if i == 70:
            parts.append(dumps(full_step(65, session="s2")))  # a repeat
            parts.append(dumps(full_step(67, session="s2", loss=9.0)))  # late
        if i == 71:
            parts.append(dumps({"v": 1, "kind": "note", "session": "s2", "step": 71,
                                "what": "evaluate", "detail": "", "time": 1.7e9}))
        if i == 150:
            parts.append(dumps({"v": 2, "kind": "step", "session": "s2", "step": 150}))
            parts.append(b"\xef\xbb\xbf" + dumps(full_step(150, session="s2", loss=1.0)))
    parts.append(dumps({"v": 1, "kind": "note", "session": "s2", "step": 399,
                        "what": "exception", "error": {"type": "OutOfMemoryError",
                                                        "message": "CUDA out of memory",
                                                        "step": 399}, "time": 1.7e9}))
    parts.append(dumps({"v": 1, "kind": "end", "session": "s2", "step": 399, "reason": "crashed",
                        "error": {"type": "OutOfMemoryError", "message": "CUDA out of memory",
                                  "step": 399}, "time": 1.7e9}))
    return b"".join(parts)


def test_a_varied_log_gives_the_same_summary_and_alerts(tmp_path):
    path = tmp_path / "events.jsonl"
    log = _varied_log()
    path.write_bytes(log)
    fast, slow = summaries(path)
    assert fast == slow
    doc = json.loads(fast)
    assert doc["status"]["text"].startswith("crashed at step 399")
    assert doc["out_of_order_steps"] and doc["duplicate_steps"] and doc["other_session_lines"]
    codes = {a["code"] for a in doc["alerts"]}
    assert {"W102", "W103", "W104", "W105", "W106", "W107", "W108"} <= codes, codes
    # every session as the latest one, and a log cut mid-line with no end event
    for cut in (log.index(b'"kind":"end"') + 200, len(log) // 3, len(log) - 7):
        path.write_bytes(log[:cut])
        fast, slow = summaries(path)
        assert fast == slow


def test_the_live_path_reads_the_same_in_slices(tmp_path):
    """A log read while it grows (small polls, lines cut at every boundary) reads the same."""
    path = tmp_path / "events.jsonl"
    log = _varied_log()
    states = []
    for fast in (True, False):
        path.write_bytes(b"")
        follower = Follower(path, fast=fast)
        state = RunState.with_rules()
        for end in range(0, len(log) + 4093, 4093):
            with open(path, "ab") as fh:
                fh.write(log[end - 4093:end] if end else b"")
            state.feed(follower.poll(max_bytes=1500))
        read_to_end(follower, state)
        states.append(json.dumps(encode_value(state.summary(path)), sort_keys=True))
    assert states[0] == states[1]


def test_the_real_recorders_step_lines_take_the_fast_path(tmp_path):
    """What Recorder writes (here on CPU: mem and gpu None) stays on the fast path, so a field
    added to the recorder without adding it to fastdecode's schema fails here, not silently."""
    from vramdoc.monitor.recorder import Recorder

    with Recorder(tmp_path, background=False) as rec:
        for i in range(1, 6):
            rec.step(loss=2.0 - i / 10, grad_norm=0.5, lr=1e-4, tokens=512, samples=2,
                     epoch=i / 10)
        rec.step(loss=float("nan"), grad_norm=0.5, lr=1e-4)  # "NaN": the plain path
    path = tmp_path / "events.jsonl"
    events = same_reading(path)
    kinds = [(e["kind"], type(e) is DecodedStep) for e in events]
    assert kinds.count(("step", True)) == 5
    assert kinds.count(("step", False)) == 1
