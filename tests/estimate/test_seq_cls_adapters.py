"""PEFT's sequence-classification facts, checked against PEFT itself on meta-built encoders.

``task_type="SEQ_CLS"`` adds ``classifier`` and ``score`` to ``modules_to_save`` (a trainable
copy of the whole head, and no LoRA inside it), and ``all-linear`` wraps every Linear but the
output layer: BERT's pooler too (peft 0.21 peft_model.py, tuners_utils.py).
"""

from __future__ import annotations

import pytest

from vramdoc.estimate.params import account_params
from vramdoc.models import param_groups, spec_from_config
from vramdoc.setup import setup_from_mapping

TINY = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
        "num_attention_heads": 4, "vocab_size": 128}


def _ours(model_type: str, lora: dict) -> int:
    spec = spec_from_config({"model_type": model_type, **TINY}, name=f"tiny-{model_type}")
    setup = setup_from_mapping({"model": spec.name, "task": "sequence-classification",
                                "lora": lora}, source="test")
    groups = param_groups(spec, task="sequence-classification", num_labels=2)
    return account_params(setup, spec, groups).trainable_numel


@pytest.mark.parametrize("model_type", ["bert", "roberta"])
@pytest.mark.parametrize("targets", [None, "all-linear"])
def test_trainable_count_equals_peft_seq_cls(model_type: str, targets: str | None) -> None:
    pytest.importorskip("peft")
    import torch
    from peft import LoraConfig, TaskType, get_peft_model
    from transformers import AutoConfig, AutoModelForSequenceClassification

    cfg = AutoConfig.for_model(model_type, num_labels=2, **TINY)
    with torch.device("meta"):
        model = AutoModelForSequenceClassification.from_config(cfg)
    peft_model = get_peft_model(model, LoraConfig(r=4, target_modules=targets,
                                                  task_type=TaskType.SEQ_CLS))
    theirs = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    lora = {"r": 4} if targets is None else {"r": 4, "target_modules": targets}
    assert _ours(model_type, lora) == theirs
