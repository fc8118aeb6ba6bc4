"""`vramdoc models`: the catalog table, --json, --family, one model's inventory."""

from __future__ import annotations

import json

from vramdoc.models import catalog


def test_table_lists_every_model_with_exact_counts(run_cli) -> None:
    code, out, err = run_cli("models")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["name", "params", "layers", "hidden", "heads/kv", "vocab",
                                "dtype", "type", "hf_id"]
    assert len(lines) == 1 + len(catalog())
    row = next(line for line in lines if line.startswith("llama-2-7b "))
    assert row.split() == ["llama-2-7b", "6,738,415,616", "32", "4096", "32/32", "32,000",
                           "float16", "llama", "meta-llama/Llama-2-7b-hf"]
    assert any(line.split()[:2] == ["qwen-7b", "7,721,324,544"] and "qwen*" in line
               for line in lines)
    assert f"{len(catalog())} models" in err


def test_json_and_family_filter(run_cli) -> None:
    code, out, _ = run_cli("models", "--json")
    data = json.loads(out)
    assert code == 0 and [d["name"] for d in data] == [s.name for s in catalog()]
    mix = next(d for d in data if d["name"] == "mixtral-8x7b")
    assert mix["n_params"] == 46_702_792_704 and mix["num_local_experts"] == 8
    assert mix["source"] and "mistralai/Mixtral-8x7B-Instruct-v0.1" in mix["aliases"]
    code, out, _ = run_cli("models", "--family", "QWEN2", "--json")
    assert code == 0 and {d["name"] for d in json.loads(out)} == {
        f"qwen2.5-{s}" for s in ("0.5b", "1.5b", "3b", "7b", "14b", "32b", "72b")}
    code, out, _ = run_cli("models", "--family", "moe")
    assert code == 0 and [line.split()[0] for line in out.splitlines()[1:]] == ["mixtral-8x7b"]


def test_unknown_family_is_a_usage_error(run_cli) -> None:
    code, out, err = run_cli("models", "--family", "t5")
    assert code == 2 and out == ""
    assert "no catalog model matches family 't5'" in err and "families: encoder, gpt" in err


def test_one_model_detail_and_json(run_cli) -> None:
    code, out, _ = run_cli("models", "TheBloke/Mixtral-8x7B-Instruct-v0.1-GPTQ")
    assert code == 0 and out.startswith("mixtral-8x7b  (mistralai/Mixtral-8x7B-v0.1)")
    assert "model.layers.{i}.mlp.experts.gate_up_proj" in out and "8x28672x4096" in out
    code, out, _ = run_cli("models", "llama-2-7b", "--task", "sequence-classification",
                           "--json")
    d = json.loads(out)
    assert code == 0 and d["task"] == "sequence-classification"
    # The LM head (32000 x 4096) gives way to score (2 x 4096, no bias).
    assert d["n_params_task"] == 6_738_415_616 - 32000 * 4096 + 2 * 4096
    assert sum(g["numel"] for g in d["param_groups"]) == d["n_params_task"]
    assert d["param_groups"][-1]["path"] == "score"


def test_encoder_as_causal_lm_is_refused(run_cli) -> None:
    code, out, err = run_cli("models", "bert-base-uncased", "--task", "causal-lm")
    assert code == 2 and out == ""
    assert "does not support task 'causal-lm'" in err


def test_family_with_model_is_refused(run_cli) -> None:
    code, _, err = run_cli("models", "gpt2", "--family", "gpt")
    assert code == 2 and "--family filters the catalog list" in err
