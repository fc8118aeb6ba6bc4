"""Write run/: a Trainer output dir of a LoRA fine-tune that overfits.

The files have the layout and keys transformers 5 Trainer writes (``checkpoint-N/`` with
``trainer_state.json`` and ``adapter_config.json``; ``save_total_limit=2`` keeps the last two
checkpoints). The numbers are synthetic, shaped like a small-dataset run over 3 epochs: the
training loss keeps falling; the evaluation loss is lowest after the first epoch (step 200)
and rises from there as the adapters memorise the training set.

    python examples/curves-overfitting/make_run.py
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

RUN = Path(__file__).resolve().parent / "run"
TOTAL, LOGGING, EVAL, SAVE, KEEP = 600, 10, 50, 50, 2
PEAK_LR, WARMUP = 2e-4, 18  # 3 % warmup, cosine decay (QLoRA / Alpaca-style)
STEPS_PER_EPOCH = 200


def lr(step: int) -> float:
    if step <= WARMUP:
        return PEAK_LR * step / WARMUP
    return PEAK_LR * 0.5 * (1 + math.cos(math.pi * (step - WARMUP) / (TOTAL - WARMUP)))


def train_loss(step: int) -> float:
    # falls fast, then keeps falling each epoch as the adapters fit the training set
    return 0.45 + 1.6 * math.exp(-step / 120) + 0.02 * math.sin(step / 7)


def eval_loss(step: int) -> float:
    return 1.35 + 0.5 * math.exp(-step / 60) + 0.0009 * max(0, step - 200) ** 1.15


def history() -> list[dict]:
    rows: list[dict] = []
    for s in range(LOGGING, TOTAL + 1, LOGGING):
        epoch = round(s / STEPS_PER_EPOCH, 4)
        rows.append({"epoch": epoch, "grad_norm": round(0.9 - 0.4 * s / TOTAL, 6),
                     "learning_rate": lr(s), "loss": round(train_loss(s), 4), "step": s})
        if s % EVAL == 0:
            rows.append({"epoch": epoch, "eval_loss": round(eval_loss(s), 6),
                         "eval_runtime": 4.1, "eval_samples_per_second": 48.8,
                         "eval_steps_per_second": 6.1, "step": s})
    return rows


def main() -> None:
    shutil.rmtree(RUN, ignore_errors=True)
    rows = history()
    for s in range(SAVE, TOTAL + 1, SAVE)[-KEEP:]:
        ck = RUN / f"checkpoint-{s}"
        ck.mkdir(parents=True)
        log = [r for r in rows if r["step"] <= s]
        if s == TOTAL:
            log.append({"epoch": 3.0, "step": TOTAL, "total_flos": 3.1e15, "train_loss": 0.71,
                        "train_runtime": 1830.5, "train_samples_per_second": 10.49,
                        "train_steps_per_second": 0.328})
        state = {
            "best_global_step": None, "best_metric": None, "best_model_checkpoint": None,
            "epoch": round(s / STEPS_PER_EPOCH, 4), "eval_steps": EVAL, "global_step": s,
            "is_hyper_param_search": False, "is_local_process_zero": True,
            "is_world_process_zero": True, "log_history": log, "logging_steps": LOGGING,
            "max_steps": TOTAL, "num_input_tokens_seen": 0, "num_train_epochs": 3,
            "save_steps": SAVE, "stateful_callbacks": {"TrainerControl": {"args": {
                "should_epoch_stop": False, "should_evaluate": False, "should_log": False,
                "should_save": True, "should_training_stop": s == TOTAL}, "attributes": {}}},
            "total_flos": 3.1e15 * s / TOTAL, "train_batch_size": 4, "trial_name": None,
            "trial_params": None,
        }
        (ck / "trainer_state.json").write_text(json.dumps(state, indent=2, sort_keys=True) + "\n")
        (ck / "adapter_config.json").write_text(json.dumps(
            {"peft_type": "LORA", "r": 16, "lora_alpha": 32, "lora_dropout": 0.05,
             "target_modules": ["q_proj", "v_proj"], "task_type": "CAUSAL_LM"},
            indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
