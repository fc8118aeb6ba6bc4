"""The event log's writer: one line per event, flushed as it is written, off the training thread.

Encoding an event and flushing it costs some 20-40 microseconds of the training thread's time
on a busy CPU. A background thread takes that work, as TensorBoard's ``EventFileWriter`` does
with its ``_AsyncWriter`` (tensorboard/summary/writer/event_file_writer.py). The hand-over is a
``deque.append`` (atomic under the GIL, no lock): a ``queue.Queue.put`` measured 20 us per call
inside a CPU training loop here, since its condition variable wakes the writer with a futex
call every time. The writer polls every :data:`POLL_S` seconds and flushes after every line,
so a step's line reaches the OS within that time; an interpreter exit (normal, or after an
exception) drains what is pending first (atexit), and a hard kill loses at most the events of
the last poll interval.
"""

from __future__ import annotations

import atexit
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from vramdoc.monitor.schema import encode_line

POLL_S = 0.02


def _drain_at_exit(ref: weakref.ref[LineWriter]) -> None:
    writer = ref()
    if writer is not None:
        writer.close()


class LineWriter:
    """Appends events (dicts) to ``path`` as JSON lines.

    Args:
        path: the file; opened in append mode (created with its directory by the caller).
        on_error: called with (where, exception) for every write error; never raises itself.
        background: write from a daemon thread (default) or on the caller's thread.
    """

    def __init__(self, path: Path, on_error: Callable[[str, BaseException], None],
                 background: bool = True) -> None:
        self.path = path
        self._on_error = on_error
        self._file: TextIO | None = open(path, "a", encoding="utf-8")  # noqa: SIM115
        self._closed = False
        self._pending: deque[dict[str, Any]] = deque()
        self._queued = 0  # events handed over (by the producer thread)
        self._done = 0  # events written or dropped (by the writer thread)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if background:
            self._thread = threading.Thread(target=self._run, name="vramdoc-writer", daemon=True)
            self._thread.start()
            atexit.register(_drain_at_exit, weakref.ref(self))

    def put(self, event: dict[str, Any]) -> None:
        """Queue (or write) one event."""
        if self._closed:
            return
        if self._thread is not None:
            self._queued += 1
            self._pending.append(event)
        else:
            self._write(event)

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every queued event is written; False on timeout."""
        if self._thread is None:
            return True
        deadline = time.monotonic() + timeout
        while self._done < self._queued:
            if time.monotonic() > deadline or not self._thread.is_alive():
                return False
            time.sleep(0.001)
        return True

    def close(self, timeout: float = 5.0) -> None:
        """Write what is queued, then close the file. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        if self._thread is not None:
            self._stop.set()
            self._thread.join(timeout)
        if self._file is not None:
            try:
                self._file.close()
            except OSError as exc:
                self._on_error("close", exc)
            self._file = None

    def _write(self, event: dict[str, Any]) -> None:
        if self._file is None:
            return
        try:
            self._file.write(encode_line(event))
            self._file.flush()
        except Exception as exc:  # noqa: BLE001 - a full disk must not stop training
            self._on_error("write", exc)

    def _drain(self) -> None:
        while self._pending:
            event = self._pending.popleft()
            self._write(event)
            self._done += 1

    def _run(self) -> None:
        while not self._stop.wait(POLL_S):
            self._drain()
        self._drain()  # what came in before close()
