"""Cold whole-process time of `vramdoc plan`, and how many candidates it searches.

    python -m tests.benchmarks.bench_plan [--runs 7] [-- plan arguments]

Each run is a fresh interpreter (imports, rule loading, model/GPU catalogs, search, snippet),
i.e. what a user waits for. Prints every run, the candidate count and the median. Target:
median <= 0.5 s with >= 1,000 candidates on the project's 2-core machines.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

DEFAULT_ARGS = ["--model", "llama-2-7b", "--gpu", "6GB"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("plan_args", nargs="*", help="arguments of `vramdoc plan` (after --)")
    ns = ap.parse_args(argv)
    args = ns.plan_args or DEFAULT_ARGS
    cmd = [sys.executable, "-m", "vramdoc", "plan", *args]
    info = json.loads(subprocess.run([*cmd, "--json"], capture_output=True, text=True,
                                     check=False).stdout)
    times = []
    for i in range(ns.runs):
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        dt = time.perf_counter() - t0
        times.append(dt)
        print(f"run {i + 1}: {dt:.3f} s (exit {proc.returncode})")
    s = info["search"]
    print(f"command: vramdoc plan {' '.join(args)}")
    print(f"candidates: {s['candidates']:,} (rejected by rules {s['rejected']:,}, skipped by "
          f"bounds {s['skipped_by_bound']:,}, estimated {s['estimated']:,})")
    print(f"median cold process: {statistics.median(times):.3f} s over {ns.runs} runs "
          f"(min {min(times):.3f}, max {max(times):.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
