"""Print fake-tensor traces: bytes per phase and component, and saved activations per layer.

    python -m vramdoc.probe.traces                      # the llama-2-7b reference set
    python -m vramdoc.probe.traces --model llama-3-8b --method qlora --seq-len 1024 --grad-ckpt

Ground truth for the estimator's formulas: every figure is what CUDA's allocator would count
(512-byte blocks) for one steady-state step (the max over two steps, so optimizer state is
resident in the second step's forward and backward).
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from vramdoc.setup import TrainSetup, setup_from_mapping

COLS = ("weights", "quant_state", "adapters", "gradients", "optimizer_states",
        "optimizer_temporaries", "activations", "logits")
SHORT = {"weights": "weights", "quant_state": "quant", "adapters": "adapt", "gradients": "grads",
         "optimizer_states": "opt_st", "optimizer_temporaries": "opt_tmp",
         "activations": "acts", "logits": "logits"}


def make_setup(model: str, method: str, *, batch: int = 1, seq_len: int = 512,
               grad_ckpt: bool = False, optim: str = "adamw_torch", dtype: str = "bfloat16",
               bf16: bool = True, attn: str = "sdpa", r: int = 16,
               targets: Any = ("q_proj", "k_proj", "v_proj", "o_proj")) -> TrainSetup:
    """A setup in the file format (the same path a user's YAML takes)."""
    data: dict[str, Any] = {
        "model": model, "max_seq_length": seq_len,
        "model_kwargs": {"dtype": dtype, "attn_implementation": attn},
        "training": {"per_device_train_batch_size": batch, "gradient_checkpointing": grad_ckpt,
                     "optim": optim, "bf16": bf16},
    }
    if method in ("lora", "qlora"):
        data["lora"] = {"r": r, "lora_alpha": 2 * r,
                        "target_modules": targets if isinstance(targets, str) else list(targets)}
    if method == "qlora":
        data["quantization"] = {"load_in_4bit": True, "bnb_4bit_quant_type": "nf4",
                                "bnb_4bit_use_double_quant": True,
                                "bnb_4bit_compute_dtype": "bfloat16"}
    return setup_from_mapping(data, source="traces")


def trace(setup: TrainSetup, detail: bool = False) -> Any:
    from vramdoc.models import resolve_model
    from vramdoc.probe.recipe import run_probe

    return run_probe(setup, resolve_model(setup.model), device="fake", steps=2, detail=detail)


def mib(n: int) -> str:
    return f"{n / 2**20:,.1f}"


def print_trace(label: str, result: Any, seconds: float, out: Any = sys.stdout) -> None:
    m = result.measured
    print(f"\n### {label}  ({seconds:.1f} s; peak {mib(m.peak_allocated_bytes)} MiB in "
          f"{m.peak_phase}; paged {mib(m.paged_bytes)} MiB)", file=out)
    print("| phase | total MiB | " + " | ".join(SHORT[c] for c in COLS) + " |", file=out)
    print("|---" * (len(COLS) + 2) + "|", file=out)
    for phase, total in m.phases.items():
        comps = m.phase_components[phase]
        print(f"| {phase} | {mib(total)} | " + " | ".join(mib(comps.get(c, 0)) for c in COLS)
              + " |", file=out)
    per_layer = result.saved_activation_bytes_per_layer
    if per_layer:
        counts: dict[int, list[int]] = {}
        for layer, v in per_layer.items():
            counts.setdefault(v, []).append(layer)
        desc = "; ".join(f"{v:,} B in layers {_ranges(ls)}" for v, ls in sorted(counts.items()))
        print(f"saved activations allocated inside each block, live at the end of forward "
              f"(step 0): {desc}", file=out)
    for layer, items in sorted(result.saved_tensors_by_layer.items())[1:2]:
        print(f"saved tensors of block {layer} (op, shape, dtype: bytes):", file=out)
        for what, n in items:
            print(f"    {what}: {n:,}", file=out)
    print(f"exact bytes: phases={m.phases}", file=out)
    print(f"peak components={m.components}", file=out)


def _ranges(layers: list[int]) -> str:
    layers = sorted(layers)
    out, start, prev = [], layers[0], layers[0]
    for x in layers[1:] + [None]:  # type: ignore[list-item]
        if x is not None and x == prev + 1:
            prev = x
            continue
        out.append(f"{start}" if start == prev else f"{start}-{prev}")
        if x is not None:
            start = prev = x
    return ",".join(out)


REFERENCE_SET = [
    ("llama-2-7b lora bf16 b=1 s=512 ckpt off", "lora", False),
    ("llama-2-7b lora bf16 b=1 s=512 ckpt on", "lora", True),
    ("llama-2-7b qlora nf4+dq bf16 b=1 s=512 ckpt off", "qlora", False),
    ("llama-2-7b qlora nf4+dq bf16 b=1 s=512 ckpt on", "qlora", True),
    ("llama-2-7b full bf16 (pure) b=1 s=512 ckpt off", "full", False),
    ("llama-2-7b full bf16 (pure) b=1 s=512 ckpt on", "full", True),
]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model")
    p.add_argument("--method", default="lora", choices=("full", "lora", "qlora"))
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--seq-len", type=int, default=512)
    p.add_argument("--grad-ckpt", action="store_true")
    p.add_argument("--optim", default="adamw_torch")
    p.add_argument("--dtype", default="bfloat16")
    p.add_argument("--no-bf16", action="store_true", help="no AMP autocast")
    p.add_argument("--attn", default="sdpa")
    p.add_argument("--detail", action="store_true", help="list the saved tensors of block 1")
    args = p.parse_args(argv)
    if args.model:
        runs = [(f"{args.model} {args.method} b={args.batch} s={args.seq_len} "
                 f"ckpt={'on' if args.grad_ckpt else 'off'} {args.optim}",
                 make_setup(args.model, args.method, batch=args.batch, seq_len=args.seq_len,
                            grad_ckpt=args.grad_ckpt, optim=args.optim, dtype=args.dtype,
                            bf16=not args.no_bf16, attn=args.attn))]
    else:
        runs = [(label, make_setup("llama-2-7b", method, grad_ckpt=ckpt))
                for label, method, ckpt in REFERENCE_SET]
    for label, setup in runs:
        t0 = time.perf_counter()
        result = trace(setup, detail=args.detail)
        print_trace(label, result, time.perf_counter() - t0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
