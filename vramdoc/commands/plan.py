"""`vramdoc plan`: the setups that fit a GPU, ranked, with a ready Hugging Face snippet."""

from __future__ import annotations

import argparse
import sys

from vramdoc.errors import EXIT_DOES_NOT_FIT, EXIT_OK, UsageError
from vramdoc.safeload import dumps_strict

NAME = "plan"
ORDER = 20
HELP = "find the best fine-tuning setups that fit a GPU and print a ready snippet"
DESCRIPTION = """\
Search the setups reachable by the memory levers (full / LoRA / QLoRA, precision, attention,
gradient checkpointing, optimizer, micro-batch x accumulation, LoRA shape), drop those the
hardware rules forbid or that do not fit the GPU with a safety margin, and rank the rest by
fidelity, then warnings, then predicted step time. The effective batch and the sequence length
stay as asked (unless --allow-shorter-seq).

stdout: the Python snippet of the best plan (or --emit yaml: a setup file; --json: everything).
stderr: the ranked table, a memory bar per plan, the rules that shaped the best plan.

examples:
  vramdoc plan --model llama-2-7b --gpu 6GB
  vramdoc plan --model meta-llama/Llama-3.1-8B --gpu RTX-4090 --seq-len 4096 --effective-batch 32
  vramdoc plan --config my_run.yaml --gpu auto
  vramdoc plan --model mistral-7b --gpu T4 --emit yaml > my_run.yaml
  vramdoc plan --model llama-2-70b --gpu 8xA100-80GB --method full --out kit/
  vramdoc plan --model meta-llama/Llama-3.1-70B --gpu H100 --num-gpus 16 --nodes 2 --out kit/

Several GPUs (--gpu NxNAME or --num-gpus N, --nodes M): the search adds the data-parallel
strategy (DDP, FSDP full_shard / shard_grad_op / CPU offload, DeepSpeed ZeRO-2 / ZeRO-3 /
ZeRO-3 offload) and ranks by fidelity, then step time with its communication; memory figures
are per GPU, host RAM per node, the effective batch is split over the GPUs (an
--effective-batch must be a multiple of the GPU count). When nothing fits, the report names
the fewest GPUs that would, at what per-GPU and host-RAM cost.

--out DIR writes the run kit: snippet.py, setup.yaml, accelerate_config.yaml (several GPUs),
ds_config.json (DeepSpeed plans), launch.sh. Existing files are never replaced (exit 2 names
them) unless --force.

exit codes: 0 a plan fits, 1 nothing fits (the report says what would) or the --config setup
as given breaks an error-severity hardware rule (H), 2 bad input (or a kit file exists),
3 --gpu auto without a usable GPU."""

