"""Widgets of the watch: each displays the view it is given and nothing else.

No widget reads files, follows runs or evaluates rules; the screen's worker does that and
calls ``show(...)``. Colours come from component classes styled in ``watch.tcss``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from rich.style import Style
from rich.text import Text
from textual.widget import Widget

from vramdoc.monitor.run import Alert
from vramdoc.tui.render import ChartStyles, hbar, render_chart
from vramdoc.tui.views import ChartView, GpuView, MemoryView, RunBarView
from vramdoc.units import format_bytes

SEVERITY_ICON = {"error": "✖", "warning": "▲", "info": "●"}


class _Display(Widget):
    """A widget that renders from a view set by ``show`` (and refreshes on it)."""

    view: Any = None

    def show(self, view: Any) -> None:
        self.view = view
        # layout too: a panel of ``height: auto`` (the memory panel) changes its number of
        # lines with its view, and a plain refresh repaints it at its old height (a run's
        # plan lines then stayed hidden behind the one-line "waiting" size until the next
        # layout; seen as a blank memory panel in the snapshot tests)
        self.refresh(layout=True)

    def style_of(self, name: str) -> Style:
        return self.get_component_rich_style(name, partial=True)


class RunBar(_Display):
    """One line: which run, what model and device, which step, live/ended/paused."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "runbar--title", "runbar--detail", "runbar--status", "runbar--paused"}
    paused = False

    def set_paused(self, paused: bool, pending: int = 0) -> None:
        self.paused, self.pending = paused, pending
        self.refresh()

    def render(self) -> Text:
        v: RunBarView | None = self.view
        out = Text(no_wrap=True, overflow="ellipsis")
        if v is None:
            return out
        left = Text(" vramdoc watch ", self.style_of("runbar--title"))
        left.append(f" {v.title}  ", self.style_of("runbar--title"))
        left.append(v.detail, self.style_of("runbar--detail"))
        right = Text()
        if v.step is not None:
            total = f"/{v.max_steps}" if v.max_steps and v.max_steps > 0 else ""
            right.append(f"step {v.step}{total}  ", self.style_of("runbar--detail"))
        right.append(v.status_text, self.style_of("runbar--status"))
        if self.paused:
            more = f" ({self.pending} new)" if getattr(self, "pending", 0) else ""
            right.append(f"  ⏸ PAUSED{more} ", self.style_of("runbar--paused"))
        room = self.size.width - right.cell_len - 2
        if left.cell_len > room:  # the step and status matter more than the model's name
            left.truncate(max(0, room), overflow="ellipsis")
        gap = max(1, self.size.width - left.cell_len - right.cell_len - 1)
        out.append_text(left)
        out.append(" " * gap)
        out.append_text(right)
        return out


