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

exit codes: 0 fits (or no --gpu), 1 does not fit the --gpu, 2 bad input."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_setup_arguments(p)
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")


def run(args: argparse.Namespace) -> int:
    from vramdoc.estimate import estimate
    from vramdoc.estimate.render import render_estimate

    setup = setup_from_args(args)
    est = estimate(setup)
    if args.json:
        sys.stdout.write(dumps_strict(est.to_json(), indent=2))
        sys.stdout.write("\n")
    else:
        sys.stdout.write(render_estimate(est))
    return EXIT_DOES_NOT_FIT if est.fits is False else EXIT_OK
