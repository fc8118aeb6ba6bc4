"""End to end: train a tiny model on CPU with the callback, then replay the run in the app."""

from __future__ import annotations

import asyncio

import pytest

pytest.importorskip("textual")
pytest.importorskip("transformers")

from tests.monitor.tiny import nan_trainer_class, tiny_trainer  # noqa: E402
from vramdoc.monitor import VramdocCallback  # noqa: E402
from vramdoc.tui import make_app  # noqa: E402
from vramdoc.tui.widgets import AlertList, Chart, MemoryPanel, RunBar  # noqa: E402


def test_train_then_watch(tmp_path, run_cli):
    plan = {"peak_allocated_bytes": 9 * 2**20, "components": {"weights": 2**20},
            "gpu": {"name": "T4", "memory_bytes": 15 * 2**30}}
    cb = VramdocCallback(tmp_path / "run", plan=plan)
    tiny_trainer(tmp_path / "out", [cb], max_steps=6, trainer_cls=nan_trainer_class(5)).train()

    async def go():
        app = make_app(tmp_path / "run", follow=False, label="run")
        async with app.run_test(size=(140, 44)) as pilot:
            for _ in range(200):
                if app.watch_screen.done_reading:
                    break
                await pilot.pause(0.05)
            await pilot.pause()
            bar = app.query_one(RunBar).view
            assert (bar.step, bar.max_steps, bar.status_text) == (6, 6, "finished at step 6")
            assert "LlamaForCausalLM" in bar.detail
            loss = app.query_one("#chart-loss", Chart).view
            assert loss.steps == (1, 2, 3, 4, 5, 6)
            assert [v != v for v in loss.values] == [False] * 4 + [True] * 2  # NaN from step 5
            alerts = app.query_one(AlertList).view
            assert alerts[0].code == "W102" and alerts[0].first_step == 5
            memory = app.query_one(MemoryPanel).view
            assert memory.plan_peak_bytes == 9 * 2**20 and memory.limit_bytes == 15 * 2**30
            await pilot.press("n")
            assert app.query_one("#chart-loss", Chart).marker_step == 5
    asyncio.run(go())

    code, out, _ = run_cli("watch", str(tmp_path / "run"), "--once")
    assert code == 1  # an error-severity alert
    assert "W102 error   masked-nan (steps 5-6)" in out
