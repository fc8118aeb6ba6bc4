"""The one place sizes are parsed and printed.

Decision, in writing: vramdoc reads ``GB`` as **GiB** (2**30 bytes), as GPU vendors do when
they sell a "6GB" card (6,144 MiB of memory) and as nvidia-smi does when it prints "MiB".
``GiB``/``MiB``/``KiB`` are binary too. To give decimal units, write them out in bytes
(``6000000000``) or use the ``e`` suffix form (``6e9``). Inside the code every size is an
``int`` number of bytes in a variable named ``*_bytes``.

>>> parse_size("6GB")
6442450944
>>> parse_size("24 GiB") == 24 * 2**30
True
>>> parse_size("512MiB")
536870912
>>> parse_size("1.5G")
1610612736
>>> parse_size("6e9")
6000000000
>>> format_bytes(6442450944)
'6.00 GiB'
>>> format_bytes(1536 * 2**20)
'1.50 GiB'
>>> format_bytes(300 * 2**20)
'300 MiB'
>>> format_bytes(0)
'0 B'
"""

from __future__ import annotations

import math
import re

from vramdoc.errors import UsageError

KiB = 2**10
MiB = 2**20
GiB = 2**30
TiB = 2**40

_MULTIPLIERS = {
    "": 1,
    "b": 1,
    "k": KiB,
    "kb": KiB,
    "kib": KiB,
    "m": MiB,
    "mb": MiB,
    "mib": MiB,
    "g": GiB,
    "gb": GiB,
    "gib": GiB,
    "t": TiB,
    "tb": TiB,
    "tib": TiB,
}

# The largest size vramdoc reads: 1 PiB. The biggest GPUs hold ~0.2 TiB and a measured peak is
# one GPU's; anything larger is a typo (or 1e400), refused rather than computed with.
MAX_SIZE_BYTES = 2**50

_SIZE_RE = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:e[0-9]+)?)\s*([a-z]*)\s*$", re.IGNORECASE)


def parse_size(text: str | int | float, *, what: str = "size") -> int:
    """Parse ``"6GB"``, ``"24GiB"``, ``"512 MiB"`` or a number of bytes into int bytes.

    Raises:
        UsageError: the text is not a size, or it is zero, negative, not finite or over
            ``MAX_SIZE_BYTES``.

    >>> parse_size("1e400", what="--margin")
    Traceback (most recent call last):
    ...
    vramdoc.errors.UsageError: --margin '1e400' is larger than 1 PiB
    """
    if isinstance(text, bool):
        raise UsageError(f"{what} {text!r} is not a size", "write it like 6GB, 24GiB or 512MiB")
    shown = repr(text) if len(str(text)) <= 60 else f"{str(text)[:40]!r}..."
    if isinstance(text, int | float):
        value, unit = float(text), ""
    else:
        m = _SIZE_RE.match(str(text)) if len(str(text)) <= 100 else None
        if not m or m.group(2).lower() not in _MULTIPLIERS:
            raise UsageError(
                f"{what} {shown} is not a size", "write it like 6GB, 24GiB or 512MiB (GB = GiB)"
            )
        value, unit = float(m.group(1)), m.group(2).lower()
    if math.isnan(value):
        raise UsageError(f"{what} {shown} is not a size", "write it like 6GB, 24GiB or 512MiB")
    if value * _MULTIPLIERS[unit] > MAX_SIZE_BYTES:
        raise UsageError(f"{what} {shown} is larger than 1 PiB", "check for a typo; give the "
                         "size like 6GB, 24GiB or 512MiB")
    n = int(round(value * _MULTIPLIERS[unit]))
    if n <= 0:
        raise UsageError(f"{what} {text!r} must be larger than zero", "give a positive size")
    return n


def format_bytes(n_bytes: int | float, *, signed: bool = False) -> str:
    """Human size: GiB with two decimals from 1 GiB up, MiB below, B for tiny values."""
    sign = "-" if n_bytes < 0 else ("+" if signed and n_bytes > 0 else "")
    n = abs(n_bytes)
    if n >= GiB:
        return f"{sign}{n / GiB:.2f} GiB"
    if n >= MiB:
        return f"{sign}{n / MiB:.0f} MiB"
    if n >= KiB:
        return f"{sign}{n / KiB:.0f} KiB"
    return f"{sign}{int(n)} B"


def gib(n_bytes: int | float) -> float:
    """Bytes as a float number of GiB (for tables and ratios)."""
    return n_bytes / GiB


def format_count(n: int) -> str:
    """Parameter counts: ``6.74B``, ``124M``, ``5.2K``.

    >>> format_count(6_738_415_616)
    '6.74B'
    >>> format_count(124_439_808)
    '124M'
    """
    if n >= 10**9:
        return f"{n / 1e9:.2f}B"
    if n >= 10**6:
        return f"{n / 1e6:.0f}M"
    if n >= 10**3:
        return f"{n / 1e3:.1f}K"
    return str(n)
