"""The Textual watch (``vramdoc watch``). Importing this package needs textual.

``make_app`` builds the app from a run directory; screens follow the run in a worker;
widgets only display views (:mod:`vramdoc.tui.views`); all styling lives in ``watch.tcss``.
"""

from vramdoc.tui.app import WatchApp, make_app

__all__ = ["WatchApp", "make_app"]
