"""A C-speed reader of the recorder's step lines (msgspec), exact or silent.

Most lines of a long log are step events written by :class:`~vramdoc.monitor.recorder.Recorder`
with every field present and plain numbers. :func:`step_decoder` returns a function that
decodes such a line in one typed msgspec call (JSON parsing and the type checks of
:func:`~vramdoc.monitor.events.check_event` together, in C) and returns the event already as
:func:`~vramdoc.monitor.run.decode_step` would return it.

The typed schema below is deliberately *narrower* than what the follower accepts: any line it
does not take (another kind, a missing or unknown field, a non-finite ``"NaN"`` string, an
integer past the checked ranges, a ``\\u`` escape, invalid UTF-8, a byte-order mark, a blank
line) raises, and the follower decodes that line the plain way (``json.loads`` +
``check_event``), which counts and names its problems as before. So a line the fast path
accepts is one the plain path accepts with equal values, and every diagnostic still comes from
the plain path. ``tests/monitor/test_fastdecode.py`` checks both on varied and hostile lines.

For ``vramdoc watch --once`` on a long log, :func:`column_run` reads a stretch of such lines
straight into numpy columns (:class:`ColumnRun`): the same typed schema, decoded a piece at a
time and read into arrays, no event per line; an event is decoded from its line only where
the watch needs one (an alert's context, the chart window).

msgspec is imported here only: the monitor imports this module lazily, never on the ``plan``
path. Without msgspec, :func:`step_decoder` returns None and every line takes the plain path.
"""

# No ``from __future__ import annotations``: the Structs are built inside a function (msgspec
# is imported lazily) and msgspec reads their annotations as objects.
from collections.abc import Callable
from itertools import chain
from operator import attrgetter
from typing import Any

from vramdoc.monitor.events import MAX_INT, MAX_TEXT

# A NUMBER field is declared a float: msgspec turns a JSON integer into a float there. Within
# (-2**53, 2**53) every integer is a float exactly (so the value equals what json.loads gives, and
# check_event's +-2**63 bound holds); a number beyond, integer or float, takes the plain path.
_EXACT = float(2**53)


class DecodedStep(dict):  # type: ignore[type-arg]
    """A step event whose floats, ``mem`` and ``gpu`` are already as ``decode_step`` leaves
    them (and equal to the raw event: a line the fast path takes holds no non-finite string)."""

    __slots__ = ()


