"""Hostile input for ``vramdoc watch``: options, and event logs a person, a crash or junk wrote.

Every case runs ``vramdoc watch --once`` in-process and checks the exit code, that no traceback
escaped (``main`` re-raises anything but a VramdocError, so a crash fails the test), and the one
message that says what happened. Every log case is also read by the live screen's code path
(follower -> RunState -> the views -> every chart drawn at a fixed size), so a line that would
kill the live screen fails here too.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.tui.runs import DEMO_RUN
from vramdoc.monitor.follower import Follower
from vramdoc.monitor.run import RunState
from vramdoc.tui.render import render_chart
from vramdoc.tui.views import snapshot

GiB = 2**30


def line(kind: str, **fields: object) -> bytes:
    return (json.dumps({"v": 1, "kind": kind, "time": 1.7e9, **fields}) + "\n").encode()


def raw(text: str) -> bytes:
    return text.encode() + b"\n"


HEADER = line("header", source="loop", device={"type": "cuda", "name": "T4",
                                               "total_bytes": 15 * GiB},
              plan={"peak_allocated_bytes": 9 * GiB, "components": {"weights": 4 * GiB}},
              args={"fp16": True, "max_grad_norm": 1.0, "max_steps": 10})


def step(n: int, **fields: object) -> bytes:
    base: dict[str, object] = {"step": n, "loss": 2.0 - n / 100, "grad_norm": 0.5, "lr": 1e-4,
                               "mem": {"allocated_bytes": 5 * GiB,
                                       "peak_allocated_bytes": 6 * GiB,
                                       "reserved_bytes": 7 * GiB,
                                       "peak_reserved_bytes": 7 * GiB}}
    base.update(fields)
    return line("step", **base)


GOOD = HEADER + b"".join(step(i) for i in range(1, 6))
END = line("end", step=5, reason="finished")


@dataclass(frozen=True)
class Case:
    id: str
    log: bytes | None  # events.jsonl's content; None: no file
    args: tuple[str, ...] = ()
    code: int = 0
    out: str = ""  # expected in stdout
    err: str = ""  # expected in stderr
    extra: dict[str, bytes] = field(default_factory=dict)


def wrong(id_: str, bad: bytes, first: str) -> Case:
    """A well-formed JSON line with a wrong-typed field, between good steps: skipped, named."""
    return Case(id_, GOOD + bad + step(6) + END,
                out=f"1 line(s) with wrong types skipped (first: line 7: {first}")


CASES = [
    # --- options ------------------------------------------------------------------------
    Case("interval-nan", GOOD, ("--interval", "nan"), 2, err="--interval nan is not a number"),
    Case("interval-inf", GOOD, ("--interval", "inf"), 2, err="--interval inf"),
    Case("interval-minus-inf", GOOD, ("--interval=-inf",), 2, err="--interval -inf"),
    Case("interval-negative", GOOD, ("--interval=-1",), 2, err="between 0.05 and 3600"),
    Case("interval-zero", GOOD, ("--interval", "0"), 2, err="between 0.05 and 3600"),
    Case("interval-tiny", GOOD, ("--interval", "0.001"), 2, err="between 0.05 and 3600"),
    Case("interval-huge", GOOD, ("--interval", "1e9"), 2, err="between 0.05 and 3600"),
    Case("interval-overflow", GOOD, ("--interval", "1e400"), 2, err="--interval inf"),
    Case("interval-word", GOOD, ("--interval", "soon"), 2, err="invalid float value: 'soon'"),
    Case("interval-empty", GOOD, ("--interval", ""), 2, err="invalid float value"),
    Case("json-without-once", GOOD, ("--json", "--no-once"), 2, err="unrecognized arguments"),
    Case("unknown-option", GOOD, ("--tail", "5"), 2, err="unrecognized arguments: --tail"),
    # --- files that are not there or not usable ----------------------------------------------
    Case("no-log", None, (), 2, err="no event log at"),
    Case("empty-log", b"", (), 0, out="status     waiting for the run to start"),
    Case("blank-lines", b"\n\n   \n\t\n", (), 0, out="steps      none yet"),
    Case("only-junk", b"hello\nworld\n", (), 0, out="2 corrupt line(s) skipped"),
    Case("header-only", HEADER, (), 0, out="steps      none yet"),
    Case("log-is-a-directory", None, (), 2, err="no event log at",
         extra={"events.jsonl/inner": b""}),
    # --- lines that are not JSON objects ------------------------------------------------
    Case("not-json", GOOD + raw("this is not json") + END, out="1 corrupt line(s) skipped"),
    Case("json-array", GOOD + raw("[1, 2, 3]") + END, out="1 corrupt line(s) skipped"),
    Case("json-string", GOOD + raw('"step"') + END, out="1 corrupt line(s) skipped"),
    Case("json-number", GOOD + raw("42") + END, out="1 corrupt line(s) skipped"),
    Case("json-null", GOOD + raw("null") + END, out="1 corrupt line(s) skipped"),
    Case("unknown-kind", GOOD + raw('{"v": 1, "kind": "bogus"}') + END,
         out="1 corrupt line(s) skipped"),
    Case("no-kind", GOOD + raw('{"v": 1, "step": 3}') + END, out="1 corrupt line(s) skipped"),
    Case("kind-is-a-list", GOOD + raw('{"v": 1, "kind": ["step"]}') + END,
         out="1 corrupt line(s) skipped"),
    Case("binary-junk", GOOD + b"\x00\xff\xfe\x80junk\x00\n" + END,
         out="1 corrupt line(s) skipped"),
    Case("nul-bytes", GOOD + b"\x00" * 100 + b"\n" + END, out="1 corrupt line(s) skipped"),
    Case("latin1-text", GOOD + "caf\xe9".encode("latin-1") + b"\n" + END,
         out="1 corrupt line(s) skipped"),
    Case("cut-mid-file", GOOD + b'{"v":1,"kind":"step","step":6,"lo\n' + END,
         out="1 corrupt line(s) skipped"),
    Case("cut-last-line", GOOD + b'{"v":1,"kind":"step","st', out="last line truncated"),
    Case("deep-nesting", GOOD + b"[" * 100_000 + b"]" * 100_000 + b"\n" + END,
         out="1 corrupt line(s) skipped"),
    Case("int-of-5000-digits", GOOD + raw('{"v":1,"kind":"step","step":' + "9" * 5000 + "}")
         + END, out="1 corrupt line(s) skipped"),
    Case("over-long-line", GOOD + b"x" * (17 * 2**20) + b"\n" + step(6) + END,
         out="1 line(s) over 16 MiB skipped"),
    Case("lone-surrogate", GOOD + raw('{"v":1,"kind":"note","what":"x","detail":"\\ud800"}')
         + END, out="1 corrupt line(s) skipped"),
    Case("crlf-endings", GOOD.replace(b"\n", b"\r\n") + END, out="steps      5 (last 5)"),
    Case("utf8-bom", b"\xef\xbb\xbf" + GOOD + END, out="steps      5 (last 5)"),
    Case("duplicate-keys", GOOD + raw('{"v":1,"kind":"step","step":"x","step":6}') + END,
         out="steps      6 (last 6)"),
    # --- other schema versions ----------------------------------------------------------
    Case("foreign-log", raw('{"v": 7, "kind": "header"}') + raw('{"v": 7, "kind": "step"}'),
         code=2, err="schema v7; this vramdoc reads v1"),
    Case("version-as-string", GOOD + raw('{"v": "1", "kind": "step", "step": 6}') + END,
         out="1 line(s) of schema v'1' skipped"),
    Case("version-true", GOOD + raw('{"v": true, "kind": "step", "step": 6}') + END,
         out="1 line(s) of schema vTrue skipped"),
    # --- wrong types in well-formed lines -----------------------------------------------
    wrong("step-word", step(6, step="x"), "step event: step 'x' is not a whole number"),
    wrong("step-negative", step(6, step=-1), "step event: step -1 is not a whole number"),
    wrong("step-float", step(6, step=1.5), "step event: step 1.5 is not a whole number"),
    wrong("step-bool", step(6, step=True), "step event: step True is not a whole number"),
    wrong("step-huge", step(6, step=2**64), "step event: step 18446744073709551616 is not"),
    wrong("step-nan-string", step(6, step="NaN"), "step event: step 'NaN' is not"),
    wrong("step-bare-nan", raw('{"v":1,"kind":"step","step":NaN}'), "step event: step nan"),
    wrong("step-list", step(6, step=[6]), "step event: step [6] is not"),
    wrong("loss-word", step(6, loss="abc"), "step event: loss 'abc' is not a number"),
    wrong("loss-lowercase-nan", step(6, loss="nan"), "step event: loss 'nan' is not a number"),
    wrong("loss-list", step(6, loss=[1.0]), "step event: loss [1.0] is not a number"),
    wrong("loss-object", step(6, loss={"a": 1}), "step event: loss {'a': 1} is not a number"),
    wrong("loss-bool", step(6, loss=True), "step event: loss True is not a number"),
    wrong("mem-string", step(6, mem="big"), "step event: mem 'big' is not an object"),
    wrong("mem-negative", step(6, mem={"allocated_bytes": -5}),
          "step event: mem.allocated_bytes -5 is not a whole number"),
    wrong("mem-float", step(6, mem={"peak_allocated_bytes": 1.5e30}),
          "step event: mem.peak_allocated_bytes 1.5e+30 is not"),
    wrong("mem-nan", step(6, mem={"reserved_bytes": "NaN"}),
          "step event: mem.reserved_bytes 'NaN' is not"),
    wrong("gpu-list", step(6, gpu=[1, 2]), "step event: gpu [1, 2] is not an object"),
    wrong("gpu-util-word", step(6, gpu={"util_pct": "hot"}),
          "step event: gpu.util_pct 'hot' is not a number"),
    wrong("skipped-word", step(6, skipped="yes"), "step event: skipped 'yes' is not true"),
    wrong("tokens-negative", step(6, tokens=-1), "step event: tokens -1 is not"),
    wrong("session-number", step(6, session=5), "step event: session 5 is not a string"),
    wrong("time-word", step(6, time="now"), "step event: time 'now' is not a number"),
    wrong("plan-string", line("header", plan="big"), "header event: plan 'big' is not an object"),
    wrong("args-list", line("header", args=[1, 2]), "header event: args [1, 2] is not an object"),
    wrong("args-quoted-bool", line("header", args={"fp16": "false"}),
          "header event: args.fp16 'false' is not true or false"),
    wrong("args-grad-norm-word", line("header", args={"max_grad_norm": "1"}),
          "header event: args.max_grad_norm '1' is not a number"),
    wrong("args-model-params", line("header", args={"model": {"params": "7B"}}),
          "header event: args.model.params '7B' is not"),
    wrong("device-total-text", line("header", device={"total_bytes": "12GB"}),
          "header event: device.total_bytes '12GB' is not"),
    wrong("plan-component-text", line("header", plan={"components": {"weights": "x"}}),
          "header event: plan.components.weights 'x' is not"),
    wrong("plan-negative-peak", line("header", plan={"peak_allocated_bytes": -1}),
          "header event: plan.peak_allocated_bytes -1 is not"),
    wrong("pid-text", line("header", pid="123"), "header event: pid '123' is not"),
    wrong("logs-list", line("log", step=3, logs=[1]), "log event: logs [1] is not an object"),
    wrong("note-what-number", line("note", what=5), "note event: what 5 is not a string"),
    wrong("end-reason-number", line("end", reason=5), "end event: reason 5 is not a string"),
    wrong("end-error-string", line("end", reason="crashed", error="boom"),
          "end event: error 'boom' is not an object"),
    wrong("end-step-word", line("end", step="x"), "end event: step 'x' is not"),
    wrong("huge-text", line("note", what="x", detail="y" * 200_000),
          "note event: detail 'yyyy"),
    # --- valid but extreme values: read, drawn, summarised ------------------------------
    Case("loss-1e308", GOOD + step(6, loss=1e308) + step(7, loss=-1e308) + END,
         out="steps      7 (last 7)"),
    # a non-finite loss is an error alert (W101): exit 1
    Case("loss-overflow-to-inf", GOOD + raw('{"v":1,"kind":"step","step":6,"loss":1e400}') + END,
         code=1, out="1 non-finite"),
    Case("nan-strings", GOOD + step(6, loss="NaN", grad_norm="Infinity", lr="-Infinity") + END,
         code=1, out="1 non-finite"),
    Case("bare-nan-tokens", GOOD + raw('{"v":1,"kind":"step","step":6,"loss":NaN,'
                                       '"grad_norm":Infinity}') + END, code=1,
         out="1 non-finite"),
    Case("max-int-bytes", GOOD + step(6, mem={"peak_allocated_bytes": 2**63 - 1,
                                              "allocated_bytes": 0}) + END,
         out="memory     peak allocated 8589934592.00 GiB"),
    Case("zero-and-tiny", GOOD + step(6, loss=5e-324, grad_norm=0.0, lr=0.0,
                                      step_time_s=0.0, tokens_per_s=0.0) + END,
         out="steps      6 (last 6)"),
    Case("negative-timings", GOOD + step(6, step_time_s=-5.0, tokens_per_s=-1e9) + END,
         out="steps      6 (last 6)"),
    Case("step-zero-and-null", GOOD + step(0) + step(6, step=None) + END,
         out="steps      7 (last 6)\norder      1 step(s) arrived out of order"),
    Case("steps-backwards", HEADER + b"".join(step(i) for i in (28, 27, 26, 25, 24, 23)),
         out="steps      6 (last 28)"),
    Case("steps-repeated", GOOD + b"".join(step(3) for _ in range(5)) + END,
         out="5 step number(s) written twice"),
    Case("step-before-header", step(1) + step(2), out="steps      2 (last 2)"),
    Case("end-twice", GOOD + END + END, out="status     finished at step 5"),
    Case("end-before-steps", HEADER + END + step(1), out="status     finished at step 5"),
    Case("control-chars-in-error", GOOD + line("end", step=5, reason="crashed", error={
        "type": "Runtime\x1b[2JError", "message": "bad\x07 \x1b]0;title\x07"}),
        out="status     crashed at step 6: Runtime?[2JError: bad? ?]0;title?"),
    Case("unicode-names", line("header", device={"type": "cuda", "name": "GPU \u2603 \U0001f525"})
         + step(1), out="steps      1 (last 1)"),
    Case("two-sessions", HEADER + step(1) + step(2) + HEADER + step(1),
         out="sessions   2 in this log; this is the latest (1 earlier, not shown)"),
    Case("many-sessions", b"".join(HEADER + step(1) for _ in range(300)),
         out="sessions   300 in this log"),
]


def _write(tmp_path: Path, case: Case) -> Path:
    for rel, content in case.extra.items():
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(content)
    if case.log is not None:
        (tmp_path / "events.jsonl").write_bytes(case.log)
    return tmp_path


def _live_screen_path(path: Path) -> None:
    """What the live screen's worker does with the file, views and charts included."""
    follower = Follower.for_run(path)
    state = RunState.with_rules()
    state.skipped_sessions = follower.skip_to_last_session()
    for _ in range(1000):
        state.feed(follower.poll())
        if follower.at_end():
            break
    state.feed(follower.finish())
    snap = snapshot(state, follower, "hostile")
    for chart in snap.charts.values():
        for width, height in ((80, 8), (12, 3), (200, 20)):
            render_chart(chart, width, height, marker_step=chart.steps[0] if chart.steps else 1)
    assert state.failed_events == 0, state.failed_reason


