"""Apply the findings' exact edits to a copy of the user's text; never touch the original.

Edits are (line, column) ranges on the original text (:class:`vramdoc.readers.findings.Edit`),
so everything outside them, formatting and comments included, stays byte for byte.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from pathlib import Path

from vramdoc.errors import UsageError
from vramdoc.readers.findings import Edit, Finding


def _offsets(text: str) -> list[int]:
    """Character offset of the start of each line (1-based line n -> offsets[n - 1])."""
    out = [0]
    for line in text.splitlines(keepends=True):
        out.append(out[-1] + len(line))
    return out


def apply_edits(text: str, findings: Iterable[Finding]) -> tuple[str, int]:
    """The text with every finding's edits applied, and how many findings were applied.

    A finding whose edits overlap an edit already taken is skipped whole (the next run of the
    doctor reports it again); zero-width insertions at one position keep the findings' order.
    """
    starts = _offsets(text)

    def pos(line: int, col: int) -> int:
        if line - 1 >= len(starts):
            return len(text)
        return min(starts[line - 1] + col - 1, len(text))

    taken: list[tuple[int, int]] = []
    chosen: list[tuple[int, int, int, str]] = []  # start, end, order, replacement
    applied = 0
    seen: set[Edit] = set()
    for order, f in enumerate(findings):
        spans = []
        for e in f.edits:
            if e in seen:
                continue
            spans.append((pos(e.line, e.column), pos(e.end_line, e.end_column), e))
        if not f.edits:
            continue
        clash = any(s < te and ts < en for s, en, _e in spans for ts, te in taken)
        if clash:
            continue
        for s, en, e in spans:
            taken.append((s, en))
            chosen.append((s, en, order, e.replacement))
            seen.add(e)
        applied += 1
    for s, en, _order, rep in sorted(chosen, key=lambda c: (c[0], c[1], c[2]), reverse=True):
        text = text[:s] + rep + text[en:]
    return text, applied


def fixed_path(path: Path) -> Path:
    """``train.py`` -> ``train.fixed.py`` beside it."""
    return path.with_name(f"{path.stem}.fixed{path.suffix}")


def write_fixed(path: Path, text: str) -> Path:
    """Write the fixed copy beside ``path``; refuse to replace a file that is already there."""
    out = fixed_path(path)
    try:  # "x": created here or refused; a link (even a dangling one) is never followed
        with out.open("x", encoding="utf-8") as fh:
            fh.write(text)
    except FileExistsError:
        if out.is_symlink():
            raise UsageError(f"{out} is a symbolic link; the doctor never writes through a link "
                             "(it would write where the link points)",
                             f"remove the link {out.name}, or print the changes with --diff"
                             ) from None
        raise UsageError(f"{out} already exists; the doctor never overwrites a file",
                         f"remove or rename {out.name}, or print the changes with --diff"
                         ) from None
    except OSError as exc:  # a read-only folder, a full disk
        raise UsageError(f"cannot write {out}: {exc.strerror or exc}",
                         "print the changes with --diff instead") from None
    return out


def unified_diff(path: Path, before: str, after: str) -> str:
    return "".join(difflib.unified_diff(
        before.splitlines(keepends=True), after.splitlines(keepends=True),
        fromfile=str(path), tofile=str(fixed_path(path))))
