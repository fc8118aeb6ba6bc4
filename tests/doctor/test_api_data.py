"""rules/api/*.yaml against the real, pinned libraries: every removal is absent, every
replacement and rewrite is accepted, every deprecated name still works. The data cannot drift
from the libraries without this test failing."""

from __future__ import annotations

import ast
import dataclasses
import importlib
import inspect

import pytest

from vramdoc.doctor.api import load_changes
from vramdoc.doctor.versions import installed_version, parse_version

CHANGES = load_changes()


def _installed(lib: str) -> tuple[int, ...] | None:
    v = installed_version(lib)
    return parse_version(v) if v else None


def _in_effect(c) -> bool:
    v = _installed(c.library)
    return v is not None and (c.since is None or v >= parse_version(c.since))


def _accepted(cls_name: str) -> set[str] | None:
    """The keyword names a call of ``cls_name`` accepts in the installed libraries."""
    if cls_name == "TrainingArguments":
        from transformers import TrainingArguments

        return {f.name for f in dataclasses.fields(TrainingArguments)}
    if cls_name == "Trainer":
        from transformers import Trainer

        return set(inspect.signature(Trainer.__init__).parameters)
    if cls_name == "from_pretrained":
        # from_pretrained takes **kwargs and pops the keywords it knows by name
        import re

        from transformers import PreTrainedModel

        src = inspect.getsource(PreTrainedModel.from_pretrained)
        return set(re.findall(r'kwargs\.pop\("(\w+)"', src)) | set(
            inspect.signature(PreTrainedModel.from_pretrained).parameters)
    if cls_name == "Accelerator":
        accelerate = pytest.importorskip("accelerate")
        return set(inspect.signature(accelerate.Accelerator.__init__).parameters)
    if cls_name == "SFTConfig":
        trl = pytest.importorskip("trl")
        return {f.name for f in dataclasses.fields(trl.SFTConfig)}
    trl = pytest.importorskip("trl")
    cls = getattr(trl, cls_name, None)
    if cls is None:  # moved out of trl's top level (ORPO/CPO live in trl.experimental in 1.x)
        return None
    return set(inspect.signature(cls.__init__).parameters)


KEYWORDS = [c for c in CHANGES if c.kind == "keyword"]
IMPORTS = [c for c in CHANGES if c.kind == "import"]


def test_the_data_covers_what_tutorials_trip_over() -> None:
    names = {c.name for c in CHANGES}
    for n in ("evaluation_strategy", "warmup_ratio", "fp16_opt_level", "fp16_backend",
              "half_precision_backend", "overwrite_output_dir", "logging_dir", "no_cuda",
              "tokenizer", "transformers:AdamW", "transformers.optimization:AdamW",
              "use_flash_attention_2", "torch_dtype", "load_in_4bit", "load_in_8bit",
              "fp16_scale_window", "fp16_optimization"):
        assert n in names, n


@pytest.mark.parametrize("change", KEYWORDS, ids=lambda c: f"{c.library}:{c.name}")
def test_keyword_changes_match_the_installed_library(change) -> None:
    pytest.importorskip(change.library)
    if not _in_effect(change):
        pytest.skip(f"{change.library} {installed_version(change.library)} predates {change.since}")
    checked = 0
    for cls in change.applies_to:
        if cls not in ("TrainingArguments", "Trainer", "from_pretrained", "SFTConfig",
                       "Accelerator") and change.library != "trl":
            continue
        accepted = _accepted(cls)
        if accepted is None:
            continue
        checked += 1
        if change.status == "deprecated":
            assert change.name in accepted, f"{cls}: {change.name} should still be accepted"
        else:
            assert change.name not in accepted, f"{cls} still accepts {change.name}"
        if change.replacement:
            assert change.replacement in accepted, f"{cls} lacks {change.replacement}"
        if change.unless:
            assert change.unless in accepted, f"{cls} lacks {change.unless}"
        if change.rewrite:
            key = change.rewrite.split("=", 1)[0]
            assert key in accepted, f"{cls} does not accept the rewrite's {key}"
    assert checked, f"no class of {change.applies_to} could be checked"


@pytest.mark.parametrize("change", [c for c in KEYWORDS if c.rewrite],
                         ids=lambda c: c.name)
def test_rewrites_are_valid_calls_of_the_real_classes(change) -> None:
    transformers = pytest.importorskip("transformers")
    key, value = change.rewrite.split("=", 1)
    node = ast.parse(value, mode="eval").body
    if isinstance(node, ast.Call):  # a config class of transformers, built for real
        cls = getattr(transformers, node.func.id)
        built = cls(**{k.arg: ast.literal_eval(k.value) for k in node.keywords})
    else:
        built = ast.literal_eval(node)
    if change.applies_to == ("TrainingArguments",):
        transformers.TrainingArguments(output_dir="/tmp/vramdoc-test", **{key: built},
                                       use_cpu=True)


@pytest.mark.parametrize("change", IMPORTS, ids=lambda c: c.name)
def test_import_changes_match_the_installed_library(change) -> None:
    pytest.importorskip(change.library)
    if not _in_effect(change):
        pytest.skip("predates the change")
    module, name = change.name.split(":")
    assert not hasattr(importlib.import_module(module), name), f"{module}.{name} still exists"
    if change.replacement:
        rmod, rname = change.replacement.split(":")
        assert hasattr(importlib.import_module(rmod), rname)


def test_unknown_keys_never_existed_in_shipped_names() -> None:
    from vramdoc.setup import hf_names

    known = set(hf_names()["TrainingArguments"])
    for c in CHANGES:
        if c.status == "unknown":
            assert c.name not in known
