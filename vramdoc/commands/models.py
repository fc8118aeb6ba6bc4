"""`vramdoc models`: the offline catalog with exact parameter counts, or one model in detail."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from vramdoc.errors import UsageError
from vramdoc.safeload import dumps_strict

NAME = "models"
HELP = "list the offline model catalog with exact parameter counts, or show one model"
ORDER = 40
DESCRIPTION = """\
List the offline model catalog: exact parameter counts (tied weights counted once), layers,
hidden size, attention heads / key-value heads, vocabulary and checkpoint dtype.

Give a MODEL (catalog name, Hugging Face repo id or alias, config.json path or model
directory) to see its architecture and full parameter inventory instead.

examples:
  vramdoc models
  vramdoc models --family qwen2 --json
  vramdoc models mistralai/Mixtral-8x7B-Instruct-v0.1
  vramdoc models bert-base-uncased --task sequence-classification --num-labels 3
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the command's flags."""
    parser.add_argument("model", nargs="?", metavar="MODEL",
                        help="show one model (name, repo id, alias, config.json or directory)")
    parser.add_argument("--json", action="store_true", help="print JSON on stdout")
    parser.add_argument("--family", metavar="F",
                        help="only models whose family (llama, moe, gpt, parallel, encoder), "
                             "model_type (qwen2, gemma3 ...) or name prefix matches F")
    parser.add_argument("--task", choices=("causal-lm", "sequence-classification"),
                        help="inventory for this task (with MODEL; default: the model's own)")
    parser.add_argument("--num-labels", type=int, default=2, metavar="N",
                        help="classifier outputs for sequence-classification (default 2)")


def run(args: argparse.Namespace) -> int:
    """List the catalog or show one model; returns the exit code."""
    from vramdoc import models

    if args.model:
        if args.family:
            raise UsageError("--family filters the catalog list, not one MODEL",
                             "drop --family, or drop MODEL")
        from vramdoc.setup import MAX_NUM_LABELS

        if args.num_labels > MAX_NUM_LABELS:
            raise UsageError(f"--num-labels {args.num_labels:,} is more than vramdoc plans for "
                             f"(at most {MAX_NUM_LABELS:,})", "check for a typo")
        spec = models.resolve_model(args.model)
        groups = models.param_groups(spec, args.task, args.num_labels)
        task = args.task or models.default_task(spec)
        if args.json:
            _dump({**_spec_json(spec), "task": task,
                   "n_params_task": sum(g.numel for g in groups),
                   "param_groups": [_group_json(g) for g in groups]})
        else:
            _print_detail(spec, groups, task)
        return 0

    specs = list(models.catalog())
    if args.family:
        f = args.family.strip().lower()
        specs = [s for s in specs if f in (s.family, s.model_type) or s.name.startswith(f)]
        if not specs:
            families = sorted({s.family for s in models.catalog()})
            types = sorted({s.model_type for s in models.catalog()})
            raise UsageError(f"no catalog model matches family {args.family!r}",
                             f"families: {', '.join(families)}; model types: {', '.join(types)}")
    if args.json:
        _dump([_spec_json(s) for s in specs])
    else:
        _print_table(specs)
    return 0


def _dump(obj: Any) -> None:
    sys.stdout.write(dumps_strict(obj, indent=1))
    sys.stdout.write("\n")


def _spec_json(spec: Any) -> dict[str, Any]:
    from vramdoc.models._catalog import entry

    e = entry(spec.name)
    out = {k: getattr(spec, k) for k in (
        "name", "hf_id", "model_type", "family", "n_params", "hidden_size", "num_hidden_layers",
        "num_attention_heads", "num_key_value_heads", "head_dim", "intermediate_size",
        "vocab_size", "max_position_embeddings", "tie_word_embeddings", "gated_mlp",
        "num_local_experts", "num_experts_per_tok", "is_encoder", "checkpoint_dtype",
        "sliding_window", "remote_code", "source", "generic")}
    out["aliases"] = list(spec.aliases)
    if e is not None and e.get("note"):
        out["note"] = e["note"]
    return out


