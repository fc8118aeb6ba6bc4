"""Tutorial-style snippets (tests/doctor/snippets): every removed, renamed, unknown or
deprecated keyword and import is named on its line (marked `# expect: CODE`), elided files are
read, a real syntax error is reported on its line, and the fixed text still parses."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from vramdoc.doctor.checks import DoctorOptions, doctor_file
from vramdoc.doctor.fixer import apply_edits
from vramdoc.readers._pysource import parse_tolerant

SNIPPETS = sorted((Path(__file__).parent / "snippets").glob("*.py"))
VERSIONS = {"transformers": "5.24.0", "peft": "0.21.2", "trl": "1.16.0", "accelerate": "1.15.0"}
CHECKED = re.compile(r"^(A1\d\d|S101)$")


def _expected(path: Path) -> set[tuple[int, str]]:
    out = set()
    for i, line in enumerate(path.read_text().splitlines(), 1):
        m = re.search(r"# expect: ([A-Z0-9 ,]+)$", line)
        if m:
            out |= {(i, c.strip()) for c in m.group(1).split(",")}
    return out


@pytest.mark.parametrize("path", SNIPPETS, ids=lambda p: p.stem)
def test_every_problem_is_named_on_its_line(path: Path) -> None:
    res = doctor_file(str(path), DoctorOptions(versions=VERSIONS, plan=False))
    assert res.error is None
    found = {(f.line, f.code) for f in res.findings if CHECKED.match(f.code)}
    assert found == _expected(path)


@pytest.mark.parametrize("path", SNIPPETS, ids=lambda p: p.stem)
def test_fixes_keep_the_file_parseable(path: Path) -> None:
    res = doctor_file(str(path), DoctorOptions(versions=VERSIONS, plan=False))
    fixed, _n = apply_edits(res.text, res.findings)
    before = parse_tolerant(res.text)
    after = parse_tolerant(fixed)
    assert after.tree is not None
    assert len(after.errors) == len(before.errors)
    if res.setup is not None:
        again = doctor_file(str(path), DoctorOptions(versions=VERSIONS, plan=False))
        assert again.setup == res.setup  # reading is deterministic (scan cache is not mutated)


def test_elided_files_are_read() -> None:
    for name in ("sft_trl_2023.py", "int8_notebook_style.py", "adamw_loop.py"):
        res = doctor_file(str(Path(__file__).parent / "snippets" / name),
                          DoctorOptions(versions=VERSIONS, plan=False))
        assert any(f.code == "S102" for f in res.findings), name
        assert res.setup is not None, name
