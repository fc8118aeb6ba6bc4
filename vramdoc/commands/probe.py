"""`vramdoc probe`: run real or fake-tensor training steps, measure them, diagnose them."""

from __future__ import annotations

import argparse
import atexit
import gc
import json
import sys
from typing import Any

from vramdoc.commands._setup_args import add_setup_arguments, mapping_from_args
from vramdoc.errors import (
    EXIT_DOES_NOT_FIT,
    EXIT_OK,
    HardwareError,
    MissingDependencyError,
    UsageError,
)
from vramdoc.setup import setup_from_mapping

NAME = "probe"
ORDER = 30
HELP = "run training steps (GPU, CPU or fake tensors), measure memory, diagnose NaN/overflow/OOM"
DESCRIPTION = """\
Run a few training steps of a setup exactly as the emitted snippet would (random weights, or a
local checkpoint with --weights), measure memory per phase and component, compare with the
estimate, and diagnose what went wrong: the first module that produced NaN/inf, modules close
to fp16's limit, non-finite gradients, GradScaler skipping steps, loss spikes, gradient-norm
explosions, NaN losses Trainer's logging would hide, and out-of-memory errors (with the next
plan that fits).

devices:
  cuda   a real GPU: allocator peaks per phase (max_memory_allocated / reserved), NVML
  cpu    real CPU tensors, every byte counted as CUDA would (512-byte blocks, foreach temporaries)
  fake   the same step on fake tensors: nothing allocated, a 7B step traced in seconds, no values
  auto   cuda if present, else cpu below 300M parameters, else fake
With --gpu (or a setup's gpu) on cpu/fake, an out-of-memory error is emulated when the tracked
bytes pass the card's memory minus the CUDA context.

examples:
  vramdoc probe --config my_run.yaml --steps 5
  vramdoc probe --model llama-2-7b --method qlora --batch 1 --seq-len 512 --device fake
  vramdoc probe --config my_run.yaml --device cpu --gpu 6GB
  vramdoc probe --config examples/doctor-nan/setup.yaml --device cpu --json
  vramdoc probe --config run.yaml --num-gpus 8 --fsdp "full_shard auto_wrap" --device fake

Several GPUs: with --num-gpus N and --fsdp (full_shard or shard_grad_op, optionally offload)
on fake tensors the probe traces one rank of the FSDP2 run in this process (a fake process
group of N ranks, fully_shard per decoder layer as accelerate applies it) and compares it with
the per-GPU estimate. DeepSpeed runs are estimate-only (its engine cannot start on fake
tensors); on cpu/cuda, and for DDP, the probe measures the single-GPU setup.

More than 4 steps print their progress on stderr; --steps is capped at 1000. Ctrl-C stops
the run cleanly and prints the report of the steps done (exit 130). A library that refuses the
setup (while building the model or in a step) is reported as finding D190 (exit 1).

exit codes: 0 no error findings, 1 an error finding (NaN, overflow, OOM, a step that raised
...), 2 bad input, 3 --device cuda without a GPU, 130 interrupted (partial report)."""

MAX_STEPS = 1000  # a probe measures memory and numerics in a few steps; this bounds the work
EXIT_INTERRUPTED = 130  # the shell's 128 + SIGINT


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_setup_arguments(p)
    g = p.add_argument_group("probe")
    g.add_argument("--device", "-d", choices=("auto", "cuda", "cpu", "fake"), default="auto",
                   help="where to run the steps (default: auto)")
    g.add_argument("--steps", type=int, default=None, metavar="N",
                   help="optimizer steps to run (default: 2 on fake tensors, 4 otherwise)")
    g.add_argument("--weights", metavar="PATH",
                   help="local checkpoint directory to load instead of random weights")
    g.add_argument("--lr", type=float, metavar="LR", help="learning_rate")
    g.add_argument("--max-grad-norm", type=float, metavar="X", help="max_grad_norm (0 = off)")
    g.add_argument("--seed", type=int, default=0, help="seed of weights and batches (default 0)")
    g.add_argument("--rank", type=int, default=None, metavar="R",
                   help="with --num-gpus N --fsdp ... --device fake: the rank to trace "
                        "(default 0; FSDP2 pads every shard, so all ranks hold the same)")
    g.add_argument("--no-extrapolate", action="store_true",
                   help="on fake tensors, trace every decoder layer (default: when the layers "
                        "are identical, trace 2-, 3- and 4-layer builds and repeat the middle "
                        "layer's events: the same bytes, several times faster)")
    g.add_argument("--json", action="store_true",
                   help='print {"measured": ..., "estimate": ..., "findings": [...]} on stdout')