def _build() -> Callable[[bytes], DecodedStep] | None:
    try:
        import msgspec
    except ImportError:  # pragma: no cover - msgspec is a core dependency
        return None
    from typing import Annotated, Literal

    meta = msgspec.Meta
    uint = Annotated[int, meta(ge=0, le=MAX_INT - 1)]
    num = Annotated[float, meta(gt=-_EXACT, lt=_EXACT)]
    text = Annotated[str, meta(max_length=MAX_TEXT)]

    # gc=False: the structs hold scalars, a dict of ints and a Gpu (no cycles), so the cyclic
    # collector need not track them; tracked, a run of 26,000 triggers collections that cost
    # more than the decoding (msgspec's documentation, "Disabling Garbage Collection")
    class Gpu(msgspec.Struct, forbid_unknown_fields=True, gc=False):
        name: text | None
        used_bytes: uint | None
        total_bytes: uint | None
        util_pct: num | None
        temp_c: num | None
        power_w: num | None

    class Step(msgspec.Struct, forbid_unknown_fields=True, gc=False):
        v: Literal[1]
        kind: Literal["step"]
        session: text | None
        step: uint | None
        epoch: num | None
        loss: num | None
        grad_norm: num | None
        lr: num | None
        loss_scale: num | None
        skipped: bool | None
        skipped_total: uint | None
        tokens: uint | None
        samples: uint | None
        step_time_s: num | None
        tokens_per_s: num | None
        samples_per_s: num | None
        interrupted: bool | None
        mem: dict[str, uint] | None
        gpu: Gpu | None
        time: num | None

    decode = msgspec.json.Decoder(Step).decode
    asdict = msgspec.structs.asdict

    def to_event(step: Step) -> DecodedStep:
        ev = DecodedStep(asdict(step))
        gpu = ev["gpu"]
        if gpu is not None:
            ev["gpu"] = asdict(gpu)
        return ev

    def fast(raw: bytes) -> DecodedStep:
        if b"\\u" in raw:  # escapes: the plain path checks lone surrogates and says so
            raise ValueError("escape")
        return to_event(decode(raw))

    decode_many = msgspec.json.Decoder(list[Step]).decode  # type: ignore[valid-type]

    def run(lines: list[bytes]) -> StepRun:
        """Many step lines in one call (``[line,line,...]``); raises as ``fast`` would on any."""
        blob = b"[" + b",".join(lines) + b"]"
        if _escapes(blob):
            raise ValueError("escape")
        steps = decode_many(blob)
        # Each line must be one element, as read alone. The follower only passes lines that
        # start with '{"v":1,"kind":"step"' and end with '}', so no string or container can run
        # from one line into the next and type-check (the schema has no field that holds an
        # object of this shape); a line holding two objects shows in the count.
        if len(steps) != len(lines):
            raise ValueError("lines and elements differ")
        return StepRun(steps)

    _RUN.append((run, to_event))

    # The column path (ColumnRun): the same schema, with ``mem`` a Struct of the six figures
    # the CUDA sampler writes (vramdoc.monitor.sampling._CUDA_KEYS), all required and no
    # other. A mem object of another shape makes the whole block take the path above. The
    # Structs are read into columns at once and dropped: no event is built per line.
    class Mem(msgspec.Struct, forbid_unknown_fields=True, gc=False):
        allocated_bytes: uint
        reserved_bytes: uint
        peak_allocated_bytes: uint
        peak_reserved_bytes: uint
        alloc_retries: uint
        ooms: uint

    lean_fields = [(f, (Mem | None) if f == "mem" else t)
                   for f, t in Step.__annotations__.items()]
    Lean = msgspec.defstruct("Lean", lean_fields, forbid_unknown_fields=True, gc=False)
    _COLUMNS.append((msgspec.json.Decoder(Lean).decode_lines, fast))
    return fast


class StepRun(list):  # type: ignore[type-arg]
    """Consecutive step lines decoded at once (msgspec Structs, not dicts): what
    :meth:`~vramdoc.monitor.follower.Follower.poll_runs` hands :class:`~.run.RunState` so the
    watch can take many steps at once (:mod:`vramdoc.monitor.batch`). Each element becomes
    the event ``fast`` would return through :func:`run_decoder`'s ``to_event``."""

    __slots__ = ()


class ColumnRun:
    """Consecutive step lines read into numpy columns (:func:`column_run`): what
    :meth:`~vramdoc.monitor.follower.Follower.poll_runs` hands :class:`~.run.RunState` for
    the recorder's plain lines. It keeps the lines' bytes, not their events: :meth:`event`
    decodes one line with :func:`step_decoder`'s function, so an event built from a
    ColumnRun is the very event the per-line path builds.

    ``cols`` holds, per line, the figures the watch's columns read (``step``, ``loss``,
    ``grad_norm``, ``lr``, ``loss_scale``, ``tokens_per_s``, ``step_time_s``, the ``mem``
    figures by their names and ``gpu_total_bytes``) as float64 with nan for None (a line
    of this path holds finite numbers only), and ``skipped`` and ``interrupted`` as bools
    (None is False); ``sessions`` the ``session`` of each line.
    """

    __slots__ = ("data", "starts", "ends", "cols", "sessions", "_fast")

    def __init__(self, data: bytes, starts: Any, ends: Any, cols: dict[str, Any],
                 sessions: list[str | None], fast: Callable[[bytes], DecodedStep]) -> None:
        self.data, self.starts, self.ends = data, starts, ends
        self.cols, self.sessions, self._fast = cols, sessions, fast

    def __len__(self) -> int:
        return len(self.sessions)

    def __getitem__(self, k: slice) -> "ColumnRun":
        return ColumnRun(self.data, self.starts[k], self.ends[k],
                         {name: col[k] for name, col in self.cols.items()},
                         self.sessions[k], self._fast)

    def lines_only(self, a: int, b: int) -> "ColumnRun":
        """Rows ``a:b`` holding only their lines (a copy: the slice's buffer is let go), for
        :meth:`event`; no columns."""
        lo, hi = int(self.starts[a]), int(self.ends[b - 1]) + 1
        return ColumnRun(bytes(self.data[lo:hi]), self.starts[a:b] - lo, self.ends[a:b] - lo,
                         {}, self.sessions[a:b], self._fast)

    def line(self, i: int) -> bytes:
        return bytes(self.data[int(self.starts[i]):int(self.ends[i])])

    def event(self, i: int) -> DecodedStep:
        return self._fast(self.line(i))


