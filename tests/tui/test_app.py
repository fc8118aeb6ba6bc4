"""Pilot tests of the watch's behaviour: replay, following, pause, alerts, help, quit."""

from __future__ import annotations

import asyncio
import json

import pytest

pytest.importorskip("textual")

from tests.tui.runs import DEMO_RUN, ev, gpu_header, gpu_run, gpu_steps, write  # noqa: E402
from vramdoc.tui import make_app  # noqa: E402
from vramdoc.tui.screens import HelpScreen, WatchScreen  # noqa: E402
from vramdoc.tui.widgets import AlertDetail, AlertList, Chart, RunBar  # noqa: E402

SIZE = (140, 44)


def run(coro):
    return asyncio.run(coro)


async def until(pilot, cond, timeout=10.0):
    for _ in range(int(timeout / 0.05)):
        if cond():
            return
        await pilot.pause(0.05)
    raise AssertionError("condition not reached in time")


def screen(app) -> WatchScreen:
    return app.watch_screen


def test_replay_of_a_finished_run_shows_everything():
    async def go():
        app = make_app(DEMO_RUN, follow=False, label="demo")
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: screen(app).done_reading)
            await pilot.pause()
            bar = app.query_one(RunBar).view
            assert (bar.step, bar.max_steps, bar.status_text) == (54, 54, "finished at step 54")
            alerts = app.query_one(AlertList).view
            assert [a.code for a in alerts] == ["W106", "W107", "W116", "W111", "W121", "W102"]
            loss = app.query_one("#chart-loss", Chart).view
            assert len(loss.values) == 54 and loss.steps[-1] == 54
            # nothing selected: the newest alert is described
            assert app.query_one(AlertDetail).view.code == "W102"
    run(go())


def test_n_and_shift_n_step_through_alerts_and_mark_the_charts():
    async def go():
        app = make_app(DEMO_RUN, follow=False, label="demo")
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: screen(app).done_reading)
            await pilot.press("n")
            assert screen(app).selected == 0
            assert app.query_one(AlertDetail).view.code == "W106"
            assert app.query_one("#chart-loss", Chart).marker_step == 31
            await pilot.press("n", "n")
            assert app.query_one(AlertDetail).view.code == "W116"
            await pilot.press("N")
            assert app.query_one(AlertDetail).view.code == "W107"
            await pilot.press("N", "N")  # wraps around to the newest
            assert app.query_one(AlertDetail).view.code == "W102"
            assert app.query_one("#chart-grad", Chart).marker_step == 52
    run(go())


def test_help_screen_opens_and_closes():
    async def go():
        app = make_app(DEMO_RUN, follow=False, label="demo")
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("question_mark")
            assert isinstance(app.screen, HelpScreen)
            text = str(app.screen.query_one("#help-text").render())
            assert "Next alert" in text and "W102" in text and "masked-nan" in text
            await pilot.press("escape")
            assert isinstance(app.screen, WatchScreen)
            await pilot.press("h")
            assert isinstance(app.screen, HelpScreen)
            await pilot.press("q")  # q closes the help, not the app
            assert isinstance(app.screen, WatchScreen)
    run(go())


def test_q_quits():
    async def go():
        app = make_app(DEMO_RUN, follow=False, label="demo")
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("q")
            await pilot.pause()
        assert app.return_code == 0
    run(go())


def test_follows_a_live_run_and_pause_freezes_the_display(tmp_path):
    path = gpu_run(tmp_path, n=10, end=False) / "events.jsonl"

    async def go():
        app = make_app(tmp_path, follow=True, poll_interval=0.02, label="live")
        async with app.run_test(size=SIZE) as pilot:
            bar = app.query_one(RunBar)
            await until(pilot, lambda: bar.view is not None and bar.view.step == 10)
            assert bar.view.status == "live"
            await pilot.press("p")
            assert screen(app).paused
            write(path, gpu_steps(15)[10:], mode="a")
            await until(pilot, lambda: screen(app).pending is not None
                        and screen(app).pending.steps == 15)
            assert bar.view.step == 10  # frozen
            assert len(app.query_one("#chart-loss", Chart).view.values) == 10
            assert "PAUSED (5 new)" in bar.render().plain
            await pilot.press("p")
            assert bar.view.step == 15 and "PAUSED" not in bar.render().plain
            assert len(app.query_one("#chart-loss", Chart).view.values) == 15
            write(path, [ev("end", step=15, reason="finished")], mode="a")
            await until(pilot, lambda: bar.view.status == "ended")
    run(go())


def test_waits_for_a_run_that_has_not_started(tmp_path):
    run_dir = tmp_path / "later"

    async def go():
        app = make_app(run_dir, follow=True, poll_interval=0.02, label="later")
        async with app.run_test(size=SIZE) as pilot:
            bar = app.query_one(RunBar)
            await until(pilot, lambda: bar.view is not None)
            assert bar.view.status == "waiting" and "waiting for" in bar.view.status_text
            assert "no alerts yet" in app.query_one(AlertList).render().plain
            write(run_dir / "events.jsonl", [gpu_header(), *gpu_steps(3)])
            await until(pilot, lambda: bar.view.step == 3)
            assert bar.view.status == "live"
    run(go())


def test_a_truncated_line_is_completed_and_corrupt_lines_are_reported(tmp_path):
    path = tmp_path / "events.jsonl"
    write(path, [gpu_header(), *gpu_steps(2)])
    line = json.dumps(gpu_steps(3)[2]) + "\n"
    with open(path, "a") as fh:
        fh.write("garbage\n" + line[:40])

    async def go():
        app = make_app(tmp_path, follow=True, poll_interval=0.02, label="t")
        async with app.run_test(size=SIZE) as pilot:
            bar = app.query_one(RunBar)
            await until(pilot, lambda: bar.view is not None and bar.view.step == 2)
            assert "1 corrupt line(s) skipped" in bar.view.status_text
            with open(path, "a") as fh:
                fh.write(line[40:])
            await until(pilot, lambda: bar.view.step == 3)
    run(go())


def test_a_file_of_another_schema_version_is_named(tmp_path):
    (tmp_path / "events.jsonl").write_text(json.dumps({"v": 7, "kind": "header"}) + "\n")

    async def go():
        app = make_app(tmp_path, follow=False, label="old")
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: screen(app).done_reading)
            await pilot.pause()
            text = app.query_one(RunBar).view.status_text
            assert "schema v7; this vramdoc reads v1" in text
    run(go())


def test_a_new_session_appended_while_following_replaces_the_view(tmp_path):
    path = tmp_path / "events.jsonl"
    write(path, [gpu_header(), *gpu_steps(28)])

    async def go():
        app = make_app(tmp_path, follow=True, poll_interval=0.02, label="two runs")
        async with app.run_test(size=SIZE) as pilot:
            bar = app.query_one(RunBar)
            await until(pilot, lambda: bar.view is not None and bar.view.step == 28)
            write(path, [gpu_header(), *gpu_steps(23)], mode="a")  # a new run, same folder
            await until(pilot, lambda: "session 2 of 2" in bar.view.status_text)
            await until(pilot, lambda: bar.view.step == 23)
            assert screen(app).state.step_numbers == list(range(1, 24))
            for alert in screen(app).current.alerts:
                assert alert.first_step <= alert.last_step  # never "steps 28-23"
    run(go())
