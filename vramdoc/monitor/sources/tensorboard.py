"""TensorBoard event files, as transformers' ``TensorBoardCallback`` writes them.

The callback (transformers ``integrations/integration_utils.py``, v5.24) writes to
``TENSORBOARD_LOGGING_DIR`` or ``<output_dir>/runs/<date>_<host>``: Trainer's log
dictionaries as scalars renamed by ``rewrite_logs`` (``loss`` -> ``train/loss``,
``eval_loss`` -> ``eval/loss``) at ``state.global_step``, and the TrainingArguments as a
text entry ``args`` (``args.to_json_string()``). The files are read with tensorboard's own
``EventAccumulator`` (optional extra ``tb``); vramdoc parses no protobuf itself here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from vramdoc.errors import MissingDependencyError, UsageError
from vramdoc.monitor.sources._events import Row, SourceRun, pick_args

EVENT_GLOB = "events.out.tfevents.*"


def event_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path] if path.name.startswith("events.out.tfevents.") else []
    return sorted(path.glob(EVENT_GLOB)) if path.is_dir() else []


def is_tensorboard(path: Path) -> bool:
    return bool(event_files(path))


def trainer_name(tag: str) -> str:
    """A scalar tag back to Trainer's log key (``train/loss`` -> ``loss``, ``eval/loss`` ->
    ``eval_loss``): the inverse of transformers' ``rewrite_logs``."""
    if tag.startswith("train/"):
        return tag[len("train/"):]
    if tag.startswith("eval/"):
        return "eval_" + tag[len("eval/"):]
    if tag.startswith("test/"):
        return "test_" + tag[len("test/"):]
    return tag


def _accumulator(path: Path) -> Any:
    try:
        from tensorboard.backend.event_processing import event_accumulator
    except ImportError as exc:
        raise MissingDependencyError("tensorboard", "tb",
                                     "reading TensorBoard event files") from exc
    # size_guidance 0 = keep every value (the default samples scalars down to 10,000)
    acc = event_accumulator.EventAccumulator(
        str(path), size_guidance={event_accumulator.SCALARS: 0, event_accumulator.TENSORS: 0})
    # tensorboard stops reading a file at a record whose CRC fails and says so only in a
    # debug log line (event_file_loader.py, RawEventFileLoader.Load): catch that line, so a
    # damaged file is named instead of read as a run that stopped early
    import logging

    log = logging.getLogger("tensorboard")  # tensorboard.util.tb_logging.get_logger()
    damaged: list[str] = []

    class _Catch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "crc32 check" in record.getMessage():
                damaged.append(record.getMessage())

    catch, level, propagate = _Catch(logging.DEBUG), log.level, log.propagate
    log.addHandler(catch)
    log.setLevel(logging.DEBUG)
    log.propagate = False  # the debug lines are tensorboard's, not for the user's terminal
    try:
        acc.Reload()
    finally:
        log.removeHandler(catch)
        log.setLevel(level)
        log.propagate = propagate
    acc.vramdoc_damaged = damaged
    return acc


def _text(acc: Any, tag: str) -> str | None:
    """The latest value of a text summary (``add_text`` stores it as a string tensor)."""
    from tensorboard.util import tensor_util

    try:
        events = acc.Tensors(tag)
    except KeyError:
        return None
    if not events:
        return None
    value = tensor_util.make_ndarray(events[-1].tensor_proto)
    item = value.item() if value.ndim == 0 else value.flat[0]
    return item.decode("utf-8", "replace") if isinstance(item, bytes) else str(item)


def read(path: str | Path) -> SourceRun:
    """The scalars and arguments of a TensorBoard log folder (or one event file)."""
    p = Path(path)
    files = event_files(p)
    if not files:
        raise UsageError(f"no TensorBoard event files ({EVENT_GLOB}) in {p}",
                         "give the folder TensorBoardCallback wrote: OUTPUT_DIR/runs/<date>")
    run = SourceRun(source="tensorboard", path=str(p))
    # Reading the folder merges all its event files (a resumed run appends a new file).
    acc = _accumulator(p if p.is_dir() else files[0])
    rows: dict[tuple[int, bool], dict[str, Any]] = {}
    times: dict[int, float] = {}
    for tag in acc.Tags().get("scalars", []):
        name = trainer_name(tag)
        for ev in acc.Scalars(tag):
            rows.setdefault((int(ev.step), name.startswith("eval_")), {})[name] = float(ev.value)
            times.setdefault(int(ev.step), float(ev.wall_time))
    for (step, _is_eval), values in sorted(rows.items()):
        run.rows.append(Row(step=step, values=values, time=times.get(step)))
    args_text = _text(acc, "args/text_summary")
    if args_text:
        try:
            args = json.loads(args_text)
        except ValueError:
            args = None
        if isinstance(args, dict):
            run.args = pick_args(args)
    if any("train_runtime" in r.values for r in run.rows):
        run.ended = "completed"
    run.facts = {"event_files": [f.name for f in files]}
    if acc.vramdoc_damaged:
        run.facts["unreadable_records"] = len(acc.vramdoc_damaged)
    return run
