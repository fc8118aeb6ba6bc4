"""Overhead of VramdocCallback on a tiny CPU Trainer run.

    python -m tests.benchmarks.bench_callback_overhead [--steps 300] [--repeats 3]

Runs the same Trainer (tiny random Llama, synthetic tokens, CPU) without and with the callback,
alternating, and times every optimizer step (on_step_end to on_step_end, measured by a timer
callback placed after vramdoc's, so the interval includes its work). Prints each arm's median
step time (per run, then the median and the minimum over runs: on a shared machine the minimum
is the least disturbed), their ratio, and the time spent inside the callback's events per
step, measured directly as wall time and as the thread's CPU time (which excludes time the
thread waited for a core). Steps of a real GPU run take 10-1000x longer than these, so this is
the worst case. The background writer thread's work (JSON encoding, write, flush: some 20-30 us
per step) runs beside training and shows only in the A/B ratio.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from tests.monitor.tiny import tiny_model, tiny_trainer
from vramdoc.monitor import VramdocCallback


class StepTimer(TrainerCallback):  # type: ignore[misc]
    def __init__(self) -> None:
        self.marks: list[float] = []

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.marks.append(time.perf_counter())

    def intervals(self, skip: int = 5) -> list[float]:
        return [b - a for a, b in zip(self.marks[skip:], self.marks[skip + 1:], strict=False)]


def _instrument(cb: VramdocCallback, spent: list[float]) -> None:
    """Accumulate wall time into spent[0] and thread CPU time into spent[1] per event."""
    for name in ("on_step_begin", "on_optimizer_step", "on_step_end", "on_log"):
        method = getattr(cb, name)

        @functools.wraps(method)
        def timed(*a: Any, _m: Any = method, **k: Any) -> Any:
            t0, c0 = time.perf_counter(), time.thread_time()
            try:
                return _m(*a, **k)
            finally:
                spent[0] += time.perf_counter() - t0
                spent[1] += time.thread_time() - c0

        setattr(cb, name, timed)


def run_arm(with_callback: bool, steps: int, tmp: Path,
            index: int) -> tuple[float, float, float]:
    """(median step s, callback wall s per step, callback CPU s per step) of one run."""
    timer = StepTimer()
    spent = [0.0, 0.0]
    callbacks: list[Any] = []
    if with_callback:
        cb = VramdocCallback(tmp / f"run{index}")
        _instrument(cb, spent)
        callbacks.append(cb)
    callbacks.append(timer)
    trainer = tiny_trainer(tmp / "out", callbacks, max_steps=steps, model=tiny_model(seed=index),
                           logging_steps=50, seq_len=64)
    # The wrapped training_step is part of the callback's cost too.
    trainer.train()
    return statistics.median(timer.intervals()), spent[0] / steps, spent[1] / steps


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    ns = parser.parse_args(argv)
    base: list[float] = []
    with_cb: list[float] = []
    inside: list[float] = []
    inside_cpu: list[float] = []
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        run_arm(False, 20, tmp, 0)  # warm up imports, allocator, thread pools
        for r in range(ns.repeats):
            base.append(run_arm(False, ns.steps, tmp, 2 * r + 1)[0])
            step_s, cb_s, cb_cpu = run_arm(True, ns.steps, tmp, 2 * r + 2)
            with_cb.append(step_s)
            inside.append(cb_s)
            inside_cpu.append(cb_cpu)
    b, w = statistics.median(base), statistics.median(with_cb)
    bmin, wmin = min(base), min(with_cb)
    c, ccpu = statistics.median(inside), statistics.median(inside_cpu)
    print(f"steps per run {ns.steps}, repeats {ns.repeats} (tiny Llama, CPU)")
    print("median step per run, without callback: "
          + ", ".join(f"{x * 1e3:.3f}" for x in base) + " ms")
    print("median step per run, with callback:    "
          + ", ".join(f"{x * 1e3:.3f}" for x in with_cb) + " ms")
    print(f"over runs, median: without {b * 1e3:.3f} ms, with {w * 1e3:.3f} ms, "
          f"ratio {w / b:.4f} ({(w / b - 1) * 100:+.2f} %)")
    print(f"over runs, minimum: without {bmin * 1e3:.3f} ms, with {wmin * 1e3:.3f} ms, "
          f"ratio {wmin / bmin:.4f} ({(wmin / bmin - 1) * 100:+.2f} %)")
    print(f"inside the callback per step: wall {c * 1e6:.1f} us = {c / bmin * 100:.2f} %, "
          f"thread CPU {ccpu * 1e6:.1f} us = {ccpu / bmin * 100:.2f} % of the fastest "
          "baseline step")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
