"""Per-step cost of the watch's alert evaluation, with and without the curve figures.

    python -m tests.benchmarks.bench_watch_rules [--runs 5] [--steps 3000]

Feeds a synthetic run (vramdoc recorder-shaped step events) through ContextBuilder.push and
the W rules, the work RunState (watch, --once) and AlertForwarder (the callback's tracker
forwarding, on its background thread) do per recorded step. Prints every run and the medians
in microseconds per step; "without curves" replaces CurveTracker.push by a constant context
(the same names, no computation), so the difference is what vramdoc/monitor/curves.py costs.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

from vramdoc.engine import evaluate
from vramdoc.monitor import curves
from vramdoc.monitor.context import ContextBuilder
from vramdoc.monitor.run import decode_step, load_alert_rules


def _events(n: int) -> list[dict]:
    return [{"kind": "step", "step": i, "loss": 2.0 - i / 1e5 + 0.01 * math.sin(i),
             "grad_norm": 0.8 + 0.05 * math.cos(i), "lr": 1e-4, "step_time_s": 0.1,
             "tokens_per_s": 4000.0 + i % 7, "loss_scale": None} for i in range(1, n + 1)]


def _run(events: list[dict], rules: list) -> float:
    cb = ContextBuilder({"args": {"max_grad_norm": 1.0, "logging_nan_inf_filter": True}})
    t = time.perf_counter()
    for ev in events:
        evaluate(rules, cb.push(decode_step(ev)))
    return (time.perf_counter() - t) / len(events) * 1e6


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--steps", type=int, default=3000)
    ns = ap.parse_args(argv)
    rules, error = load_alert_rules()
    assert not error, error
    events = _events(ns.steps)
    real_push = curves.CurveTracker.push
    constant = real_push(curves.CurveTracker({}), 1, {}, None)
    with_curves, without = [], []
    for i in range(ns.runs):
        with_curves.append(_run(events, rules))
        curves.CurveTracker.push = lambda self, step, ev, tput: dict(constant)  # type: ignore
        try:
            without.append(_run(events, rules))
        finally:
            curves.CurveTracker.push = real_push  # type: ignore[method-assign]
        print(f"run {i + 1}: {with_curves[-1]:.0f} us/step with curves, "
              f"{without[-1]:.0f} us/step without")
    print(f"median over {ns.runs} runs of {ns.steps} steps, {len(rules)} W rules: "
          f"{statistics.median(with_curves):.0f} us/step with curves, "
          f"{statistics.median(without):.0f} us/step without")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
