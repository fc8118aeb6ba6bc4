"""Appearance at a fixed terminal size (140 x 44), compared with committed SVG snapshots.

Update after an intended change: pytest tests/tui/test_snapshots.py --snapshot-update
(then look at the SVGs in tests/tui/__snapshots__/ before committing them).
"""

from __future__ import annotations

import pytest

pytest.importorskip("textual")

from tests.tui.runs import DEMO_RUN, gpu_run  # noqa: E402
from vramdoc.tui import make_app  # noqa: E402

SIZE = (140, 44)


async def _loaded(pilot):
    screen = pilot.app.watch_screen
    for _ in range(200):
        if screen.done_reading:
            break
        await pilot.pause(0.05)
    await pilot.pause()


def test_demo_replay(snap_compare):
    app = make_app(DEMO_RUN, follow=False, label="examples/watch-demo/run")
    assert snap_compare(app, terminal_size=SIZE, run_before=_loaded)


def test_demo_alert_selected(snap_compare):
    app = make_app(DEMO_RUN, follow=False, label="examples/watch-demo/run")
    assert snap_compare(app, terminal_size=SIZE, run_before=_loaded, press=["n", "n"])


def test_help_screen(snap_compare):
    app = make_app(DEMO_RUN, follow=False, label="examples/watch-demo/run")
    assert snap_compare(app, terminal_size=SIZE, run_before=_loaded, press=["question_mark"])


def test_gpu_run(snap_compare, tmp_path):
    gpu_run(tmp_path / "run")
    app = make_app(tmp_path / "run", follow=False, label="runs/llama3-qlora")
    assert snap_compare(app, terminal_size=SIZE, run_before=_loaded)


def test_waiting_for_a_run(snap_compare, tmp_path):
    async def waiting(pilot):
        await pilot.pause(0.3)

    app = make_app(tmp_path / "nothing-yet", follow=True, label="runs/next")
    # the status names the events file: make it the same on every machine
    app.follower.path = app.follower.path.relative_to(tmp_path)
    assert snap_compare(app, terminal_size=SIZE, run_before=waiting)
