"""`vramdoc doctor`: report contract, formats, exit codes, fixes that never overwrite."""

from __future__ import annotations

import json
import textwrap

import pytest

SCRIPT = textwrap.dedent("""\
    import torch
    from transformers import AutoModelForCausalLM, TrainingArguments, Trainer
    model = AutoModelForCausalLM.from_pretrained("llama-2-7b", load_in_4bit=True,
                                                 torch_dtype=torch.float16)
    args = TrainingArguments(
        output_dir="out",
        evaluation_strategy="steps",  # old name
        per_device_train_batch_size=1,
        fp16=True,
    )
    trainer = Trainer(model=model, args=args, tokenizer=tok)
    from peft import LoraConfig, get_peft_model
    model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32))
""")


@pytest.fixture
def script(tmp_path):
    p = tmp_path / "train.py"
    p.write_text(SCRIPT)
    return p


def test_json_contract(run_cli, script) -> None:
    code, out, _err = run_cli("doctor", str(script), "--json", "--no-plan")
    data = json.loads(out)
    (f,) = data["files"]
    assert f["path"] == str(script)
    assert f["setup"]["model"] == "llama-2-7b"
    assert f["estimate"]["model"] == "llama-2-7b" and "peak_allocated_bytes" in f["estimate"]
    by_code = {x["code"]: x for x in f["findings"]}
    for key in ("code", "severity", "line", "message", "fix"):
        assert key in by_code["A102"]
    assert by_code["A101"]["line"] == 3  # load_in_4bit straight to from_pretrained
    assert {x["line"] for x in f["findings"] if x["code"] == "A102"} == {7, 11}
    assert code == 1  # error-severity findings


def test_text_report_groups_by_file_with_locations_and_info(run_cli, script) -> None:
    code, out, _err = run_cli("doctor", str(script), "--gpu", "A100-80GB-SXM", "--no-plan")
    assert out.startswith(f"{script} (python)\n")
    assert f"{script}:7:5: x A102 TrainingArguments(evaluation_strategy=...)" in out
    assert f"{script}:4:46: ! A103" in out
    assert "S210 fits:" in out  # info findings are in the text report
    assert code == 1


def test_sarif(run_cli, script) -> None:
    _code, out, _err = run_cli("doctor", str(script), "--format", "sarif", "--no-plan")
    log = json.loads(out)
    assert log["version"] == "2.1.0" and log["$schema"].endswith("sarif-2.1.0.json")
    run = log["runs"][0]
    assert run["tool"]["driver"]["name"] == "vramdoc"
    res = next(r for r in run["results"] if r["ruleId"] == "A101")
    assert res["level"] == "error"
    loc = res["locations"][0]["physicalLocation"]
    assert loc["artifactLocation"]["uri"].endswith("train.py")
    assert loc["region"]["startLine"] == 3
    assert {r["id"] for r in run["tool"]["driver"]["rules"]} >= {"A101", "A102", "A103"}


def test_fix_writes_a_copy_and_never_overwrites(run_cli, script) -> None:
    code, _out, err = run_cli("doctor", str(script), "--fix", "--no-plan")
    fixed = script.with_name("train.fixed.py")
    assert fixed.is_file() and script.read_text() == SCRIPT
    text = fixed.read_text()
    assert "eval_strategy=\"steps\",  # old name" in text  # comments and layout kept
    assert "quantization_config=BitsAndBytesConfig(load_in_4bit=True)" in text
    assert "from transformers import AutoModelForCausalLM, TrainingArguments, Trainer, " \
           "BitsAndBytesConfig" in text
    assert "processing_class=tok" in text and "dtype=torch.float16" in text
    assert "wrote" in err
    # the fixed copy has no API findings left
    code2, out2, _ = run_cli("doctor", str(fixed), "--json", "--no-plan")
    codes = {x["code"] for x in json.loads(out2)["files"][0]["findings"]}
    assert not codes & {"A101", "A102", "A103", "A104", "A105"}
    # a second --fix refuses to replace the copy
    before = fixed.read_text()
    code3, _o, err3 = run_cli("doctor", str(script), "--fix", "--no-plan")
    assert code3 == 2 and "already exists" in err3 and fixed.read_text() == before


def test_diff_prints_the_same_changes(run_cli, script) -> None:
    _code, out, _err = run_cli("doctor", str(script), "--diff", "--no-plan")
    assert out.startswith(f"--- {script}\n+++ {script.with_name('train.fixed.py')}\n")
    assert '-    evaluation_strategy="steps",  # old name\n' in out
    assert '+    eval_strategy="steps",  # old name\n' in out
    assert not script.with_name("train.fixed.py").exists()


def test_emit_yaml_round_trips_into_estimate(run_cli, script, tmp_path) -> None:
    code, out, err = run_cli("doctor", str(script), "--emit", "yaml", "--no-plan")
    assert "A102" in err  # the report goes to stderr
    setup = tmp_path / "setup.yaml"
    setup.write_text(out)
    code, out2, _ = run_cli("estimate", "--config", str(setup), "--json")
    assert code == 0
    data = json.loads(out2)
    assert data["setup"]["quantization"]["load_in_4bit"] is True
    assert data["setup"]["training"]["per_device_train_batch_size"] == 1


def test_unreadable_input_exits_2_and_others_are_still_checked(run_cli, script, tmp_path
                                                                ) -> None:
    code, out, _err = run_cli("doctor", str(tmp_path / "missing.py"), str(script), "--no-plan")
    assert code == 2
    assert "cannot read" in out and "A102" in out
    assert "1 file(s) could not be read" in out


