"""vramdoc's own setup files, read by ``vramdoc doctor`` as ``estimate --config`` reads them."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from vramdoc.readers import read_source, reader_for

SETUP = """\
model: santacoder
stack: {transformers: "4.55.4"}
model_kwargs: {dtype: bfloat16}
training: {per_device_train_batch_size: 2, gradient_checkpointing: true}
max_seq_length: 1024
"""


def test_a_setup_yaml_is_read_as_it_is(tmp_path: Path) -> None:
    p = tmp_path / "run.yaml"
    p.write_text(SETUP)
    r = read_source(p)
    assert r.kind == "setup"
    assert r.setup is not None and r.setup["training"]["gradient_checkpointing"] is True
    assert r.lines["training"] == 4


def test_doctor_checks_a_setup_file_line_by_line(
        tmp_path: Path, run_cli: Callable[..., tuple[int, str, str]]) -> None:
    p = tmp_path / "run.yaml"
    p.write_text(SETUP)
    code, out, _ = run_cli("doctor", str(p))
    assert code == 0
    # transformers 4.55's GPTBigCode ignores gradient checkpointing: H121 on the training line
    assert f"{p}:4: ! H121 transformers 4.55.4 ignores gradient checkpointing" in out
    assert "M205" not in out  # nothing to say about checkpointing that does not happen
    p.write_text(SETUP.replace("training:", "traning:"))
    code, out, _ = run_cli("doctor", str(p))
    assert code == 1
    assert f"{p}:4: x S201 the setup is not valid: traning: unknown key (did you mean " \
           "'training'?)" in out


def test_a_setup_json_is_read_too(tmp_path: Path) -> None:
    p = tmp_path / "run.json"
    p.write_text(json.dumps({"model": "gpt2", "training": {"per_device_train_batch_size": 1}},
                            indent=2))
    r = read_source(p)
    assert r.kind == "setup" and r.setup == {"model": "gpt2",
                                             "training": {"per_device_train_batch_size": 1}}
    p.write_text('{"model": "gpt2", "training": {"per_device_train_batch_size": 1}}')  # one line
    assert read_source(p).kind == "setup"
    p.write_text('{"model": "gpt2", "training": ')  # cut short: said, not a traceback
    r = read_source(p)
    assert r.setup is None and r.findings[0].code == "R200" and "not valid JSON" in \
        r.findings[0].message


def test_other_formats_keep_their_readers(tmp_path: Path) -> None:
    axo = tmp_path / "axolotl.yaml"
    axo.write_text("base_model: gpt2\nmicro_batch_size: 2\nsequence_len: 512\n")
    trl = tmp_path / "sft.yaml"
    trl.write_text("model_name_or_path: gpt2\nlearning_rate: 2e-4\n")
    mod = reader_for(axo, axo.read_text())
    assert mod is not None and mod.KIND == "axolotl"
    mod = reader_for(trl, trl.read_text())
    assert mod is not None and mod.KIND == "trl"
    # a config.json of a run stays the run reader's, even with a "model" key
    cfg = tmp_path / "config.json"
    cfg.write_text('{"model_type": "llama", "model": "x", "training": {}}')
    mod = reader_for(cfg, cfg.read_text())
    assert mod is None or mod.KIND != "setup"
