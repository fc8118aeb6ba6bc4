"""examples/doctor-script: the documented report, the documented fixed copy, and a fixed copy
whose config-building calls construct with the real pinned libraries (no model is loaded)."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from vramdoc.readers._pyscan import CallSite, Unknown, scan_source

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "doctor-script"
ARGS = ("train.py", "--gpu", "RTX-3060-12GB", "--transformers", "5.24.0", "--peft", "0.21.2")
HINT = "refresh with `sh examples/doctor-script/command.sh --update` and review"


def test_report_matches_the_expected_one(run_cli, monkeypatch) -> None:
    monkeypatch.chdir(EXAMPLE)
    assert "vramdoc doctor $args" in (EXAMPLE / "command.sh").read_text()
    assert 'args="' + " ".join(ARGS) + '"' in (EXAMPLE / "command.sh").read_text()
    code, out, _err = run_cli("doctor", *ARGS)
    assert out == (EXAMPLE / "expected_report.txt").read_text(), HINT
    assert code == 1
    problems = {m for m in re.findall(r" x (A1\d\d) ", out)}
    assert len(re.findall(r" [x!] A1\d\d ", out)) >= 6 and problems >= {"A101", "A102", "A105"}
    readme = (EXAMPLE / "README.md").read_text()
    for code_ in ("A101", "A102", "A103", "A105", "S210"):
        assert code_ in readme and code_ in out


def test_fixed_copy_is_what_fix_writes(run_cli, monkeypatch) -> None:
    from vramdoc.doctor.checks import DoctorOptions, doctor_file
    from vramdoc.doctor.fixer import apply_edits

    monkeypatch.chdir(EXAMPLE)
    res = doctor_file("train.py", DoctorOptions(
        gpu="RTX-3060-12GB", versions={"transformers": "5.24.0", "peft": "0.21.2"}, plan=False))
    fixed, n = apply_edits(res.text, res.findings)
    assert fixed == (EXAMPLE / "train.fixed.py").read_text(), HINT
    assert n >= 6
    code, out, _ = run_cli("doctor", "train.fixed.py", *ARGS[1:])
    assert code == 0, out
    assert not re.search(r" [x!] A1\d\d ", out)


def _kwargs(site: CallSite) -> dict:
    import torch

    out = {}
    for kw in site.kwargs:
        v = kw.value
        assert not isinstance(v, Unknown), f"{site.cls}({kw.name}) is not a literal"
        if kw.name in ("bnb_4bit_compute_dtype", "dtype") and isinstance(v, str):
            v = getattr(torch, v)
        out[kw.name] = v
    return out


def _sites(path: Path) -> dict[str, list[CallSite]]:
    scan = scan_source(path.read_text())
    out: dict[str, list[CallSite]] = {}
    for s in scan.calls:
        out.setdefault(s.kind, []).append(s)
    return out


def test_fixed_copy_constructs_with_the_real_libraries(tmp_path) -> None:
    transformers = pytest.importorskip("transformers")
    peft = pytest.importorskip("peft")
    sites = _sites(EXAMPLE / "train.fixed.py")
    (ta,) = sites["training"]
    kw = _kwargs(ta)
    kw["output_dir"] = str(tmp_path / "results")
    args = transformers.TrainingArguments(**kw)
    assert args.optim == "paged_adamw_32bit" and args.warmup_steps == 0.03
    (q,) = sites["quant"]
    bnb = transformers.BitsAndBytesConfig(**_kwargs(q))
    assert bnb.load_in_4bit and bnb.bnb_4bit_use_double_quant
    (lo,) = [s for s in sites["lora"]]
    assert peft.LoraConfig(**_kwargs(lo)).r == 64
    # from_pretrained takes **kwargs: every keyword must be one it pops by name
    (model,) = sites["model"]
    src = inspect.getsource(transformers.PreTrainedModel.from_pretrained)
    accepted = set(re.findall(r'kwargs\.pop\("(\w+)"', src))
    assert {k.name for k in model.kwargs} <= accepted
    (trainer,) = sites["trainer"]
    assert {k.name for k in trainer.kwargs} <= set(
        inspect.signature(transformers.Trainer.__init__).parameters)


def test_original_script_does_not_construct(tmp_path) -> None:
    transformers = pytest.importorskip("transformers")
    (ta,) = _sites(EXAMPLE / "train.py")["training"]
    kw = _kwargs(ta)
    kw["output_dir"] = str(tmp_path / "results")
    with pytest.raises(TypeError, match="unexpected keyword"):
        transformers.TrainingArguments(**kw)
