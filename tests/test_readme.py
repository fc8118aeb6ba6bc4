"""README promises: the two quickstart commands, CI runs the same test command, the accuracy
table is what the benchmark prints today."""

from __future__ import annotations

import re

import pytest

from tests.conftest import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")
TEST_COMMAND = 'pip install torch==2.13.0 && pip install -e ".[dev]" && python -m pytest'


def test_quickstart_has_install_plus_main_job_and_install_plus_tests() -> None:
    blocks = re.findall(r"```bash\n(.*?)```", README, re.S)
    assert "pip install -e . && vramdoc plan --model llama-2-7b --gpu 6GB" in blocks[0]
    assert blocks[1].strip() == TEST_COMMAND


def test_ci_runs_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert TEST_COMMAND in ci.splitlines()


def test_accuracy_section_matches_the_benchmark() -> None:
    from tests.benchmarks import accuracy

    if not accuracy.DEFAULT_CSV.is_file():
        pytest.skip(f"calibration data not beside the checkout ({accuracy.DEFAULT_CSV})")
    block = accuracy.readme_block(accuracy.run(accuracy.DEFAULT_CSV), accuracy.run_public())
    start, end = "<!-- section:accuracy -->\n", "<!-- /section:accuracy -->"
    current = README[README.index(start) + len(start):README.index(end)]
    assert current == block, "run `python -m tests.benchmarks.accuracy --write-readme`"
