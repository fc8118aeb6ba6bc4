"""Setup flags shared by `estimate`, `plan` and `probe`: flags for the common case, a file for all.

Flags override the same keys of ``--config``. Everything ends in ``setup_from_mapping`` so a
flag and a file key are validated by the same code.
"""

from __future__ import annotations

import argparse
import copy
from typing import Any

from vramdoc.errors import UsageError
from vramdoc.setup import (
    ATTN_IMPLEMENTATIONS,
    METHODS,
    OPTIMIZERS,
    TrainSetup,
    load_setup_file,
    setup_from_mapping,
    setup_to_mapping,
)


def add_setup_arguments(p: argparse.ArgumentParser, *, with_gpu: bool = True) -> None:
    """Register the setup flags on a subcommand parser."""
    g = p.add_argument_group("setup (flags override --config)")
    g.add_argument("--config", "-c", metavar="FILE", help="setup file (YAML or JSON)")
    g.add_argument("--model", "-m", help="catalog name, Hugging Face repo id or config.json path")
    g.add_argument("--method", choices=METHODS,
                   help="full fine-tune, LoRA, QLoRA (NF4 + double quant), 8-bit LoRA, or LoRA "
                        "on a GPTQ/AWQ 4-bit base")
    g.add_argument("--batch", "-b", type=int, metavar="N", help="per_device_train_batch_size")
    g.add_argument("--grad-accum", type=int, metavar="N", help="gradient_accumulation_steps")
    g.add_argument("--seq-len", "-s", type=int, metavar="N", help="max_seq_length (tokens)")
    g.add_argument("--grad-ckpt", action=argparse.BooleanOptionalAction, default=None,
                   help="gradient_checkpointing")
    g.add_argument("--optim", choices=OPTIMIZERS, metavar="NAME",
                   help="Trainer optim name (adamw_torch_fused, paged_adamw_8bit, ...)")
    g.add_argument("--dtype", choices=("auto", "float32", "bfloat16", "float16"),
                   help="from_pretrained dtype (auto = the checkpoint's)")
    g.add_argument("--precision", choices=("bf16", "fp16", "fp32"),
                   help="Trainer mixed precision flag: bf16=True, fp16=True, or neither")
    g.add_argument("--attn", choices=ATTN_IMPLEMENTATIONS, help="attn_implementation")
    g.add_argument("--lora-r", type=int, metavar="R", help="LoRA rank r")
    g.add_argument("--lora-alpha", type=int, metavar="A", help="lora_alpha")
    g.add_argument("--lora-targets", metavar="LIST",
                   help="comma-separated target_modules, or all-linear")
    g.add_argument("--task", choices=("auto", "causal-lm", "sequence-classification"))
    g.add_argument("--num-gpus", type=int, metavar="N",
                   help="data-parallel GPUs (figures are per GPU); DDP unless --fsdp")
    g.add_argument("--fsdp", metavar="OPTIONS",
                   help='TrainingArguments fsdp, e.g. "full_shard auto_wrap" (with --num-gpus)')
    g.add_argument("--deepspeed", metavar="FILE",
                   help="DeepSpeed config JSON (TrainingArguments deepspeed); ZeRO stage, "
                        "offload and buckets are read from it, \"auto\" resolved as "
                        "transformers does")
    g.add_argument("--nodes", type=int, metavar="M",
                   help="machines the --num-gpus GPUs are spread over (default 1)")
    if with_gpu:
        g.add_argument("--gpu", "-g", metavar="GPU",
                       help="catalog name (RTX-3060-12GB, T4, a100-80gb), a size (6GB, 24GB,sm89) "
                            "or auto (NVML)")


def _method_mapping(method: str, base: dict[str, Any]) -> None:
    """Apply a --method shortcut to a setup mapping (quantization + lora sections)."""
    lora = dict(base.get("lora") or {})
    if method == "full":
        base.pop("lora", None)
        base.pop("quantization", None)
        return
    lora.setdefault("r", 16)
    lora.setdefault("lora_alpha", 2 * int(lora["r"]))
    lora.setdefault("target_modules", "all-linear" if method != "lora" else None)
    if lora.get("target_modules") is None:
        lora.pop("target_modules")
    base["lora"] = lora
    if method == "lora":
        base.pop("quantization", None)
    elif method == "qlora":
        base["quantization"] = {"load_in_4bit": True, "bnb_4bit_quant_type": "nf4",
                                "bnb_4bit_use_double_quant": True,
                                "bnb_4bit_compute_dtype": "bfloat16"}
    elif method == "qlora-int8":
        base["quantization"] = {"load_in_8bit": True}
    else:
        base["quantization"] = {"quant_method": method.split("-")[0], "bits": 4,
                                "group_size": 128}


