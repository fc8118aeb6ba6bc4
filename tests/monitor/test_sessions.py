"""Several runs in one folder stay apart; steps out of order are placed, never collapsed."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.tui.runs import ev, gpu_header, write
from vramdoc.monitor import Recorder, RunState
from vramdoc.monitor.follower import Follower, iter_events


def _state(run_dir, skip=False):
    follower = Follower.for_run(run_dir)
    state = RunState.with_rules()
    if skip:
        state.skipped_sessions = follower.skip_to_last_session()
    state.feed(follower.read_all())
    return state


def test_two_runs_one_after_the_other_show_the_latest(tmp_path, run_cli):
    with Recorder(tmp_path) as rec:
        for i in range(28):
            rec.step(loss=2.0 - i / 100)
    with Recorder(tmp_path) as rec:  # a new run, same folder: steps start again
        for i in range(23):
            rec.step(loss=3.0 - i / 100)
    state = _state(tmp_path)
    assert state.step_numbers == list(range(1, 24))
    assert state.sessions == 2 and state.summary()["earlier_sessions"] == 1
    assert state.out_of_order == 0 and state.duplicates == 0
    code, out, _ = run_cli("watch", str(tmp_path), "--once")
    assert "sessions   2 in this log; this is the latest (1 earlier, not shown)" in out
    assert "steps      23 (last 23)" in out
    assert "28-23" not in out


def test_two_runs_writing_at_once_do_not_mix(tmp_path):
    a = Recorder(tmp_path, background=False)
    a.step(loss=5.0)
    b = Recorder(tmp_path, background=False)  # started later: the latest session
    for _ in range(10):
        a.step(loss=5.0)
        b.step(loss=1.0)
    a.close()
    b.close()
    state = _state(tmp_path)
    assert state.session == b.session
    assert state.step_numbers == list(range(1, 11))
    assert set(state.series["loss"]) == {1.0}
    assert state.other_session_lines == 11  # a's steps after b's header and a's end
    assert state.outcome().text == "finished at step 10"


def test_steps_out_of_order_are_placed_by_number(tmp_path, run_cli):
    events = [gpu_header()] + [ev("step", step=s, loss=float(s)) for s in (1, 2, 5, 3, 4, 6)]
    write(tmp_path / "events.jsonl", events)
    state = _state(tmp_path)
    assert state.step_numbers == [1, 2, 3, 4, 5, 6]
    assert state.series["loss"] == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    assert (state.step_count, state.out_of_order, state.duplicates) == (6, 2, 0)
    assert state.latest["step"] == 6
    code, out, _ = run_cli("watch", str(tmp_path), "--once")
    assert "order      2 step(s) arrived out of order (placed by step number)" in out
    assert "steps      6 (last 6)" in out


def test_a_repeated_step_replaces_the_earlier_one(tmp_path):
    events = [gpu_header()] + [ev("step", step=s, loss=v) for s, v in
                               ((1, 1.0), (2, "NaN"), (3, 3.0), (2, 2.0))]
    write(tmp_path / "events.jsonl", events)
    state = _state(tmp_path)
    assert state.step_numbers == [1, 2, 3]
    assert state.series["loss"] == [1.0, 2.0, 3.0]
    assert state.duplicates == 1 and state.step_count == 3
    assert state.summary()["nonfinite_losses"] == 0  # the NaN step was replaced


def test_a_late_step_older_than_the_window_is_counted_not_drawn(tmp_path, monkeypatch):
    from vramdoc.monitor import run

    monkeypatch.setattr(run, "CHART_WINDOW", 8)
    events = [gpu_header()] + [ev("step", step=s, loss=1.0) for s in range(10, 40)]
    events.append(ev("step", step=2, loss=0.25))
    write(tmp_path / "events.jsonl", events)
    state = _state(tmp_path)
    assert len(state.steps) <= 10 and state.step_numbers[0] > 2
    assert state.step_count == 31 and state.out_of_order == 1
    assert state.summary()["loss_min"] == 0.25


def test_logs_without_session_ids_split_at_headers(tmp_path):
    old = [ev("header", args={"max_steps": 9})] + [ev("step", step=s, loss=1.0)
                                                   for s in range(1, 29)]
    new = [ev("header", args={"max_steps": 9})] + [ev("step", step=s, loss=2.0)
                                                   for s in range(1, 24)]
    write(tmp_path / "events.jsonl", old + new)
    state = _state(tmp_path)
    assert state.step_numbers == list(range(1, 24)) and state.sessions == 2


def test_skip_to_last_session_counts_real_headers_only(tmp_path):
    path = tmp_path / "events.jsonl"
    fake = ev("note", what="x", detail='{"kind":"header"}')  # escaped quotes: no match
    nested = ev("log", step=1, logs={"kind": "header"})  # matches the bytes, not a header
    events = [gpu_header(), ev("step", step=1), fake, nested, gpu_header(),
              ev("step", step=1), gpu_header(), ev("step", step=7)]
    write(path, events)
    f = Follower(path)
    assert f.skip_to_last_session(chunk=64) == 2  # tiny chunks: marks cut at boundaries
    got = f.read_all()
    assert [e["kind"] for e in got] == ["header", "step"] and got[1]["step"] == 7
    assert f.line_no == 8  # line numbers stay those of the file


def test_skip_finds_headers_written_with_spaces(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in
                            [ev("header"), ev("step", step=1), ev("header"), ev("step", step=2)]))
    f = Follower(path)
    assert f.skip_to_last_session() == 1
    assert [e.get("step") for e in f.read_all()] == [None, 2]


def test_recorder_lines_carry_their_session(tmp_path):
    with Recorder(tmp_path) as rec:
        rec.step(loss=1.0)
        rec.note("hello")
    events = list(iter_events(tmp_path))
    assert {e["session"] for e in events} == {rec.session}
    assert events[0]["pid"] > 0 and events[0]["host"]


def test_the_benchmark_log_is_valid_and_read_whole(tmp_path, run_cli):
    """bench_watch_once must time real reading, not the skipping of lines it got wrong."""
    from tests.benchmarks.bench_watch_once import generate

    written, steps = generate(tmp_path / "events.jsonl", 400_000, 3)
    assert written == (tmp_path / "events.jsonl").stat().st_size and steps == 3 * (steps // 3)
    code, out, _ = run_cli("watch", str(tmp_path), "--once", "--json")
    doc = json.loads(out)
    assert doc["file"]["invalid_lines"] == doc["file"]["corrupt_lines"] == 0
    assert (doc["sessions"], doc["steps"]) == (3, steps // 3)
    assert doc["status"]["text"] == f"finished at step {steps // 3}"


@settings(max_examples=300, deadline=None)
@given(parts=st.lists(st.sampled_from([b'"kind"', b'"header"', b":", b" ", b"\n", b"\t", b'"',
                                        b"x", b"{", b"kind", b"header", b"\r\n", b'""']),
                      max_size=30))
def test_header_marks_are_where_the_pattern_matches(parts):
    """The scan anchored on ``"header"`` finds exactly the regular expression's matches."""
    from vramdoc.monitor.follower import _HEADER_MARK, _header_marks

    block = b"".join(parts)
    want = [m.start() for m in _HEADER_MARK.finditer(block)]
    assert _header_marks(block) == want
    pad = b"h" * 4096  # long enough for the numpy scan, 'h' bytes that are no header
    assert _header_marks(pad + block + pad) == [len(pad) + m for m in want]


@settings(max_examples=60, deadline=None)
@given(sizes=st.lists(st.integers(0, 90), min_size=1, max_size=8), chunk=st.integers(16, 200))
def test_skip_counts_each_header_once_whatever_the_chunk(tmp_path_factory, sizes, chunk):
    """Headers near chunk boundaries (found in the seam and in the chunk) count once."""
    path = tmp_path_factory.mktemp("skip") / "events.jsonl"
    lines = []
    for pad in sizes:
        lines.append(json.dumps(ev("header"), separators=(",", ":")) + "\n")  # short lines:
        lines.append("x" * pad + "\n")  # two marks can share a seam
    path.write_text("".join(lines))
    f = Follower(path)
    assert f.skip_to_last_session(chunk=chunk) == len(sizes) - 1
    assert f.line_no == 2 * (len(sizes) - 1)
    assert [e["kind"] for e in f.read_all()] == ["header"]
