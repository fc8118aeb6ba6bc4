"""Chart and bar drawing, and the views computed from a run (no terminal needed)."""

from __future__ import annotations

import math

from tests.tui.runs import DEMO_RUN, GiB, gpu_run
from vramdoc.monitor.follower import Follower, iter_events
from vramdoc.monitor.run import RunState
from vramdoc.tui.render import bucket, render_chart
from vramdoc.tui.views import ChartView, charts, gpu_view, memory_view, snapshot


def _rows(text):
    return text.plain.split("\n")


def test_bucket_keeps_a_one_step_spike_and_marks_nan():
    values = [1.0] * 100
    values[57] = 50.0
    values[90] = math.nan
    cols = bucket(values, list(range(1, 101)), 20)
    assert len(cols) == 20
    assert [c[1] for c in cols].count(50.0) == 1  # the spike survives the max
    assert sum(1 for c in cols if c[2]) == 1  # one column holds the NaN
    assert cols[0][0] == 1 and cols[-1][0] == 96


def test_few_points_fill_the_width():
    cols = bucket([1.0, 2.0, 3.0], [1, 2, 3], 10)
    assert [c[0] for c in cols] == [1, 1, 1, 2, 2, 2, 3, 3, 3]


def test_chart_draws_bars_nan_marks_and_reference_lines():
    view = ChartView("memory", (1, 2, 3, 4), (1.0 * GiB, 2.0 * GiB, math.nan, 3.0 * GiB),
                     unit="bytes", zero_based=True, refs=(("limit", 4.0 * GiB),))
    rows = _rows(render_chart(view, 10 + 20 + 7, 8))  # 7 cells for "╌ limit"
    assert rows[0].startswith(" memory 3.00 GiB  ✖ 1 non-finite")
    plot = [r[10:] for r in rows[1:-1]]
    assert len(plot) == 6
    assert plot[0].startswith("╌") and plot[0].endswith("╌ limit")  # 4 GiB at the top row
    assert rows[1].startswith(" 4.00 GiB ╌")
    assert plot[0][10] == "✖" and set(plot[-1][10:15]) == {" "}  # the NaN column is empty
    assert plot[-1][:10] == "█" * 10 and plot[-1][15:20] == "█" * 5
    assert rows[-1].strip() == "step 1             4"


def test_empty_chart_says_why():
    text = render_chart(ChartView("loss", (), (), empty_text="no data yet"), 40, 6)
    assert "no data yet" in text.plain


def test_views_of_a_gpu_run(tmp_path):
    gpu_run(tmp_path)
    state = RunState.with_rules()
    state.feed(list(iter_events(tmp_path)))
    mem = memory_view(state)
    assert mem.limit_bytes == 12 * GiB
    assert mem.limit_label == "GPU limit (NVIDIA GeForce RTX 3060)"
    assert [n for n, _ in mem.components][:3] == ["weights", "quant_state", "adapters"]
    assert dict(mem.measured)["peak allocated"] == int(9.9 * GiB) + 80 * 3 * 2**20
    gv = gpu_view(state)
    assert (gv.util_pct, gv.temp_c, gv.power_w) == (95.0, 71.0, 168.0)
    ch = charts(state)
    assert ch["memory"].refs == (("limit", 12.0 * GiB), ("plan", float(int(9.0 * GiB))))
    # 1.1x the plan, and 3 MiB more every step reaches 12 GiB in some 400 steps
    assert [a.code for a in state.alerts] == ["W112", "W108"]


def test_views_of_the_cpu_demo_run():
    follower = Follower.for_run(DEMO_RUN)
    state = RunState.with_rules()
    state.feed(follower.read_all())
    snap = snapshot(state, follower, "demo")
    assert snap.memory.note == "no CUDA allocator figures: the run trained on CPU"
    assert snap.gpu.name is None and snap.gpu.note == "no GPU: the run trained on CPU"
    assert snap.charts["memory"].title.startswith("lr")  # CPU run: lr instead of memory
    assert snap.bar.status_text == "finished at step 54"
    assert {a.code for a in snap.alerts} >= {"W102", "W106", "W107", "W111"}