def test_at_least_seventy_cases():
    assert len(CASES) >= 70
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_watch_once(case: Case, tmp_path: Path, run_cli) -> None:
    run_dir = _write(tmp_path, case)
    code, out, err = run_cli("watch", str(run_dir), "--once", *case.args)
    assert "Traceback" not in out + err
    assert code == case.code, (out, err)
    assert case.out in out, out
    assert case.err in err, err
    if code == 2:
        assert out == "" and err.startswith("error: ") and "\nhint: " in err
    if case.log is not None:
        _live_screen_path(run_dir)


JSON_CASES = [c for c in CASES if c.log is not None and c.code != 2]


@pytest.mark.parametrize("case", JSON_CASES, ids=[c.id for c in JSON_CASES])
def test_watch_once_json_is_strict(case: Case, tmp_path: Path, run_cli) -> None:
    code, out, err = run_cli("watch", str(_write(tmp_path, case)), "--once", "--json")
    assert code == case.code and "Traceback" not in err

    def refuse(name: str) -> None:
        raise AssertionError(f"bare {name} in --json output")

    json.loads(out, parse_constant=refuse)


@pytest.mark.parametrize("run_dir", ["", "   ", "a\x00b", "x" * 10_000, "/" + "y/" * 3000],
                         ids=["empty", "spaces", "nul", "10k-chars", "deep"])
