"""Cold whole-process time of `vramdoc plan`, and how many candidates it searches.

    python -m tests.benchmarks.bench_plan [--runs 11] [-- plan arguments]

Each run is a fresh interpreter (imports, rule loading, model/GPU catalogs, search, snippet),
i.e. what a user waits for (see ``_cold.py`` for what "cold" includes). Prints every run, the
candidate count and the medians, then the CPU time of loading every shipped rule in a fresh
interpreter (the plan loads its share of them at start-up) and of the cached second load.
Target: median <= 0.25 s of CPU with >= 1,000 candidates on the project's 2-core machines.
"""

from __future__ import annotations

import argparse
import json
import statistics
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
    rules_load_times(ns.runs)
    return 0


_RULES_SNIPPET = """
import time
from vramdoc.engine.loader import load_rules
t0 = time.process_time(); rules = load_rules(); cold = time.process_time() - t0
t0 = time.process_time(); again = load_rules(); warm = time.process_time() - t0
assert again is rules
print(len(rules), cold, warm)
"""


def rules_load_times(runs: int) -> None:
    """Median cold and cached rule-loading time, each in a fresh interpreter."""
    cold, warm, n = [], [], 0
    for _ in range(runs):
        out = subprocess.run([sys.executable, "-c", _RULES_SNIPPET], capture_output=True,
                             text=True, check=True, cwd=ROOT).stdout.split()
        n, c, w = int(out[0]), float(out[1]), float(out[2])
        cold.append(c)
        warm.append(w)
    print(f"rules: {n} loaded cold in {statistics.median(cold) * 1e3:.1f} ms CPU "
          f"(median of {runs}), "
          f"cached {statistics.median(warm) * 1e6:.1f} us")


if __name__ == "__main__":
    sys.exit(main())
