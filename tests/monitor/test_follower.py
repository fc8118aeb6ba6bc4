"""The follower against the files a live, crashed or foreign run leaves."""

from __future__ import annotations

import json
import math

from vramdoc.monitor.follower import Follower, FollowerStatus, events_path, iter_events
from vramdoc.monitor.schema import SCHEMA_VERSION, encode_line


def _line(kind: str, **fields: object) -> str:
    return encode_line({"v": SCHEMA_VERSION, "kind": kind, "time": 0.0, **fields})


def test_missing_file_waits_then_reads(tmp_path):
    f = Follower.for_run(tmp_path)
    assert f.poll() == []
    assert f.status is FollowerStatus.WAITING
    assert "waiting for" in f.describe()
    (tmp_path / "events.jsonl").write_text(_line("header") + _line("step", step=1, loss=2.0))
    events = f.poll()
    assert [e["kind"] for e in events] == ["header", "step"]
    assert f.status is FollowerStatus.LIVE


def test_truncated_last_line_waits_for_the_rest(tmp_path):
    path = tmp_path / "events.jsonl"
    step2 = _line("step", step=2, loss=1.5)
    path.write_text(_line("header") + _line("step", step=1, loss=2.0) + step2[:17])
    f = Follower(path)
    assert [e.get("step") for e in f.poll()] == [None, 1]
    assert f.pending_bytes == 17
    assert f.poll() == []  # nothing new: still waiting, not corrupt
    assert f.corrupt == 0
    with open(path, "a") as fh:
        fh.write(step2[17:])
    events = f.poll()
    assert [e["step"] for e in events] == [2]
    assert f.pending_bytes == 0 and f.corrupt == 0


def test_truncated_tail_of_a_crashed_run_is_counted_on_finish(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_text(_line("header") + _line("step", step=1, loss=2.0) + '{"v":1,"kind":"st')
    f = Follower(path)
    events = f.read_all()
    assert [e["kind"] for e in events] == ["header", "step"]
    assert (f.truncated, f.corrupt) == (1, 0)
    assert "last line truncated" in f.describe()


def test_complete_last_line_without_newline_is_read_on_finish(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_text(_line("header") + _line("end", step=3, reason="finished").rstrip("\n"))
    f = Follower(path)
    events = f.read_all()
    assert [e["kind"] for e in events] == ["header", "end"]
    assert f.status is FollowerStatus.ENDED and f.truncated == 0


def test_corrupt_lines_are_counted_and_skipped(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_bytes(
        _line("header").encode()
        + b"this is not json\n"
        + b'{"v": 1, "kind": "bogus"}\n'
        + b"[1, 2, 3]\n"
        + b"\xff\xfe\n"
        + b"\n"
        + _line("step", step=1, loss="NaN").encode()
    )
    f = Follower(path)
    events = f.read_all()
    assert [e["kind"] for e in events] == ["header", "step"]
    assert f.corrupt == 4
    assert "4 corrupt line(s) skipped" in f.describe()


def test_other_schema_version_is_named(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_text(json.dumps({"v": 99, "kind": "header"}) + "\n"
                    + json.dumps({"v": 99, "kind": "step", "step": 1}) + "\n")
    f = Follower(path)
    assert f.read_all() == []
    assert f.status is FollowerStatus.FOREIGN
    assert (f.foreign, f.foreign_version) == (2, 99)
    assert f"schema v99; this vramdoc reads v{SCHEMA_VERSION}" in f.describe()


def test_file_replaced_by_a_new_run_is_read_from_the_start(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_text(_line("header") + _line("step", step=1) + _line("step", step=2))
    f = Follower(path)
    assert len(f.poll()) == 3
    path.write_text(_line("header"))  # shorter: a new run truncated the file
    assert [e["kind"] for e in f.poll()] == ["header"]
    assert f.resets == 1


def test_finished_run_replays_in_slices(tmp_path):
    path = tmp_path / "events.jsonl"
    lines = [_line("header")] + [_line("step", step=i, loss=1.0 / i) for i in range(1, 301)]
    lines.append(_line("end", step=300, reason="finished"))
    path.write_text("".join(lines))
    f = Follower(path)
    first = f.poll(max_bytes=1000)  # a slice ends mid-line: the rest comes next poll
    assert 0 < len(first) < 301
    rest = f.read_all()
    assert len(first) + len(rest) == 302
    assert [e["step"] for e in first + rest if e["kind"] == "step"] == list(range(1, 301))
    assert f.status is FollowerStatus.ENDED and f.corrupt == 0


def test_events_path_and_iter_events(tmp_path):
    assert events_path(tmp_path) == tmp_path / "events.jsonl"
    assert events_path(tmp_path / "x.jsonl") == tmp_path / "x.jsonl"
    (tmp_path / "events.jsonl").write_text(_line("step", step=1, loss="NaN"))
    (event,) = list(iter_events(tmp_path))
    assert event["loss"] == "NaN"  # decoding is RunState's job
    assert math.isnan(float(event["loss"]))


def test_a_replayed_run_without_an_end_event_says_so(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_text(_line("header") + _line("step", step=1))
    f = Follower(path)
    f.read_all()
    assert f.describe() == "no end event yet (still training, or stopped without closing)"