def _group_json(g: Any) -> dict[str, Any]:
    return {k: getattr(g, k) for k in (
        "path", "leaf", "kind", "in_features", "out_features", "weight_numel", "bias_numel",
        "count", "n_experts", "in_block", "quantizable", "tied_to", "numel")}


_COLUMNS = ("name", "params", "layers", "hidden", "heads/kv", "vocab", "dtype", "type",
            "hf_id")


def _print_table(specs: list[Any]) -> None:
    rows = [(s.name, f"{s.n_params:,}", str(s.num_hidden_layers), str(s.hidden_size),
             f"{s.num_attention_heads}/{s.num_key_value_heads}", f"{s.vocab_size:,}",
             s.checkpoint_dtype, s.model_type + ("*" if s.remote_code else ""), s.hf_id)
            for s in specs]
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(_COLUMNS)]
    right = {1, 2, 3, 4, 5}
    for r in [_COLUMNS, *rows]:
        cells = [c.rjust(w) if i in right else c.ljust(w)
                 for i, (c, w) in enumerate(zip(r, widths, strict=True))]
        print("  ".join(cells).rstrip())
    print(f"{len(specs)} models; * = remote code (the probe cannot build it); "
          "`vramdoc models NAME` shows one model's parameter inventory", file=sys.stderr)


def _print_detail(spec: Any, groups: Any, task: str) -> None:
    kv = f"{spec.num_key_value_heads}" + (" (GQA)" if spec.num_key_value_heads
                                          < spec.num_attention_heads else "")
    lines = [
        f"{spec.name}  ({spec.hf_id or 'no repo id'})",
        f"  model_type {spec.model_type}, family {spec.family}"
        + (", remote code" if spec.remote_code else ""),
        f"  parameters {spec.n_params:,}" + (f" ({sum(g.numel for g in groups):,} for {task})"
                                             if sum(g.numel for g in groups) != spec.n_params
                                             else ""),
        f"  layers {spec.num_hidden_layers}, hidden {spec.hidden_size}, heads "
        f"{spec.num_attention_heads}, kv heads {kv}, head_dim {spec.head_dim}",
        f"  intermediate {spec.intermediate_size}"
        + (f" per expert, {spec.num_local_experts} experts, top-{spec.num_experts_per_tok}"
           if spec.num_local_experts else "")
        + f", vocab {spec.vocab_size:,}, max positions {spec.max_position_embeddings:,}",
        f"  checkpoint dtype {spec.checkpoint_dtype}, tied embeddings "
        f"{'yes' if spec.tie_word_embeddings else 'no'}"
        + (f", sliding window {spec.sliding_window}" if spec.sliding_window else ""),
        f"  source {spec.source}",
        *(["  generic (approximate activations): built from its config by transformers; "
           "the inventory below is exact"] if spec.generic else []),
        "",
        f"parameter groups ({task}; q = bitsandbytes quantizes it, tied = shares the "
        "embedding):",
    ]
    print("\n".join(lines))
    rows = []
    for g in groups:
        shape = (f"{g.n_experts}x{g.out_features}x{g.in_features}" if g.n_experts > 1
                 else f"{g.in_features}x{g.out_features}" if g.kind == "embedding"
                 else f"{g.out_features}x{g.in_features}" if g.in_features
                 else str(g.weight_numel))
        flags = ",".join(f for f, on in (("q", g.quantizable), ("tied", g.tied_to),
                                         ("bias", g.bias_numel)) if on)
        rows.append((g.path, g.kind, shape, f"x{g.count}", f"{g.numel:,}", flags))
    widths = [max(len(r[i]) for r in rows) for i in range(6)]
    for r in rows:
        print("  " + "  ".join(c.rjust(w) if i in (3, 4) else c.ljust(w)
                               for i, (c, w) in enumerate(zip(r, widths, strict=True))).rstrip())