DEFAULT_SEQ_LEN = 512
DEFAULT_EFFECTIVE_BATCH = 16


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", "-m", help="catalog name, Hugging Face repo id or config.json path")
    p.add_argument("--gpu", "-g", metavar="GPU",
                   help="catalog name (RTX-3060-12GB, T4, a100-80gb), a size (6GB, 24GB,sm89) "
                        "or auto (NVML)")
    p.add_argument("--config", "-c", metavar="FILE",
                   help="setup file: model, task, sequence length, effective batch and "
                        "hyperparameters are taken from it; the levers are searched")
    p.add_argument("--seq-len", "-s", type=int, metavar="N",
                   help=f"max_seq_length in tokens (default {DEFAULT_SEQ_LEN} or the config's)")
    p.add_argument("--effective-batch", "-e", type=int, metavar="N",
                   help="micro-batch x accumulation to keep (default "
                        f"{DEFAULT_EFFECTIVE_BATCH} or the config's)")
    p.add_argument("--method", action="append", metavar="M",
                   help="restrict the search to methods (repeat or comma-separate): full, lora, "
                        "qlora, qlora-int8, gptq-lora, awq-lora (default: full, lora, qlora)")
    p.add_argument("--top", "-k", type=int, default=3, metavar="K",
                   help="plans to show (default 3)")
    p.add_argument("--allow-shorter-seq", action="store_true",
                   help="let the planner halve the sequence length (down to 128) to fit")
    p.add_argument("--num-gpus", type=int, metavar="N",
                   help="GPUs to spread the run over (data parallel; also --gpu NxNAME)")
    p.add_argument("--nodes", type=int, metavar="M",
                   help="machines the GPUs are on (default 1; num-gpus counts all of them)")
    p.add_argument("--host-ram", metavar="SIZE",
                   help="host RAM per node, to judge offload and loading (e.g. 512GB)")
    p.add_argument("--out", metavar="DIR",
                   help="write the run kit (snippet.py, setup.yaml, accelerate_config.yaml, "
                        "ds_config.json, launch.sh) into DIR")
    p.add_argument("--force", action="store_true",
                   help="with --out: replace kit files that already exist")
    p.add_argument("--margin", metavar="SIZE",
                   help="memory to keep free on the GPU (default max(256MiB, 4%% of it))")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print the whole result as JSON")
    out.add_argument("--emit", choices=("python", "yaml"), default="python",
                     help="stdout artifact: the Python snippet (default) or a setup file")


def _methods(values: list[str] | None) -> tuple[str, ...]:
    from vramdoc.engine.schema import did_you_mean
    from vramdoc.planner.space import ALL_METHODS, DEFAULT_METHODS

    if not values:
        return DEFAULT_METHODS
    out: list[str] = []
    for v in values:
        for m in v.split(","):
            m = m.strip().lower()
            if m not in ALL_METHODS:
                raise UsageError(f"--method {m!r} is not a method{did_you_mean(m, ALL_METHODS)}",
                                 f"use one of {', '.join(ALL_METHODS)}")
            if m not in out:
                out.append(m)
    return tuple(out)


