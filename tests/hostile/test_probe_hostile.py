"""`vramdoc probe` on hostile input: one message and exit 2, bounded work, no traceback."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("peft")

ROOT = Path(__file__).resolve().parents[2]
TINY = {"model_type": "llama", "hidden_size": 64, "intermediate_size": 172,
        "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
        "vocab_size": 256, "max_position_embeddings": 128, "rms_norm_eps": 1e-5,
        "tie_word_embeddings": False, "torch_dtype": "float32"}


@pytest.fixture
def tiny(tmp_path: Path) -> str:
    path = tmp_path / "tiny" / "config.json"
    path.parent.mkdir()
    path.write_text(json.dumps(TINY))
    return str(path)


def _bad_input(run_cli, *args: str) -> str:
    code, out, err = run_cli("probe", *args)
    assert code == 2, (code, err)
    assert "Traceback" not in err and err.startswith("error: ")
    assert out == ""
    return err


@pytest.mark.parametrize("model", ["phi-3-mini", "phi-4", "gemma-3-4b"])
def test_lora_without_peft_defaults_is_bad_input_not_a_peft_traceback(run_cli, model) -> None:
    err = _bad_input(run_cli, "--model", model, "--method", "lora", "--device", "fake")
    assert "Please specify `target_modules`" in err and "all-linear" in err


def test_targets_that_match_nothing_are_bad_input(run_cli, tiny) -> None:
    err = _bad_input(run_cli, "--model", tiny, "--method", "lora", "--lora-targets", "q,v")
    assert "did you mean 'q_proj'" in err


def test_sequence_longer_than_learned_positions(run_cli) -> None:
    err = _bad_input(run_cli, "--model", "gpt2", "--seq-len", "2048", "--device", "fake")
    assert "max_position_embeddings 1024" in err and "--seq-len 1024" in err


def test_weights_that_are_not_a_folder_fail_at_once_without_the_hub(run_cli, tiny) -> None:
    started = time.perf_counter()
    err = _bad_input(run_cli, "--model", tiny, "--weights", "nope", "--device", "cpu")
    assert time.perf_counter() - started < 5
    assert "not a local directory" in err and "HF_HUB_OFFLINE" in err


def test_a_weights_folder_without_weights(run_cli, tiny, tmp_path) -> None:
    empty = tmp_path / "ckpt"
    empty.mkdir()
    (empty / "config.json").write_text(json.dumps(TINY))
    err = _bad_input(run_cli, "--model", tiny, "--weights", str(empty), "--device", "cpu")
    assert "holds no model weights" in err


@pytest.mark.parametrize(("flag", "value", "needle"), [
    ("--lr", "nan", "finite number > 0"),
    ("--lr", "inf", "finite number > 0"),
    ("--lr", "-1", "finite number > 0"),
    ("--max-grad-norm", "nan", "finite number >= 0"),
    ("--seed", str(10**30), "2**63 - 1"),
    ("--seed", "-1", "2**63 - 1"),
    ("--steps", "0", "at least 1"),
])
def test_probe_flags(run_cli, tiny, flag, value, needle) -> None:
    assert needle in _bad_input(run_cli, "--model", tiny, flag, value, "--device", "cpu")


def test_an_unreachable_hub_id_fails_fast_naming_hf_hub_offline(run_cli, monkeypatch) -> None:
    pytest.importorskip("huggingface_hub")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    # nothing listens here: the one try is refused at once
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    from vramdoc.models import resolve as r

    r._from_hub.cache_clear()
    started = time.perf_counter()
    code, _out, err = run_cli("probe", "--model", "someorg/not-a-model-xyz", "--device", "fake")
    assert time.perf_counter() - started < 10
    assert code == 2 and "HF_HUB_OFFLINE" in err and "Retrying" not in err


def test_huge_step_counts_are_capped_with_a_message(run_cli, tiny, monkeypatch) -> None:
    import vramdoc.probe.recipe as recipe

    seen = {}

    def fake_run(setup, spec, **kw):  # the cap is the CLI's: record what it asks for
        seen.update(kw)
        raise SystemExit(0)

    monkeypatch.setattr(recipe, "run_probe", fake_run)
    with pytest.raises(SystemExit):
        run_cli("probe", "--model", tiny, "--steps", "1000000", "--device", "cpu")
    assert seen["steps"] == 1000 and seen["progress"] is not None


def test_a_library_exception_in_the_build_is_finding_d190(run_cli, tiny, monkeypatch) -> None:
    import vramdoc.probe.build as build

    def refuse(*a, **k):
        raise ValueError("Target module Foo is not supported. Currently, only ... are supported")

    monkeypatch.setattr(build, "build_real", refuse)
    code, out, err = run_cli("probe", "--model", tiny, "--device", "cpu", "--json")
    assert code == 1 and "Traceback" not in err
    data = json.loads(out)
    (f,) = [f for f in data["findings"] if f["code"] == "D190"]
    assert "ValueError: Target module Foo is not supported" in f["message"]


def test_a_library_exception_in_a_step_is_finding_d190(run_cli, tiny, monkeypatch) -> None:
    import vramdoc.probe.optim as optim

    def refuse(*a, **k):
        raise KeyError("exp_avg")  # not one of the usual RuntimeError/ValueError

    monkeypatch.setattr(optim, "build_optimizer", refuse)
    code, out, err = run_cli("probe", "--model", tiny, "--device", "cpu")
    assert code == 1 and "Traceback" not in err
    assert "D190" in out and "KeyError" in out


def test_ctrl_c_stops_cleanly_with_a_partial_report(tiny) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "vramdoc", "probe", "--model", tiny, "--device", "cpu",
         "--steps", "100000"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    lines = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # progress lines arrive on stderr as steps finish
        line = proc.stderr.readline()
        lines.append(line)
        if line.startswith("step 3/1000"):
            break
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    err = "".join(lines) + err
    assert proc.returncode == 130, err
    assert "capped at 1000" in err and "Traceback" not in err
    assert "INTERRUPTED (Ctrl-C)" in out and "peak allocated" in out


def test_component_errors_show_absolute_differences_below_the_floor() -> None:
    from vramdoc.probe.report import _err

    assert _err(188 * 2**20, 1024) == "-188 MiB (n/a %)"
    assert "%" in _err(100 * 2**20, 110 * 2**20) and "n/a" not in _err(100 * 2**20, 110 * 2**20)
    assert _err(1000, 1024) == ""