class Chart(_Display):
    """A per-step chart of one series (see :func:`vramdoc.tui.render.render_chart`)."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "chart--bar", "chart--nan", "chart--ref", "chart--marker", "chart--axis",
        "chart--title"}
    marker_step: int | None = None

    def set_marker(self, step: int | None) -> None:
        if step != self.marker_step:
            self.marker_step = step
            self.refresh()

    def render(self) -> Text:
        v: ChartView | None = self.view
        if v is None:
            return Text(" waiting for data", self.style_of("chart--axis"))
        styles = ChartStyles(
            bar=self.style_of("chart--bar"), nan=self.style_of("chart--nan"),
            ref=self.style_of("chart--ref"), marker=self.style_of("chart--marker"),
            axis=self.style_of("chart--axis"), title=self.style_of("chart--title"))
        return render_chart(v, self.size.width, self.size.height, styles, self.marker_step)


LABEL_W = 18
VALUE_W = 10


class MemoryPanel(_Display):
    """The plan and the run's measured memory on the GPU's scale, and the plan's breakdown.

    Totals are drawn against the GPU limit (how full the card is); the breakdown is drawn
    against the plan's peak (what the peak is made of), so small models stay readable.
    """

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "memory--plan", "memory--measured", "memory--label", "memory--note", "memory--over",
        "memory--head", "memory--rule"}

    def render(self) -> Text:
        v: MemoryView | None = self.view
        out = Text(no_wrap=True, overflow="crop")
        if v is None:
            return out
        if not v.started:
            out.append(f" {v.note}", self.style_of("memory--note"))
            return out
        width = self.size.width
        bar_w = max(1, width - LABEL_W - VALUE_W - 8)
        label_st = self.style_of("memory--label")
        head = self.style_of("memory--head")
        note_st = self.style_of("memory--note")
        totals = [b or 0 for _, b in v.measured]
        totals += [v.plan_peak_bytes or 0, v.plan_reserved_bytes or 0, v.plan_device_bytes or 0]
        limit_scale = v.limit_bytes or max(totals + [1])

        def row(label: str, value: int | None, style: Style, scale: float,
                pct_of: int | None) -> None:
            out.append(f" {label[:LABEL_W - 1]:<{LABEL_W - 1}}", label_st)
            if value is None:
                out.append(" " * bar_w + " " + "-".rjust(VALUE_W) + "\n", label_st)
                return
            over = v.limit_bytes is not None and value > v.limit_bytes
            out.append(hbar(value, scale, bar_w), self.style_of("memory--over") if over else style)
            out.append(" " + format_bytes(value).rjust(VALUE_W), label_st)
            if pct_of:
                out.append(f" {value / pct_of:>4.0%}", label_st)
            out.append("\n")

        def section(title: str) -> None:
            out.append(f" {title} ", head)
            out.append("─" * max(0, width - len(title) - 3) + "\n", self.style_of("memory--rule"))

        if v.limit_bytes:
            out.append(f" {v.limit_label}", head)
            out.append(format_bytes(v.limit_bytes).rjust(max(1, width - len(v.limit_label) - 2))
                       + "\n", head)
        else:
            out.append(" GPU limit unknown: no device, no GPU in the plan\n", note_st)
        plan_st = self.style_of("memory--plan")
        pct = v.limit_bytes
        if v.plan_peak_bytes:
            section("plan" + (f" · peak at {v.plan_phase}" if v.plan_phase else ""))
            row("peak allocated", v.plan_peak_bytes, plan_st, limit_scale, pct)
            if v.plan_reserved_bytes:
                row("peak reserved", v.plan_reserved_bytes, plan_st, limit_scale, pct)
            if v.plan_device_bytes:
                row("device (smi)", v.plan_device_bytes, plan_st, limit_scale, pct)
        section("measured")
        for label, value in v.measured:
            row(label, value, self.style_of("memory--measured"), limit_scale, pct)
        if v.note:
            out.append(f" {v.note}\n", note_st)
        measured_peak = v.measured[0][1] if v.measured else None
        if v.plan_peak_bytes and measured_peak:
            out.append(f" measured / plan peak allocated: {measured_peak / v.plan_peak_bytes:.2f}x"
                       "\n", note_st)
        if not v.plan_peak_bytes:
            out.append(" no plan: VramdocCallback(run_dir, plan=\"plan.json\")\n", note_st)
        elif v.components:
            section("plan breakdown · share of its peak")
            for name, value in v.components:
                row(name.replace("_", " "), value, plan_st, v.plan_peak_bytes, v.plan_peak_bytes)
        out.rstrip()
        return out


class GpuPanel(_Display):
    """The device as NVML sees it: utilisation, memory, temperature, power."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {"gpu--bar", "gpu--label", "gpu--note", "gpu--hot"}

    def render(self) -> Text:
        v: GpuView | None = self.view
        out = Text(no_wrap=True, overflow="crop")
        if v is None:
            return out
        label = self.style_of("gpu--label")
        if v.name is None:
            out.append(f" {v.note}", self.style_of("gpu--note"))
            return out
        bar_w = max(4, self.size.width - 22)
        out.append(f" {v.name}\n", label)
        if v.util_pct is not None:
            out.append(" util ", label)
            out.append(hbar(v.util_pct, 100, bar_w), self.style_of("gpu--bar"))
            out.append(f" {v.util_pct:4.0f}%\n", label)
        if v.used_bytes is not None and v.total_bytes:
            out.append(" mem  ", label)
            out.append(hbar(v.used_bytes, v.total_bytes, bar_w), self.style_of("gpu--bar"))
            out.append(f" {v.used_bytes / v.total_bytes * 100:4.0f}%\n", label)
            out.append(f"      {format_bytes(v.used_bytes)} of {format_bytes(v.total_bytes)}\n",
                       label)
        bits = []
        if v.temp_c is not None:
            bits.append((f"{v.temp_c:.0f} °C", v.temp_c >= 85))
        if v.power_w is not None:
            bits.append((f"{v.power_w:.0f} W", False))
        for i, (text, hot) in enumerate(bits):
            out.append(" " if i == 0 else "  ·  ", label)
            out.append(text, self.style_of("gpu--hot") if hot else label)
        if v.note:
            out.append(f"\n {v.note}", self.style_of("gpu--note"))
        out.rstrip()
        return out


class AlertList(_Display):
    """Alert episodes, newest last, with the selected one highlighted."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "alert--error", "alert--warning", "alert--info", "alert--selected", "alert--dim"}
    selected: int | None = None
    empty_text = "no alerts"

    def show_alerts(self, alerts: tuple[Alert, ...], selected: int | None,
                    empty_text: str) -> None:
        self.view, self.selected, self.empty_text = alerts, selected, empty_text
        self.refresh()

    def render(self) -> Text:
        alerts: tuple[Alert, ...] = self.view or ()
        out = Text(no_wrap=True, overflow="ellipsis")
        if not alerts:
            out.append(f" {self.empty_text}", self.style_of("alert--dim"))
            return out
        rows = max(1, self.size.height)
        sel = self.selected if self.selected is not None else len(alerts) - 1
        start = min(max(0, sel - rows // 2), max(0, len(alerts) - rows))
        for i in range(start, min(len(alerts), start + rows)):
            a = alerts[i]
            st = self.style_of(f"alert--{a.severity}")
            line = Text()
            line.append(f" {SEVERITY_ICON.get(a.severity, '●')} {a.code} ", st)
            line.append(f"{a.name:<22} ", st)
            count = f" ×{a.count}" if a.count > 1 else ""
            line.append(f"{a.steps_text + count:<16} ", self.style_of("alert--dim"))
            line.append(a.message)
            if i == self.selected:
                line.stylize(self.style_of("alert--selected"))
            if i > start:
                out.append("\n")
            out.append_text(line)
        return out


class AlertDetail(_Display):
    """The selected alert: its message, the fix and why."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {"detail--head", "detail--fix", "detail--why"}

    def render(self) -> Text:
        a: Alert | None = self.view
        out = Text()
        if a is None:
            out.append("n / N step through alerts · ? help", self.style_of("detail--why"))
            return out
        out.append(f"{a.code} {a.name} ({a.kind}, {a.steps_text}): ",
                   self.style_of("detail--head"))
        out.append(a.message + "\n")
        out.append("fix: ", self.style_of("detail--fix"))
        out.append(a.fix + "\n")
        out.append("why: ", self.style_of("detail--why"))
        out.append(" ".join(a.why.split()), self.style_of("detail--why"))
        return out