class _ImportPhase:
    """The cyclic garbage collector while the probe's libraries import, and at exit.

    Importing torch, transformers, peft and bitsandbytes creates some 450,000 objects (modules,
    classes, functions, tables) that live until the process ends, and next to no garbage.
    CPython's full (generation-2) collections traverse every tracked object: several run while
    those imports grow the heap, and one more runs at interpreter shutdown, together about a
    fifth of a fake 7B probe's CPU time (tests/benchmarks/bench_probe_fake.py). So, in a process
    that has not imported torch yet, the collector is paused while the libraries import, what
    they built is then moved to the permanent generation (``gc.freeze``: never traversed
    again), and at exit the heap is frozen before the interpreter's last collection (the OS
    takes the memory back anyway). While the model is built and the steps run the collector
    runs as usual on everything the run creates.
    """

    def __init__(self) -> None:
        self.active = "torch" not in sys.modules and gc.isenabled()
        if self.active:
            gc.disable()
            atexit.register(gc.freeze)

    def end(self) -> None:
        if self.active:
            self.active = False
            gc.freeze()
            gc.enable()


def run(args: argparse.Namespace) -> int:
    imports = _ImportPhase()
    try:
        try:
            import torch  # noqa: F401
            import transformers  # noqa: F401
        except ImportError as exc:
            raise MissingDependencyError(exc.name or "torch", "probe", "vramdoc probe") from None
        from vramdoc.probe.devices import quiet

        with quiet():
            return _run(args, imports)
    finally:
        imports.end()


def _preload(setup: Any, spec: Any) -> None:
    """Import what the build and the steps import (``build.preload``), before they run
    (stdout is the report: what a library prints while importing goes to stderr)."""
    import contextlib

    from vramdoc.probe import build

    # an error here the run meets again and reports (D190)
    with contextlib.redirect_stdout(sys.stderr), contextlib.suppress(Exception):
        build.preload(setup, spec.model_type, spec.config)


