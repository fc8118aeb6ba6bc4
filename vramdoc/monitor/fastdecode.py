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

msgspec is imported here only: the monitor imports this module lazily, never on the ``plan``
path. Without msgspec, :func:`step_decoder` returns None and every line takes the plain path.
"""

# No ``from __future__ import annotations``: the Structs are built inside a function (msgspec
# is imported lazily) and msgspec reads their annotations as objects.
from collections.abc import Callable

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
        if b"\\u" in blob:
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
    return fast


class StepRun(list):  # type: ignore[type-arg]
    """Consecutive step lines decoded at once (msgspec Structs, not dicts): what
    :meth:`~vramdoc.monitor.follower.Follower.poll_runs` hands :class:`~.run.RunState` so the
    watch can take many steps at once (:mod:`vramdoc.monitor.batch`). Each element becomes
    the event ``fast`` would return through :func:`run_decoder`'s ``to_event``."""

    __slots__ = ()


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
