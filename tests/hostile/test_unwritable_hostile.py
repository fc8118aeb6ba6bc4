"""``doctor --fix`` and ``plan --out`` into a folder that cannot be written.

The tests run as any user (root ignores a read-only mode), so the OS's refusal is simulated
where vramdoc writes: the refusal must be exit 2 with one message, and the user's files stay
as they were.
"""

from __future__ import annotations

import errno
import pathlib
from pathlib import Path

import pytest

from vramdoc.cli import main

BROKEN = ("from transformers import TrainingArguments\n"
          "a = TrainingArguments(output_dir='o', evaluation_strategy='steps')\n")


def _refuse(monkeypatch: pytest.MonkeyPatch, method: str, when: str) -> None:
    real = getattr(pathlib.Path, method)

    def refused(self: Path, *args: object, **kwargs: object) -> object:
        mode = str(args[0] if args else kwargs.get("mode", "r"))
        writes = method == "mkdir" or any(c in mode for c in "wxa")
        if writes and when in str(self):
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(pathlib.Path, method, refused)


def test_fix_into_a_read_only_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    script = tmp_path / "train.py"
    script.write_text(BROKEN)
    _refuse(monkeypatch, "open", ".fixed.py")
    code = main(["doctor", str(script), "--fix"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("error: ") == 1 and "cannot write" in err and "Permission denied" in err
    assert "--diff" in err  # the fix: print the changes instead
    assert script.read_text() == BROKEN
    assert not (tmp_path / "train.fixed.py").exists()


@pytest.mark.parametrize("method", ["mkdir", "open"])
def test_kit_into_a_read_only_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str], method: str) -> None:
    kit = tmp_path / "kit"
    if method == "open":
        kit.mkdir()
        (kit / "notes.txt").write_text("mine\n")
    _refuse(monkeypatch, method, str(kit))
    code = main(["plan", "--model", "llama-2-7b", "--gpu", "2xA100-80GB", "--top", "1",
                 "--out", str(kit)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("error: ") == 1 and "cannot write the kit" in err
    if method == "open":
        assert [p.name for p in kit.iterdir()] == ["notes.txt"]
        assert (kit / "notes.txt").read_text() == "mine\n"
