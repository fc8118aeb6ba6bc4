"""Command lines in shell scripts (or bare text) -> setup.

Reads ``python train.py --flag value`` (HfArgumentParser style: ``--key value``,
``--key=value``, a bare ``--flag`` is true), ``accelerate launch [--config_file X
--num_processes N ...] train.py ...``, ``torchrun --nproc_per_node N [--nnodes M] ...``,
``deepspeed [--num_gpus N] train.py --deepspeed ds.json``, ``trl sft ...``,
``llamafactory-cli train [cfg.yaml] ...`` and ``axolotl train cfg.yml``; backslash
continuations, ``VAR=value`` assignments used later as ``$VAR`` / ``${VAR}``, several commands
per file (the first training command is estimated, the others are named). Files a command
refers to (accelerate config, DeepSpeed JSON, framework YAML, the script) are named in
findings and read with their readers when they exist next to the script.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vramdoc.readers._cmdline import _START, Token, commands, launcher_split, parse_flags
from vramdoc.readers._common import (
    Collector,
    as_bool,
    as_float,
    as_int,
    as_targets,
    load_yaml,
    read_reference,
    resolve_reference,
)
from vramdoc.readers.findings import SourceReport
from vramdoc.setup import REMOVED_TRAINING_KEYS, hf_names

KIND = "shell"


def detect(path: str | Path, text: str) -> bool:
    path = Path(path)
    if path.suffix.lower() in (".sh", ".bash"):
        return True
    if path.suffix.lower() not in ("", ".txt", ".cmd"):
        return False
    return any(_START.match(line) for line in text.splitlines()[:200]
               if line.strip() and not line.lstrip().startswith("#"))


def read(path: str | Path, text: str) -> SourceReport:
    path = Path(path)
    col = Collector(path, KIND)
    cmds = commands(text)
    if not cmds:
        col.add("R200", "error", "no training command found (python, accelerate launch, "
                "torchrun, deepspeed, trl, llamafactory-cli or axolotl)",
                "doctor the training script or config itself", None)
        return col.report()
    done = None
    for tokens in cmds:
        if done is not None:
            col.add("R203", "info", f"another command ({tokens[0][0]} ...): this report "
                    f"estimates the first training command (line {done})", "", tokens[0][1])
            continue
        if _command(col, path, tokens):
            done = tokens[0][1]
    if done is None:
        col.add("R209", "info", "no model on the command line (the script it runs chooses "
                "it): the launch facts above are reported, not estimated",
                "doctor the training script or config too", cmds[0][0][1])
    return col.report()


def _command(col: Collector, path: Path, tokens: list[Token]) -> bool:
    """Read one command into ``col``; True when it named a model."""
    from vramdoc.readers import llamafactory, trl

    launcher, opts, rest, line = launcher_split(tokens)
    if not rest:
        return False
    program = rest[0][0]
    flags, flag_lines, positional = parse_flags(rest[1:])

    def ln(key: str) -> int | None:
        return flag_lines.get(key, line if key in flags else None)

    gpus = _world_size(col, path, launcher, opts, line)
    if launcher == "trl" or program.rstrip("/").endswith(("trl/scripts/sft.py", "trl.scripts.sft")):
        trainer = program if launcher == "trl" else "sft"
        cfg = _with_config(col, path, flags, "config", line)
        if "num_processes" in cfg and gpus is None:
            gpus = as_int(cfg.pop("num_processes"))
        trl.apply(col, path, cfg, ln, trainer=trainer)
    elif launcher in ("llamafactory-cli", "lmf"):
        if program != "train":
            return False
        yaml_pos = next((t for t, _ in positional if t.endswith((".yaml", ".yml", ".json"))),
                        None)
        cfg = dict(flags)
        if yaml_pos:
            cfg = {**_load_config(col, path, yaml_pos, line), **flags}
        llamafactory.apply(col, path, cfg, ln)
    elif launcher == "axolotl" or "axolotl.cli.train" in program or (
            launcher in ("accelerate", "torchrun") and opts.get("module")
            and "axolotl" in program):
        if launcher == "axolotl" and program != "train":
            return False
        cfg_pos = next((t for t, _ in positional if t.endswith((".yaml", ".yml"))), None)
        if not cfg_pos:
            col.add("R206", "warning", "axolotl command without a config file", "", line)
            return False
        _axolotl(col, path, cfg_pos, flags, line)
    else:
        _generic(col, path, program, flags, ln, line)
    if gpus is not None and gpus > 1:
        col.set("num_gpus", gpus, line)
        fsdp = col.get("training.fsdp")
        if isinstance(opts.get("_fsdp"), str) and not fsdp:
            col.set("training.fsdp", opts["_fsdp"], line)
            if opts.get("_fsdp_config"):  # TrainingArguments takes accelerate's fsdp_* names
                col.set("training.fsdp_config", opts["_fsdp_config"], line)
    elif col.get("training.fsdp"):
        fsdp_line = col.lines.get("training.fsdp")
        col.add("R207", "info", f"fsdp {col.get('training.fsdp')!r} read, but the number of "
                "GPUs is not on this command line: estimated for one unsharded GPU",
                "pass --num-gpus N for the sharded figure", fsdp_line)
        col.drop("training.fsdp")
    return bool(col.get("model"))


def _world_size(col: Collector, path: Path, launcher: str, opts: dict[str, Any],
                line: int) -> int | None:
    """The number of processes a launcher starts (None when it does not say)."""
    if launcher == "torchrun":
        n = as_int(opts.get("nproc_per_node"))
        nodes = as_int(opts.get("nnodes")) or 1
        if n is None and "nproc_per_node" in opts:
            col.add("R207", "info", f"--nproc_per_node {opts['nproc_per_node']}: as many "
                    "processes as GPUs, a number this file does not give", "", line)
        if n is not None:
            col.add("R207", "info", f"torchrun starts {n * nodes} processes (data-parallel "
                    "world size)", "", line)
        return n * nodes if n is not None else None
    if launcher == "deepspeed":
        n = as_int(opts.get("num_gpus"))
        if n is None:
            col.add("R207", "info", "deepspeed without --num_gpus uses every visible GPU, a "
                    "number this file does not give", "pass --num-gpus N", line)
            return None
        return n * (as_int(opts.get("num_nodes")) or 1)
    if launcher != "accelerate":
        return None
    from vramdoc.readers import accelerate

    n = None
    cfg_file = opts.get("config_file")
    if isinstance(cfg_file, str):
        found = resolve_reference(path, cfg_file)
        if found is None:
            col.add("R206", "info", f"--config_file {cfg_file} is not next to {path.name}; its "
                    "process count and FSDP/DeepSpeed settings are unknown", "", line)
        else:
            text, err = read_reference(found)
            data, _, err = load_yaml(text) if text is not None else (None, {}, err)
            if err or not isinstance(data, dict):
                col.add("R206", "warning", f"--config_file {found}: {err or 'not a mapping'}",
                        "", line)
            else:
                f = accelerate.facts(data)
                col.add("R206", "info", f"--config_file: read {found}: {accelerate.describe(f)}",
                        "", line)
                n = f.get("num_processes")
                if "fsdp" in f:
                    opts["_fsdp"] = f["fsdp"]
                    opts["_fsdp_config"] = f["fsdp_config"]
                ds = f.get("deepspeed") or {}
                if ds.get("deepspeed_config_file"):
                    from vramdoc.readers import deepspeed

                    deepspeed.apply_reference(col, found, ds["deepspeed_config_file"], line,
                                              "deepspeed_config_file")
                elif "zero_stage" in ds:
                    col.add("R207", "info", f"accelerate DeepSpeed ZeRO-{ds['zero_stage']} "
                            "(no DeepSpeed file): passed on as training.deepspeed", "", line)
                    col.set("training.deepspeed", {"zero_optimization": {
                        "stage": ds["zero_stage"]}}, line)
    if opts.get("num_processes") not in (None, True):
        n = as_int(opts["num_processes"])
    if isinstance(opts.get("deepspeed_config_file"), str):
        from vramdoc.readers import deepspeed

        deepspeed.apply_reference(col, path, opts["deepspeed_config_file"], line,
                                  "--deepspeed_config_file")
    elif opts.get("use_deepspeed") and as_int(opts.get("zero_stage")) is not None:
        zero: dict[str, Any] = {"stage": as_int(opts["zero_stage"])}
        for part in ("offload_optimizer", "offload_param"):
            device = opts.get(f"{part}_device")
            if isinstance(device, str) and device != "none":
                zero[part] = {"device": device}
        col.set("training.deepspeed", {"zero_optimization": zero}, line)
        col.add("R207", "info", f"accelerate launch --use_deepspeed: ZeRO-{zero['stage']}"
                + "".join(f", {p} {v['device']}" for p, v in zero.items() if p != "stage")
                + "; passed on as training.deepspeed", "", line)
    if opts.get("use_fsdp") and "_fsdp" not in opts:
        opts["_fsdp"] = "full_shard" + (" offload" if as_bool(opts.get("fsdp_offload_params"))
                                        else "")
    if n is not None:
        col.add("R207", "info", f"accelerate launch starts {n} processes (data-parallel world "
                "size)", "", line)
    return n


def _load_config(col: Collector, path: Path, ref: str, line: int) -> dict[str, Any]:
    found = resolve_reference(path, ref)
    if found is None:
        col.add("R206", "info", f"{ref} is not next to {path.name}; only the command-line flags "
                "are read", "run vramdoc where the run starts, or doctor the config too", line)
        return {}
    text, err = read_reference(found)
    data, _, err = load_yaml(text) if text is not None else (None, {}, err)
    if err or not isinstance(data, dict):
        col.add("R206", "warning", f"{found}: {err or 'not a mapping'}", "", line)
        return {}
    col.add("R206", "info", f"read {found} (flags on the command line override it)", "", line)
    return {k: v for k, v in data.items() if isinstance(k, str)}


def _with_config(col: Collector, path: Path, flags: dict[str, Any], key: str,
                 line: int) -> dict[str, Any]:
    ref = flags.pop(key, None)
    if isinstance(ref, str):
        return {**_load_config(col, path, ref, line), **flags}
    return flags


def _axolotl(col: Collector, path: Path, ref: str, flags: dict[str, Any], line: int) -> None:
    from vramdoc.readers import axolotl

    found = resolve_reference(path, ref)
    if found is None:
        col.add("R206", "info", f"axolotl config {ref} is not next to {path.name}; nothing to "
                "estimate", "doctor the axolotl config itself", line)
        return
    import yaml

    raw, err = read_reference(found)
    if raw is None:
        col.add("R206", "warning", f"axolotl config {err}; not read", "", line)
        return
    data, _, err = load_yaml(raw)
    if isinstance(data, dict) and flags:
        data.update(flags)  # axolotl's CLI takes config keys as --key value overrides
    text = yaml.safe_dump(data, sort_keys=False) if isinstance(data, dict) and flags else raw
    sub = axolotl.read(found, text)
    col.add("R206", "info", f"read axolotl config {found}", "", line)
    col.findings.extend(sub.findings)
    if sub.setup:
        for k, v in sub.setup.items():
            col.setup[k] = v
        col.lines.update(sub.lines)
    _ = err


# Keys that name the model or the sequence length in training scripts' own argument classes
_MODEL_KEYS = ("model_name_or_path", "model_name", "model_id", "model", "base_model")
_SEQ_KEYS = ("max_seq_length", "max_length", "max_seq_len", "seq_len", "cutoff_len",
             "sequence_len", "block_size", "model_max_length")


def _generic(col: Collector, path: Path, program: str, flags: dict[str, Any], ln: Any,
             line: int) -> None:
    """A user's own script parsed with HfArgumentParser: TrainingArguments names map as they
    are, the model and sequence-length names most scripts use are recognised."""
    script = resolve_reference(path, program) if program.endswith(".py") else None
    col.add("R206", "info", f"{program}: " + (f"found at {script}; its own defaults are read "
            "by the Python reader (vramdoc doctor on the script)" if script else
            "its own argument defaults are unknown here") + "; flags not given take "
            "TrainingArguments' defaults", "", line)
    ta = set(hf_names()["TrainingArguments"])
    used: set[str] = set()
    model_key = next((k for k in _MODEL_KEYS if isinstance(flags.get(k), str)), None)
    if model_key:
        col.set("model", flags[model_key], ln(model_key))
        used.add(model_key)
    seq_key = next((k for k in _SEQ_KEYS if as_int(flags.get(k)) is not None), None)
    if seq_key:
        col.set("max_seq_length", as_int(flags[seq_key]), ln(seq_key))
        used.add(seq_key)
    for key in ("dtype", "torch_dtype"):
        if isinstance(flags.get(key), str):
            col.set("model_kwargs.dtype", flags[key], ln(key))
            used.add(key)
    if isinstance(flags.get("attn_implementation"), str):
        from vramdoc.readers import _frameworks as fw

        fw.set_attn(col, flags["attn_implementation"], ln("attn_implementation"))
        used.add("attn_implementation")
    if as_bool(flags.get("use_peft")) or "lora_r" in flags:
        col.set("lora.r", as_int(flags.get("lora_r", 8)) or 8, ln("lora_r"))
        if "lora_alpha" in flags:
            col.set("lora.lora_alpha", as_int(flags["lora_alpha"]), ln("lora_alpha"))
        if "lora_dropout" in flags:
            col.set("lora.lora_dropout", as_float(flags["lora_dropout"]), ln("lora_dropout"))
        tm = flags.get("lora_target_modules")
        if tm:
            col.set("lora.target_modules", as_targets(tm), ln("lora_target_modules"))
        used.update(("use_peft", "lora_r", "lora_alpha", "lora_dropout", "lora_target_modules"))
        for bits in ("4", "8"):
            if as_bool(flags.get(f"load_in_{bits}bit")):
                col.set("quantization", {f"load_in_{bits}bit": True}, ln(f"load_in_{bits}bit"))
    used.update(("load_in_4bit", "load_in_8bit"))
    own: list[str] = []
    for key, value in flags.items():
        if key in used:
            continue
        if key == "deepspeed" and isinstance(value, str):
            from vramdoc.readers import deepspeed

            deepspeed.apply_reference(col, path, value, ln(key))
        elif key == "optim":
            from vramdoc.readers import _frameworks as fw

            fw.set_optim(col, str(value), ln(key))
        elif key == "fsdp":
            col.set("training.fsdp", " ".join(map(str, value)) if isinstance(value, list)
                    else str(value),
                    ln(key))
        elif key in ta or key in REMOVED_TRAINING_KEYS:
            col.training(key, value, ln(key))
        else:
            own.append(key)
    if own:
        col.add("R203", "info", "not TrainingArguments flags, so the script's own arguments "
                "(not read): " + ", ".join(f"--{k}" for k in own), "", ln(own[0]))
