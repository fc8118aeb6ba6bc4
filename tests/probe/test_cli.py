"""`vramdoc probe` end to end on tiny models (in-process)."""

from __future__ import annotations

import json

import pytest

from tests.probe.conftest import TINY_LLAMA


@pytest.fixture
def tiny_dir(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(TINY_LLAMA))
    return tmp_path


def test_fake_probe_json_has_measured_estimate_findings(run_cli, tiny_dir):
    code, out, err = run_cli("probe", "--model", str(tiny_dir), "--method", "lora",
                             "--batch", "2", "--seq-len", "32", "--device", "fake", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert set(data) >= {"measured", "estimate", "findings"}
    for view in ("measured", "estimate"):
        assert set(data[view]) >= {"peak_allocated_bytes", "phases", "components"}
        assert set(data[view]["phases"]) == {"load", "forward", "backward", "optimizer_step"}
    m = data["measured"]
    assert m["device"] == "fake" and m["steps_run"] == 2
    assert sum(m["components"].values()) == m["peak_allocated_bytes"]
    assert data["findings"] == []


def test_cpu_probe_text_report(run_cli, tiny_dir):
    code, out, err = run_cli("probe", "--model", str(tiny_dir), "--batch", "2", "--seq-len",
                             "32", "--device", "cpu", "--steps", "2", "--optim", "adamw_torch")
    assert code == 0, err
    assert "peak allocated" in out and "steps/s" in out and "findings: none" in out
    assert "probing" in err


def test_weights_from_a_local_checkpoint(run_cli, tmp_path, capsys):
    from transformers import AutoConfig, AutoModelForCausalLM

    cfg = AutoConfig.for_model(**{k: v for k, v in TINY_LLAMA.items() if k != "torch_dtype"})
    AutoModelForCausalLM.from_config(cfg).save_pretrained(tmp_path)
    capsys.readouterr()  # save_pretrained may import DeepSpeed, whose logger prints to stdout
    code, out, err = run_cli("probe", "--model", str(tmp_path), "--weights", str(tmp_path),
                             "--batch", "1", "--seq-len", "16", "--device", "cpu", "--steps",
                             "1", "--json")
    assert code == 0, err
    assert json.loads(out)["steps"][0]["loss"] > 0


@pytest.mark.parametrize("args, message", [
    (["--device", "fake", "--weights", "x"], "--weights loads real tensors"),
    (["--device", "fake", "--steps", "0"], "--steps 0"),
])
def test_usage_errors_exit_2(run_cli, tiny_dir, args, message):
    code, out, err = run_cli("probe", "--model", str(tiny_dir), *args)
    assert code == 2 and message in err and out == ""


def test_cuda_without_gpu_exits_3(run_cli, tiny_dir):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    code, _, err = run_cli("probe", "--model", str(tiny_dir), "--device", "cuda")
    assert code == 3 and "no CUDA GPU" in err


def test_cold_probe_process_freezes_what_the_libraries_built(tiny_dir):
    """In a fresh process the probe's libraries import with the cyclic collector paused, what
    they built goes to the permanent generation (gc.freeze), the collector runs again for the
    steps, and stdout still carries only the report."""
    import subprocess
    import sys

    from tests.conftest import ROOT

    args = ["probe", "--model", str(tiny_dir), "--method", "lora", "--batch", "2",
            "--seq-len", "32", "--device", "fake", "--json"]
    code = ("import gc, json, sys; from vramdoc.cli import main; "
            f"rc = main({args!r}); "
            "print(json.dumps([rc, gc.isenabled(), gc.get_freeze_count()]), file=sys.stderr)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, check=True)
    rc, enabled, frozen = json.loads(out.stderr.strip().splitlines()[-1])
    assert rc == 0 and enabled
    assert frozen > 100_000  # torch + transformers + peft: hundreds of thousands of objects
    assert json.loads(out.stdout)["measured"]["steps_run"] == 2


def test_no_import_phase_once_torch_is_imported():
    """A process that imported torch already (a test run, a notebook) keeps its collector as
    it is: nothing is paused or frozen."""
    import gc

    import torch  # noqa: F401

    from vramdoc.commands.probe import _ImportPhase

    frozen = gc.get_freeze_count()
    phase = _ImportPhase()
    phase.end()
    assert not phase.active and gc.isenabled() and gc.get_freeze_count() == frozen
