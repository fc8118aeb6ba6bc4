"""The run kit ``vramdoc plan --out DIR`` writes: everything needed to launch the best plan.

- ``snippet.py``: the Hugging Face snippet (from_pretrained, LoraConfig, TrainingArguments);
- ``setup.yaml``: the plan as a setup file (``vramdoc estimate --config`` reads it back);
- ``accelerate_config.yaml`` (several GPUs or DeepSpeed): what ``accelerate config`` would
  write: ``distributed_type`` MULTI_GPU, FSDP or DEEPSPEED, ``num_processes`` (all nodes),
  ``num_machines``, the ``fsdp_config`` / ``deepspeed_config`` keys of accelerate 1.x;
- ``ds_config.json`` (DeepSpeed plans): the DeepSpeed config, sizes "auto";
- ``launch.sh``: ``accelerate launch --config_file accelerate_config.yaml snippet.py``.

Nothing is ever overwritten: an existing file is a usage error naming it, before the search
runs, unless ``force``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from vramdoc.errors import UsageError
from vramdoc.safeload import short

KIT_FILES = ("snippet.py", "setup.yaml", "accelerate_config.yaml", "ds_config.json",
             "launch.sh")


def check_kit_dir(out: str | Path, force: bool = False) -> None:
    """Refuse a directory that already holds a kit file (or is a file)."""
    d = Path(out)
    name = short(str(d))
    try:
        if "\x00" in str(d):
            raise ValueError("a NUL byte in the name")
        if d.exists() and not d.is_dir():
            raise UsageError(f"--out {name}: exists and is not a directory",
                             "give a new or existing directory")
        parent = next((a for a in (d, *d.absolute().parents) if a.exists()), None)
    except (OSError, ValueError) as exc:  # a name too long, a NUL byte
        why = getattr(exc, "strerror", None) or exc
        raise UsageError(f"--out {name}: not a usable path ({why})",
                         "give a new or existing directory") from None
    if parent is not None and not parent.is_dir():
        raise UsageError(f"--out {name}: {short(str(parent))} is a file, so the kit folder cannot "
                         "be made under it", "give a new or existing directory")
    # a link is never written through, --force or not: even a dangling one would create or
    # replace a file elsewhere (wherever it points), not in the kit folder
    links = [n for n in KIT_FILES if (d / n).is_symlink()]
    if links:
        raise UsageError(f"--out {name}: {', '.join(links)} is a symbolic link; vramdoc never "
                         "writes through a link (it would write where the link points)",
                         "remove the link(s), or choose another directory")
    if force:
        return
    existing = [n for n in KIT_FILES if (d / n).exists() or (d / n).is_symlink()]
    if existing:
        raise UsageError(f"--out {d}: {', '.join(existing)} already exist(s); vramdoc never "
                         "overwrites files", "choose another directory, or add --force to "
                         "replace them")


def _fsdp_accelerate(setup: Any) -> dict[str, Any]:
    """accelerate 1.x fsdp_config keys for the setup's TrainingArguments fsdp options."""
    from vramdoc.parallel import fsdp_options

    o = fsdp_options(setup.training)
    assert o is not None
    cfg: dict[str, Any] = {
        "fsdp_version": o.version,
        "fsdp_auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
        "fsdp_offload_params": o.cpu_offload,
        "fsdp_cpu_ram_efficient_loading": o.cpu_ram_efficient_loading,
        "fsdp_state_dict_type": "SHARDED_STATE_DICT",
        "fsdp_activation_checkpointing": bool(setup.training.gradient_checkpointing),
    }
    if o.version == 2:
        cfg["fsdp_reshard_after_forward"] = o.reshard_after_forward
    else:
        cfg.update(fsdp_sharding_strategy=o.strategy, fsdp_backward_prefetch="BACKWARD_PRE",
                   fsdp_use_orig_params=True, fsdp_sync_module_states=True,
                   fsdp_forward_prefetch=False)
    return cfg


