"""README's multi-GPU section: the worked 70B example and the accuracy rows are today's output."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import ROOT
from vramdoc.cli import main

README = (ROOT / "README.md").read_text(encoding="utf-8")
SECTION = README[README.index("<!-- section:multi-gpu -->"):
                 README.index("<!-- /section:multi-gpu -->")]


def test_multi_gpu_accuracy_rows_match_the_benchmark() -> None:
    from tests.benchmarks import accuracy

    if not accuracy.DEFAULT_CSV.is_file():
        pytest.skip(f"calibration data not beside the checkout ({accuracy.DEFAULT_CSV})")
    start, end = accuracy.MULTI_GPU_MARKS
    current = SECTION[SECTION.index(start) + len(start) + 1:SECTION.index(end)]
    assert current == accuracy.multi_gpu_markdown(accuracy.run(accuracy.DEFAULT_CSV)), \
        "run `python -m tests.benchmarks.accuracy --write-readme`"


def test_worked_70b_example_is_what_plan_prints(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    m = re.search(r"\*\*Worked example\*\*.*?```\n(.*?)```", SECTION, re.S)
    assert m, "the multi-GPU section lost its worked example"
    out = tmp_path / "kit"
    assert main(["plan", "--model", "llama-2-70b", "--gpu", "8xA100-80GB", "--method", "full",
                 "--out", str(out)]) == 0
    err = capsys.readouterr().err.replace(str(out), "kit")
    assert err == m.group(1)
    assert (out / "setup.yaml").is_file()
