"""Runs recorded by something other than vramdoc: one reader module per format.

Each reader is a pure function ``read(path) -> SourceRun`` (rows as Trainer logged them,
the TrainingArguments it found, whether the run ended); :func:`read_events` turns that into
the event records of ``events.jsonl`` (:mod:`vramdoc.monitor.sources._events`), so
:class:`~vramdoc.monitor.run.RunState`, the TUI, ``vramdoc watch --once`` and the W rules
do not care where a run came from. :func:`detect` picks the reader from the path;
:class:`SourceFollower` follows a source that grows (new checkpoints, appended event files)
with the same interface as :class:`~vramdoc.monitor.follower.Follower`.

===================== ============================================== ==================
format                path                                           module
===================== ============================================== ==================
Trainer output dir    ``OUT/`` (latest ``checkpoint-*/trainer_state.json``) ``trainer_state``
MLflow local store    ``mlruns/<exp>/<run-id>/``                     ``mlflow``
TensorBoard           a folder of ``events.out.tfevents.*``          ``tensorboard``
W&B offline run       ``wandb/offline-run-*/``                       ``wandb``
===================== ============================================== ==================
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vramdoc.monitor.follower import Follower, FollowerStatus, events_path
from vramdoc.monitor.schema import EVENTS_FILE
from vramdoc.monitor.sources._events import SourceRun, to_events

KINDS = ("events", "trainer_state", "mlflow", "tensorboard", "wandb")


def detect(path: str | Path) -> str | None:
    """Which format ``path`` holds, or None when none is there (yet).

    vramdoc's own ``events.jsonl`` wins; then a Trainer output dir (its checkpoints hold
    the whole history even when a ``runs/`` TensorBoard folder sits beside them).
    """
    from vramdoc.monitor.sources import mlflow, tensorboard, trainer_state, wandb

    p = Path(path)
    if p.suffix == ".jsonl" or (p.is_dir() and (p / EVENTS_FILE).is_file()):
        return "events"
    if trainer_state.is_trainer_dir(p):
        return "trainer_state"
    if mlflow.is_mlflow_run(p):
        return "mlflow"
    if wandb.is_wandb_run(p):
        return "wandb"
    if tensorboard.is_tensorboard(p):
        return "tensorboard"
    return None


def reader(kind: str) -> Callable[[str | Path], SourceRun]:
    from vramdoc.monitor.sources import mlflow, tensorboard, trainer_state, wandb

    modules = {"trainer_state": trainer_state, "mlflow": mlflow, "tensorboard": tensorboard,
               "wandb": wandb}
    return modules[kind].read  # type: ignore[no-any-return]


def read_events(path: str | Path, kind: str | None = None) -> list[dict[str, Any]]:
    """Every event of a non-vramdoc run, read now. Raises VramdocError on unreadable input."""
    kind = kind or detect(path)
    if kind is None or kind == "events":
        raise ValueError(f"{path} is not a tracker source")
    try:
        return to_events(reader(kind)(path))
    except (AttributeError, TypeError, ValueError, KeyError, IndexError, RecursionError,
            OSError) as exc:  # OSError: a folder where the format keeps a file
        # a file of the right name with contents the format never holds: one message, the
        # watch goes on (the readers check what they know; this is the boundary's net)
        from vramdoc.errors import UsageError

        raise UsageError(f"{path}: not a readable {kind.replace('_', ' ')} run "
                         f"({type(exc).__name__}: {str(exc)[:120]})",
                         "point vramdoc watch at the run's folder as the tracker wrote it"
                         ) from None


def _signature(path: Path) -> tuple[tuple[str, int, int], ...]:
    """Names, sizes and modification times of the files below ``path`` (3 levels deep,
    where Trainer checkpoints, MLflow metrics and event files live)."""
    out = []
    base_depth = len(path.parts)
    if path.is_file():
        st = path.stat()
        return ((str(path), st.st_size, st.st_mtime_ns),)
    for root, dirs, files in os.walk(path):
        if len(Path(root).parts) - base_depth >= 3:
            dirs[:] = []
        for name in files:
            if name.endswith((".json", ".wandb", ".yaml")) or name.startswith("events.out") \
                    or "metrics" in root:
                try:
                    st = os.stat(os.path.join(root, name))
                except OSError:
                    continue
                out.append((os.path.join(root, name), st.st_size, st.st_mtime_ns))
    return tuple(sorted(out))


class SourceFollower:
    """Follows a tracker source as it grows: the :class:`Follower` interface for formats
    that are rewritten rather than appended (a new checkpoint holds the whole history).

    Each :meth:`poll` re-reads the source when its files changed and returns the events not
    returned before; a history that no longer starts with what was returned (a run restarted
    in the same place) is returned again whole, after a ``resets`` count. A source that
    cannot be read at the moment (a checkpoint mid-write) is retried on the next poll.
    """

    def __init__(self, path: str | Path, kind: str) -> None:
        self.path = Path(path)
        self.kind = kind
        self.status = FollowerStatus.WAITING
        self.finished = False
        self.corrupt = self.truncated = self.foreign = self.resets = 0
        self.invalid = self.oversized = 0  # line-level counters of Follower: none here
        self.first_invalid = ""
        self.foreign_version: Any = None
        self.error = ""
        self._sig: tuple[Any, ...] | None = None
        self._sent: list[dict[str, Any]] = []

    @property
    def pending_bytes(self) -> int:
        return 0

    @property
    def offset(self) -> int:
        """Events handed out so far (Follower counts bytes; 0 means nothing read yet)."""
        return len(self._sent)

    def skip_to_last_session(self) -> int:
        """A tracker source holds one run: no earlier sessions to skip."""
        return 0

    def problems(self) -> list[str]:
        """What was skipped and why (Follower's interface): records the source holds but
        its reader could not use (a failed CRC, a line that is not a metric) are named."""
        out = [f"last read failed: {self.error}"] if self.error else []
        head = self._sent[0] if self._sent else {}
        bad = sum(int(head.get(k) or 0) for k in ("corrupt_records", "unreadable_records"))
        if bad:
            out.append(f"{bad} damaged or unreadable record(s) skipped in the "
                       f"{self.kind.replace('_', ' ')} files; the summary holds the rest")
        for broken in head.get("broken_states") or ():
            out.append(f"could not read {broken}; read {head.get('state_read')} instead")
        if head.get("bad_values"):
            out.append(f"{head['bad_values']} logged value(s) that are not numbers skipped "
                       f"(first: {head.get('first_bad_value')})")
        return out

    def describe(self) -> str:
        label = self.kind.replace("_", " ")
        if self.status is FollowerStatus.WAITING:
            waiting = f"waiting for {label} data in {self.path}"
            return f"{waiting} (last read failed: {self.error})" if self.error else waiting
        parts = [f"{self.status.value} ({label})"]
        if self.finished and self.status is FollowerStatus.LIVE:
            parts = [f"no end recorded yet ({label}; still training, or stopped)"]
        if self.error:
            parts.append(f"last read failed: {self.error}")
        return ", ".join(parts)

    def _read(self) -> list[dict[str, Any]]:
        return read_events(self.path, self.kind)

    def poll(self, max_bytes: int = 0) -> list[dict[str, Any]]:
        """New events since the last poll; never raises on bad or half-written data."""
        from vramdoc.errors import VramdocError

        if not self.path.exists():
            return []
        sig = _signature(self.path)
        if sig == self._sig:
            return []
        try:
            events = self._read()
        except VramdocError as exc:
            self.error = exc.message.splitlines()[0]
            return []  # _sig unchanged: try again next poll
        self._sig, self.error = sig, ""
        return self._take(events)

    def _take(self, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        n = len(self._sent)
        # the header may gain facts as the run grows (a method once a checkpoint exists):
        # only the history itself has to match
        if n and events[1:n] == self._sent[1:]:
            new = events[n:]
        elif not n:
            new = events
        else:
            self.resets += 1
            new = events
        self._sent = events
        self.status = (FollowerStatus.ENDED if events and events[-1].get("kind") == "end"
                       else FollowerStatus.LIVE)
        return new

    def at_end(self) -> bool:
        return not self.path.exists() or _signature(self.path) == self._sig

    def read_all(self) -> list[dict[str, Any]]:
        """Everything there now; raises VramdocError when the source cannot be read."""
        events = self._take(self._read())
        self._sig = _signature(self.path)
        self.finish()
        return events

    def finish(self) -> list[dict[str, Any]]:
        self.finished = True
        return []


def open_follower(run: str | Path) -> Follower | SourceFollower:
    """The follower for ``run``: vramdoc's event log, or a tracker source found there."""
    kind = detect(run)
    if kind is None or kind == "events":
        return Follower(events_path(run))
    return SourceFollower(run, kind)
