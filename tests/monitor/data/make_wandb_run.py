"""Regenerate ``wandb-offline-run/``: a real W&B offline run (wandb 0.31) logged the way
transformers' WandbCallback logs (``train/*`` and ``eval/*`` keys, ``train/global_step``),
with the overfitting history of ``tests/monitor/trainer_runs.py``. Needs the wandb package;
no network (offline mode).

    WANDB_MODE=offline python tests/monitor/data/make_wandb_run.py
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import wandb

from tests.monitor.trainer_runs import overfitting_history

HERE = Path(__file__).resolve().parent


def main() -> None:
    tmp = Path(tempfile.mkdtemp())
    run = wandb.init(mode="offline", dir=tmp, project="vramdoc-test",
                     config={"learning_rate": 2e-4, "max_grad_norm": 1.0, "max_steps": 600,
                             "lr_scheduler_type": "cosine", "warmup_steps": 20,
                             "logging_nan_inf_filter": True, "save_steps": 50})
    for row in overfitting_history():
        step = row["step"]
        if "eval_loss" in row:
            run.log({"eval/loss": row["eval_loss"], "train/global_step": step})
        else:
            run.log({"train/loss": row["loss"], "train/grad_norm": row["grad_norm"],
                     "train/learning_rate": row["learning_rate"], "train/epoch": row["epoch"],
                     "train/global_step": step})
    run.finish()
    src = next((tmp / "wandb").glob("offline-run-*"))
    dest = HERE / "wandb-offline-run"
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir()
    for f in src.glob("run-*.wandb"):
        shutil.copy(f, dest / f.name)
    shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
