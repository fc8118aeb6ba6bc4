"""Known hostile items of the CLI, fixed: GPU counts no machine holds, and an output path
that is a symbolic link (``plan --out --force``, ``doctor --fix``), dangling or not."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.mark.parametrize("argv", [
    ["--gpu", "100000xH100"],
    ["--gpu", "H100", "--num-gpus", "100000"],
    ["--gpu", "17xH100"],
    ["--gpu", "64xA100-80GB", "--nodes", "2"],
])
@pytest.mark.parametrize("command", ["estimate", "plan"])
def test_more_gpus_per_node_than_a_machine_holds(run_cli, command, argv) -> None:
    code, out, err = run_cli(command, "--model", "llama-2-7b", *argv)
    assert code == 2, out + err
    assert err.startswith("error: ") and "Traceback" not in err
    assert "per node; a machine holds at most 16" in err
    assert "--nodes" in err


@pytest.mark.parametrize("argv", [
    ["--gpu", "16xH100"],
    ["--gpu", "64xA100-80GB", "--nodes", "8"],
    ["--gpu", "H100", "--num-gpus", "100000", "--nodes", "12500"],
])
def test_real_clusters_are_planned(run_cli, argv) -> None:
    code, out, err = run_cli("estimate", "--model", "llama-2-7b", "--method", "lora", *argv)
    assert code in (0, 1), err


def test_setup_file_gpus_per_node(run_cli, tmp_path: Path) -> None:
    cfg = tmp_path / "run.yaml"
    cfg.write_text("model: llama-2-7b\ngpu: H100\nnum_gpus: 1024\n", encoding="utf-8")
    code, _, err = run_cli("estimate", "--config", str(cfg))
    assert code == 2 and "num_gpus: 1,024 GPUs on 1 node(s)" in err
    assert "nodes: 128 for 8 GPUs each" in err


def test_total_and_node_caps(run_cli) -> None:
    code, _, err = run_cli("estimate", "--model", "llama-2-7b", "--gpu", "H100",
                           "--num-gpus", "16", "--nodes", str(10**9))
    assert code == 2 and "nodes: 1,000,000,000 is more than vramdoc plans for" in err
    code, _, err = run_cli("estimate", "--model", "llama-2-7b", "--gpu", "H100",
                           "--num-gpus", str(2**21), "--nodes", str(2**18))
    assert code == 2 and "num_gpus: 2,097,152 is more than vramdoc plans for" in err


# --- symbolic links at output paths ----------------------------------------------------
def _plan(run_cli, out: Path, *extra: str) -> tuple[int, str, str]:
    return run_cli("plan", "--model", "qwen2.5-0.5b", "--gpu", "T4", "--out", str(out), *extra)


@pytest.mark.parametrize("force", [[], ["--force"]])
@pytest.mark.parametrize("dangling", [True, False])
def test_plan_out_never_writes_through_a_link(run_cli, tmp_path: Path, force, dangling) -> None:
    out = tmp_path / "kit"
    out.mkdir()
    target = tmp_path / "elsewhere.py"
    if not dangling:
        target.write_text("# the user's file\n", encoding="utf-8")
    os.symlink(target, out / "snippet.py")
    code, _, err = _plan(run_cli, out, *force)
    assert code == 2, err
    assert "snippet.py is a symbolic link" in err and "never writes through a link" in err
    if dangling:
        assert not target.exists()
    else:
        assert target.read_text(encoding="utf-8") == "# the user's file\n"
    assert (out / "snippet.py").is_symlink()
    assert not (out / "setup.yaml").exists()  # refused before anything was written


def test_plan_out_force_still_replaces_plain_files(run_cli, tmp_path: Path) -> None:
    out = tmp_path / "kit"
    out.mkdir()
    (out / "snippet.py").write_text("old\n", encoding="utf-8")
    code, _, err = _plan(run_cli, out, "--force")
    assert code in (0, 1), err
    assert (out / "snippet.py").read_text(encoding="utf-8") != "old\n"


def test_a_link_that_appears_after_the_check_is_not_followed(tmp_path: Path,
                                                             monkeypatch) -> None:
    """write_kit opens with O_NOFOLLOW: a link made between the check and the write fails."""
    from vramdoc.emit import kit
    from vramdoc.errors import UsageError

    target = tmp_path / "victim"
    out = tmp_path / "kit"
    out.mkdir()

    def check(d, force=False):  # the check passes, then a link appears
        os.symlink(target, out / "snippet.py")

    monkeypatch.setattr(kit, "check_kit_dir", check)
    monkeypatch.setattr(kit, "kit_files", lambda *a: {"snippet.py": "x = 1\n"})
    with pytest.raises(UsageError, match="cannot write the kit"):
        kit.write_kit(out, None, None, None, force=True)
    assert not target.exists()


@pytest.mark.parametrize("dangling", [True, False])
def test_doctor_fix_names_a_link(run_cli, tmp_path: Path, dangling) -> None:
    script = tmp_path / "train.py"
    script.write_text("from transformers import TrainingArguments\n"
                      "args = TrainingArguments(output_dir='o', evaluation_strategy='steps')\n",
                      encoding="utf-8")
    target = tmp_path / "elsewhere.py"
    if not dangling:
        target.write_text("keep\n", encoding="utf-8")
    os.symlink(target, tmp_path / "train.fixed.py")
    code, out, err = run_cli("doctor", str(script), "--fix")
    assert code == 2, out + err
    assert "train.fixed.py is a symbolic link" in err
    assert (not target.exists()) if dangling else target.read_text(encoding="utf-8") == "keep\n"
