"""accelerate config YAML (``accelerate config`` output): distribution facts, not a setup.

Keys as accelerate writes them (accelerate/commands/config/config_args.py ``ClusterConfig``;
FSDP names from ``FullyShardedDataParallelPlugin``, DeepSpeed names from ``DeepSpeedPlugin``):
``distributed_type``, ``num_processes`` (total over machines), ``num_machines``,
``mixed_precision``, ``fsdp_config`` and ``deepspeed_config``. The file names no model, so
``setup`` is None; :func:`facts` is used by the command-line reader for
``accelerate launch --config_file``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vramdoc.readers import _frameworks as fw
from vramdoc.readers._common import as_bool, as_int, open_mapping
from vramdoc.readers.findings import SourceReport

KIND = "accelerate"


def detect(path: str | Path, text: str) -> bool:
    path = Path(path)
    if path.suffix.lower() not in (".yml", ".yaml"):
        return False
    keys = fw.top_keys(text)
    return "distributed_type" in keys or "compute_environment" in keys


def facts(data: dict[str, Any]) -> dict[str, Any]:
    """num_processes, mixed_precision, fsdp (TrainingArguments' string), deepspeed facts."""
    out: dict[str, Any] = {"distributed_type": str(data.get("distributed_type", "NO"))}
    n = as_int(data.get("num_processes"))
    if n is not None:
        out["num_processes"] = n
    if data.get("mixed_precision") not in (None, "no"):
        out["mixed_precision"] = str(data["mixed_precision"])
    if out["distributed_type"] == "FSDP":
        raw = data.get("fsdp_config")
        fc: dict[str, Any] = raw if isinstance(raw, dict) else {}
        out["fsdp"] = fw.fsdp_options(None, fc) or "full_shard"
        out["fsdp_version"] = fc.get("fsdp_version", 1)
        out["fsdp_config"] = dict(fc)
        if as_bool(fc.get("fsdp_activation_checkpointing")):
            out["activation_checkpointing"] = True
    ds = data.get("deepspeed_config")
    if out["distributed_type"] == "DEEPSPEED" and isinstance(ds, dict):
        ds_facts: dict[str, Any] = {}
        if ds.get("deepspeed_config_file"):
            ds_facts["deepspeed_config_file"] = ds["deepspeed_config_file"]
        if "zero_stage" in ds:
            ds_facts["zero_stage"] = ds["zero_stage"]
        for k in ("offload_optimizer_device", "offload_param_device"):
            if ds.get(k) not in (None, "none"):
                ds_facts[k.replace("_device", "")] = ds[k]
        out["deepspeed"] = ds_facts
    return out


def describe(f: dict[str, Any]) -> str:
    parts = [f"{f['distributed_type']}"]
    if "num_processes" in f:
        parts.append(f"{f['num_processes']} processes")
    if "mixed_precision" in f:
        parts.append(f"mixed_precision {f['mixed_precision']}")
    if "fsdp" in f:
        parts.append(f"FSDP{f.get('fsdp_version', 1)} {f['fsdp']}")
    ds = f.get("deepspeed")
    if ds:
        bits = [f"ZeRO-{ds['zero_stage']}"] if "zero_stage" in ds else []
        bits += [f"{k} {v}" for k, v in ds.items() if k.startswith("offload")]
        if "deepspeed_config_file" in ds:
            bits.append(f"config file {ds['deepspeed_config_file']}")
        parts.append("DeepSpeed " + ", ".join(bits))
    return ", ".join(parts)


def read(path: str | Path, text: str) -> SourceReport:
    path = Path(path)
    col, data, lines = open_mapping(path, text, KIND, "an accelerate config")
    if data is None:
        return col.report()
    f = facts(data)
    col.add("R207", "info", f"accelerate config: {describe(f)}. It names no model: give it "
            "with the training config or launch line (num_gpus = num_processes)",
            f"estimate with --num-gpus {f.get('num_processes', 1)}"
            + (f" --fsdp '{f['fsdp']}'" if "fsdp" in f else ""),
            lines.get("distributed_type"))
    if f["distributed_type"] == "FSDP" and f.get("fsdp_version", 1) == 2:
        col.add("R201", "info", "FSDP2 shards per parameter (DTensor); estimated with the FSDP "
                "rules of TrainingArguments' fsdp options", "", lines.get("fsdp_config"))
    if f.get("activation_checkpointing"):
        col.add("R202", "info", "fsdp_activation_checkpointing: true checkpoints every "
                "transformer layer, as gradient_checkpointing: true does", "",
                lines.get("fsdp_config.fsdp_activation_checkpointing"))
    ds = f.get("deepspeed") or {}
    if ds.get("deepspeed_config_file"):
        from vramdoc.readers._common import resolve_reference

        found = resolve_reference(path, str(ds["deepspeed_config_file"]))
        col.add("R206", "info", f"deepspeed_config_file: {ds['deepspeed_config_file']} "
                + ("found" if found else "not found next to this file"), "",
                lines.get("deepspeed_config.deepspeed_config_file"))
    return col.report()
