"""Build Hugging Face models on the meta device and compare them with vramdoc's inventory.

Used by the models tests only; needs torch and transformers (the tests skip without them).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from vramdoc.models import EXPERTS, OTHER, SEQUENCE_CLASSIFICATION, ParamGroup

_CACHE: dict[tuple[str, str, int], tuple[dict[str, int], set[str]]] = {}


def hf_kwargs(config: Mapping[str, Any]) -> dict[str, Any]:
    """config.json minus model_type: AutoConfig.for_model(model_type, **kwargs) rejects a
    second model_type ("got multiple values for argument 'model_type'")."""
    return {k: v for k, v in config.items() if k != "model_type"}


def build(key: str, config: Mapping[str, Any], task: str,
          num_labels: int = 2) -> tuple[dict[str, int], set[str]]:
    """(parameter name -> numel, names of modules bitsandbytes would quantize), built once."""
    ck = (key, task, num_labels)
    if ck not in _CACHE:
        import torch
        from transformers import (
            AutoConfig,
            AutoModelForCausalLM,
            AutoModelForSequenceClassification,
        )
        from transformers.utils import logging

        logging.set_verbosity_error()
        cfg = AutoConfig.for_model(config["model_type"], **hf_kwargs(config))
        auto = AutoModelForCausalLM
        if task == SEQUENCE_CLASSIFICATION:
            cfg.num_labels = num_labels
            auto = AutoModelForSequenceClassification
        with torch.device("meta"):
            model = auto.from_config(cfg)
        params = {n: p.numel() for n, p in model.named_parameters()}
        _CACHE[ck] = (params, bnb_quantized(model))
    return _CACHE[ck]


def bnb_quantized(model: Any) -> set[str]:
    """Module names transformers 5 hands to bitsandbytes for a load_in_4bit/8bit model.

    Mirrors HfQuantizer.get_modules_to_not_convert (quantizers/base.py: without
    llm_int8_skip_modules it skips get_keys_to_not_convert(model) + _keep_in_fp32_modules)
    and replace_with_bnb_linear (integrations/bitsandbytes.py: Conv1D or exactly nn.Linear,
    filtered by should_convert_module), without importing bitsandbytes.
    """
    from torch import nn
    from transformers.pytorch_utils import Conv1D
    from transformers.quantizers.base import get_keys_to_not_convert
    from transformers.quantizers.quantizers_utils import should_convert_module

    skip = set(get_keys_to_not_convert(model)) | set(model._keep_in_fp32_modules or ())
    return {name for name, m in model.named_modules()
            if should_convert_module(name, sorted(skip))
            and (isinstance(m, Conv1D) or type(m) is nn.Linear)}


def expand(groups: Iterable[ParamGroup]) -> dict[str, int]:
    """Parameter name -> numel from the groups ({i} -> 0..count-1; tied groups add nothing)."""
    out: dict[str, int] = {}
    for g in groups:
        if g.tied_to is not None:
            continue
        assert ("{i}" in g.path) == (g.count > 1) or g.count == 1, g.path
        paths = [g.path.format(i=i) for i in range(g.count)] if "{i}" in g.path else [g.path]
        for p in paths:
            if g.kind in (EXPERTS, OTHER):  # the path names the parameter itself
                out[p] = g.weight_numel
                assert g.bias_numel == 0, p
            else:
                out[f"{p}.weight"] = g.weight_numel
                if g.bias_numel:
                    out[f"{p}.bias"] = g.bias_numel
    return out


def quantizable(groups: Iterable[ParamGroup]) -> set[str]:
    """Module names of the groups marked quantizable."""
    return {g.path.format(i=i) for g in groups if g.quantizable for i in range(g.count)}
