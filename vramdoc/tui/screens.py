"""Screens: the watch itself (following the run in a worker) and the help screen."""

from __future__ import annotations

import time
from typing import Any, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Footer, Static
from textual.worker import get_current_worker

from vramdoc.monitor.follower import Follower, FollowerStatus
from vramdoc.monitor.run import RunState
from vramdoc.tui.views import Snapshot, snapshot
from vramdoc.tui.widgets import AlertDetail, AlertList, Chart, GpuPanel, MemoryPanel, RunBar

REFRESH_S = 5.0  # seconds between redraws of a run that writes nothing
CHARTS = (("loss", "chart-loss"), ("grad_norm", "chart-grad"), ("memory", "chart-memory"),
          ("throughput", "chart-throughput"))


def _local_gpu() -> dict[str, Any] | None:
    """This machine's first GPU through vramdoc.hardware.nvml, or None (never raises)."""
    try:
        from vramdoc.hardware import nvml
        from vramdoc.monitor.sampling import gpu_record

        if not nvml.available():
            return None
        return gpu_record(nvml.device_info(0))
    except Exception:  # noqa: BLE001 - no module, no driver, no device
        return None


class WatchScreen(Screen[None]):
    """Memory against the plan, charts, GPU panel and alerts of one run."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "app.quit", "Quit"),
        Binding("p", "toggle_pause", "Pause"),
        Binding("n", "next_alert", "Next alert"),
        Binding("N", "previous_alert", "Prev alert", key_display="N"),
        Binding("question_mark,h,f1", "help", "Help", key_display="?"),
    ]

    def __init__(self, follower: Follower, state: RunState, label: str, *, follow: bool,
                 poll_interval: float) -> None:
        super().__init__()
        self.follower = follower
        self.state = state
        self.label = label
        self.follow = follow
        self.poll_interval = poll_interval
        self.paused = False
        self.current: Snapshot | None = None  # what the widgets show
        self.pending: Snapshot | None = None  # newer, held back while paused
        self.selected: int | None = None  # alert index; None = follow the newest
        self.done_reading = False

    def compose(self) -> ComposeResult:
        yield RunBar(id="runbar")
        with Horizontal(id="main"):
            with Vertical(id="side"):
                with VerticalScroll(id="memory-box"):
                    yield MemoryPanel(id="memory")
                yield GpuPanel(id="gpu")
            with Vertical(id="charts"):
                for _, wid in CHARTS:
                    yield Chart(id=wid)
        with Vertical(id="alerts"):
            yield AlertList(id="alert-list")
            yield AlertDetail(id="alert-detail")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#memory-box").border_title = "memory vs plan"
        self.query_one("#gpu").border_title = "GPU"
        self.query_one("#alerts").border_title = "alerts"
        self.apply(snapshot(self.state, self.follower, self.label))
        self.run_worker(self._follow, thread=True, exclusive=True, name="follow")

    # --- the worker: read, evaluate, build views (never touches widgets) -------------------
    def _follow(self) -> None:
        worker = get_current_worker()
        local_gpu = None
        last_status = None
        last_shown = 0.0
        if not self.follower.offset:  # a log of many runs: start at the latest one
            self.state.skipped_sessions = self.follower.skip_to_last_session()
        while not worker.is_cancelled:
            events = self.follower.poll()
            changed = self.state.feed(events)
            at_end = self.follower.at_end()
            if not self.follow and at_end:  # replay only: a held-back last line is final now
                changed = self.state.feed(self.follower.finish()) or changed
            if not self.state.latest_gpu and local_gpu is None and self.state.header:
                local_gpu = _local_gpu() or {}
            status = (self.follower.status, self.follower.corrupt, self.follower.truncated,
                      self.follower.invalid, self.follower.oversized)
            # A quiet run is redrawn now and then: its writer may have died since (the
            # status line then says so), which no new line will announce.
            stale = time.monotonic() - last_shown > REFRESH_S
            try:
                if changed or status != last_status or stale:
                    last_status = status
                    last_shown = time.monotonic()
                    snap = snapshot(self.state, self.follower, self.label,
                                    local_gpu=local_gpu or None)
                    self.app.call_from_thread(self.apply, snap)
                if not self.follow and at_end:
                    self.app.call_from_thread(self._finished_reading)
                    return
            except RuntimeError:  # the app is shutting down under us
                return
            if at_end or not events or self.follower.status is FollowerStatus.WAITING:
                time.sleep(self.poll_interval)

    def _finished_reading(self) -> None:
        self.done_reading = True

    # --- applying views (UI thread) --------------------------------------------------------
    def apply(self, snap: Snapshot) -> None:
        if self.paused and self.current is not None:
            self.pending = snap
            self.query_one(RunBar).set_paused(True, max(0, snap.steps - self.current.steps))
            return
        self.current = snap
        self.query_one(RunBar).show(snap.bar)
        self.query_one(MemoryPanel).show(snap.memory)
        self.query_one(GpuPanel).show(snap.gpu)
        for key, wid in CHARTS:
            self.query_one(f"#{wid}", Chart).show(snap.charts[key])
        self._show_alerts()

    def _show_alerts(self) -> None:
        snap = self.current
        if snap is None:
            return
        alerts = snap.alerts
        sel = self.selected
        if sel is not None and sel >= len(alerts):
            sel = self.selected = len(alerts) - 1 if alerts else None
        shown = sel if sel is not None else (len(alerts) - 1 if alerts else None)
        n_rules = len(self.state.rules)
        if snap.rules_error:
            empty = snap.rules_error
        elif snap.steps:
            empty = f"no alerts: {n_rules} rules checked every step (? lists them)"
        else:
            empty = "no alerts yet"
        self.query_one(AlertList).show_alerts(alerts, shown, empty)
        self.query_one(AlertDetail).show(alerts[shown] if shown is not None else None)
        box = self.query_one("#alerts")
        errors = sum(1 for a in alerts if a.severity == "error")
        box.border_title = f"alerts ({len(alerts)})" if alerts else "alerts"
        box.border_subtitle = (f"{shown + 1}/{len(alerts)} · n/N" if shown is not None else "")
        box.set_class(errors > 0, "-errors")
        marker = alerts[shown].first_step if shown is not None and self.selected is not None \
            else None
        for _, wid in CHARTS:
            self.query_one(f"#{wid}", Chart).set_marker(marker)

    # --- actions ---------------------------------------------------------------------------
    def action_toggle_pause(self) -> None:
        self.paused = not self.paused
        bar = self.query_one(RunBar)
        if self.paused:
            bar.set_paused(True, 0)
            self.notify("paused: the display is frozen, the run is still followed", timeout=3)
        else:
            bar.set_paused(False)
            if self.pending is not None:
                snap, self.pending = self.pending, None
                self.apply(snap)

    def _move(self, delta: int) -> None:
        alerts = self.current.alerts if self.current else ()
        if not alerts:
            self.notify("no alerts", timeout=2)
            return
        if self.selected is None:
            self.selected = 0 if delta > 0 else len(alerts) - 1
        else:
            self.selected = (self.selected + delta) % len(alerts)
        self._show_alerts()

    def action_next_alert(self) -> None:
        self._move(1)

    def action_previous_alert(self) -> None:
        self._move(-1)

    def action_help(self) -> None:
        self.app.push_screen(HelpScreen(self.BINDINGS, self.state.rules))


class HelpScreen(ModalScreen[None]):
    """Key bindings and the alert rules the watch checks."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,question_mark,h,f1", "app.pop_screen", "Close", key_display="esc"),
    ]

    def __init__(self, bindings: list[BindingType], rules: list[Any]) -> None:
        super().__init__()
        self.bindings_list = bindings
        self.rules = rules

    def compose(self) -> ComposeResult:
        lines = ["[b]Keys[/b]", ""]
        for b in self.bindings_list:
            if isinstance(b, Binding):
                keys = b.key_display or b.key.split(",")[0]
                lines.append(f"  [b]{keys:<6}[/b] {b.description}")
        lines += [f"  [b]{'esc':<6}[/b] close this help", "",
                  "Pause freezes the display; the run is still read, and the display",
                  "catches up when you resume. n / N select alerts; the selected alert's",
                  "first step is highlighted in every chart.", "",
                  "[b]Alert rules[/b] (rules/W*.yaml)", ""]
        for r in self.rules:
            lines.append(f"  [b]{r.code}[/b] {r.name:<22} {r.severity:<8} {r.kind}")
        if not self.rules:
            lines.append("  (no rules loaded)")
        with VerticalScroll(id="help-box"):
            yield Static("\n".join(lines), id="help-text", markup=True)

    def on_mount(self) -> None:
        self.query_one("#help-box").border_title = "help"
        self.query_one("#help-box").border_subtitle = "esc to close"
