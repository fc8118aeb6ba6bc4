"""The event log's format: one JSON object per line, append-only, schema-versioned.

A run directory holds ``events.jsonl``. Every line is one event with these common keys:

``v``
    schema version (:data:`SCHEMA_VERSION`); a reader refuses lines of another major version
    and says so instead of guessing.
``kind``
    ``header`` | ``step`` | ``log`` | ``note`` | ``end``.
``time``
    Unix time in seconds (float).
``session``
    the id of the training session that wrote the line (a header starts a session). Logs
    written before sessions existed have none; their lines belong to the last header read.

``header`` (first line of each training session; a resumed run appends a new one):
    ``versions`` (python, vramdoc, torch, transformers, cuda), ``device`` (type, name,
    index, total_bytes), ``setup`` (the TrainSetup mapping or None), ``plan`` (the
    estimate, see :func:`vramdoc.monitor.plan.normalize_plan`, or None), ``args``
    (TrainingArguments that matter to the alerts: fp16, bf16, logging_nan_inf_filter,
    max_grad_norm, gradient_accumulation_steps, per_device_train_batch_size, max_steps,
    learning_rate, optim), ``source`` ("trainer" or "loop"), ``pid`` and ``host`` of the
    writing process and ``pid_start`` (its start time in clock ticks from ``/proc``, Linux
    only), so a reader can tell whether the writer is still alive.
``step`` (one per optimizer step):
    ``step``, ``epoch``, ``loss`` (unfiltered: a NaN is a NaN), ``grad_norm`` (before
    clipping), ``lr``, ``loss_scale`` (fp16 GradScaler scale, else None), ``skipped``
    (the optimizer skipped this step after an overflow), ``tokens``, ``samples``,
    ``step_time_s`` (wall time since the previous step's end), ``tokens_per_s``,
    ``samples_per_s``, ``interrupted`` (an evaluation or checkpoint ran inside the
    interval, so throughput is not comparable), ``mem`` (CUDA caching-allocator figures
    from ``torch.cuda.memory_stats``: allocated_bytes, reserved_bytes,
    peak_allocated_bytes, peak_reserved_bytes, alloc_retries, ooms; None on CPU), ``gpu``
    (NVML device figures: used_bytes, total_bytes, util_pct, temp_c, power_w; None
    without a driver).
``log``:
    ``step`` and ``logs``: what Trainer logged at that step (its loss there is the
    *filtered* window average, see ``logging_nan_inf_filter``).
``note``:
    ``step`` and ``what`` ("evaluate", "save", "recorder_error", "exception", "signal", ...)
    with ``detail``; an ``exception`` note also has ``error`` (see ``end``), a ``signal``
    note ``signal`` (its name).
``end``:
    ``step`` and ``reason``: ``finished``, ``crashed`` (with ``error``: ``type``,
    ``message``), ``interrupted`` (with ``signal``, e.g. ``SIGTERM``, or ``error`` for a
    KeyboardInterrupt) or ``exited`` (the process ended without closing the run and without
    an exception). Older logs also hold ``error: TYPE`` and free text.

Non-finite floats are written as the strings ``"NaN"``, ``"Infinity"`` and ``"-Infinity"``
so that every line is strict JSON (jq, pandas and browsers read it); :func:`decode_float`
turns them back into floats.
"""

from __future__ import annotations

import json
import math
from typing import Any

SCHEMA_VERSION = 1
EVENTS_FILE = "events.jsonl"
KINDS = ("header", "step", "log", "note", "end")

_NONFINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def encode_value(value: Any) -> Any:
    """Make a value strict-JSON safe: non-finite floats become strings, tuples lists.

    >>> encode_value({"a": float("nan"), "b": [1.0, float("inf")]})
    {'a': 'NaN', 'b': [1.0, 'Infinity']}
    """
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {str(k): encode_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [encode_value(v) for v in value]
    if value is None or isinstance(value, bool | int | str):
        return value
    # numpy / torch scalars and anything else: try float, else its text
    try:
        return encode_value(float(value))
    except (TypeError, ValueError):
        return str(value)


def encode_line(event: dict[str, Any]) -> str:
    """One event as one line of strict JSON, newline included.

    The C encoder runs first (a few microseconds); only an event holding a non-finite float
    or a foreign scalar takes the slower pure-Python walk of :func:`encode_value`.
    """
    try:
        return _DUMPS(event) + "\n"
    except (ValueError, TypeError):
        return _DUMPS(encode_value(event)) + "\n"


_DUMPS = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode


def decode_float(value: Any) -> float | None:
    """A number as written by :func:`encode_value` back to a float; None stays None.

    >>> decode_float("NaN") != decode_float("NaN")
    True
    >>> decode_float(2), decode_float(None), decode_float("Infinity")
    (2.0, None, inf)
    """
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str) and value in _NONFINITE:
        return _NONFINITE[value]
    return None