# the columns a ColumnRun holds: name -> the Struct attribute it is read from
_NUMBER_COLS = {"step": "step", "loss": "loss", "grad_norm": "grad_norm", "lr": "lr",
                "loss_scale": "loss_scale", "tokens_per_s": "tokens_per_s",
                "step_time_s": "step_time_s", "allocated_bytes": "mem.allocated_bytes",
                "reserved_bytes": "mem.reserved_bytes",
                "peak_allocated_bytes": "mem.peak_allocated_bytes",
                "peak_reserved_bytes": "mem.peak_reserved_bytes",
                "alloc_retries": "mem.alloc_retries", "gpu_total_bytes": "gpu.total_bytes"}


def _values(np: Any, objs: list[Any], name: str) -> Any:
    """``obj.name`` of every object as float64 (None -> nan)."""
    get = attrgetter(name)
    try:  # every object holds a number: one C-level pass
        return np.fromiter(map(get, objs), np.float64, len(objs))
    except TypeError:  # a None among them
        values = list(map(get, objs))
        if values.count(None) == len(values):  # a figure never written (e.g. loss_scale)
            return np.full(len(values), np.nan)
        return np.array(values, dtype=np.float64)  # None -> nan


def _nested(np: Any, structs: list[Any], outer: str, names: list[str]) -> list[Any]:
    """The figures ``names`` of each Struct's ``outer`` record (``mem``, ``gpu``; None -> nan)."""
    inner = list(map(attrgetter(outer), structs))
    none = inner.count(None)
    if none == len(inner):  # no such record (a CPU run, no NVML): no figure
        return [np.full(len(inner), np.nan) for _ in names]
    if not none:
        return [_values(np, inner, name) for name in names]
    return [np.array([None if o is None else getattr(o, name) for o in inner],
                     dtype=np.float64) for name in names]


_ALL = attrgetter(*_NUMBER_COLS.values())


def _escapes(data: bytes) -> bool:
    """``b"\\u" in data``, the usual answer (no backslash at all) from one memchr pass."""
    return b"\\" in data and b"\\u" in data


def _flags(np: Any, structs: list[Any], name: str) -> Any:
    values = list(map(attrgetter(name), structs))
    if True not in values:
        return np.zeros(len(values), dtype=bool)
    return np.array([v is True for v in values], dtype=bool)


