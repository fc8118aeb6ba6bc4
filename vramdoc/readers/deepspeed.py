"""DeepSpeed JSON: ZeRO stage, offload, precision and batch facts; never a whole setup.

A DeepSpeed config says how a run is distributed, not which model it trains, so ``setup`` is
None and the findings say what was read. Other readers (axolotl, LLaMA-Factory, command
lines) call :func:`zero_facts` and :func:`describe` on the JSON their config names.
Keys and their meaning: https://www.deepspeed.ai/docs/config-json/ ("auto" values are filled
in by the HF Trainer integration from TrainingArguments, transformers/integrations/deepspeed.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from vramdoc.readers._common import Collector, json_lines, load_json_object, resolve_reference
from vramdoc.readers.findings import SourceReport

KIND = "deepspeed"


def detect(path: str | Path, text: str) -> bool:
    path = Path(path)
    if path.suffix.lower() != ".json":
        return False
    head = text[:20000]
    if path.name in ("config.json", "adapter_config.json", "trainer_state.json") or any(
            k in head for k in ('"model_type"', '"peft_type"', '"log_history"')):
        return False  # a run's files (vramdoc.readers.runs), some of which hold bf16/fp16 keys
    return any(k in head for k in ('"zero_optimization"', '"train_micro_batch_size_per_gpu"',
                                   '"zero_allow_untested_optimizer"'))


def zero_facts(data: dict[str, Any]) -> dict[str, Any]:
    """The memory-relevant facts of a DeepSpeed config (absent keys are left out)."""
    facts: dict[str, Any] = {}
    zo = data.get("zero_optimization")
    if isinstance(zo, dict):
        facts["zero_stage"] = zo.get("stage", 0)
        for part in ("offload_optimizer", "offload_param"):
            off = zo.get(part)
            if isinstance(off, dict) and off.get("device") not in (None, "none"):
                facts[part] = off.get("device")
    for prec in ("bf16", "fp16"):
        sec = data.get(prec)
        if isinstance(sec, dict) and "enabled" in sec:
            facts[prec] = sec["enabled"]
    for key in ("train_micro_batch_size_per_gpu", "gradient_accumulation_steps",
                "gradient_clipping", "train_batch_size"):
        if key in data:
            facts[key] = data[key]
    if isinstance(data.get("activation_checkpointing"), dict):
        facts["activation_checkpointing"] = True
    return facts


def describe(facts: dict[str, Any]) -> str:
    """One phrase: "ZeRO-3, optimizer offloaded to cpu, bf16 auto"."""
    parts = [f"ZeRO-{facts.get('zero_stage', 0)}"]
    for part, what in (("offload_optimizer", "optimizer"), ("offload_param", "parameters")):
        if part in facts:
            parts.append(f"{what} offloaded to {facts[part]}")
    for prec in ("bf16", "fp16"):
        if prec in facts and facts[prec] is not False:
            parts.append(f"{prec} {facts[prec]}".replace(" True", "").replace(" true", ""))
    return ", ".join(parts)


def read(path: str | Path, text: str) -> SourceReport:
    path = Path(path)
    col = Collector(path, KIND)
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:  # + a 5,000-digit number, 100,000 brackets
        why = getattr(exc, "msg", None) or str(exc).split(";")[0][:120]
        col.add("R200", "error", f"not valid JSON: {why}", "fix the syntax",
                getattr(exc, "lineno", None))
        return col.report()
    if not isinstance(data, dict):
        col.add("R200", "error", "a DeepSpeed config holds a JSON object at the top",
                "give the DeepSpeed config file")
        return col.report()
    lines = json_lines(text)
    facts = zero_facts(data)
    stage = facts.get("zero_stage", 0)
    col.add("R207", "info", f"DeepSpeed {describe(facts)}: ZeRO-1 shards optimizer states, "
            "ZeRO-2 also gradients, ZeRO-3 also parameters, across the data-parallel GPUs "
            "(a DeepSpeed file names no model: it is read for these facts, not estimated "
            "alone)",
            "give it to a run with TrainingArguments(deepspeed=...) / training.deepspeed",
            lines.get("zero_optimization.stage", lines.get("zero_optimization")))
    if stage and stage not in (0, 1, 2, 3):
        col.add("R204", "warning", f"zero_optimization.stage: {stage!r} is not 0, 1, 2 or 3",
                "use 0-3", lines.get("zero_optimization.stage"))
    for key in ("train_micro_batch_size_per_gpu", "gradient_accumulation_steps"):
        if data.get(key) == "auto":
            col.add("R202", "info", f"{key}: auto takes the TrainingArguments value "
                    "(transformers/integrations/deepspeed.py, HfTrainerDeepSpeedConfig)",
                    "", lines.get(key))
    return col.report()


def apply_reference(col: Collector, source: Path, value: Any, line: int | None,
                    key: str = "deepspeed") -> dict[str, Any]:
    """Read the DeepSpeed config a framework config or command line names (a path or an
    inline mapping), put it in the setup as ``training.deepspeed`` (TrainingArguments' name)
    and say what was read. Returns the facts (empty when the file was not found)."""
    data: dict[str, Any] | None
    if isinstance(value, dict):
        data = value
    else:
        found = resolve_reference(source, str(value))
        data = load_json_object(found) if found is not None else None
        if found is None:
            col.add("R206", "info", f"{key}: {value} is not next to {source.name} (nor in its "
                    "parent folders); its ZeRO stage is unknown", "run vramdoc where the run "
                    "starts, or pass the DeepSpeed file too", line)
        elif data is None:
            col.add("R206", "warning", f"{key}: {found} is not a JSON object; not read",
                    "fix the DeepSpeed file", line)
        else:
            col.add("R206", "info", f"{key}: read {found}", "", line)
    if data is None:
        col.set("training.deepspeed", str(value), line)
        return {}
    col.set("training.deepspeed", data, line)
    facts = zero_facts(data)
    col.add("R207", "info", f"DeepSpeed {describe(facts)} read; passed on as "
            "training.deepspeed. The number of GPUs is not in this file: the estimate is per "
            "GPU for the num_gpus the setup gives (1 unless told)",
            "pass --num-gpus N (or the accelerate config / launch line) for the sharded figure",
            line)
    return facts
