"""The second hostile sweep's table format and checker (doctor, readers, multi-GPU flags,
trackers): one row per input, run through ``vramdoc.cli.main`` in-process.

A row is ``H(id, argv, files, codes, says)``: ``argv`` may name ``{d}``, a fresh folder that
holds ``files`` (relative path -> text, bytes, :data:`DIR` for a folder, or ``Link(target)``
for a symbolic link); the command must exit with one of ``codes``, print no traceback and no
"vramdoc bug" message, say every string of ``says`` (case-insensitive) in its message, keep
stdout strict JSON where JSON was asked for, and leave every file it was given as it was.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import pytest

BAD = (2,)
OK = (0,)
ANSWER = (0, 1)  # a legitimate input: fits / does not fit, findings or none


class _Dir:
    def __repr__(self) -> str:
        return "DIR"


DIR = _Dir()


@dataclass(frozen=True)
class Link:
    target: str  # may name {d}


@dataclass(frozen=True)
class H:
    id: str
    argv: tuple[str, ...]
    files: dict[str, object] = field(default_factory=dict)
    codes: tuple[int, ...] = BAD
    says: tuple[str, ...] = ()


def row(id: str, argv: list[str], files: dict[str, object] | None = None,
        codes: tuple[int, ...] = BAD, says: str | tuple[str, ...] = ()) -> H:
    return H(id, tuple(argv), files or {}, codes, (says,) if isinstance(says, str) else says)


def _write(folder: Path, files: dict[str, object]) -> None:
    for rel, content in files.items():
        p = folder / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if content is DIR:
            p.mkdir(exist_ok=True)
        elif isinstance(content, Link):
            os.symlink(content.target.replace("{d}", str(folder)), p)
        elif isinstance(content, bytes):
            p.write_bytes(content)
        else:
            p.write_text(str(content), encoding="utf-8")


def _snapshot(folder: Path) -> dict[str, bytes | None]:
    out: dict[str, bytes | None] = {}
    for p in sorted(folder.rglob("*")):
        if p.is_symlink() or p.is_dir():
            out[str(p)] = None
        else:
            out[str(p)] = p.read_bytes()
    return out


def _strict(text: str) -> None:
    def refuse(name: str) -> None:
        raise ValueError(f"bare {name} in JSON output")

    json.loads(text, parse_constant=refuse)


def problems(h: H, code: int, out: str, err: str, before: dict[str, bytes | None],
             after: dict[str, bytes | None]) -> list[str]:
    """Why the outcome mishandles the row (empty: handled)."""
    found = []
    text = out + err
    if code not in h.codes:
        found.append(f"exit {code}, expected {h.codes}")
    if "Traceback" in text:
        found.append("traceback")
    if "vramdoc bug" in text or "reader failed" in text:
        found.append("a reader crashed (reported as a vramdoc bug)")
    # (the doctor reports a file it cannot read inside its report, among the others; a plan
    # whose kit cannot be written has printed its report on stderr before the error)
    one_message = sum(line.startswith("error: ") for line in err.splitlines()) == 1
    if code == 2 and h.argv[0] != "doctor" and not one_message:
        found.append("not one 'error: ' message on stderr")
    for s in h.says:
        if s.lower() not in text.lower():
            found.append(f"message lacks {s!r}")
    wants_json = "--json" in h.argv or any(a in ("json", "sarif") for a in h.argv)
    if wants_json and out.strip() and "--emit" not in h.argv:
        try:
            _strict(out)
        except ValueError as exc:
            found.append(f"stdout is not strict JSON: {exc}")
    changed = [k for k, v in before.items() if after.get(k, b"<gone>") != v]
    if changed:
        found.append(f"changed the user's files: {changed}")
    return found


def run_row(h: H, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> list[str]:
    """Run one row in-process; a Python exception escaping main is a traceback."""
    from vramdoc.cli import main

    _write(tmp_path, h.files)
    before = _snapshot(tmp_path)
    argv = [a.replace("{d}", str(tmp_path)) for a in h.argv]
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse --help / --version only
        code = int(exc.code or 0)
    except Exception as exc:  # noqa: BLE001 - the very thing the sweep looks for
        cap = capsys.readouterr()
        return [f"traceback: {type(exc).__name__}: {str(exc)[:300]}", cap.err[-300:]]
    cap = capsys.readouterr()
    found = problems(h, code, cap.out, cap.err, before, _snapshot(tmp_path))
    if found:
        found.append("stderr: " + cap.err[-600:])
    return found