def _piece_columns(np: Any, structs: list[Any]) -> tuple[dict[str, Any], list[str | None]]:
    n = len(structs)
    k = len(_NUMBER_COLS)
    try:  # every line holds every figure: one C-level pass over the Structs
        flat = np.fromiter(chain.from_iterable(map(_ALL, structs)), np.float64, k * n)
    except (TypeError, AttributeError):  # a None somewhere: column by column
        names = list(_NUMBER_COLS)
        cols = {name: _values(np, structs, name) for name in names[:7]}
        for outer in ("mem", "gpu"):
            keys = [name for name, path in _NUMBER_COLS.items() if path.startswith(outer + ".")]
            fields = [_NUMBER_COLS[name].partition(".")[2] for name in keys]
            cols.update(zip(keys, _nested(np, structs, outer, fields), strict=True))
    else:
        cols = dict(zip(_NUMBER_COLS, np.ascontiguousarray(flat.reshape(n, k).T), strict=True))
    cols["skipped"] = _flags(np, structs, "skipped")
    cols["interrupted"] = _flags(np, structs, "interrupted")
    return cols, list(map(attrgetter("session"), structs))


_PIECE = 8192  # lines decoded at once (some 5 MiB of the recorder's lines)


def column_run(data: bytes, starts: Any, ends: Any) -> ColumnRun:
    """The step lines ``data[starts[i]:ends[i]]`` (consecutive lines of ``data``, each
    followed by its newline) as a :class:`ColumnRun`.

    The caller has checked that every line starts with ``{"v":1,"kind":"step"`` and ends with
    ``}``, so that each line is one element of the decoded sequence (as for
    :func:`run_decoder`). Raises ValueError when any line is one :func:`step_decoder`'s
    function would not take, or one of another shape (see ``Mem`` above).
    """
    import numpy as np

    step_decoder()
    if not _COLUMNS:  # pragma: no cover - msgspec is a core dependency
        raise ValueError("no msgspec")
    decode_lines, fast = _COLUMNS[0]
    arr = np.frombuffer(data, dtype=np.uint8)[int(starts[0]):int(ends[-1]) + 1]
    slashes = np.flatnonzero(arr == 92)  # b"\\u" in the lines, for any bytes-like data
    if len(slashes) and (arr[np.minimum(slashes + 1, len(arr) - 1)] == 117).any():
        raise ValueError("escape")  # the plain path checks lone surrogates and says so
    # in pieces, so that the Structs of only one piece are alive at a time (memory)
    view = memoryview(data)
    parts: list[tuple[dict[str, Any], list[str | None]]] = []
    for a in range(0, len(starts), _PIECE):
        b = min(a + _PIECE, len(starts))
        structs = decode_lines(view[int(starts[a]):int(ends[b - 1]) + 1])
        if len(structs) != b - a:
            raise ValueError("lines and elements differ")
        parts.append(_piece_columns(np, structs))
        del structs
    if len(parts) == 1:
        cols, sessions = parts[0]
    else:
        cols = {name: np.concatenate([p[0][name] for p in parts]) for name in parts[0][0]}
        sessions = [s for p in parts for s in p[1]]
    return ColumnRun(data, starts, ends, cols, sessions, fast)


_COLUMNS: list[tuple[Callable[[Any], list[Any]], Callable[[bytes], DecodedStep]]] = []
_FAST: list[Callable[[bytes], DecodedStep] | None] = []  # built on first use
_RUN: list[tuple[Callable[[list[bytes]], StepRun], Callable[[object], DecodedStep]]] = []


def step_decoder() -> Callable[[bytes], DecodedStep] | None:
    """The fast step-line decoder, or None without msgspec. Built once per process.

    It raises ValueError (msgspec's errors are ValueErrors) on any line it does not take.
    """
    if not _FAST:
        _FAST.append(_build())
    return _FAST[0]



def run_decoder() -> tuple[Callable[[list[bytes]], StepRun],
                           Callable[[object], DecodedStep]] | None:
    """``(decode_lines, to_event)`` for runs of step lines, or None without msgspec.

    ``decode_lines(lines)`` takes exactly the lines :func:`step_decoder`'s function takes (the
    same typed schema, element by element) and raises ValueError when any one of them is not
    taken; ``to_event(struct)`` is the event that function returns for that line.
    """
    step_decoder()
    return _RUN[0] if _RUN else None
