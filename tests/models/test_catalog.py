"""The shipped catalog: coverage, sources, unique names, and the remote-code Qwen v1 inventory."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from vramdoc.models import SUPPORTED_MODEL_TYPES, catalog, catalog_entries, param_groups
from vramdoc.models.inventory import CONFIG_ONLY_MODEL_TYPES

REQUIRED = [
    "llama-2-7b", "llama-2-13b", "llama-2-70b", "llama-3-8b", "llama-3-70b", "llama-3.1-8b",
    "llama-3.1-70b", "llama-3.1-405b", "llama-3.2-1b", "llama-3.2-3b", "llama-3.3-70b",
    "tinyllama-1.1b", "mistral-7b", "mistral-7b-v0.3", "mixtral-8x7b", "qwen2.5-0.5b",
    "qwen2.5-1.5b", "qwen2.5-3b", "qwen2.5-7b", "qwen2.5-14b", "qwen2.5-32b", "qwen2.5-72b",
    "qwen3-0.6b", "qwen3-1.7b", "qwen3-4b", "qwen3-8b", "qwen3-14b", "qwen3-32b", "qwen-1.8b",
    "qwen-7b", "qwen-14b", "qwen-72b", "gemma-2-2b", "gemma-2-9b", "gemma-2-27b", "gemma-3-1b",
    "gemma-3-4b", "gemma-3-12b", "gemma-3-27b", "phi-3-mini", "phi-3-medium", "phi-4", "gpt2",
    "gpt2-medium", "gpt2-large", "gpt2-xl", "gpt-neox-20b", "pythia-160m", "pythia-1b",
    "pythia-6.9b", "pythia-12b", "falcon-7b", "opt-125m", "opt-1.3b", "opt-6.7b", "bloom-560m",
    "bloomz-7b1", "santacoder", "starcoder", "yi-34b", "bert-base-uncased",
    "bert-large-uncased", "roberta-base", "roberta-large",
]
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$|^[\w.-]+$")
_SOURCE = re.compile(
    r"^(https://huggingface\.co/\S+/(blob|blame)/\S+/config\.json"
    r"|github\.com/[\w.-]+/[\w.-]+@[0-9a-f]{40}:\S+"
    r"|transformers \d+\.\d+\.\d+ models/\w+/configuration_\w+\.py)")


def test_catalog_covers_the_required_models_and_every_architecture() -> None:
    names = [s.name for s in catalog()]
    assert len(names) >= 45
    assert len(set(names)) == len(names)
    assert not set(REQUIRED) - set(names)
    assert {s.model_type for s in catalog()} == set(SUPPORTED_MODEL_TYPES) - set(
        CONFIG_ONLY_MODEL_TYPES)


def test_every_name_id_and_alias_points_to_one_entry() -> None:
    seen: dict[str, str] = {}
    for e in catalog_entries():
        for key in {e["name"], e["hf_id"], *e["aliases"]}:
            assert key.lower() not in seen, f"{key} in {seen.get(key.lower())} and {e['name']}"
            seen[key.lower()] = e["name"]


@pytest.mark.parametrize("e", catalog_entries(), ids=lambda e: e["name"])
def test_entry_is_complete_and_sourced(e: dict) -> None:
    assert re.fullmatch(r"[a-z0-9][a-z0-9.-]*", e["name"])
    assert "/" in e["hf_id"] and _REPO_ID.match(e["hf_id"])
    assert all(_REPO_ID.match(a) for a in e["aliases"])
    assert _SOURCE.match(e["source"]), e["source"]
    config = e["config"]
    assert config["model_type"] in SUPPORTED_MODEL_TYPES
    # The checkpoint dtype is stated, or the note says the config has none (float32 then).
    assert config.get("torch_dtype") or config.get("dtype") or "no torch_dtype" in e.get("note", "")


def test_spec_config_is_the_catalog_config() -> None:
    for spec, e in zip(catalog(), catalog_entries(), strict=True):
        assert spec.config == e["config"] and spec.hf_id == e["hf_id"]
        assert spec.source == e["source"] and spec.aliases == tuple(e["aliases"])
        assert spec.n_params == sum(g.numel for g in param_groups(spec))


def test_remote_code_is_exactly_qwen_v1() -> None:
    assert {s.name for s in catalog() if s.remote_code} == {
        "qwen-1.8b", "qwen-7b", "qwen-14b", "qwen-72b"}


def test_qwen_v1_inventory_follows_modeling_qwen() -> None:
    # Qwen/Qwen-7B modeling_qwen.py (mirror github.com/zhangningboo/Qwen-7B@1ff2086...):
    # QWenAttention.c_attn = Linear(h, 3 * kv_channels * a) with bias; c_proj and the MLP
    # (w1, w2: Linear(h, intermediate_size // 2); c_proj back to h) have bias=not no_bias.
    spec = next(s for s in catalog() if s.name == "qwen-7b")
    g = {x.path: x for x in param_groups(spec)}
    assert set(g) == {
        "transformer.wte", "transformer.h.{i}.ln_1", "transformer.h.{i}.attn.c_attn",
        "transformer.h.{i}.attn.c_proj", "transformer.h.{i}.ln_2", "transformer.h.{i}.mlp.w1",
        "transformer.h.{i}.mlp.w2", "transformer.h.{i}.mlp.c_proj", "transformer.ln_f",
        "lm_head"}
    h, f, L, V = 4096, 22016 // 2, 32, 151936
    assert (g["transformer.h.{i}.attn.c_attn"].out_features,
            g["transformer.h.{i}.attn.c_attn"].bias_numel) == (3 * 128 * 32, 3 * 4096)
    assert g["transformer.h.{i}.mlp.w1"].out_features == f and spec.intermediate_size == f
    assert sum(x.bias_numel * x.count for x in g.values()) == L * 3 * h
    per_layer = 2 * h + (h * 3 * h + 3 * h) + h * h + 3 * h * f
    assert spec.n_params == 2 * V * h + L * per_layer + h == 7_721_324_544
    # Published check: the 8 safetensors shards of Qwen/Qwen-7B listed at
    # https://huggingface.co/Qwen/Qwen-7B/tree/abcb6d6d8ec63ce606f816e2d08072da6309f965
    # are 1.96 + 6 x 2.02 + 1.33 = 15.41 GB (each rounded to 0.01 GB): 2 bytes per parameter.
    assert abs(2 * spec.n_params - 15.41e9) <= 8 * 0.005e9


def test_qwen_v1_has_no_sequence_classification_class() -> None:
    from vramdoc.errors import UsageError

    spec = next(s for s in catalog() if s.name == "qwen-1.8b")
    with pytest.raises(UsageError, match="does not support task 'sequence-classification'"):
        param_groups(spec, "sequence-classification")


def test_importing_models_is_light_and_lazy() -> None:
    code = (
        "import sys, vramdoc.models as m\n"
        "from vramdoc.models import _catalog\n"
        "lazy = _catalog.catalog_entries.cache_info().currsize == 0\n"
        "m.resolve_model('llama-2-7b')\n"
        "heavy = sorted(x for x in ('torch', 'transformers', 'huggingface_hub', 'numpy')"
        " if x in sys.modules)\n"
        "print(lazy, heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split(maxsplit=1)
    assert out[0] == "True" and json.loads(out[1].replace("'", '"')) == []
