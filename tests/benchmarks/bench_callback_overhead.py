"""Overhead of VramdocCallback on a tiny CPU Trainer run.

    python -m tests.benchmarks.bench_callback_overhead [--steps 300] [--repeats 3]

Runs the same Trainer (tiny random Llama, synthetic tokens, CPU) without and with the callback,
alternating, and times every optimizer step (on_step_end to on_step_end, measured by a timer
callback placed after vramdoc's, so the interval includes its work). Prints the median step
time of each arm, their ratio, and the time spent inside the callback per step (measured
directly). Steps of a real GPU run take 10-1000x longer than these, so this is the worst case.
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
    """Accumulate the wall time of every callback event into spent[0]."""
    for name in ("on_step_begin", "on_optimizer_step", "on_step_end", "on_log"):
        method = getattr(cb, name)

        @functools.wraps(method)
        def timed(*a: Any, _m: Any = method, **k: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return _m(*a, **k)
            finally:
                spent[0] += time.perf_counter() - t0

        setattr(cb, name, timed)


def run_arm(with_callback: bool, steps: int, tmp: Path, index: int) -> tuple[float, float]:
    """(median step seconds, callback seconds per step) of one run."""
    timer = StepTimer()
    spent = [0.0]
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
    return statistics.median(timer.intervals()), spent[0] / steps


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    ns = parser.parse_args(argv)
    base: list[float] = []
    with_cb: list[float] = []
    inside: list[float] = []
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        run_arm(False, 20, tmp, 0)  # warm up imports, allocator, thread pools
        for r in range(ns.repeats):
            base.append(run_arm(False, ns.steps, tmp, 2 * r + 1)[0])
            step_s, cb_s = run_arm(True, ns.steps, tmp, 2 * r + 2)
            with_cb.append(step_s)
            inside.append(cb_s)
    b, w, c = statistics.median(base), statistics.median(with_cb), statistics.median(inside)
    print(f"steps per run {ns.steps}, repeats {ns.repeats} (tiny Llama, CPU)")
    print(f"median step without callback: {b * 1e3:8.3f} ms  (runs: "
          + ", ".join(f"{x * 1e3:.3f}" for x in base) + ")")
    print(f"median step with callback:    {w * 1e3:8.3f} ms  (runs: "
          + ", ".join(f"{x * 1e3:.3f}" for x in with_cb) + ")")
    print(f"ratio with/without:           {w / b:8.4f}  ({(w / b - 1) * 100:+.2f} %)")
    print(f"time inside the callback:     {c * 1e6:8.1f} us/step = {c / b * 100:.2f} % of a step")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
