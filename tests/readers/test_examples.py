"""examples/doctor-axolotl and examples/doctor-llamafactory: the documented `vramdoc doctor`
command prints the documented output (regenerate: run the README's command, redirect it to
expected_output.txt)."""

from __future__ import annotations

import pytest

from tests.conftest import ROOT
from vramdoc.cli import main

CASES = [
    ("doctor-axolotl", "qlora.yml", "RTX-4090", 1),
    ("doctor-llamafactory", "qwen3_lora_sft_otfq.yaml", "RTX-3060-12GB", 0),
]


@pytest.mark.parametrize("folder,config,gpu,code", CASES)
def test_example_prints_its_expected_output(folder: str, config: str, gpu: str, code: int,
                                            capsys: pytest.CaptureFixture[str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    example = ROOT / "examples" / folder
    readme = (example / "README.md").read_text()
    path = f"examples/{folder}/{config}"
    assert f"vramdoc doctor {path} --gpu {gpu}" in readme
    monkeypatch.chdir(ROOT)
    assert main(["doctor", path, "--gpu", gpu]) == code
    out = capsys.readouterr().out
    assert out == (example / "expected_output.txt").read_text(), (
        "regenerate with the README's command and review the difference")


def test_doctor_says_what_it_cannot_read(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    odd = tmp_path / "notes.md"
    odd.write_text("hello")
    assert main(["doctor", str(odd)]) == 2
    captured = capsys.readouterr()
    assert "not a file vramdoc can read" in captured.out + captured.err
    assert main(["doctor", str(tmp_path / "missing.yml")]) == 2


def test_readme_code_table_is_the_readers_table() -> None:
    from vramdoc.readers._common import CODES

    readme = (ROOT / "README.md").read_text()
    block = readme[readme.index("<!-- section:readers -->"):
                   readme.index("<!-- /section:readers -->")]
    import re

    documented = re.findall(r"^\| (R2\d\d) \|", block, re.M)
    assert documented == sorted(CODES)
    module_doc = __import__("vramdoc.readers._common", fromlist=["x"]).__doc__ or ""
    assert re.findall(r"^(R2\d\d) ", module_doc, re.M) == sorted(CODES)
