"""Shell command lines as tokens: continuations, ``VAR=value`` substitution, ``&&`` chains,
HfArgumentParser-style flags and the launcher in front (accelerate, torchrun, deepspeed)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

from vramdoc.readers._common import as_float, as_int

_LAUNCHERS = ("python", "python3", "accelerate", "torchrun", "deepspeed", "trl",
              "llamafactory-cli", "lmf", "axolotl")
_START = re.compile(r"^\s*(?:[A-Z_][A-Z0-9_]*=\S*\s+)*(?:\S*/)?("
                    + "|".join(re.escape(x) for x in _LAUNCHERS) + r")\b")
_ASSIGN = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=(\S*)\s*$")
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)")

Token = tuple[str, int]  # (text, 1-based line)



def commands(text: str) -> list[list[Token]]:
    """The training commands of a script, tokens with their lines; $VARs substituted."""
    env: dict[str, str] = {}
    out: list[list[Token]] = []
    pending: list[tuple[str, int]] = []
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.rstrip()
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        cont = line.endswith("\\")
        pending.append((line[:-1] if cont else line, n))
        if cont:
            continue
        logical, pending = pending, []
        first = logical[0][0]
        m = _ASSIGN.match(first)
        if m and len(logical) == 1:
            env[m.group(1)] = m.group(2).strip("'\"")
            continue
        tokens: list[Token] = []
        for piece, ln in logical:
            piece = _VAR.sub(lambda mm: env.get(mm.group(1) or mm.group(2), mm.group(0)), piece)
            try:
                tokens += [(t, ln) for t in shlex.split(piece, comments=True)]
            except ValueError:
                tokens += [(t, ln) for t in piece.split()]
        for part in _split_ops(tokens):
            while part and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", part[0][0]):
                part = part[1:]  # CUDA_VISIBLE_DEVICES=0 python ...
            if part and Path(part[0][0]).name in _LAUNCHERS:
                out.append(part)
    return out


def _split_ops(tokens: list[Token]) -> list[list[Token]]:
    parts: list[list[Token]] = [[]]
    for tok in tokens:
        if tok[0] in ("&&", "||", ";", "|", "&"):
            parts.append([])
        else:
            parts[-1].append(tok)
    return [p for p in parts if p]


def _value(text: str) -> Any:
    b = text.lower()
    if b in ("true", "false"):
        return b == "true"
    if b in ("none", "null"):
        return None
    i = as_int(text) if re.fullmatch(r"-?\d+", text) else None
    if i is not None:
        return i
    f = as_float(text) if re.fullmatch(r"-?[\d.]+(e-?\d+)?", text, re.I) else None
    return f if f is not None else text


def parse_flags(tokens: list[Token]) -> tuple[dict[str, Any], dict[str, int], list[Token]]:
    """HfArgumentParser-style ``--key value`` / ``--key=value`` / ``--flag`` -> mapping,
    key lines and positional tokens."""
    flags: dict[str, Any] = {}
    lines: dict[str, int] = {}
    positional: list[Token] = []
    i = 0
    while i < len(tokens):
        tok, ln = tokens[i]
        if tok.startswith("--") and len(tok) > 2:
            key, eq, val = tok[2:].partition("=")
            key = key.replace("-", "_")
            if eq:
                flags[key] = _value(val)
            elif i + 1 < len(tokens) and not tokens[i + 1][0].startswith("--"):
                vals = []
                while i + 1 < len(tokens) and not tokens[i + 1][0].startswith("--"):
                    vals.append(tokens[i + 1][0])
                    i += 1
                    if key not in _LIST_FLAGS:
                        break
                flags[key] = [_value(v) for v in vals] if len(vals) > 1 else _value(vals[0])
            else:
                flags[key] = True
            lines[key] = ln
        else:
            positional.append((tok, ln))
        i += 1
    return flags, lines, positional


_LIST_FLAGS = frozenset({"lora_target_modules", "target_modules", "lora_modules_to_save",
                         "fsdp", "report_to"})
_LAUNCH_OPTS = {  # launcher options that take a value (the rest are switches)
    "accelerate": {"config_file", "num_processes", "num_machines", "mixed_precision",
                   "machine_rank", "main_process_ip", "main_process_port", "gpu_ids",
                   "zero_stage", "fsdp_sharding_strategy", "deepspeed_config_file",
                   "offload_optimizer_device", "offload_param_device", "fsdp_version",
                   "dynamo_backend", "num_cpu_threads_per_process", "rdzv_backend",
                   "fsdp_offload_params", "fsdp_auto_wrap_policy", "gradient_accumulation_steps",
                   "deepspeed_hostfile", "fsdp_transformer_layer_cls_to_wrap",
                   "fsdp_state_dict_type", "fsdp_backward_prefetch", "module", "m"},
    "torchrun": {"nproc_per_node", "nproc-per-node", "nnodes", "node_rank", "node-rank",
                 "master_addr", "master-addr", "master_port", "master-port", "rdzv_backend",
                 "rdzv-backend", "rdzv_endpoint", "rdzv-endpoint", "rdzv_id", "rdzv-id",
                 "max_restarts", "max-restarts", "log_dir", "log-dir", "role",
                 "local-ranks-filter"},
    "deepspeed": {"num_gpus", "num_nodes", "include", "exclude", "hostfile", "master_port",
                  "master_addr", "launcher", "module"},
}


def launcher_split(tokens: list[Token]) -> tuple[str, dict[str, Any], list[Token], int]:
    """Split off the launcher: (kind, its options, the program + args, line)."""
    prog = Path(tokens[0][0]).name
    line = tokens[0][1]
    rest = tokens[1:]
    opts: dict[str, Any] = {}
    if prog in ("python", "python3"):
        if len(rest) >= 2 and rest[0][0] == "-m" and rest[1][0] in ("torch.distributed.run",
                                                                    "torch.distributed.launch"):
            prog, rest = "torchrun", rest[2:]
        elif len(rest) >= 2 and rest[0][0] == "-m" and rest[1][0] == "accelerate.commands.launch":
            prog, rest = "accelerate", [("launch", line), *rest[2:]]
        else:
            return "python", opts, rest, line
    if prog == "accelerate" and rest and rest[0][0] == "launch":
        rest = rest[1:]
    if prog in _LAUNCH_OPTS:
        takes = _LAUNCH_OPTS[prog]
        i = 0
        while i < len(rest) and rest[i][0].startswith("-"):
            key, eq, val = rest[i][0].lstrip("-").partition("=")
            if key == "m" or key == "module":
                opts["module"] = True
                i += 1
                break
            norm = key.replace("-", "_")
            if eq:
                opts[norm] = val
            elif key in takes and i + 1 < len(rest):
                opts[norm] = rest[i + 1][0]
                i += 1
            else:
                opts[norm] = True
            i += 1
        rest = rest[i:]
    return prog, opts, rest, line
