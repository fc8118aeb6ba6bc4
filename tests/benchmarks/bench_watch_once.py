"""Benchmark: ``vramdoc watch --once`` on a big event log: wall time and peak resident memory.

    python -m tests.benchmarks.bench_watch_once                  # 1 GB, 1 session (the worst case)
    python -m tests.benchmarks.bench_watch_once --size 200MB --sessions 40 --repeat 3

The log is written to a temporary directory: GPU step events of the size the recorder writes
(~650 bytes: loss, grad-norm, lr, throughput, CUDA allocator and NVML figures), with a loss
that decays and a memory figure that creeps, split into ``--sessions`` equal runs (each with
its header and end event, as when one folder is reused). Generation formats lines from a
template, so a gigabyte takes seconds. The watch runs in a child process; its wall time and
its peak RSS (``resource.getrusage(RUSAGE_CHILDREN).ru_maxrss``) are printed, one line per
repetition, then the median wall time and the largest RSS.

Targets (issue 9): <= 10 s and <= 200 MB resident on a 1 GB log.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GiB = 2**30
MiB = 2**20

STEP = ('{"v":1,"kind":"step","session":"%s","step":%d,"epoch":%.6f,"loss":%.6f,'
        '"grad_norm":%.5f,"lr":0.0002,"loss_scale":null,"skipped":null,"skipped_total":0,'
        '"tokens":8192,"samples":16,"step_time_s":%.4f,"tokens_per_s":%.2f,'
        '"samples_per_s":%.4f,"interrupted":false,"mem":{"allocated_bytes":%d,'
        '"reserved_bytes":%d,"peak_allocated_bytes":%d,"peak_reserved_bytes":%d,'
        '"alloc_retries":0,"ooms":0},"gpu":{"name":"NVIDIA GeForce RTX 3060",'
        '"used_bytes":%d,"total_bytes":12884901888,"util_pct":%.1f,"temp_c":71.0,'
        '"power_w":168.0},"time":%.3f}\n')


def _header(session: str) -> str:
    from tests.tui.runs import gpu_header

    h = gpu_header()
    h["session"] = session
    h["pid"] = 1  # not this host's writer: the watch decides from the end event
    h["host"] = "bench"
    return json.dumps(h, separators=(",", ":")) + "\n"


def _step_lines(session: str, first: int, last: int) -> str:
    """Steps ``first..last``: the step number varies, the rest cycles through 997 variants."""
    prefix = '{"v":1,"kind":"step","session":"' + session + '","step":'
    tails = _tails()
    return "".join([prefix + str(i) + tails[i % len(tails)] for i in range(first, last + 1)])


_TAILS: list[str] = []


def _tails() -> list[str]:
    if not _TAILS:
        base = int(9.9 * GiB)
        for j in range(997):
            dt = 2.0 + 0.01 * (j % 5)
            alloc = base + j * MiB
            line = STEP % ("", 0, j / 4000, 2.2 / (1 + j / 500) + 0.9 + 0.03 * (j % 7),
                           0.4 + 0.05 * (j % 4), dt, 8192 / dt, 16 / dt, alloc - 2 * GiB,
                           alloc + 600 * MiB, alloc, alloc + 600 * MiB, alloc + 1100 * MiB,
                           97.0 - j % 3, 1_700_000_000.0 + 2 * j)
            _TAILS.append(line[line.index(',"epoch"'):])
    return _TAILS


def generate(path: Path, size: int, sessions: int) -> tuple[int, int]:
    """Write about ``size`` bytes of log in ``sessions`` runs; returns (bytes, steps)."""
    step_bytes = len(_step_lines("x" * 12, 100_000, 100_000))
    per_session = max(1, size // sessions // step_bytes)
    written = steps = 0
    with open(path, "w", encoding="utf-8") as fh:
        for _ in range(sessions):
            sid = uuid.uuid4().hex[:12]
            blocks = [_header(sid)]
            # In blocks, so a gigabyte never sits in memory at once.
            for first in range(1, per_session + 1, 20_000):
                blocks.append(_step_lines(sid, first, min(per_session, first + 19_999)))
                fh.write("".join(blocks))
                written += sum(map(len, blocks))
                blocks = []
            end = json.dumps({"v": 1, "kind": "end", "session": sid, "step": per_session,
                              "reason": "finished", "time": 1.7e9}) + "\n"
            fh.write(end)
            written += len(end)
            steps += per_session
    return written, steps


def _parse_size(text: str) -> int:
    sys.path.insert(0, str(ROOT))
    from vramdoc.units import parse_size

    return parse_size(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="1GiB", help="log size (default 1GiB)")
    parser.add_argument("--sessions", type=int, default=1,
                        help="runs in the log (default 1: one long run, the worst case)")
    parser.add_argument("--repeat", type=int, default=1, help="watch runs to time (default 1)")
    parser.add_argument("--keep", metavar="DIR", help="write the log here and keep it")
    args = parser.parse_args(argv)
    size = _parse_size(args.size)
    tmp = None
    if args.keep:
        run_dir = Path(args.keep)
        run_dir.mkdir(parents=True, exist_ok=True)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="vramdoc-bench-")
        run_dir = Path(tmp.name)
    try:
        path = run_dir / "events.jsonl"
        t = time.perf_counter()
        written, steps = generate(path, size, args.sessions)
        print(f"log: {written / MiB:.0f} MiB, {args.sessions} session(s), {steps} steps, "
              f"written in {time.perf_counter() - t:.1f} s")
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        walls: list[float] = []
        cpus: list[float] = []
        u = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu_before = u.ru_utime + u.ru_stime
        for i in range(args.repeat):
            t = time.perf_counter()
            r = subprocess.run([sys.executable, "-m", "vramdoc", "watch", str(run_dir),
                                "--once", "--json"], capture_output=True, text=True, env=env,
                               cwd=ROOT)
            wall = time.perf_counter() - t
            walls.append(wall)
            usage = resource.getrusage(resource.RUSAGE_CHILDREN)
            rss = usage.ru_maxrss / 1024  # KiB -> MiB
            cpu = usage.ru_utime + usage.ru_stime - cpu_before
            cpu_before += cpu
            cpus.append(cpu)
            doc = json.loads(r.stdout) if r.stdout.startswith("{") else {}
            print(f"run {i + 1}: exit {r.returncode}, wall {wall:.2f} s, CPU {cpu:.2f} s, "
                  f"peak RSS so far "
                  f"{rss:.0f} MiB, steps {doc.get('steps')}, sessions {doc.get('sessions')}, "
                  f"status {doc.get('status', {}).get('text')!r}")
            if r.returncode not in (0, 1):
                print(r.stderr[-2000:], file=sys.stderr)
                return 1
        rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        print(f"median wall {statistics.median(walls):.2f} s, median CPU "
              f"{statistics.median(cpus):.2f} s over {len(walls)} run(s); "
              f"peak RSS {rss:.0f} MiB (targets: <= 10 s, <= 200 MB)")
    finally:
        if tmp is not None:
            tmp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
