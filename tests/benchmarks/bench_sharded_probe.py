"""Per-rank estimate vs the sharded fake probe (FSDP2 on a fake process group).

    python -m tests.benchmarks.bench_sharded_probe [--ranks 8] [--layers 2] [--only 7b]

Rows: {llama-2-7b, llama-2-70b, mixtral-8x7b} x {full_shard, shard_grad_op, full_shard +
offload} x {full, LoRA, QLoRA}, bf16 mixed precision (model loaded in bf16, ``bf16=True``),
AdamW (torch, foreach), batch 1 x 512 tokens, no gradient checkpointing (QLoRA: turned on by
k-bit preparation, as in a real run), LoRA r=16 on q/k/v/o.

Scaled: each model keeps its real width, vocabulary and experts but only ``--layers`` decoder
layers (default 2), so that a row traces in seconds on a 2-core CPU; the estimator is given
the same scaled model (the same config), so both sides describe the same run. Per-rank figures
of a full-depth model differ from these by (L - layers) shards of a layer, which both sides
count alike. Each row is one rank (rank 0) of ``--ranks`` ranks (default 8).

Printed per row: the probe's and the estimator's per-rank peak allocated bytes, their phases and
the signed error (estimate - probe) / probe; then the median and worst |error|.
Target (issue 8): median |error| <= 1 %.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import time

MODELS = ("llama-2-7b", "llama-2-70b", "mixtral-8x7b")
STRATEGIES = (("full_shard", "full_shard auto_wrap"), ("shard_grad_op", "shard_grad_op auto_wrap"),
              ("offload", "full_shard offload auto_wrap"))
METHODS = ("full", "lora", "qlora")


def scaled_spec(name: str, layers: int):
    from vramdoc.models import resolve_model, spec_from_config

    spec = resolve_model(name)
    cfg = {**spec.config, "model_type": spec.model_type, "num_hidden_layers": layers}
    return spec_from_config(cfg, name=f"{spec.name} ({layers} layers)")


def row(model: str, fsdp: str, method: str, ranks: int, layers: int) -> tuple[float, str]:
    from vramdoc.probe.devices import quiet
    from vramdoc.probe.recipe import run_probe
    from vramdoc.probe.sharded import sharded_run
    from vramdoc.probe.traces import make_setup

    setup = make_setup(model, method, batch=1, seq_len=512).replace(num_gpus=ranks) \
        .replace_training(fsdp=fsdp)
    spec = scaled_spec(model, layers)
    with quiet():
        r = run_probe(setup, spec, device="fake", steps=2, sharded=sharded_run(setup))
    if r.step_error or r.measured is None or r.estimate is None:
        return float("nan"), f"no figure: {r.step_error or r.estimate_error}"
    m, e = r.measured, r.estimate
    err = 100.0 * (e.peak_allocated_bytes - m.peak_allocated_bytes) / m.peak_allocated_bytes
    mib = 2**20
    text = (f"probe {m.peak_allocated_bytes / mib:9,.1f} MiB ({m.peak_phase:<14}) "
            f"estimate {e.peak_allocated_bytes / mib:9,.1f} MiB ({e.peak_phase:<14}) "
            f"{err:+6.2f} %")
    return err, text


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ranks", type=int, default=8)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--only", default="", help="run the rows whose label contains this")
    ns = ap.parse_args(argv)
    print(f"sharded fake probe vs estimate: rank 0 of {ns.ranks}, {ns.layers} decoder layers per "
          f"model, bf16 AMP, batch 1 x 512; load {os.getloadavg()[0]:.1f}")
    errors: list[float] = []
    started, cpu0 = time.perf_counter(), time.process_time()
    for model in MODELS:
        for label, fsdp in STRATEGIES:
            for method in METHODS:
                name = f"{model} {label} {method}"
                if ns.only and ns.only not in name:
                    continue
                t0 = time.process_time()
                err, text = row(model, fsdp, method, ns.ranks, ns.layers)
                print(f"{name:<34} {text}  [{time.process_time() - t0:.0f} s CPU]", flush=True)
                if err == err:  # not NaN
                    errors.append(abs(err))
    if errors:
        print(f"rows {len(errors)}: median |error| {statistics.median(errors):.2f} %, worst "
              f"{max(errors):.2f} %; {time.process_time() - cpu0:.0f} s CPU, "
              f"{time.perf_counter() - started:.0f} s wall, max RSS "
              f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
