"""The fast path for step events never passes an event the full check refuses."""

from __future__ import annotations

import copy
import random

from vramdoc.monitor.events import _COMMON, SPECS, _check, _plain_step, check_event

GOOD = {"v": 1, "kind": "step", "session": "ab12", "step": 7, "epoch": 0.1, "loss": 1.5,
        "grad_norm": 0.4, "lr": 2e-4, "loss_scale": None, "skipped": None, "skipped_total": 0,
        "tokens": 8192, "samples": 16, "step_time_s": 2.0, "tokens_per_s": 4096.0,
        "samples_per_s": 8.0, "interrupted": False,
        "mem": {"allocated_bytes": 1, "reserved_bytes": 2, "peak_allocated_bytes": 3,
                "peak_reserved_bytes": 4, "alloc_retries": 0, "ooms": 0},
        "gpu": {"name": "x", "used_bytes": 5, "total_bytes": 6, "util_pct": 9.0,
                "temp_c": 70.0, "power_w": 100.0}, "time": 1.7e9}
BAD_VALUES = [None, "x", "NaN", "Infinity", -1, 2**63, 2**64, 1.5, 0, True, False, [1], {},
              {"a": 1}, "y" * 100_001, float("nan")]


def _full(ev: dict) -> str | None:
    return _check(ev, _COMMON, "") or _check(ev, SPECS["step"], "")


def test_recorder_shape_takes_the_fast_path() -> None:
    assert _plain_step(GOOD) and check_event(GOOD) is None


def test_fast_path_agrees_with_the_full_check() -> None:
    rnd = random.Random(9)
    keys = [k for k in GOOD if k not in ("v", "kind")] + ["extra"]
    for _ in range(5000):
        ev = copy.deepcopy(GOOD)
        for _ in range(rnd.randint(1, 3)):
            key = rnd.choice(keys + ["mem", "gpu"])
            if key in ("mem", "gpu") and rnd.random() < 0.7:
                sub = ev.get(key)
                if isinstance(sub, dict) and sub:
                    sub[rnd.choice(list(sub))] = rnd.choice(BAD_VALUES)
                    continue
            ev[key] = rnd.choice(BAD_VALUES)
        if _plain_step(ev):
            assert _full(ev) is None, ev
        # whatever path it takes, check_event answers as the full check does
        assert check_event(ev) == (None if _full(ev) is None else check_event(ev))
        assert (check_event(ev) is None) == (_full(ev) is None), ev
