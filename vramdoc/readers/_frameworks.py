"""Pieces the axolotl, LLaMA-Factory and TRL readers share: attention and optimizer names,
DeepSpeed/FSDP facts, and telling a framework's own keys from typos."""

from __future__ import annotations

import difflib
import json
import re
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from vramdoc.readers._common import Collector, as_bool
from vramdoc.setup import ATTN_IMPLEMENTATIONS, DEFAULT_OPTIM, OPTIMIZERS, hf_names

_TOP_KEY = re.compile(r"^([A-Za-z_][\w.-]*)\s*:", re.M)


def top_keys(text: str) -> set[str]:
    """The top-level keys of a YAML text, without parsing it (for cheap detection)."""
    return set(_TOP_KEY.findall(text[:50000]))


@cache
def framework_keys(framework: str) -> frozenset[str]:
    """Keys a framework's config accepts (vramdoc/data/framework_keys.json, read from source)."""
    text = resources.files("vramdoc.data").joinpath("framework_keys.json").read_text()
    return frozenset(json.loads(text)[framework])


def set_attn(col: Collector, value: str, line: int | None) -> None:
    if value in ATTN_IMPLEMENTATIONS:
        col.set("model_kwargs.attn_implementation", value, line)
        return
    col.set("model_kwargs.attn_implementation", "sdpa", line)
    col.add("R201", "warning", f"attention {value!r} is not one vramdoc models; estimated with "
            "sdpa (which, like memory-efficient kernels, keeps no attention matrix)", "", line)


def set_optim(col: Collector, value: str, line: int | None) -> None:
    if value in OPTIMIZERS:
        col.set("training.optim", value, line)
        return
    close = difflib.get_close_matches(value, OPTIMIZERS, n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]}?)" if close else ""
    col.set("training.optim", DEFAULT_OPTIM, line)
    col.add("R204", "warning", f"optimizer {value!r} is not one vramdoc models{hint}; estimated "
            f"with {DEFAULT_OPTIM}, transformers' default", "use one of: " +
            ", ".join(OPTIMIZERS), line)


def fsdp_options(fsdp: Any, fsdp_config: Any) -> str:
    """TrainingArguments' fsdp string ("full_shard offload auto_wrap") from a framework's
    ``fsdp`` list/string and/or ``fsdp_config`` mapping (accelerate's or axolotl's names)."""
    if isinstance(fsdp, str):
        opts = fsdp.split()
    elif isinstance(fsdp, list):
        opts = [str(o) for o in fsdp]
    else:
        opts = []
    fc = fsdp_config if isinstance(fsdp_config, dict) else {}
    if not opts and fc:
        strategy = str(fc.get("fsdp_sharding_strategy", fc.get("sharding_strategy", ""))).lower()
        reshard = fc.get("fsdp_reshard_after_forward", fc.get("reshard_after_forward"))
        if strategy in ("1", "full_shard") or (not strategy and reshard in (None, True)):
            opts.append("full_shard")
        elif strategy in ("2", "shard_grad_op") or reshard is False:
            opts.append("shard_grad_op")
        elif strategy in ("4", "hybrid_shard", "5", "hybrid_shard_zero2", "3", "no_shard"):
            opts.append({"4": "hybrid_shard", "5": "hybrid_shard_zero2",
                         "3": "no_shard"}.get(strategy, strategy))
        else:
            opts.append(str(reshard).lower() if reshard in ("full_shard", "shard_grad_op")
                        else "full_shard")
    if as_bool(fc.get("fsdp_offload_params", fc.get("offload_params"))) and "offload" not in opts:
        opts.append("offload")
    if (fc.get("fsdp_auto_wrap_policy") or fc.get("auto_wrap_policy")) and "auto_wrap" not in opts:
        opts.append("auto_wrap")
    return " ".join(opts)


def distribution(col: Collector, path: Path, cfg: dict[str, Any], ln: Any,
                 used: set[str]) -> None:
    """DeepSpeed and FSDP keys (axolotl and LLaMA-Factory name them as TrainingArguments does)."""
    from vramdoc.readers import deepspeed

    used.update(("deepspeed", "fsdp", "fsdp_config", "fsdp_version"))
    if isinstance(cfg.get("deepspeed"), str | dict) and cfg.get("deepspeed"):
        deepspeed.apply_reference(col, path, cfg["deepspeed"], ln("deepspeed"))
    if cfg.get("fsdp") or cfg.get("fsdp_config"):
        opts = fsdp_options(cfg.get("fsdp"), cfg.get("fsdp_config"))
        fc = cfg.get("fsdp_config")
        version = cfg.get("fsdp_version") or (fc.get("fsdp_version") if isinstance(fc, dict)
                                              else None)
        col.add("R207", "info", f"FSDP{version or ''} ({opts}) read. The number of GPUs is not "
                "in this file, so the estimate is for one unsharded GPU; FSDP is applied when "
                "the GPU count is known", "pass --num-gpus N --fsdp '" + opts + "' (or the "
                "accelerate config) for the sharded figure",
                ln("fsdp") or ln("fsdp_config"))


def unknown_keys(col: Collector, cfg: dict[str, Any], ln: Any, used: set[str], framework: str,
                 ignored: frozenset[str]) -> None:
    """R203 for keys neither the framework nor TrainingArguments knows (typos, old names)."""
    known = framework_keys(framework) | set(hf_names()["TrainingArguments"])
    for key in cfg:
        if key in used or key in ignored or key in known:
            continue
        close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.75)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        col.add("R203", "info", f"{key}: not a key of {framework}'s current schema{hint}; "
                "ignored",
                f"check the spelling against {framework}'s documentation", ln(key))
