"""Drawing the views as rich Text: charts and bars from block characters, no plotting library.

Pure functions of (view, size, styles), so tests can check a chart's cells without a terminal
and widgets stay thin. Styles come from the widgets' component classes in ``watch.tcss``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from rich.style import Style
from rich.text import Text

from vramdoc.tui.views import ChartView
from vramdoc.units import format_bytes

V_BLOCKS = " ▁▂▃▄▅▆▇█"  # eighths of a cell, bottom up
H_BLOCKS = " ▏▎▍▌▋▊▉█"  # eighths of a cell, left to right
GUTTER = 10  # y-axis label width ("12.00 GiB" and a space)


@dataclass(frozen=True)
class ChartStyles:
    bar: Style = Style(color="cyan")
    nan: Style = Style(color="red", bold=True)
    ref: Style = Style(color="yellow", dim=True)
    marker: Style = Style(bgcolor="grey23")
    axis: Style = Style(dim=True)
    title: Style = Style(bold=True)


def format_value(value: float | None, unit: str = "") -> str:
    """Compact numbers for axes and titles: 3 significant digits, sizes via units.

    >>> format_value(5.54321), format_value(0.000123), format_value(12345.0, "/s")
    ('5.54', '0.000123', '12.3K/s')
    >>> format_value(4096.2, "/s"), format_value(250.0)
    ('4096/s', '250')
    >>> format_value(float("nan")), format_value(3 * 2**30, "bytes"), format_value(None)
    ('NaN', '3.00 GiB', '-')
    """
    if value is None:
        return "-"
    if not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("+Inf" if value > 0 else "-Inf")
    if unit == "bytes":
        return format_bytes(value)
    suffix = unit if unit != "bytes" else ""
    a = abs(value)
    if a >= 1e9:
        return f"{value / 1e9:.3g}G{suffix}"
    if a >= 1e6:
        return f"{value / 1e6:.3g}M{suffix}"
    if a >= 1e4:
        return f"{value / 1e3:.3g}K{suffix}"
    if a >= 100:
        return f"{value:.0f}{suffix}"
    return f"{value:.3g}{suffix}"


def bucket(values: Sequence[float | None], steps: Sequence[int], width: int,
           summary: Callable[[list[float]], float] = max,
           ) -> list[tuple[int, float | None, bool]]:
    """Columns of (first step, summary of finite values, any non-finite) for ``width`` cells.

    One column per point while they fit; beyond that, consecutive points share a column and
    the column shows their maximum, so a one-step spike stays visible.
    """
    pts = [(s, v) for s, v in zip(steps, values, strict=False) if v is not None]
    if not pts or width <= 0:
        return []
    n = len(pts)
    ncols = min(n, width)
    cols = []
    for c in range(ncols):  # column c holds points [c*n/ncols, (c+1)*n/ncols)
        chunk = pts[c * n // ncols:(c + 1) * n // ncols]
        finite = [v for _, v in chunk if math.isfinite(v)]
        cols.append((chunk[0][0], summary(finite) if finite else None,
                     len(finite) < len(chunk)))
    # Few points: widen each to a whole number of cells so the chart fills its width.
    repeat = width // n
    return [c for c in cols for _ in range(repeat)] if repeat > 1 else cols


def render_chart(view: ChartView, width: int, height: int, styles: ChartStyles | None = None,
                 marker_step: int | None = None) -> Text:
    """A bar chart of ``view`` filling width x height cells (title and x-axis included)."""
    st = styles or ChartStyles()
    out = Text(no_wrap=True, overflow="crop")
    finite_all = [v for v in view.values if v is not None and math.isfinite(v)]
    nonfinite = sum(1 for v in view.values if v is not None and not math.isfinite(v))
    last = next((v for v in reversed(view.values) if v is not None), None)
    out.append(f" {view.title} ", st.title)
    if last is not None:
        out.append(format_value(last, view.unit), st.nan if not math.isfinite(last) else st.bar)
    if nonfinite:
        out.append(f"  ✖ {nonfinite} non-finite", st.nan)
    elif finite_all and len(finite_all) > 1:
        out.append(f"  max {format_value(max(finite_all), view.unit)}", st.axis)
    if view.log_scale:
        out.append("  log scale", st.axis)
    rows = height - 2
    plot_w = width - GUTTER
    # Room at the right for the reference lines' labels ("limit", "plan").
    label_w = max((len(label) + 2 for label, _ in view.refs), default=0)
    cols = bucket(view.values, view.steps, plot_w - label_w)
    if rows < 1 or plot_w < 4 or not cols:
        out.append("\n")
        if height > 1:
            out.append(f" {view.empty_text if not cols else ''}", st.axis)
        return out

    def tf(v: float) -> float:
        return math.log10(v) if view.log_scale and v > 0 else v

    finite = [tf(v) for _, v, _ in cols if v is not None and (v > 0 or not view.log_scale)]
    lo = 0.0 if view.zero_based else (min(finite) if finite else 0.0)
    hi = max(finite) if finite else 1.0
    if view.zero_based:
        for _, ref in view.refs:
            if math.isfinite(tf(ref)):
                hi = max(hi, tf(ref))
    if not math.isfinite(hi - lo):  # values near the float limit (1e308 and -1e308)
        scale = max(abs(lo), abs(hi))
        plain = tf
        lo, hi = lo / scale, hi / scale

        def tf(v: float) -> float:  # noqa: F811 - the same axis, scaled to stay finite
            return plain(v) / scale
    if hi <= lo:
        hi = lo + (abs(lo) or 1.0)
    levels = rows * 8

    def level(v: float) -> int:
        return max(1, min(levels, round((tf(v) - lo) / (hi - lo) * levels)))

    ref_rows: dict[int, str] = {}
    for label, ref in view.refs:
        r = tf(ref)
        if lo <= r <= hi:
            ref_rows.setdefault(rows - 1 - min(rows - 1, int((r - lo) / (hi - lo) * rows)), label)
    col_levels = [(s, level(v) if v is not None else 0, bad) for s, v, bad in cols]
    marker_cols: set[int] = set()
    if marker_step is not None:
        before = [s for s, _, _ in cols if s <= marker_step]
        if before:
            marker_cols = {i for i, (s, _, _) in enumerate(cols) if s == before[-1]}
    y_hi, y_lo = (10**hi, 10**lo) if view.log_scale else (hi, lo)
    for row in range(rows):
        out.append("\n")
        label = ""
        if row == 0:
            label = format_value(y_hi, view.unit)
        elif row == rows - 1:
            label = format_value(y_lo, view.unit)
        out.append(label.rjust(GUTTER - 1)[: GUTTER - 1] + " ", st.axis)
        base = (rows - 1 - row) * 8  # eighths below this row
        ref_label = ref_rows.get(row)
        line = Text()
        for i, (_, lv, bad) in enumerate(col_levels):
            style = st.bar
            if bad and lv == 0:
                ch, style = ("✖", st.nan) if row == 0 else (" ", st.bar)
            else:
                fill = lv - base
                ch = V_BLOCKS[max(0, min(8, fill))]
                if bad and row == 0:
                    ch, style = "✖", st.nan
            if ch == " " and ref_label is not None:
                ch, style = "╌", st.ref
            if i in marker_cols:
                style = style + st.marker
            line.append(ch, style)
        if ref_label is not None:
            pad = plot_w - len(col_levels)
            if pad > len(ref_label) + 1:
                line.append("╌" * (pad - len(ref_label) - 1), st.ref)
                line.append(" " + ref_label, st.ref)
        out.append_text(line)
    out.append("\n")
    first, last_step = cols[0][0], view.steps[-1] if view.steps else cols[-1][0]
    axis = f"step {first}"
    right = f"{last_step}"
    span = min(plot_w, len(cols))
    gap = max(1, span - len(axis) - len(right))
    out.append(" " * GUTTER + axis + " " * gap + right, st.axis)
    return out


def hbar(value: float, scale: float, width: int) -> str:
    """A horizontal bar of ``value / scale`` of ``width`` cells, in eighths.

    >>> hbar(1, 2, 4), hbar(0, 2, 4), hbar(3, 2, 4)
    ('██  ', '    ', '████')
    """
    if width <= 0 or scale <= 0:
        return ""
    eighths = max(0, min(width * 8, round(value / scale * width * 8)))
    full, part = divmod(eighths, 8)
    return ("█" * full + (H_BLOCKS[part] if part else "")).ljust(width)
