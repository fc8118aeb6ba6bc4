"""The one shape every source is turned into: the event records of ``events.jsonl``.

Readers of other formats (Trainer's ``trainer_state.json``, MLflow, TensorBoard, W&B) collect
*rows*, the dictionaries Trainer passes to its ``on_log`` hooks (``loss``, ``grad_norm``,
``learning_rate``, ``epoch``, ``eval_loss`` ...) with the step they were logged at, and
:func:`to_events` turns them into the header / step / log / end events that
:class:`~vramdoc.monitor.run.RunState` reads (see :mod:`vramdoc.monitor.schema`). Tracker
logs differ from vramdoc's recorder in one way that matters to the alerts: the loss is
Trainer's *logged* value, the average over the logging window after
``logging_nan_inf_filter`` replaced NaN/Inf step losses, so the header says
``loss_logged: True``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from vramdoc.monitor.schema import SCHEMA_VERSION

# TrainingArguments the alerts and curve rules read, as Trainer names them.
ARG_NAMES = (
    "fp16", "bf16", "logging_nan_inf_filter", "max_grad_norm", "gradient_accumulation_steps",
    "per_device_train_batch_size", "max_steps", "learning_rate", "optim", "warmup_steps",
    "lr_scheduler_type", "num_train_epochs", "logging_steps", "eval_steps", "save_steps",
    "load_best_model_at_end", "metric_for_best_model",
)

# Keys of a training row that become step-event fields (Trainer's name -> event name).
STEP_FIELDS = {"loss": "loss", "grad_norm": "grad_norm", "learning_rate": "lr", "epoch": "epoch"}
# Keys of Trainer's final row (trainer.py, Trainer.train: speed_metrics("train", ...)).
FINAL_KEYS = ("train_runtime", "train_samples_per_second", "train_steps_per_second",
              "train_loss", "total_flos")


@dataclass
class Row:
    """One logged dictionary at one step, in the order the source holds them."""

    step: int
    values: dict[str, Any]
    time: float | None = None


@dataclass
class SourceRun:
    """What a reader found: rows, TrainingArguments, and facts about the run."""

    source: str  # "trainer_state" | "mlflow" | "tensorboard" | "wandb"
    path: str
    rows: list[Row] = field(default_factory=list)
    args: dict[str, Any] = field(default_factory=dict)
    ended: str | None = None  # the reason the run ended, when the source says it did
    facts: dict[str, Any] = field(default_factory=dict)  # method, checkpoints, best checkpoint


def number(value: Any) -> float | None:
    """A logged value as a float (NaN kept), or None for text, booleans and missing values."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def coerce_arg(value: Any) -> Any:
    """A TrainingArguments value read as text (MLflow params, W&B config) back to its type."""
    if not isinstance(value, str):
        return value
    low = value.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("none", "null", ""):
        return None
    try:
        return int(value)
    except ValueError:
        pass
    try:
        return float(value)
    except ValueError:
        return value


def pick_args(mapping: Mapping[str, Any]) -> dict[str, Any]:
    """The arguments of :data:`ARG_NAMES` found in ``mapping``, typed."""
    return {k: coerce_arg(mapping[k]) for k in ARG_NAMES if k in mapping}


def to_events(run: SourceRun) -> list[dict[str, Any]]:
    """The run as event records, in the order a recorder would have written them.

    Rows of one step are merged by kind: training values into one step event, evaluation
    values into one log event placed *before* that step's step event, so the step's alerts
    see the evaluation made at the same step. Trainer's final summary row becomes a log
    event, and the source's end (if any) an end event.
    """
    header: dict[str, Any] = {
        "v": SCHEMA_VERSION, "kind": "header", "time": None, "versions": {},
        "device": {}, "setup": None, "plan": None, "args": dict(run.args),
        "source": run.source, "loss_logged": True, "path": run.path, **run.facts,
    }
    events: list[dict[str, Any]] = [header]
    by_step: dict[int, dict[str, dict[str, Any]]] = {}
    times: dict[int, float | None] = {}
    order: list[int] = []
    for row in run.rows:
        if row.step not in by_step:
            by_step[row.step] = {"train": {}, "eval": {}, "final": {}}
            order.append(row.step)
        # per key: a tracker may hold a step's training values, its evaluation and Trainer's
        # final summary under one step (TensorBoard and MLflow do)
        for key, value in row.values.items():
            part = ("final" if key in FINAL_KEYS
                    else "eval" if key.startswith("eval_") else "train")
            by_step[row.step][part][key] = value
        if row.time is not None:
            times[row.step] = row.time
    last_step = 0
    for step in sorted(order):
        parts = by_step[step]
        t = times.get(step)
        if parts["eval"]:
            events.append({"v": SCHEMA_VERSION, "kind": "log", "time": t, "step": step,
                           "logs": dict(parts["eval"])})
        train = parts["train"]
        if "loss" in train or "grad_norm" in train:
            ev: dict[str, Any] = {"v": SCHEMA_VERSION, "kind": "step", "time": t, "step": step}
            for key, name in STEP_FIELDS.items():
                ev[name] = number(train.get(key))
            events.append(ev)
        elif train:  # learning rate or epoch only: keep it as Trainer's log
            events.append({"v": SCHEMA_VERSION, "kind": "log", "time": t, "step": step,
                           "logs": dict(train)})
        if parts["final"]:
            events.append({"v": SCHEMA_VERSION, "kind": "log", "time": t, "step": step,
                           "logs": dict(parts["final"])})
        last_step = step
    if run.ended:
        events.append({"v": SCHEMA_VERSION, "kind": "end", "time": None, "step": last_step,
                       **end_reason(run.ended)})
    return events


def end_reason(said: str) -> dict[str, Any]:
    """A tracker's word for how a run ended, in the end event's vocabulary (finished /
    crashed / interrupted; vramdoc.monitor.outcome), keeping the tracker's own word."""
    word = said.strip().lower()
    if word in ("completed", "finished", "max_steps reached"):
        return {"reason": "finished"}
    if word == "killed":  # MLflow's status for a run stopped from outside
        return {"reason": "interrupted", "error": {"type": "killed", "message": said}}
    # MLflow FAILED, a W&B run's non-zero exit code
    return {"reason": "crashed", "error": {"type": said, "message": ""}}

