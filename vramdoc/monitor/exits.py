"""How a recorded process ends: its uncaught exception, and SIGTERM, seen by the recorder.

- **Exceptions.** A Trainer callback never sees an exception (``CallbackHandler`` only calls
  events), so :class:`~vramdoc.monitor.callback.VramdocCallback` wraps the trainer instance's
  ``training_step`` and the optimizer's ``step`` (where OOMs and NaN errors are raised) and
  records what passes through before re-raising it. Anything else that ends the script
  uncaught is read at interpreter exit from ``sys.last_exc`` / ``sys.last_value``, which the
  interpreter sets for an uncaught exception before it calls any ``sys.excepthook``
  (``PyErr_PrintEx``, see the ``sys`` docs): no hook is installed, so there is nothing to chain
  and nothing another library's hook can displace.
- **SIGTERM** (a scheduler's cancel, ``kill``, a container stop). Python's default is to die
  without running ``atexit``. The recorder installs a handler from the main thread that writes
  the ``end`` event (reason ``interrupted``, the signal's name) and then does what was there
  before: calls the previous Python handler, or restores the default action and re-sends the
  signal, so the process still dies by SIGTERM with the usual exit status. A SIGTERM the process
  ignored (``SIG_IGN``) stays ignored and unrecorded.
- **SIGKILL** cannot be caught: the log simply stops; :mod:`vramdoc.monitor.outcome` tells a
  dead writer from a live one.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

MESSAGE_MAX = 2000  # characters of an exception's message kept in the log


def error_record(exc: BaseException, step: int | None) -> dict[str, Any]:
    """``{"type", "message", "step"}`` of an exception, for a note or an end event."""
    try:
        message = str(exc)
    except Exception:  # noqa: BLE001 - a broken __str__ must not hide the crash
        message = "<message unavailable>"
    if len(message) > MESSAGE_MAX:
        message = message[:MESSAGE_MAX - 3] + "..."
    out: dict[str, Any] = {"type": type(exc).__name__, "message": message}
    if step is not None:
        out["step"] = step
    return out


def current_uncaught() -> BaseException | None:
    """The exception the interpreter is exiting with (after it printed it), if any."""
    exc = getattr(sys, "last_exc", None)  # Python 3.12+
    if exc is None:
        exc = getattr(sys, "last_value", None)
    return exc if isinstance(exc, BaseException) else None


class SigtermChain:
    """A SIGTERM handler that calls ``on_signal(name)`` first, then the previous behaviour."""

    def __init__(self, on_signal: Callable[[str], None],
                 on_default: Callable[[str], None]) -> None:
        self._on_signal = on_signal
        self._on_default = on_default
        self._previous: Any = None
        self.installed = False

    def install(self) -> bool:
        """Install from the main thread; False (nothing done) elsewhere or when ignored."""
        if threading.current_thread() is not threading.main_thread():
            return False
        try:
            previous = signal.getsignal(signal.SIGTERM)
            if previous is signal.SIG_IGN or previous is None:  # ignored, or set outside Python
                return False
            self._previous = previous
            signal.signal(signal.SIGTERM, self._handle)
        except (ValueError, OSError, AttributeError):
            return False
        self.installed = True
        return True

    def uninstall(self) -> None:
        """Put the previous handler back, if ours is still the one installed."""
        if not self.installed:
            return
        self.installed = False
        try:
            if signal.getsignal(signal.SIGTERM) == self._handle:
                signal.signal(signal.SIGTERM, self._previous)
        except (ValueError, OSError):  # not the main thread: leave it; it chains anyway
            pass

    def _handle(self, signum: int, frame: Any) -> None:
        name = signal.Signals(signum).name
        previous = self._previous
        if callable(previous):
            try:
                self._on_signal(name)
            finally:
                previous(signum, frame)
            return
        try:
            self._on_default(name)  # the process is about to die: close the log now
        finally:
            self.uninstall()
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
