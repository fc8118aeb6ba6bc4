"""Following an event log as it grows (``tail -f`` that understands the format).

The follower copes with what a live or crashed run leaves behind:

- no file yet (the run has not started): status ``waiting``, poll again later;
- a last line without its newline (the writer is mid-write, or crashed mid-line): kept in a
  buffer until the rest arrives; on :meth:`Follower.finish` it counts as ``truncated``;
- lines that are not JSON objects of a known kind: counted in ``corrupt`` and skipped;
- lines of another schema version: counted in ``foreign`` and skipped; ``status`` says which
  version the file has and which this vramdoc reads;
- a file that shrank or was replaced (same path, new run): read again from the start;
- a finished run: every line is replayed, then status ``ended``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from vramdoc.monitor.schema import EVENTS_FILE, KINDS, SCHEMA_VERSION

# Bytes read per poll at most, so a huge finished log replays in slices and a UI stays live.
CHUNK_BYTES = 4 * 2**20


class FollowerStatus(StrEnum):
    WAITING = "waiting"  # no file yet
    LIVE = "live"  # read up to the end; the run has not written its end event
    ENDED = "ended"  # the run's end event was read
    FOREIGN = "foreign"  # the file is of another schema version


def events_path(run: str | Path) -> Path:
    """``RUN_DIR/events.jsonl`` for a run directory; a file path is returned as is."""
    p = Path(run)
    return p / EVENTS_FILE if p.is_dir() or p.suffix != ".jsonl" else p


@dataclass
class Follower:
    """Reads new complete events from a growing JSON-lines file on each :meth:`poll`."""

    path: Path
    offset: int = 0
    corrupt: int = 0
    foreign: int = 0
    foreign_version: Any = None
    truncated: int = 0
    resets: int = 0
    status: FollowerStatus = FollowerStatus.WAITING
    finished: bool = False  # finish() was called: no more data is expected
    _buffer: bytes = b""
    _inode: int | None = None

    @classmethod
    def for_run(cls, run: str | Path) -> Follower:
        return cls(events_path(run))

    @property
    def pending_bytes(self) -> int:
        """Bytes of an incomplete last line held back until its newline arrives."""
        return len(self._buffer)

    def describe(self) -> str:
        """One line for people: what the follower sees."""
        if self.status is FollowerStatus.WAITING:
            return f"waiting for {self.path}"
        if self.status is FollowerStatus.FOREIGN:
            return (f"{self.path.name} is event schema v{self.foreign_version}; this vramdoc "
                    f"reads v{SCHEMA_VERSION} (pip install -U vramdoc, or record with this one)")
        parts = [self.status.value]
        if self.finished and self.status is FollowerStatus.LIVE:
            parts = ["no end event yet (still training, or stopped without closing)"]
        if self.corrupt:
            parts.append(f"{self.corrupt} corrupt line(s) skipped")
        if self.foreign:
            parts.append(f"{self.foreign} line(s) of schema v{self.foreign_version} skipped")
        if self.truncated:
            parts.append("last line truncated")
        return ", ".join(parts)

    def poll(self, max_bytes: int = CHUNK_BYTES) -> list[dict[str, Any]]:
        """Events completed since the last poll (possibly none). Never raises on bad data."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            if self.status is not FollowerStatus.WAITING and self.offset:
                self._reset()
            return []
        if self._inode is not None and (st.st_ino != self._inode or st.st_size < self.offset):
            self._reset()  # replaced or truncated: a new run in the same place
        self._inode = st.st_ino
        if self.status is FollowerStatus.WAITING:
            self.status = FollowerStatus.LIVE
        if st.st_size <= self.offset:
            return []
        with open(self.path, "rb") as fh:
            fh.seek(self.offset)
            data = fh.read(max_bytes)
        self.offset += len(data)
        data = self._buffer + data
        lines = data.split(b"\n")
        self._buffer = lines.pop()  # b"" when data ended with a newline
        events = []
        for raw in lines:
            event = self._decode(raw)
            if event is not None:
                events.append(event)
        return events

    def at_end(self) -> bool:
        """True when everything the file holds now has been read."""
        try:
            return os.stat(self.path).st_size <= self.offset
        except FileNotFoundError:
            return True

    def read_all(self) -> list[dict[str, Any]]:
        """Poll until the current end of the file (a finished run's replay), then finish."""
        events: list[dict[str, Any]] = []
        while True:
            events.extend(self.poll())
            if self.at_end():
                break
        events.extend(self.finish())
        return events

    def finish(self) -> list[dict[str, Any]]:
        """No more data will come: decode a held-back last line, or count it as truncated."""
        self.finished = True
        raw, self._buffer = self._buffer, b""
        if not raw.strip():
            return []
        corrupt = self.corrupt
        event = self._decode(raw)
        if event is None and self.corrupt > corrupt:
            self.corrupt = corrupt  # an unfinished line is truncated, not corrupt
            self.truncated += 1
        return [event] if event is not None else []

    def _reset(self) -> None:
        self.offset = 0
        self._buffer = b""
        self.resets += 1
        self.status = FollowerStatus.WAITING

    def _decode(self, raw: bytes) -> dict[str, Any] | None:
        raw = raw.strip()
        if not raw:
            return None
        try:
            event = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            self.corrupt += 1
            return None
        if not isinstance(event, dict) or event.get("kind") not in KINDS:
            self.corrupt += 1
            return None
        version = event.get("v")
        if version != SCHEMA_VERSION:
            self.foreign += 1
            self.foreign_version = version
            if event.get("kind") == "header" or self.status is FollowerStatus.FOREIGN:
                self.status = FollowerStatus.FOREIGN
            return None
        if event["kind"] == "header":
            self.status = FollowerStatus.LIVE
        elif event["kind"] == "end":
            self.status = FollowerStatus.ENDED
        return event


def iter_events(run: str | Path) -> Iterator[dict[str, Any]]:
    """Every readable event of a run, once (no following)."""
    yield from Follower.for_run(run).read_all()
