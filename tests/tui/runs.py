"""Deterministic event logs for the TUI tests (fixed times, fixed numbers)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from vramdoc.monitor.schema import SCHEMA_VERSION, encode_line

GiB = 2**30
MiB = 2**20
ROOT = Path(__file__).resolve().parents[2]
DEMO_RUN = ROOT / "examples" / "watch-demo" / "run"


def ev(kind: str, **fields: Any) -> dict[str, Any]:
    return {"v": SCHEMA_VERSION, "kind": kind, "time": 1_700_000_000.0, **fields}


def gpu_header() -> dict[str, Any]:
    plan = {"peak_allocated_bytes": int(9.0 * GiB), "peak_reserved_bytes": int(9.6 * GiB),
            "device_bytes": int(10.1 * GiB), "peak_phase": "optimizer_step",
            "components": {"weights": int(3.9 * GiB), "quant_state": int(0.2 * GiB),
                           "adapters": int(0.1 * GiB), "gradients": int(0.3 * GiB),
                           "optimizer_states": int(0.6 * GiB), "activations": int(2.4 * GiB),
                           "logits": int(1.5 * GiB)},
            "gpu_name": "RTX-3060-12GB", "gpu_memory_bytes": 12 * GiB, "method": "qlora",
            "fits": True}
    args = {"fp16": False, "bf16": True, "logging_nan_inf_filter": True, "max_grad_norm": 1.0,
            "max_steps": 200, "gradient_accumulation_steps": 4,
            "model": {"class": "PeftModelForCausalLM", "model_type": "llama",
                      "name_or_path": "meta-llama/Llama-3.1-8B", "params": 8_072_204_288,
                      "trainable_params": 41_943_040}}
    device = {"type": "cuda", "name": "NVIDIA GeForce RTX 3060", "index": 0,
              "total_bytes": 12 * GiB}
    return ev("header", source="trainer", versions={"python": "3.11"}, device=device,
              setup=None, plan=plan, args=args)


def gpu_steps(n: int = 80) -> list[dict[str, Any]]:
    out = []
    for i in range(1, n + 1):
        alloc = int(9.9 * GiB) + i * 3 * MiB  # measured 10 % over the plan, creeping
        mem = {"allocated_bytes": alloc - 2 * GiB, "reserved_bytes": alloc + 600 * MiB,
               "peak_allocated_bytes": alloc, "peak_reserved_bytes": alloc + 600 * MiB,
               "alloc_retries": 0, "ooms": 0}
        gpu = {"name": "NVIDIA GeForce RTX 3060", "used_bytes": alloc + 1100 * MiB,
               "total_bytes": 12 * GiB, "util_pct": 97.0 - (i % 3), "temp_c": 71.0,
               "power_w": 168.0}
        loss = 2.2 * math.exp(-i / 60) + 0.9 + 0.03 * math.sin(i)
        out.append(ev("step", step=i, epoch=i / 400, loss=loss, grad_norm=0.4 + 0.05 * (i % 4),
                      lr=2e-4, loss_scale=None, skipped=None, skipped_total=0, tokens=8192,
                      samples=16, step_time_s=2.0 + 0.01 * (i % 5),
                      tokens_per_s=8192 / (2.0 + 0.01 * (i % 5)),
                      samples_per_s=16 / (2.0 + 0.01 * (i % 5)), interrupted=False, mem=mem,
                      gpu=gpu))
    return out


def write(path: Path, events: list[dict[str, Any]], mode: str = "w") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, mode, encoding="utf-8") as fh:
        for e in events:
            fh.write(encode_line(e))
    return path


def gpu_run(run_dir: Path, n: int = 80, end: bool = True) -> Path:
    events = [gpu_header(), *gpu_steps(n)]
    if end:
        events.append(ev("end", step=n, reason="finished"))
    write(run_dir / "events.jsonl", events)
    return run_dir
