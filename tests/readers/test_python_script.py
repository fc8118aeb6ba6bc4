"""The Python script and notebook readers: what tutorial-style sources give as a setup."""

from __future__ import annotations

import json
import textwrap

import pytest

from vramdoc.errors import UsageError
from vramdoc.readers import read_source
from vramdoc.readers.python_script import read
from vramdoc.setup import setup_from_mapping


def _read(src: str):
    return read("train.py", textwrap.dedent(src))


QLORA = """\
    import torch
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig, TrainingArguments
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    model_id = "mistralai/Mistral-7B-v0.1"
    bnb = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                             bnb_4bit_compute_dtype=torch.bfloat16)
    model = AutoModelForCausalLM.from_pretrained(model_id, quantization_config=bnb)
    model = prepare_model_for_kbit_training(model)
    peft_config = LoraConfig(r=16, lora_alpha=32, target_modules=["q_proj", "v_proj"])
    model = get_peft_model(model, peft_config)
    args = TrainingArguments(output_dir="out", per_device_train_batch_size=2 * 2,
                             gradient_accumulation_steps=4, bf16=True)
    args.optim = "paged_adamw_8bit"
    MAX_SEQ_LENGTH = 1024
"""


def test_qlora_script_gives_a_valid_setup_with_lines() -> None:
    r = _read(QLORA)
    assert r.kind == "python"
    s = r.setup
    assert s["model"] == "mistralai/Mistral-7B-v0.1"
    assert s["quantization"] == {"load_in_4bit": True, "bnb_4bit_quant_type": "nf4",
                                 "bnb_4bit_compute_dtype": "bfloat16"}
    assert s["lora"]["target_modules"] == ["q_proj", "v_proj"]
    assert s["training"]["per_device_train_batch_size"] == 4
    assert s["training"]["optim"] == "paged_adamw_8bit"  # attribute assignment
    assert s["max_seq_length"] == 1024
    assert s["prepare_model_for_kbit_training"] is True
    assert r.lines["training.optim"] == 14
    assert r.lines["quantization.bnb_4bit_compute_dtype"] == 7
    setup = setup_from_mapping(s)
    assert setup.method == "qlora" and setup.training.bf16


def test_argparse_defaults_and_dataclass_fields_resolve() -> None:
    r = _read("""\
        import argparse
        from dataclasses import dataclass, field
        from transformers import AutoModelForCausalLM, TrainingArguments
        p = argparse.ArgumentParser()
        p.add_argument("--model-name", default="gpt2")
        p.add_argument("--batch_size", type=int, default=8)
        @dataclass
        class ScriptArguments:
            seq_len: int = field(default=256)
        args = p.parse_args()
        sa = ScriptArguments()
        model = AutoModelForCausalLM.from_pretrained(args.model_name)
        ta = TrainingArguments(output_dir="o", per_device_train_batch_size=args.batch_size)
        tok(x, max_length=sa.seq_len)
    """)
    assert r.setup["model"] == "gpt2"
    assert r.setup["training"]["per_device_train_batch_size"] == 8
    assert r.setup["max_seq_length"] == 256


def test_unknown_values_are_findings_with_the_value_assumed() -> None:
    r = _read("""\
        import os
        from transformers import AutoModelForCausalLM, TrainingArguments
        model = AutoModelForCausalLM.from_pretrained(os.environ["MODEL"])
        ta = TrainingArguments(output_dir="o", per_device_train_batch_size=get_bs())
    """)
    assert "model" not in r.setup  # the rest is kept for `--model` to complete
    s103 = [f for f in r.findings if f.code == "S103"]
    assert s103[0].line == 3 and "os.environ[\"MODEL\"]" in s103[0].message
    assert any("per_device_train_batch_size" in f.message and "assumed 8" in f.message
               for f in r.findings)


@pytest.mark.parametrize("src", [
    # keyword after keywords, then an elision
    'args = TrainingArguments(output_dir="x", learning_rate=1e-4, ...)\n',
    # a line that is only ... inside the argument list, with arguments after it
    'args = TrainingArguments(\n    output_dir="x",\n    ...\n    learning_rate=1e-4,\n)\n',
    # a comment elision and a dict elision
    'args = TrainingArguments(\n    output_dir="x",  # ...\n    learning_rate=1e-4,\n'
    '    # ...\n)\nkw = {"a": 1, ...}\n',
])
def test_elisions_are_read_over_and_lines_kept(src: str) -> None:
    text = ('from transformers import AutoModelForCausalLM, TrainingArguments\n'
            'model = AutoModelForCausalLM.from_pretrained("gpt2", ...)\n' + src)
    r = read("t.py", text)
    assert r.setup is not None
    assert r.setup["training"]["learning_rate"] == 1e-4
    assert not [f for f in r.findings if f.code == "S101"]
    assert r.lines["training.learning_rate"] == next(
        i for i, line in enumerate(text.splitlines(), 1) if "learning_rate" in line)


