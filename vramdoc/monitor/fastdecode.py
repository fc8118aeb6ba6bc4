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

    class Gpu(msgspec.Struct, forbid_unknown_fields=True):
        name: text | None
        used_bytes: uint | None
        total_bytes: uint | None
        util_pct: num | None
        temp_c: num | None
        power_w: num | None

    class Step(msgspec.Struct, forbid_unknown_fields=True):
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

    def fast(raw: bytes) -> DecodedStep:
        if b"\\u" in raw:  # escapes: the plain path checks lone surrogates and says so
            raise ValueError("escape")
        ev = DecodedStep(asdict(decode(raw)))
        gpu = ev["gpu"]
        if gpu is not None:
            ev["gpu"] = asdict(gpu)
        return ev

    return fast


_FAST: list[Callable[[bytes], DecodedStep] | None] = []  # built on first use


def step_decoder() -> Callable[[bytes], DecodedStep] | None:
    """The fast step-line decoder, or None without msgspec. Built once per process.

    It raises ValueError (msgspec's errors are ValueErrors) on any line it does not take.
    """
    if not _FAST:
        _FAST.append(_build())
    return _FAST[0]

