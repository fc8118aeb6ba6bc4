"""LoRA targets are checked as PEFT checks them: defaults, names, zero trainable parameters."""

from __future__ import annotations

import json
from importlib import resources

import pytest

from vramdoc.errors import UsageError
from vramdoc.estimate import estimate
from vramdoc.estimate.adapters import PEFT_NO_DEFAULT_MESSAGE, attention_names
from vramdoc.models import catalog, param_groups
from vramdoc.setup import LoraSetup, TrainSetup


def _lora(model: str, targets: tuple[str, ...] = ()) -> TrainSetup:
    return TrainSetup(model=model, lora=LoraSetup(r=8, lora_alpha=16, target_modules=targets),
                      max_seq_length=128).replace_training(per_device_train_batch_size=1)


def test_shipped_defaults_equal_the_installed_peft() -> None:
    constants = pytest.importorskip("peft.utils.constants")
    import peft

    data = json.loads(resources.files("vramdoc.data").joinpath("peft_defaults.json").read_text())
    assert data["source"].startswith(f"peft {peft.__version__}:")
    mapping = constants.TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING
    assert data["default_lora_targets"] == {k: list(v) for k, v in mapping.items()}


@pytest.mark.parametrize("spec", catalog(), ids=lambda s: s.name)
def test_every_catalog_model_trains_something_or_says_what_peft_says(spec) -> None:
    try:
        est = estimate(_lora(spec.name), model=spec)
    except UsageError as e:
        assert PEFT_NO_DEFAULT_MESSAGE in e.message
        assert "all-linear" in e.hint
        # the suggestions work: all-linear, and the attention projections the hint names
        assert estimate(_lora(spec.name, ("all-linear",)), model=spec).trainable_params > 0
        groups = param_groups(spec, task="causal-lm" if not spec.is_encoder else
                              "sequence-classification")
        attn = tuple(attention_names(groups))
        assert attn and ", ".join(attn) in e.hint
        assert estimate(_lora(spec.name, attn), model=spec).trainable_params > 0
        return
    assert est.trainable_params > 0


@pytest.mark.parametrize("name", ["phi-3-mini", "phi-4", "gemma-3-4b"])
def test_models_without_a_peft_default_exit_2(run_cli, name: str) -> None:
    code, _out, err = run_cli("estimate", "--model", name, "--method", "lora", "--batch", "1")
    assert code == 2
    assert PEFT_NO_DEFAULT_MESSAGE in err and "all-linear" in err and "Traceback" not in err


def test_targets_that_match_nothing_are_refused_with_did_you_mean(run_cli) -> None:
    code, _out, err = run_cli("estimate", "--model", "llama-2-7b", "--method", "lora",
                              "--lora-targets", "q,v")
    assert code == 2
    assert "not found in the base model" in err
    assert "did you mean 'q_proj'" in err and "did you mean 'v_proj'" in err


def test_a_misspelt_name_beside_good_ones_is_a_note() -> None:
    est = estimate(_lora("llama-2-7b", ("q_proj", "v_porj")))
    assert est.trainable_params == 8 * (4096 + 4096) * 32
    assert any("'v_porj'" in n and "did you mean 'v_proj'" in n for n in est.notes)


def test_dotted_targets_match_as_peft_suffixes() -> None:
    est = estimate(_lora("llama-2-7b", ("self_attn.q_proj",)))
    assert est.trainable_params == 8 * (4096 + 4096) * 32


def test_zero_trainable_parameters_is_an_error(monkeypatch) -> None:
    # the target check is the first line of defence; behind it, a setup that would train
    # nothing is refused whatever the reason
    import vramdoc.estimate.core as core

    monkeypatch.setattr(core, "check_lora_targets", lambda *a: ())
    with pytest.raises(UsageError, match="trains 0 parameters"):
        estimate(_lora("llama-2-7b", ("nothing",)))


def test_planner_never_offers_default_targets_peft_would_reject() -> None:
    from vramdoc.hardware import resolve_gpu
    from vramdoc.planner import PlanRequest, plan

    res = plan(PlanRequest(model="phi-3-mini", gpu=resolve_gpu("24GB,sm86"), top_k=6))
    assert res.plans
    for p in res.plans:
        assert p.setup.lora is None or p.setup.lora.target_modules == ("all-linear",)
        assert p.estimate.trainable_params > 0


def test_the_messages_are_the_ones_peft_raises() -> None:
    """Tiny Phi-3 and Llama built on meta: PEFT raises the errors vramdoc reports."""
    pytest.importorskip("peft")
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoConfig, AutoModelForCausalLM

    def tiny(model_type: str) -> torch.nn.Module:
        cfg = AutoConfig.for_model(model_type, hidden_size=64, intermediate_size=128,
                                   num_hidden_layers=1, num_attention_heads=4,
                                   num_key_value_heads=4, vocab_size=128,
                                   pad_token_id=0, bos_token_id=1, eos_token_id=2)
        with torch.device("meta"):
            return AutoModelForCausalLM.from_config(cfg)

    with pytest.raises(ValueError, match="Please specify `target_modules`"):
        get_peft_model(tiny("phi3"), LoraConfig(r=4))
    assert PEFT_NO_DEFAULT_MESSAGE.startswith("Please specify `target_modules`")
    with pytest.raises(ValueError, match="not found in the base model"):
        get_peft_model(tiny("llama"), LoraConfig(r=4, target_modules=["q", "v"]))
    # a misspelt name beside a good one is ignored by PEFT, as vramdoc's note says
    m = get_peft_model(tiny("llama"), LoraConfig(r=4, target_modules=["q_proj", "v_porj"]))
    assert sum(p.numel() for p in m.parameters() if p.requires_grad) == 4 * (64 + 64)