def test_a_real_syntax_error_is_reported_on_its_line_and_the_rest_is_read() -> None:
    r = _read("""\
        from transformers import AutoModelForCausalLM, TrainingArguments
        model = AutoModelForCausalLM.from_pretrained("gpt2")
        if x = 3:
            pass
        ta = TrainingArguments(output_dir="o", per_device_train_batch_size=2)
    """)
    errs = [f for f in r.findings if f.code == "S101"]
    assert errs and errs[0].line == 3 and errs[0].severity == "error"
    assert r.setup["training"]["per_device_train_batch_size"] == 2


def test_removed_spellings_are_mapped_to_what_they_mean_today() -> None:
    r = _read("""\
        from transformers import AutoModelForCausalLM, TrainingArguments
        model = AutoModelForCausalLM.from_pretrained("gpt2", load_in_8bit=True,
                                                     use_flash_attention_2=True)
        ta = TrainingArguments(output_dir="o", warmup_ratio=0.03, evaluation_strategy="no")
    """)
    s = r.setup
    assert s["quantization"] == {"load_in_8bit": True}
    assert s["model_kwargs"]["attn_implementation"] == "flash_attention_2"
    assert s["training"]["warmup_steps"] == 0.03
    assert "evaluation_strategy" not in s["training"]


def test_from_pretrained_use_cache_is_read_with_its_line() -> None:
    r = _read("""\
        from transformers import AutoModelForCausalLM
        model = AutoModelForCausalLM.from_pretrained("bigcode/gpt_bigcode-santacoder",
                                                     use_cache=False)
    """)
    assert r.setup["model_kwargs"]["use_cache"] is False
    assert r.lines["model_kwargs.use_cache"] == 3
    assert setup_from_mapping(r.setup).use_cache is False


def test_notebook_findings_point_at_cell_and_line(tmp_path) -> None:
    nb = {"cells": [
        {"cell_type": "markdown", "source": ["# QLoRA\n"]},
        {"cell_type": "code", "source": ["!pip install -q peft\n", "import torch\n"]},
        {"cell_type": "code", "source": [
            "from transformers import AutoModelForCausalLM\n",
            "model = AutoModelForCausalLM.from_pretrained(\n",
            "    'gpt2', torch_dtype=torch.float16)\n"]},
        {"cell_type": "code", "source": "x = (1,\n"},
    ], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    p = tmp_path / "nb.ipynb"
    p.write_text(json.dumps(nb))
    r = read_source(p)
    assert r.kind == "notebook"
    assert r.setup["model_kwargs"]["dtype"] == "float16"
    assert (r.cells["model"], r.lines["model"]) == (3, 2)
    err = next(f for f in r.findings if f.code == "S101")
    assert (err.cell, err.line) == (4, 1)
    assert err.to_json()["cell"] == 4


def test_unreadable_and_unknown_files_are_usage_errors(tmp_path) -> None:
    with pytest.raises(UsageError, match="no such file"):
        read_source(tmp_path / "missing.py")
    b = tmp_path / "bin.py"
    b.write_bytes(b"\xff\xfe\x00x")
    with pytest.raises(UsageError, match="UTF-8"):
        read_source(b)
    bad = tmp_path / "bad.ipynb"
    bad.write_text("{not json")
    with pytest.raises(UsageError, match="not a notebook"):
        read_source(bad)


def test_estimate_accepts_a_script_as_config(tmp_path, run_cli) -> None:
    p = tmp_path / "train.py"
    p.write_text(textwrap.dedent(QLORA).replace("mistralai/Mistral-7B-v0.1", "llama-2-7b"))
    code, out, err = run_cli("estimate", "--config", str(p), "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["setup"]["quantization"]["load_in_4bit"] is True
    assert data["setup"]["max_seq_length"] == 1024


def test_a_reader_bug_is_a_one_line_error_not_a_traceback(tmp_path, monkeypatch, run_cli) -> None:
    import vramdoc.readers.python_script as py

    def broken(path, text):
        raise AttributeError("'str' object has no attribute 'suffix'")

    monkeypatch.setattr(py, "detect", broken)
    p = tmp_path / "t.py"
    p.write_text("x = 1\n")
    code, out, _err = run_cli("doctor", str(p))
    assert code == 2
    assert "the python_script reader failed (AttributeError" in out
