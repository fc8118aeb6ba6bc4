"""resolve_model: catalog names, repo ids, aliases, local configs, hub gating, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vramdoc.errors import ConfigError, UnknownModelError, UsageError
from vramdoc.models import param_groups, resolve, resolve_model

TINY = {"model_type": "llama", "hidden_size": 64, "intermediate_size": 96,
        "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
        "vocab_size": 101, "torch_dtype": "bfloat16", "_name_or_path": "someone/tiny-llama"}


@pytest.mark.parametrize(("text", "name"), [
    ("llama-2-7b", "llama-2-7b"),
    ("meta-llama/Llama-2-7b-hf", "llama-2-7b"),
    ("NousResearch/Llama-2-7b-hf", "llama-2-7b"),
    ("TheBloke/Llama-2-7B-GPTQ", "llama-2-7b"),
    ("thebloke/llama-2-7b-gptq", "llama-2-7b"),
    ("  LLAMA-2-7B ", "llama-2-7b"),
    ("https://huggingface.co/meta-llama/Llama-2-7b-hf", "llama-2-7b"),
    ("TheBloke/Llama-2-70B-GPTQ", "llama-2-70b"),
    ("meta-llama/Meta-Llama-3.1-8B", "llama-3.1-8b"),
    ("meta-llama/Llama-3.2-3B", "llama-3.2-3b"),
    ("mistralai/Mistral-7B-v0.1", "mistral-7b"),
    ("TheBloke/Mistral-7B-v0.1-GPTQ", "mistral-7b"),
    ("mistralai/Mixtral-8x7B-v0.1", "mixtral-8x7b"),
    ("mistralai/Mixtral-8x7B-Instruct-v0.1", "mixtral-8x7b"),
    ("TheBloke/Mixtral-8x7B-Instruct-v0.1-GPTQ", "mixtral-8x7b"),
    ("bert-large-uncased", "bert-large-uncased"),
    ("google/gemma-3-4b-it", "gemma-3-4b"),
    ("Qwen/Qwen2.5-7B-Instruct", "qwen2.5-7b"),
])
def test_catalog_names_ids_and_aliases(text: str, name: str) -> None:
    assert resolve_model(text).name == name


def test_local_config_file_and_directory(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps(TINY))
    by_dir = resolve_model(str(tmp_path))
    by_file = resolve_model(str(tmp_path / "config.json"))
    assert by_dir.n_params == by_file.n_params == sum(g.numel for g in param_groups(by_dir))
    # 101*64 embed + lm_head, 2 layers of (64*64 q + 2*32*64 kv + 64*64 o + 3*64*96 mlp + 2*64)
    assert by_dir.n_params == 2 * 101 * 64 + 2 * (2 * 64 * 64 + 2 * 32 * 64 + 3 * 64 * 96
                                                   + 2 * 64) + 64
    assert by_dir.hf_id == "someone/tiny-llama" and by_dir.checkpoint_dtype == "bfloat16"
    assert by_dir.name == str(tmp_path) and by_file.source == str(tmp_path / "config.json")


def test_local_errors(tmp_path: Path) -> None:
    with pytest.raises(UnknownModelError, match="has no config.json"):
        resolve_model(str(tmp_path))
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="not a readable JSON file"):
        resolve_model(str(bad))
    bad.write_text("[1, 2]")
    with pytest.raises(ConfigError, match="not a JSON object"):
        resolve_model(str(bad))
    # a model_type vramdoc has no builder for goes to transformers (tests/models/
    # test_generic.py); T5 has no causal-LM class there, so it is refused, by name
    bad.write_text(json.dumps({"model_type": "t5"}))
    with pytest.raises(UnknownModelError, match="model_type 't5'.*no causal-LM class"):
        resolve_model(str(bad))


def test_unknown_name_suggests_close_catalog_names() -> None:
    with pytest.raises(UnknownModelError, match="did you mean llama-2-7b") as exc:
        resolve_model("llama2-7b")
    assert "vramdoc models" in exc.value.hint and exc.value.exit_code == 2
    with pytest.raises(UnknownModelError) as exc:
        resolve_model("zzzz")
    assert exc.value.message == "unknown model 'zzzz'"
    with pytest.raises(UsageError, match="no model given"):
        resolve_model("  ")


def test_unknown_model_exits_2_with_did_you_mean(run_cli) -> None:
    code, out, err = run_cli("models", "mistral-7b-v3")
    assert code == 2 and out == ""
    assert "unknown model 'mistral-7b-v3'; did you mean mistral-7b-v0.3" in err
    assert "hint: run `vramdoc models`" in err and "Traceback" not in err


def test_hub_is_not_consulted_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(repo_id: str) -> None:
        raise AssertionError("hub consulted")

    monkeypatch.setattr(resolve, "_from_hub", boom)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(UnknownModelError, match="someone/not-in-catalog"):
        resolve_model("someone/not-in-catalog")


def test_hub_is_used_for_repo_ids_when_online(monkeypatch: pytest.MonkeyPatch) -> None:
    from vramdoc.models import spec_from_config

    calls = []

    def fake(repo_id: str):
        calls.append(repo_id)
        return spec_from_config(TINY, name=repo_id, hf_id=repo_id, source="fake")

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(resolve, "_hub_allowed", lambda: True)
    monkeypatch.setattr(resolve, "_from_hub", fake)
    assert resolve_model("someone/tiny").hf_id == "someone/tiny"
    assert resolve_model("llama-2-7b").name == "llama-2-7b"  # the catalog comes first
    with pytest.raises(UnknownModelError):
        resolve_model("not a repo id")  # not repo-shaped: never sent to the hub
    assert calls == ["someone/tiny"]


def test_hub_allowed_reads_offline_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert not resolve._hub_allowed()
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "true")
    assert not resolve._hub_allowed()
