"""End-to-end time of a fake-tensor probe of a 7B model (the README's example).

    python -m tests.benchmarks.bench_probe_fake [--runs 3] [-- probe arguments]

Each run is a fresh `vramdoc probe ... --device fake` process (imports of torch, transformers,
peft and bitsandbytes included); the import share is measured apart with a process that only
imports what the probe imports. Target: <= 10 s end to end on the project's 2-core machines.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

from tests.benchmarks._cold import cold_env, run_once, time_command

DEFAULT_ARGS = ["--model", "llama-2-7b", "--method", "qlora", "--batch", "1", "--seq-len",
                "512", "--device", "fake"]
IMPORTS = ("import torch, transformers, peft, bitsandbytes, accelerate; "
           "import vramdoc.probe.recipe")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("probe_args", nargs="*", help="arguments of `vramdoc probe`")
    ns = ap.parse_args(argv)
    time_command(["probe", *(ns.probe_args or DEFAULT_ARGS)], ns.runs, "fake probe")
    with tempfile.TemporaryDirectory(prefix="vramdoc-bench-") as tmp:
        env = cold_env(Path(tmp))
        cmd = [sys.executable, "-c", IMPORTS]
        run_once(cmd, env)
        got = [run_once(cmd, env) for _ in range(ns.runs)]
    print(f"of which imports (torch, transformers, peft, bitsandbytes, accelerate, the probe): "
          f"{statistics.median(w for w, _c, _r in got):.2f} s wall, "
          f"{statistics.median(c for _w, c, _r in got):.2f} s CPU (median)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
