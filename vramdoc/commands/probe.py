"""`vramdoc probe`: run real or fake-tensor training steps, measure them, diagnose them."""

from __future__ import annotations

import argparse
import json
import sys

from vramdoc.commands._setup_args import add_setup_arguments, mapping_from_args
from vramdoc.errors import EXIT_DOES_NOT_FIT, EXIT_OK, HardwareError, MissingDependencyError
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

exit codes: 0 no error findings, 1 an error finding (NaN, overflow, OOM ...), 2 bad input,
3 --device cuda without a GPU."""


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
    g.add_argument("--json", action="store_true",
                   help='print {"measured": ..., "estimate": ..., "findings": [...]} on stdout')


def run(args: argparse.Namespace) -> int:
    try:
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError as exc:
        raise MissingDependencyError(exc.name or "torch", "probe", "vramdoc probe") from None
    from vramdoc.probe.devices import quiet

    with quiet():
        return _run(args)


def _run(args: argparse.Namespace) -> int:
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
    setup = setup_from_mapping(base, source=args.config or "command line")
    if setup.num_gpus > 1 or setup.training.deepspeed:
        # the probe runs one process: it measures (and compares with) one GPU's share of a
        # single-GPU run, not the sharded or data-parallel setup
        engine = " and deepspeed" if setup.training.deepspeed else (
            " and fsdp" if setup.training.fsdp else "")
        print(f"note: the probe runs one process; num_gpus={setup.num_gpus}{engine} are set "
              "aside (single GPU, no engine)", file=sys.stderr)
        setup = setup.replace(num_gpus=1, nodes=1).replace_training(
            fsdp="", fsdp_config="", deepspeed="")
    spec = resolve_model(setup.model)
    if getattr(spec, "remote_code", False):
        from vramdoc.errors import UsageError

        raise UsageError(f"{spec.name} needs remote code transformers does not ship",
                         "probe a model with a built-in transformers architecture")
    gpu = None
    if setup.gpu:
        from vramdoc.hardware import resolve_gpu

        gpu = resolve_gpu(setup.gpu)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise HardwareError("--device cuda: no CUDA GPU is visible to torch",
                            "use --device cpu or --device fake (add --gpu SIZE to emulate a card)")
    if args.weights and args.device == "fake":
        from vramdoc.errors import UsageError

        raise UsageError("--weights loads real tensors; fake tensors carry none",
                         "drop --weights (memory does not depend on values) or use --device cpu")
    if args.steps is not None and args.steps < 1:
        from vramdoc.errors import UsageError

        raise UsageError(f"--steps {args.steps}: must be at least 1", "e.g. --steps 4")
    device = choose_device(args.device, int(spec.n_params or 0))
    if args.weights and device == "fake":  # auto picked fake tensors: they carry no weights
        device = "cpu"
    steps = args.steps or (2 if device == "fake" else 4)
    print(f"probing {setup.model} ({setup.method}) on {device} ...", file=sys.stderr)
    result = run_probe(setup, spec, device=device, steps=steps, gpu=gpu,
                       weights=args.weights, seed=args.seed)
    if args.json:
        json.dump(result.to_json(), sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(render(result))
    errors = [f for f in result.findings if f["severity"] == "error"]
    return EXIT_DOES_NOT_FIT if errors or result.oom is not None else EXIT_OK
