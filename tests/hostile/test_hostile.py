"""Every hostile input gets its exit code, one message naming the problem, and no traceback."""

from __future__ import annotations

import pytest

from tests.hostile.cases import CASES
from tests.hostile.check import materialize, problems


def test_corpus_size() -> None:
    assert len(CASES) >= 220


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile(case, tmp_path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from vramdoc.cli import main

    for k, v in case.env:
        monkeypatch.setenv(k, v)
    argv = materialize(case, tmp_path)
    code = main(argv)
    cap = capsys.readouterr()
    assert problems(case, code, cap.out, cap.err) == [], cap.err[-2000:]
