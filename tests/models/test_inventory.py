"""Every catalog architecture, built on the meta device, matches vramdoc's inventory exactly.

For each catalog entry transformers can build (all but remote-code Qwen v1) and each task:
(a) ModelSpec.n_params equals the sum of numel over the model's parameters; (b) the parameter
names expanded from param_groups equal dict(model.named_parameters()) with identical numel;
(c) the groups marked quantizable are exactly the modules transformers 5 hands to
bitsandbytes (see tests/models/_meta.py::bnb_quantized). Each model is built once.
"""

from __future__ import annotations

import pytest

from vramdoc.errors import UsageError
from vramdoc.models import (
    CAUSAL_LM,
    SEQUENCE_CLASSIFICATION,
    catalog,
    default_task,
    param_groups,
)

pytest.importorskip("torch")
pytest.importorskip("transformers")

from tests.models._meta import build, expand, quantizable  # noqa: E402

SPECS = {s.name: s for s in catalog()}
BUILDABLE = [n for n, s in SPECS.items() if not s.remote_code]


def _has_seq_cls(spec) -> bool:
    try:  # Granite: transformers has no GraniteForSequenceClassification
        param_groups(spec, SEQUENCE_CLASSIFICATION)
    except UsageError:
        return False
    return True


def _smallest_per_type() -> list[str]:
    best: dict[str, str] = {}
    for name in BUILDABLE:
        s = SPECS[name]
        if not s.is_encoder and _has_seq_cls(s) and (s.model_type not in best
                                 or s.n_params < SPECS[best[s.model_type]].n_params):
            best[s.model_type] = name
    return sorted(best.values())


SEQ_CLS_LLMS = _smallest_per_type()


def _check(name: str, task: str) -> None:
    spec = SPECS[name]
    groups = param_groups(spec, task)
    params, bnb = build(name, spec.config, task)
    mine = expand(groups)
    missing, extra = sorted(set(params) - set(mine)), sorted(set(mine) - set(params))
    assert not missing and not extra, (missing[:5], extra[:5])
    wrong = {n: (mine[n], params[n]) for n in params if mine[n] != params[n]}
    assert not wrong, dict(list(wrong.items())[:5])
    assert sum(g.numel for g in groups) == sum(params.values())
    assert quantizable(groups) == bnb, (sorted(quantizable(groups) ^ bnb)[:5])


@pytest.mark.parametrize("name", BUILDABLE)
def test_default_task_matches_meta_build(name: str) -> None:
    spec = SPECS[name]
    _check(name, default_task(spec))
    params, _ = build(name, spec.config, default_task(spec))
    assert spec.n_params == sum(params.values())


@pytest.mark.parametrize("name", SEQ_CLS_LLMS)
def test_sequence_classification_matches_meta_build(name: str) -> None:
    _check(name, SEQUENCE_CLASSIFICATION)


def test_reference_counts() -> None:
    # shared/REFERENCE.md section 2: meta-device builds on this project's machines.
    assert SPECS["llama-2-7b"].n_params == 6_738_415_616
    assert SPECS["llama-3-8b"].n_params == 8_030_261_248
    assert SPECS["mixtral-8x7b"].n_params == 46_702_792_704


def test_mixtral_experts_and_router_stay_unquantized() -> None:
    # transformers 5.23: MixtralExperts holds fused 3-D Parameters and MixtralTopKRouter a bare
    # weight; replace_with_bnb_linear only swaps nn.Linear / Conv1D, so a "4-bit" Mixtral keeps
    # ~45 B expert parameters in the load dtype. Only attention projections are quantized.
    groups = param_groups(SPECS["mixtral-8x7b"], CAUSAL_LM)
    q = {g.leaf for g in groups if g.quantizable}
    assert q == {"q_proj", "k_proj", "v_proj", "o_proj"}
    experts = sum(g.numel for g in groups if g.kind == "experts")
    assert experts == 32 * 8 * 3 * 4096 * 14336  # L * E * (gate, up, down) * h * ffn


@pytest.mark.parametrize(("name", "task"), [
    ("falcon-7b", CAUSAL_LM), ("mixtral-8x7b", CAUSAL_LM), ("gpt2", CAUSAL_LM),
    ("bert-base-uncased", SEQUENCE_CLASSIFICATION), ("llama-3.2-1b", SEQUENCE_CLASSIFICATION)])
def test_real_bitsandbytes_quantizer_agrees(name: str, task: str) -> None:
    """The HfQuantizer itself (load_in_4bit) converts exactly the quantizable groups."""
    pytest.importorskip("bitsandbytes")
    import bitsandbytes as bnb
    import torch
    from transformers import (
        AutoConfig,
        AutoModelForCausalLM,
        AutoModelForSequenceClassification,
        BitsAndBytesConfig,
    )
    from transformers.quantizers.auto import AutoHfQuantizer

    from tests.models._meta import hf_kwargs

    spec = SPECS[name]
    cfg = AutoConfig.for_model(spec.model_type, **hf_kwargs(spec.config))
    auto = AutoModelForSequenceClassification if task == SEQUENCE_CLASSIFICATION \
        else AutoModelForCausalLM
    with torch.device("meta"):
        model = auto.from_config(cfg)
    quantizer = AutoHfQuantizer.from_config(BitsAndBytesConfig(load_in_4bit=True),
                                            pre_quantized=False)
    quantizer.preprocess_model(model, device_map={"": "cpu"})
    converted = {n for n, m in model.named_modules() if isinstance(m, bnb.nn.Linear4bit)}
    assert converted == quantizable(param_groups(spec, task))
