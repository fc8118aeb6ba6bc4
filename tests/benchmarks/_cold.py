"""Cold whole-process timing of a `vramdoc` command: wall seconds and CPU seconds (user +
system of the child process, from ``getrusage(RUSAGE_CHILDREN)``), median over fresh
interpreters.

A cold process here is what a user of an installed vramdoc waits for: a new interpreter, the
package's compiled bytecode present (pip compiles it at install time; a private
``PYTHONPYCACHEPREFIX`` holds it here, so a ``PYTHONDONTWRITEBYTECODE`` environment does not
make every run recompile the sources) and the parsed-rules cache filled by an earlier run
(``vramdoc/engine/yamlcache.py``). One warm-up run fills both before the timed runs. CPU time
is the figure to compare across machines: wall time also counts waiting for a busy CPU.
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def cold_env(scratch: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(scratch / "pycache")
    env["VRAMDOC_CACHE_DIR"] = str(scratch / "cache")
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def run_once(cmd: list[str], env: dict[str, str]) -> tuple[float, float, int]:
    """(wall s, CPU s, exit code) of one child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, proc.returncode


def time_command(args: list[str], runs: int, label: str) -> tuple[float, float]:
    """Print every run and the medians; return (median wall, median CPU)."""
    cmd = [sys.executable, "-m", "vramdoc", *args]
    with tempfile.TemporaryDirectory(prefix="vramdoc-bench-") as tmp:
        env = cold_env(Path(tmp))
        run_once(cmd, env)  # warm-up: bytecode and rules cache
        walls, cpus = [], []
        for i in range(runs):
            wall, cpu, code = run_once(cmd, env)
            walls.append(wall)
            cpus.append(cpu)
            print(f"run {i + 1}: {wall:.3f} s wall, {cpu:.3f} s CPU (exit {code})")
    baseline = _baseline(runs)
    print(f"command: vramdoc {' '.join(args)}")
    print(f"median cold {label} process: {statistics.median(cpus):.3f} s CPU, "
          f"{statistics.median(walls):.3f} s wall over {runs} runs (CPU min "
          f"{min(cpus):.3f}, max {max(cpus):.3f}; a bare `python -c pass` takes "
          f"{baseline:.3f} s CPU here; load average {os.getloadavg()[0]:.1f} on "
          f"{os.cpu_count()} CPUs)")
    return statistics.median(walls), statistics.median(cpus)


def _baseline(runs: int) -> float:
    cpus = [run_once([sys.executable, "-c", "pass"], dict(os.environ))[1] for _ in range(runs)]
    return statistics.median(cpus)
