"""Trainer output dirs as Trainer writes them: checkpoint-N/trainer_state.json per save.

The layout and keys follow transformers v5.24 (``TrainerState.save_to_json``: the state as
sorted-key JSON, ``log_history`` holding one dict per ``on_log``: ``loss`` rounded to 4
digits, ``grad_norm``, ``learning_rate``, ``epoch``, ``step``; evaluations with ``eval_loss``,
``eval_runtime`` ...; the final ``train_runtime`` summary). NaN is written as ``NaN``, as
``json.dumps`` does.
"""

from __future__ import annotations

import json
import math
from pathlib import Path


def lr_at(step: int, peak: float, warmup: int, total: int, schedule: str = "cosine") -> float:
    if step <= warmup:
        return peak * step / max(1, warmup)
    if schedule == "constant":
        return peak
    progress = (step - warmup) / max(1, total - warmup)
    return peak * 0.5 * (1 + math.cos(math.pi * progress))


def history(total: int, logging: int, eval_every: int | None, *, loss, eval_loss=None,
            grad_norm=lambda s: 0.8, peak_lr=2e-4, warmup=20, schedule="cosine",
            steps_per_epoch=100) -> list[dict]:
    """A log_history: a training row every ``logging`` steps, an eval row every
    ``eval_every`` steps (after the training row of the same step, as Trainer logs them)."""
    rows: list[dict] = []
    for s in range(logging, total + 1, logging):
        rows.append({"epoch": round(s / steps_per_epoch, 4), "grad_norm": grad_norm(s),
                     "learning_rate": lr_at(s, peak_lr, warmup, total, schedule),
                     "loss": round(loss(s), 4), "step": s})
        if eval_every and eval_loss is not None and s % eval_every == 0:
            rows.append({"epoch": round(s / steps_per_epoch, 4), "eval_loss": eval_loss(s),
                         "eval_runtime": 1.5, "eval_samples_per_second": 66.7,
                         "eval_steps_per_second": 8.3, "step": s})
    return rows


def write_run(out: Path, rows: list[dict], *, total: int, logging: int, save: int,
              eval_every: int | None = None, adapter: bool = True, final: bool = True,
              batch: int = 4, upto: int | None = None) -> Path:
    """Write ``out/checkpoint-S/trainer_state.json`` for every save step S up to ``upto``
    (default: the whole run; and the final summary row into the last state when ``final``)."""
    out.mkdir(parents=True, exist_ok=True)
    saves = list(range(save, (upto or total) + 1, save))
    for i, s in enumerate(saves):
        ck = out / f"checkpoint-{s}"
        ck.mkdir(exist_ok=True)
        hist = [r for r in rows if r["step"] <= s]
        if final and i == len(saves) - 1 and s == total:
            hist.append({"epoch": round(total / 100, 4), "step": total, "total_flos": 1.2e15,
                         "train_loss": 1.0, "train_runtime": 321.0,
                         "train_samples_per_second": 12.0, "train_steps_per_second": 3.0})
        state = {
            "best_global_step": None, "best_metric": None, "best_model_checkpoint": None,
            "epoch": round(s / 100, 4), "eval_steps": eval_every or 500, "global_step": s,
            "is_hyper_param_search": False, "is_local_process_zero": True,
            "is_world_process_zero": True, "log_history": hist, "logging_steps": logging,
            "max_steps": total, "num_input_tokens_seen": 0, "num_train_epochs": total // 100,
            "save_steps": save, "stateful_callbacks": {}, "total_flos": 1e15,
            "train_batch_size": batch, "trial_name": None, "trial_params": None,
        }
        (ck / "trainer_state.json").write_text(json.dumps(state, indent=2, sort_keys=True) + "\n")
        if adapter:
            (ck / "adapter_config.json").write_text(json.dumps(
                {"peft_type": "LORA", "r": 16, "lora_alpha": 32}) + "\n")
    return out


def overfitting_history() -> list[dict]:
    """Training loss keeps falling; evaluation loss is lowest at step 250, then rises."""
    def eval_loss(s: int) -> float:
        return 2.2 - 0.7 * s / 250 if s <= 250 else 1.5 + 0.002 * (s - 250)
    return history(600, 10, 50, loss=lambda s: 0.6 + 2.0 * math.exp(-s / 200),
                   eval_loss=eval_loss)


def overfitting_run(out: Path) -> Path:
    return write_run(out, overfitting_history(), total=600, logging=10, save=50, eval_every=50)


def plateau_run(out: Path, peak_lr: float = 2e-4) -> Path:
    """The loss falls for 100 steps, then stays flat (noise of +-0.5 %) with a constant rate."""
    def loss(s: int) -> float:
        base = 2.6 - 0.7 * min(s, 100) / 100
        return base * (1 + 0.005 * math.sin(s))
    rows = history(500, 10, None, loss=loss, peak_lr=peak_lr, schedule="constant")
    return write_run(out, rows, total=500, logging=10, save=100)


def masked_nan_run(out: Path) -> Path:
    """From step 120 the gradients are NaN; Trainer's logged loss stays finite (its
    logging_nan_inf_filter puts the running average in place of each NaN step loss)."""
    rows = history(200, 10, None, loss=lambda s: 2.5 - s / 400,
                   grad_norm=lambda s: float("nan") if s >= 120 else 0.9)
    return write_run(out, rows, total=200, logging=10, save=40, final=False)