def test_unusable_run_dir_paths(run_dir, run_cli):
    code, out, err = run_cli("watch", run_dir, "--once")
    assert code == 2 and out == "" and "Traceback" not in err
    assert err.startswith("error: ")


def test_an_unreadable_log_is_named(tmp_path, run_cli):
    import os

    path = tmp_path / "events.jsonl"
    path.write_bytes(GOOD)
    path.chmod(0)
    try:
        if os.access(path, os.R_OK):
            pytest.skip("running as root: permissions do not apply")
        code, _, err = run_cli("watch", str(tmp_path), "--once")
        assert code == 2 and f"cannot read {path}" in err
    finally:
        path.chmod(0o644)


def test_demo_still_reads_with_every_option(run_cli):
    code, out, _ = run_cli("watch", str(DEMO_RUN), "--once", "--interval", "0.05")
    assert code == 1 and "status     finished at step 54" in out


def test_the_live_screen_survives_every_hostile_line_appended(tmp_path):
    """The real app follows a file while every hostile log line of the table is appended."""
    import asyncio

    pytest.importorskip("textual")
    from vramdoc.tui import make_app
    from vramdoc.tui.widgets import RunBar

    path = tmp_path / "events.jsonl"
    path.write_bytes(GOOD)
    junk = [c.log[len(GOOD):] for c in CASES
            if c.log and c.log.startswith(GOOD) and c.id != "over-long-line"]
    junk = [j.replace(END, b"") for j in junk]

    async def go() -> None:
        app = make_app(tmp_path, follow=True, poll_interval=0.02, label="hostile")
        async with app.run_test(size=(140, 44)) as pilot:
            bar = app.query_one(RunBar)

            async def until(cond):
                for _ in range(400):
                    if cond():
                        return
                    await pilot.pause(0.05)
                raise AssertionError("not reached")

            await until(lambda: bar.view is not None and bar.view.step == 5)
            for blob in junk:
                with open(path, "ab") as fh:
                    fh.write(blob)
                await pilot.pause(0.03)
            with open(path, "ab") as fh:
                fh.write(b"half a line without its end \xff" + b"x" * 1000)
                fh.write(b"\n" + step(5000) + END)
            await until(lambda: bar.view.step == 5000)
            assert app.is_running
            text = bar.view.status_text
            assert "corrupt line(s) skipped" in text and "line(s) with wrong types" in text
            await pilot.press("q")

    asyncio.run(go())
