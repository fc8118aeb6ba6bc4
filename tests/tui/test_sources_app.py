"""The watch TUI opens a Trainer output dir as it opens vramdoc's own event log."""

from __future__ import annotations

import asyncio

import pytest

pytest.importorskip("textual")

from tests.monitor.trainer_runs import overfitting_run  # noqa: E402
from vramdoc.tui import make_app  # noqa: E402
from vramdoc.tui.widgets import AlertList, Chart, RunBar  # noqa: E402


def test_trainer_output_dir_in_the_tui(tmp_path):
    out = overfitting_run(tmp_path / "out")

    async def go():
        app = make_app(out, follow=False, label="trainer")
        async with app.run_test(size=(140, 44)) as pilot:
            for _ in range(200):
                if app.watch_screen.done_reading:
                    break
                await pilot.pause(0.05)
            await pilot.pause()
            assert [a.code for a in app.query_one(AlertList).view] == ["W113"]
            loss = app.query_one("#chart-loss", Chart).view
            assert len(loss.values) == 60 and loss.steps[-1] == 600
            assert app.query_one(RunBar).view.step == 600

    asyncio.run(go())
