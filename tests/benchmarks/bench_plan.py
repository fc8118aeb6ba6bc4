"""Cold whole-process time of `vramdoc plan`, and how many candidates it searches.

    python -m tests.benchmarks.bench_plan [--runs 11] [-- plan arguments]

Each run is a fresh interpreter (imports, rule loading, model/GPU catalogs, search, snippet),
i.e. what a user waits for (see ``_cold.py`` for what "cold" includes). Prints every run, the
candidate count and the medians. Target: median <= 0.25 s of CPU with >= 1,000 candidates on
the project's 2-core machines.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from tests.benchmarks._cold import ROOT, time_command

DEFAULT_ARGS = ["--model", "llama-2-7b", "--gpu", "6GB"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=11)
    ap.add_argument("plan_args", nargs="*", help="arguments of `vramdoc plan` (after --)")
    ns = ap.parse_args(argv)
    args = ns.plan_args or DEFAULT_ARGS
    info = json.loads(subprocess.run([sys.executable, "-m", "vramdoc", "plan", *args, "--json"],
                                     capture_output=True, text=True, check=False,
                                     cwd=ROOT).stdout)
    time_command(["plan", *args], ns.runs, "plan")
    s = info["search"]
    print(f"candidates: {s['candidates']:,} (rejected by rules {s['rejected']:,}, skipped by "
          f"bounds {s['skipped_by_bound']:,}, estimated {s['estimated']:,})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
