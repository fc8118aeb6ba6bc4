"""`vramdoc estimate`: peak memory of one training step, phase by phase, component by component."""

from __future__ import annotations

import argparse
import sys

from vramdoc.commands._setup_args import add_setup_arguments, setup_from_args
from vramdoc.errors import EXIT_DOES_NOT_FIT, EXIT_OK
from vramdoc.safeload import dumps_strict

NAME = "estimate"
ORDER = 10
HELP = "estimate the peak GPU memory of a fine-tuning setup (no torch needed)"
DESCRIPTION = """\
Estimate the peak GPU memory of one training step, phase by phase (load, forward, backward,
optimizer step) and component by component, in three views: peak allocated (what
torch.cuda.max_memory_allocated reports), peak reserved (max_memory_reserved) and device
(what nvidia-smi shows: reserved + CUDA context + paged optimizer states).

examples:
  vramdoc estimate --model llama-2-7b --method qlora --batch 1 --seq-len 256 --grad-ckpt \\
      --optim paged_adamw_8bit
  vramdoc estimate --config my_run.yaml --gpu RTX-3060-12GB
  vramdoc estimate --config my_run.yaml --json
  vramdoc estimate --config run.yaml --num-gpus 4 --deepspeed zero3_offload.json --host-ram 256GB
  vramdoc estimate --model llama-2-70b --method full --gpu 8xA100-80GB \
      --fsdp "full_shard auto_wrap" --grad-ckpt --precision bf16

With --num-gpus (or --gpu NxNAME) every GPU figure is per GPU; host RAM is per node.

exit codes: 0 fits (or no --gpu), 1 does not fit the --gpu (or --host-ram) or breaks an
error-severity hardware rule (H101 bf16 before Ampere ...: the run would stop at start),
2 bad input."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_setup_arguments(p)
    p.add_argument("--host-ram", metavar="SIZE",
                   help="host RAM per node (e.g. 256GB) to check offload and loading against")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")


def run(args: argparse.Namespace) -> int:
    from vramdoc.commands._setup_args import host_ram_limit
    from vramdoc.doctor.checks import judge
    from vramdoc.estimate import estimate
    from vramdoc.estimate.render import render_estimate
    from vramdoc.models import resolve_model

    setup = setup_from_args(args)
    spec = resolve_model(setup.model)
    est = estimate(setup, model=spec, host_limit=host_ram_limit(args))
    if args.json:
        sys.stdout.write(dumps_strict(est.to_json(), indent=2))
        sys.stdout.write("\n")
    else:
        sys.stdout.write(render_estimate(est))
    # the memory may fit while the setup cannot run at all (bf16 or FlashAttention-2 on a T4)
    broken = [f for f in judge(est.setup, spec, est.gpu, est)
              if f.kind == "constraint" and f.severity == "error"]
    for f in broken:
        sys.stderr.write(f"error: {f.code} {f.message}\nhint: {f.fix}\n")
    if broken:
        return EXIT_DOES_NOT_FIT
    host_fits = est.host.fits if est.host is not None else None
    return EXIT_DOES_NOT_FIT if est.fits is False or host_fits is False else EXIT_OK
