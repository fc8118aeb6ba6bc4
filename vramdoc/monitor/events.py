"""The one typed check of an event read from a log, before anything else looks at it.

A log is written by vramdoc, but it is a file: a crash can cut it, a person can edit it, another
tool can append to it. :func:`check_event` says what is wrong with a decoded JSON object (None
when nothing is), field by field, against the format documented in
:mod:`vramdoc.monitor.schema`. The follower skips and counts what fails, so the rest of the
watch (RunState, the rules, the charts) reads only values of the types it expects.

Unknown fields are allowed (a newer vramdoc may add some); known fields must have their type.
Integers that count bytes, steps or tokens must lie in [0, 2**63): a JSON number has no limit,
a GPU does.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from vramdoc.monitor.schema import KINDS

MAX_INT = 2**63
MAX_TEXT = 100_000  # characters in one string field (a traceback fits; a runaway does not)

Check = Callable[[Any], bool]


def _is_uint(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and 0 <= v < MAX_INT


def _is_number(v: Any) -> bool:
    """A float as the recorder writes it: a number, or one of the non-finite strings."""
    if isinstance(v, bool):
        return False
    if isinstance(v, int):
        return -MAX_INT < v < MAX_INT
    return isinstance(v, float) or v in ("NaN", "Infinity", "-Infinity")


def _is_text(v: Any) -> bool:
    return isinstance(v, str) and len(v) <= MAX_TEXT


def _opt(check: Check) -> Check:
    return lambda v: v is None or check(v)


UINT = _opt(_is_uint)
NUMBER = _opt(_is_number)
TEXT = _opt(_is_text)
BOOL = _opt(lambda v: isinstance(v, bool))
DICT = _opt(lambda v: isinstance(v, dict))
INT = _opt(lambda v: isinstance(v, int) and not isinstance(v, bool) and -MAX_INT < v < MAX_INT)

_EXPECTED = {UINT: "a whole number in [0, 2**63)", NUMBER: "a number", TEXT: "a string",
             BOOL: "true or false", DICT: "an object", INT: "a whole number"}

# field -> check; nested objects map to (check of the object, spec of its fields)
Spec = Mapping[str, Any]

_MEM: Spec = {k: UINT for k in ("allocated_bytes", "reserved_bytes", "peak_allocated_bytes",
                                "peak_reserved_bytes", "alloc_retries", "ooms")}
_GPU: Spec = {"name": TEXT, "used_bytes": UINT, "total_bytes": UINT, "util_pct": NUMBER,
              "temp_c": NUMBER, "power_w": NUMBER}
_DEVICE: Spec = {"type": TEXT, "name": TEXT, "total_bytes": UINT}
_PLAN: Spec = {
    "peak_allocated_bytes": UINT, "peak_reserved_bytes": UINT, "device_bytes": UINT,
    "gpu_memory_bytes": UINT, "peak_phase": TEXT, "method": TEXT, "gpu_name": TEXT,
    "components": (DICT, "uint-values"), "phases": (DICT, "uint-values"),
}
_MODEL: Spec = {"class": TEXT, "model_type": TEXT, "name_or_path": TEXT, "params": UINT,
                "trainable_params": UINT, "dtype": TEXT}
_ARGS: Spec = {
    "fp16": BOOL, "bf16": BOOL, "logging_nan_inf_filter": BOOL, "max_grad_norm": NUMBER,
    "max_steps": INT,
    "gradient_accumulation_steps": UINT, "per_device_train_batch_size": UINT,
    "model": (DICT, _MODEL),
}
_ERROR: Spec = {"type": TEXT, "message": TEXT, "step": UINT}

SPECS: dict[str, Spec] = {
    "header": {"source": TEXT, "versions": DICT, "device": (DICT, _DEVICE), "setup": DICT,
               "plan": (DICT, _PLAN), "args": (DICT, _ARGS), "pid": UINT, "host": TEXT,
               "pid_start": UINT},
    "step": {"step": UINT, "epoch": NUMBER, "loss": NUMBER, "grad_norm": NUMBER, "lr": NUMBER,
             "loss_scale": NUMBER, "skipped": BOOL, "skipped_total": UINT, "tokens": UINT,
             "samples": UINT, "step_time_s": NUMBER, "tokens_per_s": NUMBER,
             "samples_per_s": NUMBER, "interrupted": BOOL, "mem": (DICT, _MEM),
             "gpu": (DICT, _GPU), "extra": DICT},
    "log": {"step": UINT, "logs": DICT},
    "note": {"step": UINT, "what": TEXT, "detail": TEXT, "error": (DICT, _ERROR),
             "signal": TEXT},
    "end": {"step": UINT, "reason": TEXT, "error": (DICT, _ERROR), "signal": TEXT,
            "recorder_errors": UINT},
}
_COMMON: Spec = {"time": NUMBER, "session": TEXT}


def _short(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 40 else text[:37] + "..."


def _check(obj: Mapping[str, Any], spec: Spec, where: str) -> str | None:
    for name, rule in spec.items():
        if name not in obj:
            continue
        value = obj[name]
        if isinstance(rule, tuple):
            check, sub = rule
            if not check(value):
                return f"{where}{name} {_short(value)} is not an object"
            if value is None:
                continue
            if sub == "uint-values":
                bad = next((k for k, x in value.items() if not _is_uint(x)), None)
                if bad is not None:
                    return (f"{where}{name}.{bad} {_short(value[bad])} is not "
                            f"{_EXPECTED[UINT]}")
            else:
                problem = _check(value, sub, f"{where}{name}.")
                if problem:
                    return problem
        elif not rule(value):
            return f"{where}{name} {_short(value)} is not {_EXPECTED.get(rule, 'valid')}"
    return None


def check_event(event: Any) -> str | None:
    """What is wrong with ``event`` (a decoded JSON value), or None when it is well-typed.

    >>> check_event({"v": 1, "kind": "step", "step": 3, "loss": "NaN"}) is None
    True
    >>> check_event({"v": 1, "kind": "step", "step": "x"})
    "step event: step 'x' is not a whole number in [0, 2**63)"
    >>> check_event({"v": 1, "kind": "header", "plan": "big"})
    "header event: plan 'big' is not an object"
    >>> check_event([1, 2])
    'not a JSON object'
    """
    if not isinstance(event, dict):
        return "not a JSON object"
    kind = event.get("kind")
    if kind not in KINDS:
        return f"kind {_short(kind)} is not one of {', '.join(KINDS)}"
    return _check(event, _COMMON, f"{kind} event: ") or _check(event, SPECS[kind],
                                                                 f"{kind} event: ")
