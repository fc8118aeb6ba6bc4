"""examples/plan-llama2-7b-6gb: the documented command gives the documented output."""

from __future__ import annotations

import ast
import re
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "plan-llama2-7b-6gb"
ARGS = ("plan", "--model", "llama-2-7b", "--gpu", "6GB")


def test_example_command_matches_its_expected_output(run_cli):
    command = (EXAMPLE / "command.sh").read_text()
    assert "vramdoc " + " ".join(ARGS) in command
    code, out, err = run_cli(*ARGS)
    assert code == 0
    ast.parse(out)
    for name in ("BitsAndBytesConfig(", "LoraConfig(", "TrainingArguments("):
        assert name in out
    expected_out = (EXAMPLE / "expected_stdout.py").read_text()
    expected_err = (EXAMPLE / "expected_stderr.txt").read_text()
    hint = "refresh with `sh examples/plan-llama2-7b-6gb/command.sh --update` and review"
    assert out == expected_out, hint
    assert err == expected_err, hint
    # the README tells the same story as the output
    readme = (EXAMPLE / "README.md").read_text()
    best = re.search(r"^ 1  (.*)$", err, re.M)
    assert best and best.group(1).startswith("QLoRA NF4")
    for code_ in ("H101", "H103", "H107"):
        assert code_ in readme and code_ in err