def build_request(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    """The PlanRequest the flags describe (also used by tests and the benchmark)."""
    from vramdoc.hardware import resolve_gpu
    from vramdoc.planner import PlanRequest
    from vramdoc.setup import (
        MAX_EFFECTIVE_BATCH,
        MAX_SEQ_LENGTH,
        TrainSetup,
        load_setup_file,
    )
    from vramdoc.units import parse_size

    base = load_setup_file(args.config) if args.config else None
    # an empty --model or --gpu is refused, never replaced by the setup file's
    model = args.model.strip() if args.model is not None else (base.model if base else None)
    if not model:
        raise UsageError("no model given", "add --model NAME (see `vramdoc models`) or --config")
    gpu_text = args.gpu if args.gpu is not None else (base.gpu if base else None)
    if not gpu_text or not gpu_text.strip():
        raise UsageError("no GPU given", "add --gpu NAME, a size such as --gpu 6GB, or --gpu auto")
    from vramdoc.commands._setup_args import host_ram_limit, split_gpu_count

    count, gpu_text = split_gpu_count(gpu_text)
    num_gpus = getattr(args, "num_gpus", None)
    if count is not None and num_gpus not in (None, count):
        raise UsageError(f"--gpu says {count} GPUs but --num-gpus says {num_gpus}",
                         "give the count once")
    if num_gpus is None:
        num_gpus = count or (base.num_gpus if base else 1)
    nodes = getattr(args, "nodes", None)
    if nodes is None:
        nodes = base.nodes if base else 1
    for flag, value in (("--num-gpus", num_gpus), ("--nodes", nodes)):
        if value <= 0:  # 0 or -1 is a typo, never "the default"
            raise UsageError(f"{flag} must be at least 1, got {value}", f"e.g. {flag} 2")
    if num_gpus % nodes:
        raise UsageError(f"{num_gpus} GPUs cannot be spread evenly over {nodes} node(s)",
                         "--num-gpus counts the GPUs of all nodes: e.g. --num-gpus 16 --nodes 2")
    gpu = resolve_gpu(gpu_text)
    seq = args.seq_len if args.seq_len is not None else (
        base.max_seq_length if base else DEFAULT_SEQ_LEN)
    eb = args.effective_batch if args.effective_batch is not None else (
        base.effective_batch_size if base else DEFAULT_EFFECTIVE_BATCH)
    for flag, value, cap in (("--seq-len", seq, MAX_SEQ_LENGTH),
                             ("--effective-batch", eb, MAX_EFFECTIVE_BATCH),
                             ("--top", args.top, None)):
        if value <= 0:
            raise UsageError(f"{flag} must be larger than zero, got {value}",
                             f"e.g. {flag} {16 if flag != '--top' else 3}")
        if cap is not None and value > cap:
            raise UsageError(f"{flag} {value:,} is more than vramdoc plans for (at most {cap:,})",
                             "check for a typo")
    if args.effective_batch is not None and num_gpus > 1 and eb % num_gpus:
        # the effective batch is global: each GPU takes eb / num_gpus; a remainder would plan
        # another batch than the one asked (16 over 3 GPUs is 5 x 3 = 15; over 32 GPUs, 32)
        lo, hi = eb // num_gpus * num_gpus, -(-eb // num_gpus) * num_gpus
        raise UsageError(f"--effective-batch {eb} cannot be split evenly over {num_gpus} GPUs",
                         "give a multiple of the GPU count: "
                         + (f"{lo} or {hi}" if lo else f"{hi}"))
    # the setup file names the GPU the way the user did, so `vramdoc estimate` resolves the same
    gpu_name = gpu.name if gpu_text.strip().lower() == "auto" else gpu_text
    if base is None:
        base = TrainSetup(model=model, max_seq_length=seq, gpu=gpu_name, num_gpus=num_gpus,
                          nodes=nodes)
    else:
        base = base.replace(model=model, max_seq_length=seq, gpu=gpu_name, num_gpus=num_gpus,
                            nodes=nodes)
    margin = parse_size(args.margin, what="--margin") if args.margin is not None else None
    return PlanRequest(model=model, gpu=gpu, seq_len=seq, effective_batch=eb,
                       methods=_methods(args.method), base=base,
                       allow_shorter_seq=args.allow_shorter_seq, top_k=args.top,
                       margin_bytes=margin, judge_base=args.config is not None,
                       host_ram_bytes=host_ram_limit(args))


def run(args: argparse.Namespace) -> int:
    from vramdoc.emit import render_python, render_report, render_yaml, result_to_json
    from vramdoc.planner import plan

    req = build_request(args)
    if args.out:
        from vramdoc.emit.kit import check_kit_dir

        check_kit_dir(args.out, force=args.force)
    result = plan(req)
    sys.stderr.write(render_report(result))
    if args.out and result.best is not None:
        from vramdoc.emit.kit import write_kit

        written = write_kit(args.out, result.best, result.spec, result.gpu, force=args.force)
        sys.stderr.write(f"\nrun kit written to {args.out}: {', '.join(written)}\n")
    if args.json:
        sys.stdout.write(dumps_strict(result_to_json(result), indent=2))
        sys.stdout.write("\n")
    elif result.best is not None:
        if args.emit == "yaml":
            sys.stdout.write(render_yaml(result.best, header=f"vramdoc plan: {result.best.label}"))
        else:
            sys.stdout.write(render_python(result.best, result.spec, result.gpu))
    broken = [f for f in (result.user_plan.findings if result.user_plan else ())
              if f.kind == "constraint" and f.severity == "error"]
    if broken:
        codes = ", ".join(f.code for f in broken)
        sys.stderr.write(f"error: your setup as given breaks {codes} (marked x above); "
                         "the plans above avoid it\n")
        return EXIT_DOES_NOT_FIT
    return EXIT_OK if result.fits else EXIT_DOES_NOT_FIT
