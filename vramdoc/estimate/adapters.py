"""LoRA targets checked the way PEFT checks them, before anything is estimated.

PEFT 0.21 (peft/tuners/lora/model.py ``_prepare_adapter_config``) takes ``target_modules``
from ``TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING[model_type]`` when the config gives
none, and raises ``ValueError("Please specify `target_modules` or `target_parameters`in
`peft_config`")`` for a model type the mapping lacks (Phi-3, Phi-4, multimodal Gemma 3 ...).
A list of names matches a module whose name equals one of them or ends in ``"." + name``
(peft/tuners/tuners_utils.py ``check_target_module_exists``); when no module matches at all,
``inject_adapter`` raises ``Target modules {...} not found in the base model. Please check the
target modules and try again.`` Names that match nothing next to names that match are ignored
silently. The mapping is shipped as ``vramdoc/data/peft_defaults.json`` and checked against
the installed peft by ``tests/estimate/test_adapters.py``.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable
from functools import cache
from importlib import resources

from vramdoc.errors import UsageError
from vramdoc.models.spec import EXPERTS, HEAD, LINEAR, ROUTER, ModelSpec, ParamGroup

# peft 0.21.2, peft/tuners/lora/model.py (_prepare_adapter_config), spelling kept as PEFT has it
PEFT_NO_DEFAULT_MESSAGE = "Please specify `target_modules` or `target_parameters`in `peft_config`"


@cache
def peft_default_targets_table() -> dict[str, tuple[str, ...]]:
    """model_type -> PEFT's default LoRA target names, as shipped with vramdoc."""
    text = resources.files("vramdoc.data").joinpath("peft_defaults.json").read_text()
    data = json.loads(text)["default_lora_targets"]
    return {k: tuple(v) for k, v in data.items()}


def peft_default_targets(model_type: str) -> tuple[str, ...] | None:
    """PEFT's default targets for ``model_type``, or None when PEFT has none (and raises)."""
    return peft_default_targets_table().get(model_type)


def adaptable(groups: Iterable[ParamGroup]) -> list[ParamGroup]:
    """Module roles a named LoRA target can wrap: untied Linear layers and heads."""
    return [g for g in groups if g.kind in (LINEAR, HEAD) and g.tied_to is None]


def module_names(groups: Iterable[ParamGroup]) -> list[str]:
    """The leaf names LoRA can target in this model, in model order, each once."""
    return list(dict.fromkeys(g.leaf for g in adaptable(groups)))


def matches(g: ParamGroup, target: str) -> bool:
    """PEFT's suffix rule: the module name equals the target or ends in ``.target``."""
    if "." in target:
        return g.path.replace(".{i}", "").endswith("." + target) or \
            g.path.endswith("." + target)
    return g.leaf == target


def attention_names(groups: Iterable[ParamGroup]) -> list[str]:
    """Leaf names of the attention projections (the usual explicit LoRA targets)."""
    names = [g.leaf for g in adaptable(groups) if g.in_block and "vision" not in g.path
             and any(w in g.path for w in ("attn", "attention"))]
    return list(dict.fromkeys(names))


def suggestion(groups: Iterable[ParamGroup]) -> str:
    """What to write instead: all-linear, or the model's own attention projections."""
    groups = list(groups)
    attn = attention_names(groups)
    alt = f", or name this model's attention projections: [{', '.join(attn)}]" if attn else ""
    return f"set lora.target_modules: all-linear (--lora-targets all-linear){alt}"


# (model_type, leaf) of modules PEFT 0.21 wraps but whose LoRA forward then fails, with why:
# PhimoeTopKRouter subclasses nn.Linear (so all-linear wraps it) but its forward returns a
# tuple, and lora.Linear adds the adapter to it: AttributeError: 'tuple' object has no
# attribute 'dtype' (transformers 5.24 modeling_phimoe.py, seen on the fake-device trace)
_LORA_BREAKS_FORWARD = {
    ("phimoe", "router"): "PhimoeTopKRouter returns a tuple, so PEFT's LoRA layer around it "
                          "fails in the forward (AttributeError: 'tuple' object has no "
                          "attribute 'dtype')",
}


