"""An MLflow local-store run: ``mlruns/<experiment-id>/<run-id>/``.

MLflow's file store (``mlflow/store/tracking/file_store.py``, the default ``./mlruns``)
keeps one folder per run: ``meta.yaml`` (``status``: 1 RUNNING, 3 FINISHED, 4 FAILED,
5 KILLED, the ``RunStatus`` enum, or its name), ``metrics/<name>`` files with one
``<timestamp-ms> <value> <step>`` line per logged value, and ``params/<name>`` files holding
one value as text. transformers' ``MLflowCallback`` logs Trainer's log dictionaries as
metrics under their own names (``loss``, ``grad_norm``, ``learning_rate``, ``eval_loss``)
at ``state.global_step``, and every TrainingArguments field as a param. Nested metric names
(``a/b``) are nested folders. No mlflow package is needed to read this.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vramdoc.errors import UsageError
from vramdoc.monitor.sources._events import Row, SourceRun, pick_args
from vramdoc.monitor.sources.tensorboard import trainer_name

MAX_STEP = 2**63  # a step past int64 is no step MLflow (or a GPU run) can log
_STATUS = {1: "RUNNING", 2: "SCHEDULED", 3: "FINISHED", 4: "FAILED", 5: "KILLED"}


def is_mlflow_run(path: Path) -> bool:
    return path.is_dir() and (path / "meta.yaml").is_file() and (path / "metrics").is_dir()


def run_dirs(path: Path) -> list[Path]:
    """Runs below an experiment folder or a whole ``mlruns`` store (to name them)."""
    if not path.is_dir():
        return []
    found = [c for c in path.iterdir() if is_mlflow_run(c)]
    for c in path.iterdir():
        if c.is_dir() and c.name != ".trash" and not is_mlflow_run(c):
            found.extend(g for g in c.iterdir() if g.is_dir() and is_mlflow_run(g))
    return sorted(found)


def watched_files(path: Path) -> list[Path]:
    files = [path / "meta.yaml"]
    files.extend(f for f in (path / "metrics").rglob("*") if f.is_file())
    return files


def _metric_lines(f: Path, name: str, rows: dict[tuple[int, str], dict[str, Any]],
                  times: dict[int, float]) -> int:
    """Read one metric file's ``timestamp value step`` lines; returns how many lines were
    not such a line (counted, never silently dropped: the summary names them)."""
    bad = 0
    for line in f.read_text(encoding="utf-8", errors="replace").splitlines():
        parts = line.split()
        if not parts:
            continue
        try:
            if len(parts) < 2:
                raise ValueError
            ts = int(parts[0])
            value = float(parts[1])
            step = int(parts[2]) if len(parts) > 2 else 0
            if not 0 <= step < MAX_STEP:  # Trainer logs at global_step >= 0
                raise ValueError
        except ValueError:  # text, a float or negative step, a number past 4,300 digits
            bad += 1
            continue
        part = "eval" if name.startswith("eval_") else "train"
        rows.setdefault((step, part), {})[name] = value
        times.setdefault(step, ts / 1000.0)
    return bad


def read(path: str | Path) -> SourceRun:
    """The run one MLflow run folder holds."""
    import yaml

    p = Path(path)
    if not is_mlflow_run(p):
        runs = run_dirs(p)
        if runs:
            listed = ", ".join(str(r) for r in runs[:5])
            raise UsageError(f"{p} holds {len(runs)} MLflow run(s), not one",
                             f"watch one run folder, e.g. {listed}")
        raise UsageError(f"{p} is not an MLflow run folder (meta.yaml and metrics/)",
                         "give mlruns/<experiment-id>/<run-id>")
    try:
        meta = yaml.safe_load((p / "meta.yaml").read_text(encoding="utf-8")) or {}
    except Exception as exc:  # yaml.YAMLError, OSError
        raise UsageError(f"{p / 'meta.yaml'}: cannot be read ({str(exc).splitlines()[0]})",
                         "is this an MLflow run folder?") from None
    if not isinstance(meta, dict):
        raise UsageError(f"{p / 'meta.yaml'}: not an MLflow run's meta.yaml (no mapping)",
                         "is this an MLflow run folder?")
    metrics = p / "metrics"
    rows: dict[tuple[int, str], dict[str, Any]] = {}
    times: dict[int, float] = {}
    skipped = 0
    for f in sorted(metrics.rglob("*")):
        if f.is_file():
            name = f.relative_to(metrics).as_posix()
            if name.startswith("system/"):
                continue  # MLflow's system metrics (CPU, GPU) are not Trainer's logs
            # a name written the TensorBoard / W&B way (``train/loss``, ``eval/loss``, a
            # nested folder here) reads as Trainer's key, as those sources read it
            name = trainer_name(name)
            skipped += _metric_lines(f, name, rows, times)
    params: dict[str, str] = {}
    params_dir = p / "params"
    if params_dir.is_dir():
        for f in params_dir.rglob("*"):
            if f.is_file():
                params[f.relative_to(params_dir).as_posix()] = f.read_text(
                    encoding="utf-8", errors="replace").strip()
    run = SourceRun(source="mlflow", path=str(p), args=pick_args(params))
    # eval rows first within a step: to_events orders them anyway
    for (step, _part), values in sorted(rows.items(),
                                        key=lambda kv: (kv[0][0], kv[0][1] != "eval")):
        run.rows.append(Row(step=step, values=values, time=times.get(step)))
    status = meta.get("status")
    status = _STATUS.get(status, status) if isinstance(status, int) else status
    if isinstance(status, str) and status.upper() in ("FINISHED", "FAILED", "KILLED"):
        run.ended = status.lower()
    run.facts = {"run_name": meta.get("run_name") or meta.get("run_id")}
    if skipped:
        run.facts["unreadable_records"] = skipped
    return run