def mapping_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The setup mapping: the --config file's (if any) with the flags applied on top."""
    base = setup_to_mapping(load_setup_file(args.config)) if args.config else {}
    base = copy.deepcopy(base)
    if args.model is not None:  # an empty --model is refused, not replaced by the file's
        base["model"] = args.model.strip()
    if not base.get("model"):
        raise UsageError("no model given", "pass --model NAME (see `vramdoc models`) or --config")
    if args.method:
        _method_mapping(args.method, base)
    training = base.setdefault("training", {})
    mk = base.setdefault("model_kwargs", {})
    for flag, key in (("batch", "per_device_train_batch_size"),
                      ("grad_accum", "gradient_accumulation_steps"),
                      ("grad_ckpt", "gradient_checkpointing"), ("optim", "optim")):
        value = getattr(args, flag)
        if value is not None:
            training[key] = value
    if args.precision:
        training["bf16"] = args.precision == "bf16"
        training["fp16"] = args.precision == "fp16"
    if args.seq_len is not None:
        base["max_seq_length"] = args.seq_len
    if args.dtype:
        mk["dtype"] = args.dtype
    if args.attn:
        mk["attn_implementation"] = args.attn
    if args.task:
        base["task"] = args.task
    if getattr(args, "num_gpus", None) is not None:
        base["num_gpus"] = args.num_gpus
    if getattr(args, "fsdp", None) is not None and not args.fsdp.strip():
        raise UsageError("--fsdp '' names no FSDP option",
                         'give e.g. --fsdp "full_shard auto_wrap", or leave --fsdp out')
    if getattr(args, "fsdp", None):
        training["fsdp"] = args.fsdp
    if getattr(args, "deepspeed", None) is not None and not args.deepspeed.strip():
        raise UsageError("--deepspeed '' names no file",
                         "give the DeepSpeed config JSON's path, or leave --deepspeed out")
    if getattr(args, "deepspeed", None):
        training["deepspeed"] = args.deepspeed
        training.pop("fsdp", None)
        training.pop("fsdp_config", None)
    if getattr(args, "nodes", None) is not None:
        base["nodes"] = args.nodes
    if getattr(args, "gpu", None) is not None:  # --gpu '' is refused by setup_from_mapping
        count, name = split_gpu_count(args.gpu)
        base["gpu"] = name
        if count is not None:
            if getattr(args, "num_gpus", None) not in (None, count):
                raise UsageError(f"--gpu {args.gpu} says {count} GPUs but --num-gpus says "
                                 f"{args.num_gpus}", "give the count once")
            base["num_gpus"] = count
    lora_flags = {"r": args.lora_r, "lora_alpha": args.lora_alpha}
    if args.lora_targets is not None:
        t = args.lora_targets.strip()
        lora_flags["target_modules"] = t if t == "all-linear" else [x.strip() for x in t.split(",")
                                                                    if x.strip()]
        if not lora_flags["target_modules"]:
            raise UsageError(f"--lora-targets {args.lora_targets!r} names no target module",
                             "give module names such as q_proj,v_proj, or all-linear")
    if any(v is not None for v in lora_flags.values()):
        if "lora" not in base:
            raise UsageError("LoRA flags given for a full fine-tune",
                             "add --method lora (or qlora), or drop --lora-* flags")
        base["lora"].update({k: v for k, v in lora_flags.items() if v is not None})
    return base


def split_gpu_count(text: str) -> tuple[int | None, str]:
    """``"8xA100-80GB"`` -> ``(8, "A100-80GB")`` (see :func:`vramdoc.parallel.split_gpu_count`)."""
    from vramdoc.parallel import split_gpu_count as split

    try:
        return split(text)
    except ValueError as exc:
        raise UsageError(f"--gpu {text}: {exc}", "e.g. --gpu 8xA100-80GB") from None


def host_ram_limit(args: argparse.Namespace) -> int | None:
    """--host-ram in bytes, or None."""
    value = getattr(args, "host_ram", None)
    if value is None:  # --host-ram '' is refused by parse_size, never taken as "not given"
        return None
    from vramdoc.units import parse_size

    return parse_size(value, what="--host-ram")


def setup_from_args(args: argparse.Namespace) -> TrainSetup:
    """Build and validate the TrainSetup named by the command line."""
    source = args.config or "command line"
    setup = setup_from_mapping(mapping_from_args(args), source=source)
    return setup
