"""Following an event log as it grows (``tail -f`` that understands the format).

The follower copes with what a live or crashed run leaves behind:

- no file yet (the run has not started): status ``waiting``, poll again later;
- a last line without its newline (the writer is mid-write, or crashed mid-line): kept in a
  buffer until the rest arrives; on :meth:`Follower.finish` it counts as ``truncated``;
- lines that are not JSON objects of a known kind: counted in ``corrupt`` and skipped; a
  "line" longer than :data:`MAX_LINE_BYTES` (binary junk without newlines) is dropped as it
  arrives, so memory stays bounded;
- lines of another schema version: counted in ``foreign`` and skipped; ``status`` says which
  version the file has and which this vramdoc reads;
- JSON objects whose known fields have the wrong type (``"step": "x"``): checked once here
  (:func:`vramdoc.monitor.events.check_event`), counted in ``invalid`` and skipped, the first
  problem kept with its line number for the message;
- a file that shrank or was replaced (same path, new run): read again from the start;
- a finished run: every line is replayed, then status ``ended``.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from itertools import repeat
from pathlib import Path
from typing import Any

from vramdoc.monitor.events import check_event
from vramdoc.monitor.schema import EVENTS_FILE, KINDS, SCHEMA_VERSION

# Bytes read per poll at most, so a huge finished log replays in slices and a UI stays live.
CHUNK_BYTES = 4 * 2**20
# The longest line kept; a header with a large plan is some kilobytes.
MAX_LINE_BYTES = 16 * 2**20
_HEADER_MARK = re.compile(rb'"kind"\s*:\s*"header"')
# poll_runs: bytes per read (a run of ~26,000 of the recorder's step lines), and the shortest
# run of step lines decoded and taken in at once (shorter ones go line by line)
RUN_CHUNK_BYTES = 16 * 2**20
MIN_RUN = 64
_STEP_START = b'{"v":1,"kind":"step"'


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
    invalid: int = 0
    first_invalid: str = ""
    oversized: int = 0
    line_no: int = 0  # complete lines read so far (skipped ones included)
    resets: int = 0
    status: FollowerStatus = FollowerStatus.WAITING
    finished: bool = False  # finish() was called: no more data is expected
    # Decode the recorder's plain step lines with msgspec (vramdoc.monitor.fastdecode); every
    # other line, and all of them when False, goes through _decode (json + check_event).
    fast: bool = True
    _buffer: bytes = b""
    _inode: int | None = None
    _dropping: bool = False  # inside an over-long line: drop bytes up to its newline

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
        return ", ".join(parts + self.problems())

    def problems(self) -> list[str]:
        """What was skipped and why, one phrase each (empty for a clean file)."""
        parts = []
        if self.corrupt:
            parts.append(f"{self.corrupt} corrupt line(s) skipped")
        if self.oversized:
            parts.append(f"{self.oversized} line(s) over {MAX_LINE_BYTES // 2**20} MiB skipped")
        if self.invalid:
            parts.append(f"{self.invalid} line(s) with wrong types skipped "
                         f"(first: {self.first_invalid})")
        if self.foreign:
            parts.append(f"{self.foreign} line(s) of schema v{self.foreign_version!r:.20} "
                         "skipped")
        if self.truncated:
            parts.append("last line truncated")
        return parts

    def skip_to_last_session(self, chunk: int = 8 * 2**20) -> int:
        """Start reading at the latest session's header; return how many sessions come before.

        One pass over the file looks for header lines by their bytes (``"kind":"header"``),
        then each candidate line is decoded to make sure it is a header of this schema (a
        string or a nested object cannot fake it, and a false candidate is simply not
        counted). Nothing is skipped when no header is found.
        """
        if self.offset or not self.path.is_file():
            return 0
        starts: list[int] = []
        try:
            with open(self.path, "rb") as fh:
                pos, tail = 0, b""
                while True:
                    data = fh.read(chunk)
                    if not data:
                        break
                    # a mark cut by the chunk boundary: in the seam (the last 64 bytes
                    # before it and the first ones after), without copying the chunk
                    seam = tail + data[:64]
                    found = [pos - len(tail) + m for m in _header_marks(seam)]
                    found += [pos + m for m in _header_marks(data)]
                    last = starts[-1] if starts else -1  # the seam's marks found before
                    starts.extend(m for m in sorted(set(found)) if m > last)
                    tail = data[-64:] if len(data) >= 64 else (tail + data)[-64:]
                    pos += len(data)
                headers: list[int] = []
                for mark in starts:
                    line_start = self._line_start(fh, mark)
                    if (not headers or headers[-1] != line_start) and \
                            self._is_header_line(fh, line_start):
                        headers.append(line_start)
                if not headers:
                    return 0
                self.offset = headers[-1]
                # the lines before it, counted only now: nothing to count when the latest
                # session starts the file (one long run, the usual case)
                fh.seek(0)
                left, count = self.offset, 0
                while left > 0:
                    data = fh.read(min(chunk, left))
                    if not data:
                        break
                    count += data.count(b"\n")
                    left -= len(data)
                self.line_no = count
        except OSError:
            return 0
        return len(headers) - 1

    @staticmethod
    def _line_start(fh: object, pos: int) -> int:
        """Offset just after the newline before ``pos`` (0 at the file's start)."""
        back = 0
        while pos > 0:
            step = min(pos, 65536)
            fh.seek(pos - step)  # type: ignore[attr-defined]
            data = fh.read(step)  # type: ignore[attr-defined]
            nl = data.rfind(b"\n")
            if nl >= 0:
                return pos - step + nl + 1
            pos -= step
            back += step
            if back > MAX_LINE_BYTES:
                return -1
        return 0

    def _is_header_line(self, fh: object, start: int) -> bool:
        if start < 0:
            return False
        fh.seek(start)  # type: ignore[attr-defined]
        line = fh.readline(MAX_LINE_BYTES)  # type: ignore[attr-defined]
        try:
            event = json.loads(line)
        except (UnicodeDecodeError, ValueError, RecursionError):
            return False
        return (isinstance(event, dict) and event.get("kind") == "header"
                and type(event.get("v")) is int and event.get("v") == SCHEMA_VERSION
                and check_event(event) is None)

    def poll(self, max_bytes: int = CHUNK_BYTES) -> list[dict[str, Any]]:
        """Events completed since the last poll (possibly none). Never raises on bad data."""
        lines = self._read_lines(max_bytes)
        events: list[dict[str, Any]] = []
        if lines:
            self._decode_lines(lines, events)
        return events

    def poll_runs(self, max_bytes: int = RUN_CHUNK_BYTES) -> list[Any]:
        """:meth:`poll`, with runs of the recorder's plain step lines decoded at once.

        Returns events and runs (one per stretch of at least :data:`MIN_RUN` consecutive step
        lines that all take the fast path), in file order: a
        :class:`~vramdoc.monitor.fastdecode.ColumnRun` (the lines read straight into numpy
        columns) where numpy is there and every line has the recorder's six ``mem`` figures,
        else a :class:`~vramdoc.monitor.fastdecode.StepRun`;
        :meth:`RunState.feed <vramdoc.monitor.run.RunState.feed>` takes all three. A run
        with any line the fast path refuses is read line by line, exactly as :meth:`poll`
        reads it, so the counts and messages are the same.
        """
        block = self._read_block(max_bytes)
        out: list[Any] = []
        if not block:
            return out
        runs = _run_decoder() if self.fast else None
        if runs is None:
            self._decode_lines(bytes(block).split(b"\n")[:-1], out)
            return out
        scan = _line_scanner()
        if scan is not None:
            self._poll_columns(block, scan, runs[0], out)
            return out
        lines = bytes(block).split(b"\n")
        lines.pop()  # b"": the block ends with its last line's newline
        decode_run = runs[0]
        if len(lines) >= MIN_RUN and _all_run_lines(lines):  # checked in C
            try:
                run = decode_run(lines)
            except ValueError:
                pass
            else:
                self.line_no += len(lines)
                return [run]
        start = 0  # first line not yet decoded
        i, n = 0, len(lines)
        while i < n:
            j = i
            while j < n and _is_run_line(lines[j]):
                j += 1
            if j - i >= MIN_RUN:
                try:
                    run = decode_run(lines[i:j])
                except ValueError:
                    pass
                else:
                    self._decode_lines(lines[start:i], out)
                    self.line_no += j - i
                    out.append(run)
                    start = j
            i = j + 1
        self._decode_lines(lines[start:], out)
        return out

    def _poll_columns(self, block: Any, scan: Any, decode_run: Any, out: list[Any]) -> None:
        """poll_runs with numpy: the lines' bounds and which lines may join a run found over
        the whole block at once; each stretch of at least MIN_RUN such lines becomes a
        ColumnRun (else a StepRun, else it is read line by line), the other lines are read
        one by one."""
        from vramdoc.monitor.fastdecode import column_run

        starts, ends, ok = scan(block)
        n = len(starts)

        def lines(a: int, b: int) -> list[bytes]:
            if a >= b:
                return []
            lo = int(starts[a])
            return bytes(block[lo:int(ends[b - 1])]).split(b"\n")

        done = 0  # lines before this one have been decoded
        for a, b in _stretches(ok, MIN_RUN):
            try:
                run: Any = column_run(block, starts[a:b], ends[a:b])
            except ValueError:
                try:
                    run = decode_run(lines(a, b))
                except ValueError:
                    continue
            self._decode_lines(lines(done, a), out)
            self.line_no += b - a
            out.append(run)
            done = b
        self._decode_lines(lines(done, n), out)

    def _read_block(self, max_bytes: int) -> Any:
        """The complete lines that arrived since the last read, each with its newline, as one
        bytes-like object (an over-long line dropped); b"" when none is complete."""
        lines = self._read_lines(max_bytes, joined=True)
        return lines[0] if lines else b""

    def _read_lines(self, max_bytes: int, joined: bool = False) -> list[bytes]:
        """The complete lines that arrived since the last read (an over-long one dropped);
        ``joined``: as one bytes object (each line with its newline) in a list, or []."""
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
        if joined and not self._dropping:
            return self._read_joined(min(max_bytes, st.st_size - self.offset))
        try:
            with open(self.path, "rb") as fh:
                fh.seek(self.offset)
                data = fh.read(max_bytes)
        except OSError:  # a directory, a permission change, a vanished file: try again later
            return []
        self.offset += len(data)
        if self._dropping:  # the rest of an over-long line
            nl = data.find(b"\n")
            if nl < 0:
                return []
            data = data[nl + 1:]
            self._dropping = False
            self.line_no += 1
        data = self._buffer + data if self._buffer else data
        if joined:
            cut = data.rfind(b"\n") + 1
            lines, self._buffer = ([data[:cut]] if cut else []), data[cut:]
        else:
            lines = data.split(b"\n")
            self._buffer = lines.pop()  # b"" when data ended with a newline
        if len(self._buffer) > MAX_LINE_BYTES:
            self._buffer = b""
            self._dropping = True
            self.oversized += 1
        return lines

    def _read_joined(self, size: int) -> list[Any]:
        """``_read_lines(joined=True)`` without copying the slice: the held-back start of a
        line and the new bytes are read into one buffer, and the complete lines are handed
        out as a memoryview of it."""
        held = self._buffer
        buf = bytearray(len(held) + size)
        buf[:len(held)] = held
        try:
            with open(self.path, "rb") as fh:
                fh.seek(self.offset)
                got = fh.readinto(memoryview(buf)[len(held):])
        except OSError:  # a directory, a permission change, a vanished file: try again later
            return []
        self.offset += got
        end = len(held) + got
        cut = buf.rfind(b"\n", 0, end) + 1
        self._buffer = bytes(buf[cut:end])
        if len(self._buffer) > MAX_LINE_BYTES:
            self._buffer = b""
            self._dropping = True
            self.oversized += 1
        return [memoryview(buf)[:cut]] if cut else []

    def _decode_lines(self, lines: list[bytes], events: list[Any]) -> None:
        """Decode ``lines`` one by one onto ``events`` (the fast path first, when on)."""
        fast = _fast_decoder() if self.fast else None
        for raw in lines:
            self.line_no += 1
            if fast is not None and len(raw) <= MAX_LINE_BYTES:
                try:
                    events.append(fast(raw))
                    continue
                except ValueError:  # not a plain step line: the plain path decides
                    pass
            event = self._decode(raw)
            if event is not None:
                events.append(event)

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
        self._dropping = False
        if not raw.strip():
            return []
        self.line_no += 1
        corrupt = self.corrupt
        event = self._decode(raw)
        if event is None and self.corrupt > corrupt:
            self.corrupt = corrupt  # an unfinished line is truncated, not corrupt
            self.truncated += 1
        return [event] if event is not None else []

    def _reset(self) -> None:
        self.offset = 0
        self._buffer = b""
        self._dropping = False
        self.resets += 1
        self.status = FollowerStatus.WAITING

    def _decode(self, raw: bytes) -> dict[str, Any] | None:
        raw = raw.strip()
        if not raw:
            return None
        if len(raw) > MAX_LINE_BYTES:
            self.oversized += 1
            return None
        if raw.startswith(b"\xef\xbb\xbf"):  # a UTF-8 byte-order mark (an editor's save)
            raw = raw[3:]
        try:
            event = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            self.corrupt += 1
            return None
        if b"\\u" in raw and not _encodable(event):  # a lone surrogate escape ("\ud800")
            self.corrupt += 1
            return None
        if not isinstance(event, dict) or event.get("kind") not in KINDS:
            self.corrupt += 1
            return None
        version = event.get("v")
        if type(version) is not int or version != SCHEMA_VERSION:
            self.foreign += 1
            self.foreign_version = version
            if event.get("kind") == "header" or self.status is FollowerStatus.FOREIGN:
                self.status = FollowerStatus.FOREIGN
            return None
        problem = check_event(event)
        if problem is not None:
            self.invalid += 1
            if not self.first_invalid:
                self.first_invalid = f"line {self.line_no}: {problem}"
            return None
        if event["kind"] == "header":
            self.status = FollowerStatus.LIVE
        elif event["kind"] == "end":
            self.status = FollowerStatus.ENDED
        return event


def _fast_decoder() -> Any:
    from vramdoc.monitor.fastdecode import step_decoder

    return step_decoder()


def _run_decoder() -> Any:
    from vramdoc.monitor.fastdecode import run_decoder

    return run_decoder()


_SPACE = b" \t\n\r\f\v"  # what ``\s`` matches in a bytes pattern


def _header_hits(block: bytes) -> list[int]:
    """Every place ``"header"`` starts in ``block`` (overlapping ones too)."""
    try:
        import numpy as np
    except ImportError:
        np = None
    if np is None or len(block) < 4096:
        out, at = [], block.find(b'"header"')
        while at >= 0:
            out.append(at)
            at = block.find(b'"header"', at + 1)
        return out
    # numpy: the few 'h' bytes of a log (one a step line), then the 8 bytes before each as
    # one word (a strided view, no copy); bytes.find stops at every '"' of a JSON line
    arr = np.frombuffer(block, dtype=np.uint8)
    h = np.flatnonzero(arr == 104)
    h = h[(h >= 1) & (h + 7 <= len(arr))] - 1
    words = np.ndarray(shape=(len(arr) - 7,), dtype="<u8", buffer=block, strides=(1,))
    return h[words[h] == _HEADER_WORD].tolist()


_HEADER_WORD = int.from_bytes(b'"header"', "little")


def _header_marks(block: bytes) -> list[int]:
    """Where ``_HEADER_MARK`` matches in ``block`` (the start of each ``"kind"``), found from
    the rare ``"header"`` backwards: a regular expression anchored on ``"kind"`` stops at
    every line of a log, this looks at the few places that can match."""
    out = []
    for at in _header_hits(block):
        p = at
        while p > 0 and block[p - 1] in _SPACE:
            p -= 1
        if p > 0 and block[p - 1] == 58:  # ':'
            p -= 1
            while p > 0 and block[p - 1] in _SPACE:
                p -= 1
            if block.endswith(b'"kind"', 0, p):
                out.append(p - 6)
    return out


def _line_scanner() -> Any:
    """``scan(block) -> (starts, ends, ok)``: where each line of a block of complete lines
    starts and ends (its newline), and which lines may join a run (:func:`_is_run_line`,
    stricter: ``}`` exactly last), found with numpy; None without numpy or msgspec."""
    if not _SCANNER:
        try:
            import numpy as np

            from vramdoc.monitor.fastdecode import column_run  # noqa: F401 - msgspec there
        except ImportError:
            _SCANNER.append(None)
        else:
            # the 20-byte start as three (overlapping) 8-byte words, compared at once
            words = [(k, int(np.frombuffer(_STEP_START[k:k + 8], dtype="<u8")[0]))
                     for k in (0, 8, len(_STEP_START) - 8)]

            def scan(block: Any) -> Any:
                arr = np.frombuffer(block, dtype=np.uint8)
                ends = np.flatnonzero(arr == 10)  # the block ends with a newline
                starts = np.empty_like(ends)
                if len(ends):
                    starts[0] = 0
                    starts[1:] = ends[:-1] + 1
                lengths = ends - starts
                ok = (lengths >= len(_STEP_START)) & (lengths <= MAX_LINE_BYTES)
                ok &= arr[np.maximum(ends - 1, 0)] == 125  # '}' last
                if len(arr) >= 8:
                    # unaligned 8-byte words at every byte (a strided view, no copy); a line
                    # too short to hold the start reads its neighbours' bytes: it is not ok
                    u64 = np.ndarray(shape=(len(arr) - 7,), dtype="<u8", buffer=block,
                                     strides=(1,))
                    for k, w in words:
                        ok &= u64[np.minimum(starts + k, len(arr) - 8)] == w
                else:
                    ok[:] = False
                return starts, ends, ok

            _SCANNER.append(scan)
    return _SCANNER[0]


_SCANNER: list[Any] = []


def _stretches(ok: Any, shortest: int) -> list[tuple[int, int]]:
    """``(first, end)`` of each run of True in ``ok`` at least ``shortest`` long."""
    import numpy as np

    edges = np.flatnonzero(np.diff(np.concatenate([[False], ok, [False]]).astype(np.int8)))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)
            if b - a >= shortest]


def _is_run_line(raw: bytes) -> bool:
    """A line that may join a run: the recorder's step-line start, one object, not too long."""
    return (raw.startswith(_STEP_START) and len(raw) <= MAX_LINE_BYTES
            and raw.rstrip(b" \t\r").endswith(b"}"))


def _all_run_lines(lines: list[bytes]) -> bool:
    """:func:`_is_run_line` for every line, with C loops (``map``) rather than Python ones."""
    return (all(map(bytes.startswith, lines, repeat(_STEP_START)))
            and all(map(bytes.endswith, lines, repeat(b"}")))
            and max(map(len, lines)) <= MAX_LINE_BYTES)


def _encodable(event: Any) -> bool:
    try:
        json.dumps(event, ensure_ascii=False).encode("utf-8")
    except (UnicodeEncodeError, ValueError, RecursionError):
        return False
    return True


def iter_events(run: str | Path) -> Iterator[dict[str, Any]]:
    """Every readable event of a run, once (no following)."""
    yield from Follower.for_run(run).read_all()
