"""Run the hostile corpus, each case in its own process, with a time and memory limit.

    python -m tests.hostile.run_corpus [--timeout 20] [--memory-gib 2]

Prints every mishandled case (wrong exit code, traceback, missing message, non-strict JSON,
hang or memory blow-up) and the count, for the first corpus (tests/hostile/cases.py) and
the second sweep's tables (tests/hostile/test_{doctor,multigpu,trackers,inputs}_hostile.py).
Used to measure a tree before and after a change; the test suite runs the same corpus
in-process (tests/hostile/test_hostile.py and the four table tests).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.hostile.cases import CASES
from tests.hostile.check import materialize, problems

_CHILD = ("import sys, json; from vramdoc.cli import main; "
          "sys.exit(main(json.loads(sys.argv[1])))")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--timeout", type=float, default=20.0)
    ap.add_argument("--memory-gib", type=float, default=2.0)
    ns = ap.parse_args(argv)
    limit = int(ns.memory_gib * 2**30)

    def cap_memory() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    bad = 0
    for case in CASES:
        with tempfile.TemporaryDirectory() as d:
            args = materialize(case, Path(d))
            env = {**os.environ, "HF_HUB_OFFLINE": "1", **dict(case.env)}
            try:
                proc = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(args)],
                                      capture_output=True, text=True, timeout=ns.timeout,
                                      env=env, preexec_fn=cap_memory, check=False)
                found = problems(case, proc.returncode, proc.stdout, proc.stderr)
                if "MemoryError" in proc.stderr:
                    found.append("memory")
            except subprocess.TimeoutExpired:
                found = [f"hang (> {ns.timeout:.0f} s)"]
        if found:
            bad += 1
            print(f"MISHANDLED {case.id}: {'; '.join(found)}")
    bad2, total2 = _sweep2(ns.timeout, cap_memory)
    print(f"{bad} of {len(CASES)} cases mishandled; second sweep: {bad2} of {total2} rows")
    return 1 if bad or bad2 else 0


SWEEP2 = ("test_doctor_hostile", "test_multigpu_hostile", "test_trackers_hostile",
          "test_inputs_hostile", "test_sweep3_hostile")


def _sweep2(timeout: float, cap_memory: object) -> tuple[int, int]:
    """The second sweep's tables (tests/hostile/sweep.py rows), each row in its own process."""
    import importlib

    from tests.hostile.sweep import _snapshot, _write
    from tests.hostile.sweep import problems as row_problems

    bad = total = 0
    for name in SWEEP2:
        mod = importlib.import_module(f"tests.hostile.{name}")
        for h in mod.ROWS:
            h = mod._materialize(h) if hasattr(mod, "_materialize") else h
            total += 1
            with tempfile.TemporaryDirectory() as d:
                folder = Path(d)
                _write(folder, h.files)
                before = _snapshot(folder)
                args = [a.replace("{d}", d) for a in h.argv]
                env = {**os.environ, "HF_HUB_OFFLINE": "1"}
                try:
                    proc = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(args)],
                                          capture_output=True, text=True, timeout=timeout,
                                          env=env, preexec_fn=cap_memory,  # type: ignore[arg-type]
                                          check=False)
                    found = row_problems(h, proc.returncode, proc.stdout, proc.stderr, before,
                                         _snapshot(folder))
                    if "MemoryError" in proc.stderr:
                        found.append("memory")
                except subprocess.TimeoutExpired:
                    found = [f"hang (> {timeout:.0f} s)"]
            if found:
                bad += 1
                print(f"MISHANDLED {h.id}: {'; '.join(found)}")
    return bad, total


if __name__ == "__main__":
    sys.exit(main())
