"""Run outputs -> the setup they reveal: a checkpoint's ``config.json``, ``adapter_config.json``
(PEFT's LoraConfig as saved by ``save_pretrained``), ``trainer_state.json`` (Trainer's
``TrainerState``: ``train_batch_size``, ``max_steps``, ``logging_steps`` ...) and
``training_args.bin``, which is a pickle: vramdoc never unpickles it, since loading a pickle
runs code. Training curves in trainer_state.json are another reader's business; this one
reads only the setup. Files of the same checkpoint folder complete each other: an adapter's
base model, the batch size trainer_state.json recorded.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from vramdoc.readers._common import (
    Collector,
    as_float,
    as_int,
    as_list,
    as_targets,
    load_json_object,
)
from vramdoc.readers.findings import SourceReport

KIND = "run"
_NAMES = ("config.json", "adapter_config.json", "trainer_state.json", "training_args.bin")


def detect(path: str | Path, text: str) -> bool:
    path = Path(path)
    if path.name == "training_args.bin":
        return True
    if path.name not in _NAMES[:3]:
        return False
    head = text[:4000]
    return any(k in head for k in ('"model_type"', '"architectures"', '"peft_type"',
                                   '"log_history"', '"global_step"'))


def read(path: str | Path, text: str) -> SourceReport:
    path = Path(path)
    col = Collector(path, KIND)
    if path.name == "training_args.bin":
        col.add("R208", "info", "training_args.bin is a pickle; vramdoc never unpickles it "
                "(loading a pickle runs code). Its arguments are not read",
                "read trainer_state.json beside it, or the command line / script that started "
                "the run", None)
        _siblings(col, path, skip="")
        return col.report()
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:  # + a 5,000-digit number, 100,000 brackets
        why = getattr(exc, "msg", None) or str(exc).split(";")[0][:120]
        col.add("R200", "error", f"not valid JSON: {why}", "", getattr(exc, "lineno", None))
        return col.report()
    if not isinstance(data, dict):
        col.add("R200", "error", "expected a JSON object", "", None)
        return col.report()
    if path.name == "adapter_config.json":
        _adapter(col, path, data)
        _siblings(col, path, skip="adapter_config.json")
    elif path.name == "trainer_state.json":
        _state(col, data)
        _siblings(col, path, skip="trainer_state.json")
    else:
        _model_config(col, path, data)
        _siblings(col, path, skip="config.json")
    if not col.get("model"):
        col.add("R209", "info", "no model found in this file or beside it: the facts above "
                "are reported, not estimated", "give the checkpoint's config.json", None)
    return col.report()


def _line(text_path: Path, key: str) -> int | None:
    from vramdoc.readers._common import json_lines

    try:
        return json_lines(text_path.read_text(encoding="utf-8")).get(key)
    except (OSError, ValueError):  # ValueError: not UTF-8 (the file was read before: rare)
        return None


def _model_config(col: Collector, path: Path, data: dict[str, Any]) -> None:
    # vramdoc resolves a local config.json itself (vramdoc.models.resolve_model)
    col.set("model", str(path), None)
    col.add("R202", "info", "the checkpoint's config.json gives the model; the training "
            "settings not beside it take vramdoc's defaults (batch 8, sequence 512, full "
            "fine-tune)", "add the run's batch size and sequence length (--batch, --seq-len)",
            None)
    q = data.get("quantization_config")
    if isinstance(q, dict):
        col.add("R201", "info", f"config.json holds a {q.get('quant_method', '?')} "
                "quantization_config: a quantized checkpoint is trained through an adapter "
                "(adapter_config.json)", "", _line(path, "quantization_config"))


def _adapter(col: Collector, path: Path, data: dict[str, Any]) -> None:
    def ln(key: str) -> int | None:
        return _line(path, key)

    peft_type = str(data.get("peft_type", "LORA"))
    if peft_type.upper() != "LORA":
        col.add("R201", "warning", f"peft_type {peft_type} is not modelled; estimated as LoRA",
                "", ln("peft_type"))
    base = data.get("base_model_name_or_path")
    if base:
        col.set("model", str(base), ln("base_model_name_or_path"))
    col.set("lora.r", as_int(data.get("r", 8)) or 8, ln("r"))
    if data.get("lora_alpha") is not None:
        col.set("lora.lora_alpha", as_int(data["lora_alpha"]), ln("lora_alpha"))
    tm = data.get("target_modules")
    if isinstance(tm, str):
        col.set("lora.target_modules", "all-linear" if tm == "all-linear" else [tm],
                ln("target_modules"))
        if tm not in ("all-linear",) and not tm.isidentifier():
            col.add("R201", "info", f"target_modules is a regular expression ({tm!r}); "
                    "estimated as a module-name suffix", "", ln("target_modules"))
    elif isinstance(tm, list) and tm:
        col.set("lora.target_modules", as_targets(tm), ln("target_modules"))
    if data.get("lora_dropout") is not None:
        col.set("lora.lora_dropout", as_float(data["lora_dropout"]), ln("lora_dropout"))
    if data.get("modules_to_save"):
        col.set("lora.modules_to_save", as_list(data["modules_to_save"]) or None,
                ln("modules_to_save"))
    for key in ("use_dora", "use_rslora"):
        if data.get(key) is True:
            col.set(f"lora.{key}", True, ln(key))
    if data.get("bias") in ("all", "lora_only"):
        col.set("lora.bias", data["bias"], ln("bias"))


def _state(col: Collector, data: dict[str, Any]) -> None:
    bs = as_int(data.get("train_batch_size"))
    facts = [f"{k} {data[k]}" for k in ("train_batch_size", "max_steps", "num_train_epochs",
                                        "global_step", "logging_steps", "save_steps")
             if data.get(k) is not None]
    col.add("R202", "info", "trainer_state.json reveals " + (", ".join(facts) or "no settings")
            + "; train_batch_size is the per-device batch times the GPUs of one process "
            "(TrainingArguments.train_batch_size)", "", None)
    if bs:
        col.set("training.per_device_train_batch_size", bs, None)
    for key in ("max_steps", "logging_steps", "save_steps"):
        v = as_int(data.get(key))
        if v is not None and v > 0:
            col.set(f"training.{key}", v, None)
    if data.get("num_train_epochs") is not None:
        col.set("training.num_train_epochs", data["num_train_epochs"], None)


def _siblings(col: Collector, path: Path, skip: str) -> None:
    """Complete the setup from the other run files of the same folder (and its parent, where
    Trainer writes the final model beside the checkpoint-N folders)."""
    for folder in (path.parent, path.parent.parent):
        for name in ("adapter_config.json", "config.json", "trainer_state.json"):
            if name == skip and folder == path.parent:
                continue
            f = folder / name
            if not f.is_file():
                continue
            data = load_json_object(f)
            if data is None:
                continue
            if name == "adapter_config.json" and col.get("lora") is None:
                _adapter(col, f, data)
                col.add("R206", "info", f"read {f}", "", None)
            elif name == "config.json" and "model_type" in data and not col.get("model"):
                col.set("model", str(f), None)
                col.add("R206", "info", f"read {f} for the model", "", None)
            elif name == "trainer_state.json" and col.get(
                    "training.per_device_train_batch_size") is None:
                _state(col, data)
                col.add("R206", "info", f"read {f}", "", None)
        if col.get("model") and col.get("lora") is not None:
            break