def accelerate_config(setup: Any) -> dict[str, Any]:
    """The accelerate config of a setup (several GPUs, or DeepSpeed)."""
    t = setup.training
    mp = "bf16" if t.bf16 else "fp16" if t.fp16 else "no"
    cfg: dict[str, Any] = {
        "compute_environment": "LOCAL_MACHINE",
        "debug": False,
        "num_processes": setup.num_gpus,
        "num_machines": setup.nodes,
        "machine_rank": 0,
        "main_training_function": "main",
        "mixed_precision": mp,
        "rdzv_backend": "static",
        "same_network": True,
        "use_cpu": False,
    }
    if setup.nodes > 1:
        cfg.update(main_process_ip="MAIN_NODE_IP", main_process_port=29500)
    if t.deepspeed:
        from vramdoc.parallel import zero_options

        zo = zero_options(setup)
        assert zo is not None
        cfg["distributed_type"] = "DEEPSPEED"
        cfg["deepspeed_config"] = {"deepspeed_config_file": "ds_config.json",
                                   "zero3_init_flag": zo.stage == 3}
        if setup.nodes > 1:
            cfg["deepspeed_config"]["deepspeed_multinode_launcher"] = "standard"
        # with a config file, mixed precision comes from the file ("auto" = TrainingArguments)
        cfg.pop("mixed_precision")
    elif t.fsdp:
        cfg["distributed_type"] = "FSDP"
        cfg["fsdp_config"] = _fsdp_accelerate(setup)
    elif setup.num_gpus > 1:
        cfg["distributed_type"] = "MULTI_GPU"
    else:
        cfg["distributed_type"] = "NO"
    return cfg


def launch_script(setup: Any) -> str:
    lines = ["#!/usr/bin/env bash",
             "# written by vramdoc plan --out: launch the plan with accelerate",
             "set -euo pipefail",
             'cd "$(dirname "$0")"']
    if setup.num_gpus > 1 or setup.training.deepspeed:
        rank = ' --machine_rank "${MACHINE_RANK:-0}"' if setup.nodes > 1 else ""
        if setup.nodes > 1:
            lines.append("# run this on every node with MACHINE_RANK=0..N-1 and "
                         "MAIN_NODE_IP set in accelerate_config.yaml")
        lines.append(f"accelerate launch --config_file accelerate_config.yaml{rank} "
                     "snippet.py \"$@\"")
    else:
        lines.append('python snippet.py "$@"')
    return "\n".join(lines) + "\n"


def kit_files(plan: Any, spec: Any, gpu: Any) -> dict[str, str]:
    """File name -> text of the kit for a plan."""
    import yaml

    from vramdoc.emit.setupfile import render_yaml
    from vramdoc.emit.snippet import render_python

    setup = plan.setup
    files = {"snippet.py": render_python(plan, spec, gpu),
             "setup.yaml": render_yaml(plan, header=f"vramdoc plan: {plan.label}")}
    if setup.num_gpus > 1 or setup.training.deepspeed:
        files["accelerate_config.yaml"] = yaml.safe_dump(accelerate_config(setup),
                                                         sort_keys=False)
    if setup.training.deepspeed:
        files["ds_config.json"] = json.dumps(json.loads(setup.training.deepspeed),
                                             indent=2) + "\n"
    files["launch.sh"] = launch_script(setup)
    return files


def write_kit(out: str | Path, plan: Any, spec: Any, gpu: Any, force: bool = False
              ) -> list[str]:
    """Write the kit into ``out`` (created); returns the file names written."""
    check_kit_dir(out, force=force)
    d = Path(out)
    files = kit_files(plan, spec, gpu)
    written: list[str] = []
    try:
        d.mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            path = d / name
            if force:  # O_NOFOLLOW: never through a link that appeared since check_kit_dir
                flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0)
                fh = os.fdopen(os.open(path, flags, 0o644), "w", encoding="utf-8")
            else:  # "x": fail rather than replace a file (or follow a link) that appeared
                fh = path.open("x", encoding="utf-8")
            with fh:
                fh.write(text)
            written.append(name)
            if name == "launch.sh":
                path.chmod(0o755)
    except OSError as exc:  # read-only folder, full disk, a file that appeared meanwhile
        done = f" (written before it: {', '.join(written)})" if written else ""
        raise UsageError(f"--out {short(str(d))}: cannot write the kit: "
                         f"{exc.strerror or exc}{done}",
                         "choose a writable directory") from None
    return list(files)