def _run(args: argparse.Namespace, imports: _ImportPhase | None = None) -> int:
    import torch

    from vramdoc.models import resolve_model
    from vramdoc.probe.recipe import choose_device, run_probe
    from vramdoc.probe.report import render

    base = mapping_from_args(args)
    training = base.setdefault("training", {})
    if args.lr is not None:
        training["learning_rate"] = args.lr
    if args.max_grad_norm is not None:
        training["max_grad_norm"] = args.max_grad_norm
    _check_probe_flags(args)
    setup = setup_from_mapping(base, source=args.config or "command line")
    spec = resolve_model(setup.model)
    sharded = None
    device_asked = choose_device(args.device, int(spec.n_params or 0))
    traces_a_rank = (setup.num_gpus > 1 and bool(setup.training.fsdp)
                     and not setup.training.deepspeed and device_asked == "fake")
    if args.rank is not None and not traces_a_rank:
        # a rank that nothing reads would be a silent wrong answer: refuse it
        raise UsageError(f"--rank {args.rank}: only the sharded fake probe traces a rank",
                         "add --num-gpus N --fsdp full_shard --device fake, or drop --rank")
    if traces_a_rank:
        from vramdoc.probe.sharded import sharded_run

        sharded = sharded_run(setup, rank=args.rank or 0)
    elif setup.num_gpus > 1 or setup.training.deepspeed:
        # the probe runs one process: it measures (and compares with) one GPU's share of a
        # single-GPU run, not the sharded or data-parallel setup
        if setup.training.deepspeed:
            why = ("DeepSpeed is estimate-only: its engine cannot start on fake tensors "
                   "(deepspeed.initialize needs a real accelerator)")
        elif setup.training.fsdp:
            why = "--device fake traces one rank of the FSDP run"
        else:
            why = "DDP ranks each hold what one GPU holds"
        engine = " and deepspeed" if setup.training.deepspeed else (
            " and fsdp" if setup.training.fsdp else "")
        print(f"note: the probe runs one process; num_gpus={setup.num_gpus}{engine} are set "
              f"aside (single GPU, no engine); {why}", file=sys.stderr)
        setup = setup.replace(num_gpus=1, nodes=1).replace_training(
            fsdp="", fsdp_config="", deepspeed="")
    if getattr(spec, "remote_code", False):

        raise UsageError(f"{spec.name} needs remote code transformers does not ship",
                         "probe a model with a built-in transformers architecture")
    gpu = None
    if setup.gpu:
        from vramdoc.hardware import resolve_gpu

        gpu = resolve_gpu(setup.gpu)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise HardwareError("--device cuda: no CUDA GPU is visible to torch",
                            "use --device cpu or --device fake (add --gpu SIZE to emulate a card)")
    if args.weights is not None and not args.weights.strip():

        raise UsageError("--weights '' names no checkpoint",
                         "give a local checkpoint folder, or leave --weights out for random "
                         "weights")
    if args.weights and args.device == "fake":

        raise UsageError("--weights loads real tensors; fake tensors carry none",
                         "drop --weights (memory does not depend on values) or use --device cpu")
    if args.steps is not None and args.steps < 1:

        raise UsageError(f"--steps {args.steps}: must be at least 1", "e.g. --steps 4")
    _check_setup_for_probe(setup, spec)
    device = choose_device(args.device, int(spec.n_params or 0))
    if args.weights and device == "fake":  # auto picked fake tensors: they carry no weights
        device = "cpu"
    steps = args.steps or (2 if device == "fake" else 4)
    if steps > MAX_STEPS:
        print(f"note: --steps {steps} capped at {MAX_STEPS}: a probe measures memory and "
              "numerics in a few steps (train with Trainer for more)", file=sys.stderr)
        steps = MAX_STEPS
    if imports is not None and imports.active:
        _preload(setup, spec)
        imports.end()
    where = f"rank {sharded.rank} of {sharded.world}, {sharded.label}, " if sharded else ""
    print(f"probing {setup.model} ({setup.method}) on {where}{device} ...", file=sys.stderr)
    import contextlib

    # stdout is the report: libraries that print there (DeepSpeed's logger, imported by
    # from_pretrained, writes to stdout) are sent to stderr while the steps run
    with contextlib.redirect_stdout(sys.stderr):
        result = run_probe(setup, spec, device=device, steps=steps, gpu=gpu,
                           weights=args.weights, seed=args.seed,
                           progress=_progress if steps > 4 else None, sharded=sharded,
                           extrapolate=not args.no_extrapolate)
    if args.json:
        json.dump(result.to_json(), sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(render(result))
    if result.interrupted:
        return EXIT_INTERRUPTED
    errors = [f for f in result.findings if f["severity"] == "error"]
    return EXIT_DOES_NOT_FIT if errors or result.oom is not None else EXIT_OK


def _progress(done: int, total: int, seconds: float) -> None:
    """One stderr line per step (stdout carries the report)."""
    print(f"step {done}/{total} done ({seconds:.1f} s)", file=sys.stderr, flush=True)


MAX_SEED = 2**63 - 1  # torch.manual_seed takes a 64-bit integer


def _check_probe_flags(args: argparse.Namespace) -> None:
    """The probe's own flags: finite rates, a seed torch accepts, a local weights folder."""
    import math
    from pathlib import Path

    from vramdoc.errors import UsageError

    if args.lr is not None and not (math.isfinite(args.lr) and args.lr > 0):
        raise UsageError(f"--lr {args.lr}: the learning rate must be a finite number > 0",
                         "e.g. --lr 2e-4")
    if args.max_grad_norm is not None and not (math.isfinite(args.max_grad_norm)
                                               and args.max_grad_norm >= 0):
        raise UsageError(f"--max-grad-norm {args.max_grad_norm}: must be a finite number >= 0",
                         "e.g. --max-grad-norm 1.0 (0 turns clipping off)")
    if not 0 <= args.seed <= MAX_SEED:
        raise UsageError(f"--seed {args.seed}: must be between 0 and 2**63 - 1",
                         "e.g. --seed 0")
    if args.weights and args.device != "fake":  # fake tensors: refused below, with why
        path = Path(args.weights)
        if not path.is_dir():
            raise UsageError(
                f"--weights {args.weights}: not a local directory; the probe loads local "
                "checkpoints only and never downloads (as with HF_HUB_OFFLINE=1)",
                "download it first (huggingface-cli download REPO --local-dir DIR) and pass "
                "DIR, or drop --weights to probe random weights (memory does not depend on them)")
        found = [f for pat in ("*.safetensors", "*.bin", "*.safetensors.index.json",
                               "*.bin.index.json") for f in path.glob(pat)]
        if not found:
            raise UsageError(
                f"--weights {args.weights}: the directory holds no model weights "
                "(*.safetensors or *.bin)",
                "pass the folder that holds model.safetensors (or its shards and index), or "
                "drop --weights to probe random weights")


def _check_setup_for_probe(setup: Any, spec: Any) -> None:
    """What transformers or PEFT would refuse before the first step, said as bad input."""
    from vramdoc.errors import UsageError
    from vramdoc.models import EMBEDDING, default_task, param_groups

    task = setup.task if setup.task != "auto" else default_task(spec)
    groups = param_groups(spec, task=task, num_labels=setup.num_labels)
    if setup.lora is not None:
        from vramdoc.estimate.adapters import check_lora_targets

        check_lora_targets(setup.lora.target_modules, spec, groups)
    n_pos = int(spec.max_position_embeddings or 0)
    learned = [g for g in groups if g.kind == EMBEDDING and (
        "position" in g.path or g.path.endswith("wpe"))]
    if learned and 0 < n_pos < setup.max_seq_length:
        # a learned position table has n_pos rows: a longer sequence indexes past it
        raise UsageError(
            f"max_seq_length {setup.max_seq_length} exceeds {spec.name}'s "
            f"max_position_embeddings {n_pos} (H111); its learned position embeddings have "
            f"{n_pos} rows, so a longer sequence cannot run",
            f"use --seq-len {n_pos} or less")