def test_clean_script_exits_0(run_cli, tmp_path) -> None:
    p = tmp_path / "ok.py"
    p.write_text(textwrap.dedent("""\
        from transformers import AutoModelForCausalLM, TrainingArguments
        model = AutoModelForCausalLM.from_pretrained("llama-2-7b", dtype="bfloat16")
        args = TrainingArguments(output_dir="o", per_device_train_batch_size=1, bf16=True,
                                 activation_checkpointing=True, optim="adamw_8bit")
        MAX_SEQ_LENGTH = 512
    """))
    code, out, _ = run_cli("doctor", str(p), "--gpu", "A100-80GB-SXM", "--no-plan")
    assert code == 0, out
    assert "S210 fits" in out


def test_does_not_fit_names_the_planners_change(run_cli, tmp_path) -> None:
    p = tmp_path / "big.py"
    p.write_text(textwrap.dedent("""\
        from transformers import AutoModelForCausalLM, TrainingArguments
        model = AutoModelForCausalLM.from_pretrained("llama-2-7b")
        args = TrainingArguments(output_dir="o", per_device_train_batch_size=8, fp16=True)
        MAX_SEQ_LENGTH = 1024
    """))
    code, out, _ = run_cli("doctor", str(p), "--gpu", "RTX-3060-12GB", "--json")
    f = json.loads(out)["files"][0]
    s211 = next(x for x in f["findings"] if x["code"] == "S211")
    assert s211["severity"] == "error" and s211["line"] == 3
    assert "closest plan that fits" in s211["fix"] and "->" in s211["fix"]
    assert f["estimate"]["fits"] is False
    assert code == 1


def test_versions_from_a_requirements_pin(run_cli, tmp_path) -> None:
    p = tmp_path / "train.py"
    p.write_text('from transformers import TrainingArguments\n'
                 'a = TrainingArguments(output_dir="o", warmup_ratio=0.1)\n')
    (tmp_path / "requirements.txt").write_text("transformers==4.46.3\ntorch\n")
    code, out, _ = run_cli("doctor", str(p), "--json")
    (f,) = [x for x in json.loads(out)["files"][0]["findings"] if x["code"].startswith("A")]
    assert f["code"] == "A106" and f["severity"] == "info"  # breaks only on upgrading
    assert "requirements.txt" in f["message"]
    assert code == 0
    code, out, _ = run_cli("doctor", str(p), "--json", "--transformers", "5.24")
    (f,) = [x for x in json.loads(out)["files"][0]["findings"] if x["code"].startswith("A")]
    assert f["code"] == "A102" and code == 1


def test_bad_flags_are_usage_errors(run_cli, script) -> None:
    assert run_cli("doctor", str(script), "--gpu", "no-such-gpu")[0] == 2
    assert run_cli("doctor", str(script), "--seq-len", "0")[0] == 2


def test_estimate_and_plan_exit_1_on_an_error_hardware_rule(run_cli) -> None:
    code, out, err = run_cli("estimate", "--model", "llama-2-7b", "--method", "qlora",
                             "--precision", "bf16", "--attn", "flash_attention_2", "--gpu", "T4")
    assert code == 1
    assert "H101" in err and "H103" in err


def test_gpu_named_in_the_file_and_model_from_the_command_line(run_cli, tmp_path) -> None:
    p = tmp_path / "colab.py"
    p.write_text(textwrap.dedent("""\
        # Fine-tune on a free Colab T4
        import os
        from transformers import AutoModelForCausalLM, TrainingArguments
        model = AutoModelForCausalLM.from_pretrained(os.environ["MODEL_ID"])
        args = TrainingArguments(output_dir="o", bf16=True, per_device_train_batch_size=1)
    """))
    code, out, _ = run_cli("doctor", str(p), "--json", "--no-plan")
    f = json.loads(out)["files"][0]
    assert f["setup"] is None and f["estimate"] is None  # the model is not known statically
    assert any(x["code"] == "S103" and x["line"] == 4 for x in f["findings"])
    code, out, _ = run_cli("doctor", str(p), "--json", "--no-plan", "--model", "llama-2-7b")
    f = json.loads(out)["files"][0]
    codes = {(x["code"], x["line"]) for x in f["findings"]}
    assert ("S107", 1) in codes  # GPU taken from the comment
    assert ("H101", 5) in codes  # bf16 on a T4, pointed at the bf16 line's call
    assert f["estimate"]["gpu"]["name"] == "T4"
    assert code == 1


def test_notebook_report_points_at_cells(run_cli, tmp_path) -> None:
    nb = {"cells": [
        {"cell_type": "markdown", "source": "# demo"},
        {"cell_type": "code", "source": ["from transformers import AutoModelForCausalLM, "
                                         "TrainingArguments\n"]},
        {"cell_type": "code", "source": ["model = AutoModelForCausalLM.from_pretrained(\n",
                                         "    'llama-2-7b')\n",
                                         "args = TrainingArguments(output_dir='o',\n",
                                         "    evaluation_strategy='no')\n"]},
    ]}
    p = tmp_path / "nb.ipynb"
    p.write_text(json.dumps(nb))
    code, out, _ = run_cli("doctor", str(p), "--no-plan")
    assert f"{p}:cell 3:4:5: x A102 TrainingArguments(evaluation_strategy=...)" in out
    assert code == 1
    code, _out, err = run_cli("doctor", str(p), "--fix", "--no-plan")
    assert "notebooks are not rewritten" in err and not (tmp_path / "nb.fixed.ipynb").exists()
