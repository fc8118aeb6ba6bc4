"""A Trainer output directory: ``trainer_state.json`` of the latest checkpoint.

Trainer writes ``checkpoint-<step>/trainer_state.json`` at every save (and
``trainer_state.json`` at the top when the script calls ``trainer.save_state()``). Each holds
the whole ``log_history`` so far: one dictionary per ``on_log`` call (``loss``,
``grad_norm``, ``learning_rate``, ``epoch``, ``step``; ``eval_loss`` ... for evaluations; the
final ``train_runtime`` summary), plus a few TrainingArguments (``max_steps``,
``logging_steps``, ``eval_steps``, ``save_steps``, ``train_batch_size``) and the best
checkpoint when ``metric_for_best_model`` is set. Field names: transformers
``trainer_callback.py`` (``TrainerState``), v5.24.

``training_args.bin`` is a pickle that only torch and transformers can load (and loading a
pickle runs code), so it is not read: the arguments come from ``trainer_state.json``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from vramdoc.errors import UsageError
from vramdoc.monitor.sources._events import STEP_FIELDS, Row, SourceRun, number

STATE_FILE = "trainer_state.json"
_CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")
# logged values Trainer writes as numbers (floats; NaN / Infinity as JSON's bare tokens)
_NUMERIC = (*STEP_FIELDS, "eval_loss")


def checkpoints(out_dir: Path) -> list[tuple[int, Path]]:
    """``(step, dir)`` of the ``checkpoint-N`` folders of an output dir, by step."""
    found = []
    if out_dir.is_dir():
        for child in out_dir.iterdir():
            m = _CHECKPOINT_RE.match(child.name)
            if m and child.is_dir():
                found.append((int(m.group(1)), child))
    return sorted(found)


def state_files(path: Path) -> list[Path]:
    """The ``trainer_state.json`` files that may be the latest for ``path`` (an output dir or
    the file): the highest-numbered checkpoint's and the top folder's (``save_state()``).
    Older checkpoints hold a prefix of the same history, so they are not read."""
    if path.is_file():
        return [path]
    files = [ck / STATE_FILE for _, ck in checkpoints(path) if (ck / STATE_FILE).is_file()][-1:]
    if (path / STATE_FILE).is_file():
        files.append(path / STATE_FILE)
    return files


def is_trainer_dir(path: Path) -> bool:
    if path.is_file():
        return path.name == STATE_FILE
    return path.is_dir() and bool(state_files(path))


def _load(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"{path}: cannot be read: {exc.strerror or exc}",
                         "check the path and its permissions") from None
    except ValueError as exc:
        raise UsageError(f"{path}: not valid JSON ({exc})",
                         "a checkpoint being written? run again when the save is done") from None
    if not isinstance(data, dict) or not isinstance(data.get("log_history"), list):
        raise UsageError(f"{path}: not a Trainer state (no log_history list)",
                         "point vramdoc watch at a Trainer output dir or its trainer_state.json")
    return data


def _progress(data: dict[str, Any]) -> tuple[int, int]:
    """How far a state got: global_step, then history length."""
    step = data.get("global_step")
    return (int(step) if isinstance(step, int) else 0, len(data["log_history"]))


def _latest(p: Path, files: list[Path]) -> tuple[Path, dict[str, Any], list[str]]:
    """The state with the most progress among ``files``, falling back past broken ones.

    A save cut short (a full disk, a killed job) leaves the newest checkpoint's state broken
    while the older checkpoints hold the same history up to their step: read the newest one
    that loads, and name each broken file. Raises the newest file's error when none loads.
    """
    older = ([ck / STATE_FILE for _, ck in checkpoints(p)][:-1][::-1] if p.is_dir() else [])
    broken: list[str] = []
    first_error: UsageError | None = None
    good: list[tuple[Path, dict[str, Any]]] = []
    for f in [*files, *older]:
        if good and f in older:
            break  # a newer state loaded: older checkpoints hold a prefix of it
        if not f.is_file():
            continue
        try:
            good.append((f, _load(f)))
        except UsageError as exc:
            first_error = first_error or exc
            broken.append(f"{f} ({exc.message.split(': ', 1)[-1][:80]})")
    if not good:
        assert first_error is not None
        raise first_error
    path, data = max(good, key=lambda fd: _progress(fd[1]))
    return path, data, broken


def _method(ck_dir: Path | None) -> str | None:
    """``lora`` when the checkpoint holds a PEFT adapter, ``full`` when it holds a whole model.

    A QLoRA checkpoint looks like a LoRA one (the quantization lives in the base model, which
    the checkpoint does not hold), so it reads as ``lora``.
    """
    if ck_dir is None:
        return None
    if (ck_dir / "adapter_config.json").is_file():
        return "lora"
    if (ck_dir / "config.json").is_file():
        return "full"
    return None


def read(path: str | Path) -> SourceRun:
    """The run a Trainer output dir (or one ``trainer_state.json``) describes."""
    p = Path(path)
    files = state_files(p)
    if not files:
        raise UsageError(f"no {STATE_FILE} in {p} or its checkpoint-* folders",
                         "Trainer writes it at each save (save_steps / save_strategy)")
    state_path, data, broken = _latest(p, files)
    out_dir = p if p.is_dir() else p.parent
    if _CHECKPOINT_RE.match(out_dir.name):
        out_dir = out_dir.parent
    cks = checkpoints(out_dir)
    run = SourceRun(source="trainer_state", path=str(p))
    for key in ("max_steps", "logging_steps", "eval_steps", "save_steps", "num_train_epochs"):
        if isinstance(data.get(key), int | float) and not isinstance(data.get(key), bool):
            run.args[key] = data[key]
    if isinstance(data.get("train_batch_size"), int):
        # TrainerState.train_batch_size is the per-device batch times the GPUs of one process
        run.args["per_device_train_batch_size"] = data["train_batch_size"]
    skipped = 0  # entries Trainer never writes (not a mapping, no whole-number step): named
    bad_values, first_bad = 0, ""  # logged values that are not numbers: named
    for i, entry in enumerate(data["log_history"]):
        if not isinstance(entry, dict):
            skipped += 1
            continue
        step = entry.get("step")
        if not isinstance(step, int) or isinstance(step, bool):
            skipped += 1
            continue
        values = {k: v for k, v in entry.items() if k != "step"}
        wrong = [k for k in _NUMERIC if values.get(k) is not None and number(values[k]) is None]
        if wrong:  # Trainer logs floats: a boolean or a list loss is damage, named, not used
            bad_values += len(wrong)
            first_bad = first_bad or f"step {step} {wrong[0]} {repr(values[wrong[0]])[:40]}"
            for k in wrong:
                del values[k]
        run.rows.append(Row(step=step, values=values))
        if "train_runtime" in values and i == len(data["log_history"]) - 1:
            run.ended = "completed"
    max_steps = data.get("max_steps")
    if run.ended is None and isinstance(max_steps, int) and max_steps > 0 \
            and int(data.get("global_step") or 0) >= max_steps:
        run.ended = "max_steps reached"
    latest_ck = cks[-1][1] if cks else (state_path.parent if state_path.parent != out_dir else None)
    run.facts = {"method": _method(latest_ck), "checkpoints": [step for step, _ in cks]}
    if skipped:
        run.facts["unreadable_records"] = skipped
    if broken:
        run.facts["broken_states"] = broken
        run.facts["state_read"] = str(state_path)
    if bad_values:
        run.facts["bad_values"] = bad_values
        run.facts["first_bad_value"] = first_bad
    return run
