"""Cold whole-process time of `vramdoc estimate`.

    python -m tests.benchmarks.bench_estimate [--runs 11] [-- estimate arguments]

Fresh interpreters, compiled bytecode and the rules cache as for ``bench_plan`` (``_cold.py``).
Target: median <= 0.15 s of CPU on the project's 2-core machines.
"""

from __future__ import annotations

import argparse
import sys

from tests.benchmarks._cold import time_command

DEFAULT_ARGS = ["--model", "llama-2-7b", "--method", "qlora", "--batch", "1", "--seq-len",
                "256", "--grad-ckpt", "--optim", "paged_adamw_8bit"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=11)
    ap.add_argument("estimate_args", nargs="*", help="arguments of `vramdoc estimate`")
    ns = ap.parse_args(argv)
    time_command(["estimate", *(ns.estimate_args or DEFAULT_ARGS)], ns.runs, "estimate")
    return 0


if __name__ == "__main__":
    sys.exit(main())
