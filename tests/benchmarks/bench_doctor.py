"""Cold whole-process time of `vramdoc doctor` on a 300-line training script.

    python -m tests.benchmarks.bench_doctor [--runs 7] [--gpu RTX-3060-12GB]

The script is the doctor-script example (a transformers-4 QLoRA tutorial) padded with
tutorial-style data preparation and evaluation code to 300 lines, written to a temporary
folder. Each run is a fresh interpreter: imports, reading, API checks, rules, estimate (and,
with --gpu, the fit), with compiled bytecode and the rules cache present as for an installed
vramdoc (``_cold.py``). Prints every run and the medians (wall and CPU). Target: median
< 0.3 s without --gpu on an idle 2-core machine, no torch imported (tests/doctor/test_headless.py).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

from tests.benchmarks._cold import cold_env, run_once

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "doctor-script" / "train.py"
PAD = '''
def preprocess_{i}(batch, tokenizer=None, max_length=512):
    """Tokenise and pack one batch (tutorial helper {i})."""
    texts = [f"### Question: {{q}}\\n### Answer: {{a}}" for q, a in zip(batch["q"], batch["a"])]
    out = tokenizer(texts, truncation=True, padding="max_length", max_length=max_length)
    out["labels"] = [list(ids) for ids in out["input_ids"]]
    return out

'''


def make_script(lines: int = 300) -> str:
    text = EXAMPLE.read_text()
    i = 0
    while text.count("\n") < lines:
        text += PAD.format(i=i)
        i += 1
    return "\n".join(text.splitlines()[:lines]) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--gpu", help="also judge the fit on this GPU")
    ns = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as d:
        script = Path(d) / "train.py"
        script.write_text(make_script())
        cmd = [sys.executable, "-m", "vramdoc", "doctor", str(script)]
        if ns.gpu:
            cmd += ["--gpu", ns.gpu]
        # compiled bytecode and the parsed-rules cache, as an installed vramdoc has them
        # (_cold.py); without it a PYTHONDONTWRITEBYTECODE environment recompiles every run
        env = cold_env(Path(d))
        run_once(cmd, env)  # warm-up: bytecode and rules cache
        times, cpus = [], []
        for i in range(ns.runs):
            dt, cpu, code = run_once(cmd, env)
            times.append(dt)
            cpus.append(cpu)
            print(f"run {i + 1}: {dt:.3f} s wall, {cpu:.3f} s CPU (exit {code})")
        print(f"command: vramdoc doctor <300-line script>{' --gpu ' + ns.gpu if ns.gpu else ''}")
        print(f"lines: {script.read_text().count(chr(10))}")
        print(f"median: {statistics.median(times):.3f} s wall, {statistics.median(cpus):.3f} s "
              f"CPU over {ns.runs} runs (load average {os.getloadavg()[0]:.1f} on "
              f"{os.cpu_count()} CPUs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
