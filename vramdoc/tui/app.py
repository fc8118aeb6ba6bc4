"""The watch app: ``make_app(run_dir, ...)`` builds it from data; ``vramdoc watch`` runs it."""

from __future__ import annotations

from pathlib import Path

from textual.app import App

from vramdoc.monitor.follower import Follower
from vramdoc.monitor.run import RunState
from vramdoc.tui.screens import WatchScreen


class WatchApp(App[None]):
    """Follows one run's event log and shows it (see :class:`WatchScreen`)."""

    CSS_PATH = "watch.tcss"
    TITLE = "vramdoc watch"
    ENABLE_COMMAND_PALETTE = False

    def __init__(self, follower: Follower, state: RunState, label: str, *, follow: bool = True,
                 poll_interval: float = 0.5) -> None:
        super().__init__()
        self.follower = follower
        self.state = state
        self.label = label
        self.follow = follow
        self.poll_interval = poll_interval

    def get_default_screen(self) -> WatchScreen:
        return WatchScreen(self.follower, self.state, self.label, follow=self.follow,
                           poll_interval=self.poll_interval)

    @property
    def watch_screen(self) -> WatchScreen:
        screen = self.screen_stack[0]
        assert isinstance(screen, WatchScreen)
        return screen


def make_app(run_dir: str | Path, *, follow: bool = True, poll_interval: float = 0.5,
             state: RunState | None = None, label: str | None = None) -> WatchApp:
    """Build the watch app for a run directory (or an events.jsonl file).

    Args:
        run_dir: the directory VramdocCallback / Recorder wrote to, or its events file.
        follow: keep reading as the file grows (live run); False reads to the end and stops.
        poll_interval: seconds between reads of a live file.
        state: a RunState to fill (default: one with the W rules loaded).
        label: the run's name in the title bar (default: the path as given).
    """
    from vramdoc.monitor.sources import open_follower

    follower = open_follower(run_dir)  # events.jsonl, or a tracker source found there
    return WatchApp(follower, state if state is not None else RunState.with_rules(),  # type: ignore[arg-type]
                    label or str(run_dir), follow=follow, poll_interval=poll_interval)