def _check_forward_breaks(targets: tuple[str, ...], spec: ModelSpec,
                          groups: tuple[ParamGroup, ...]) -> None:
    for g in groups:
        why = _LORA_BREAKS_FORWARD.get((spec.model_type, g.leaf))
        if why is None:
            continue
        if (targets == ("all-linear",) and g.all_linear) or any(matches(g, t) for t in targets):
            names = [n for n in module_names(groups) if n != g.leaf]
            raise UsageError(
                f"LoRA on {spec.name}'s {g.leaf!r} modules cannot train: {why}",
                f"name the modules instead, without {g.leaf!r}: "
                f"--lora-targets {','.join(names)}")


def check_lora_targets(targets: tuple[str, ...], spec: ModelSpec,
                       groups: tuple[ParamGroup, ...]) -> tuple[str, ...]:
    """Raise UsageError where PEFT would raise; return notes for names PEFT would ignore.

    ``targets`` are the setup's ``target_modules`` (empty: PEFT's default for the model type).
    """
    _check_forward_breaks(targets, spec, groups)
    if targets == ("all-linear",):
        if any(g.kind in (LINEAR, EXPERTS, ROUTER) and g.tied_to is None for g in groups):
            return ()
        raise UsageError(f"{spec.name}: target_modules 'all-linear' finds no linear layer",
                         "train it fully (drop the lora section)")
    if not targets:
        default = peft_default_targets(spec.model_type)
        if default is None:
            raise UsageError(
                f"{spec.name} (model_type {spec.model_type!r}) has no default LoRA target "
                f"modules in PEFT 0.21, which raises: ValueError: {PEFT_NO_DEFAULT_MESSAGE}",
                suggestion(groups))
        targets = default
    cand = adaptable(groups)
    names = module_names(groups)
    unmatched = [t for t in targets if not any(matches(g, t) for g in cand)]
    if len(unmatched) == len(targets):
        hint_parts = []
        for t in unmatched:
            close = _close(t, names, 3)
            if close:
                hint_parts.append(f"{t!r}: did you mean {' or '.join(map(repr, close))}?")
        hint = " ".join(hint_parts)
        hint = (hint + " " if hint else "") + f"{spec.name} has: {', '.join(names)}; " \
            + suggestion(groups)
        shown = "{" + ", ".join(repr(t) for t in sorted(targets)) + "}"
        raise UsageError(
            f"LoRA target_modules {shown} match no module of {spec.name}; PEFT raises: "
            f"Target modules {shown} not found in the base model", hint)
    notes = []
    for t in unmatched:
        close = _close(t, names, 1)
        dym = f" (did you mean {close[0]!r}?)" if close else ""
        notes.append(f"target_modules {t!r} matches no module of {spec.name}; PEFT ignores "
                     f"it{dym}")
    return tuple(notes)


def _close(target: str, names: list[str], n: int) -> list[str]:
    """Close spellings, and names the target abbreviates (``q`` -> ``q_proj``)."""
    out = [m for m in names if m.startswith(target + "_")]
    out += [m for m in difflib.get_close_matches(target, names, n=n, cutoff=0.5) if m not in out]
    return out[:n]


def has_default_targets(spec: ModelSpec) -> bool:
    """Whether ``LoraConfig()`` without ``target_modules`` works for this model in PEFT."""
    return peft_default_targets(spec.model_type) is not None


def zero_trainable_error(spec: ModelSpec) -> UsageError:
    """The error for a setup that would train nothing."""
    return UsageError(f"this setup trains 0 parameters of {spec.name}: nothing would learn",
                      "add LoRA adapters (lora: {target_modules: all-linear}) or train "
                      "unquantized weights (drop quantization for a full fine-tune)")
