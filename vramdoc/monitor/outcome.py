"""How a run ended, or whether it still runs: one line for people, one state for programs.

A run that closed itself says so in its ``end`` event (finished, crashed with the exception,
interrupted by a signal). A run killed with SIGKILL, or whose machine died, writes nothing more;
the reader decides from what it can see, in this order:

1. the header names the writer's ``pid`` on this host (and its start time on Linux, so a reused
   pid is not mistaken for the writer): the process is alive -> ``running``; gone ->
   ``interrupted`` ("no end event; the process is gone");
2. otherwise (another host, or a log from before pids were recorded) the file's age: nothing
   written for :data:`STALE_AFTER_S` -> ``interrupted`` ("no end event; nothing written for
   ..."); a fresher file -> ``running`` ("no end event yet").

A run that writes nothing for longer than that (a very long evaluation on another host) reads
as interrupted until its next line arrives; the watch re-reads and corrects itself.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

STALE_AFTER_S = 30 * 60
MESSAGE_CHARS = 200  # of an exception's message in the one-line status


def process_start(pid: int) -> int | None:
    """Start time of ``pid`` in clock ticks after boot (Linux ``/proc``), None elsewhere."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        # Field 22; the command name (field 2) may hold spaces and parentheses: split after it.
        return int(stat.rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def this_host() -> str:
    try:
        return socket.gethostname()
    except OSError:
        return ""


def writer_alive(header: dict[str, Any] | None) -> bool | None:
    """Whether the process that wrote ``header`` still runs; None when this host cannot tell."""
    header = header or {}
    pid = header.get("pid")
    if os.name != "posix" or not isinstance(pid, int) or isinstance(pid, bool) or pid < 1:
        return None  # (on Windows os.kill(pid, 0) would terminate the process)
    if header.get("host") != this_host():
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    except (OSError, OverflowError):
        return None
    started = header.get("pid_start")
    if isinstance(started, int):
        now = process_start(pid)
        if now is not None and now != started:
            return False  # the pid was reused by another process
    return True


def _age_text(seconds: float) -> str:
    """
    >>> _age_text(42), _age_text(3 * 60 + 5), _age_text(2 * 3600 + 5 * 60), _age_text(3 * 86400)
    ('42 s', '3 min', '2 h 5 min', '3 days')
    """
    s = int(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min"
    if s < 2 * 86400:
        return f"{s // 3600} h {s % 3600 // 60} min"
    return f"{s // 86400} days"


# C0 and C1 control characters (terminal escapes included) shown as "?"; newlines kept.
_CONTROLS = {c: "?" for c in [*range(0, 32), *range(127, 160)] if c != 10}


def printable(text: Any) -> str:
    r"""Text from a log made safe for a terminal: no control characters, no lone surrogates.

    >>> printable("ok\x1b[2J") + printable(chr(0xD800)) + printable("line\nnext")
    'ok?[2J?line\nnext'
    """
    out = str(text).translate(_CONTROLS)
    try:
        out.encode("utf-8")
    except UnicodeEncodeError:
        out = out.encode("utf-8", "replace").decode("utf-8")
    return out


def short_message(text: Any) -> str:
    """The first line of an exception's message, cut to :data:`MESSAGE_CHARS`."""
    first = printable(text or "").strip().splitlines()
    line = first[0] if first else ""
    return line if len(line) <= MESSAGE_CHARS else line[:MESSAGE_CHARS - 3] + "..."


@dataclass(frozen=True)
class Outcome:
    """``state``: waiting | running | finished | crashed | interrupted | exited."""

    state: str
    text: str
    step: int | None = None
    error: dict[str, Any] | None = None
    signal: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"state": self.state, "text": self.text, "step": self.step,
                "error": self.error, "signal": self.signal}


def _error_text(error: dict[str, Any]) -> str:
    kind = printable(error.get("type") or "error")[:MESSAGE_CHARS]
    msg = short_message(error.get("message"))
    return f"{kind}: {msg}" if msg else str(kind)


def from_end(end: dict[str, Any], last_step: int | None,
             last_error: dict[str, Any] | None = None) -> Outcome:
    """The outcome an ``end`` event states (older free-text reasons included)."""
    reason = str(end.get("reason") or "finished")
    step = end.get("step") if isinstance(end.get("step"), int) else last_step
    error = end.get("error") if isinstance(end.get("error"), dict) else None
    signal = end.get("signal") if isinstance(end.get("signal"), str) else None
    if reason.startswith("error: ") and error is None:  # logs of vramdoc 0.1
        error = {"type": reason[len("error: "):], "message": ""}
        reason = "crashed"
    if reason == "crashed":
        error = error or last_error or {"type": "unknown error", "message": ""}
        at = error.get("step") if isinstance(error.get("step"), int) else (step or 0) + 1
        return Outcome("crashed", f"crashed at step {at}: {_error_text(error)}", at, error)
    if reason == "interrupted":
        at = (step or 0) + 1
        by = (f"by {short_message(signal)}" if signal
              else (f"by {short_message(error.get('type'))}" if error else ""))
        text = f"interrupted at step {at}" + (f" {by}" if by else "")
        return Outcome("interrupted", text, at, error, signal)
    if reason == "finished":
        return Outcome("finished", f"finished at step {step}" if step else "finished", step)
    if last_error is not None:  # exited without closing, after an exception was recorded
        at = last_error.get("step") if isinstance(last_error.get("step"), int) else None
        return Outcome("crashed", f"crashed at step {at}: {_error_text(last_error)}", at,
                       last_error)
    reason = short_message(reason)
    return Outcome("exited", f"ended at step {step}: {reason}" if step else f"ended: {reason}",
                   step)


def without_end(header: dict[str, Any] | None, path: Path | None, last_step: int | None,
                now: float | None = None) -> Outcome:
    """The outcome of a run whose log has no end event (yet): see the module's rule."""
    if header is None:
        return Outcome("waiting", "waiting for the run to start")
    at = f" after step {last_step}" if last_step else " before its first step"
    alive = writer_alive(header)
    if alive is True:
        return Outcome("running", f"running (pid {header.get('pid')}){at}", last_step)
    if alive is False:
        return Outcome("interrupted",
                       f"interrupted{at} (no end event; the process is gone)", last_step)
    try:
        age = (now if now is not None else time.time()) - os.stat(path).st_mtime if path else None
    except OSError:
        age = None
    if age is not None and age >= STALE_AFTER_S:
        return Outcome("interrupted",
                       f"interrupted{at} (no end event; nothing written for {_age_text(age)})",
                       last_step)
    return Outcome("running", f"no end event yet{at} (still training, or stopped elsewhere)",
                   last_step)
