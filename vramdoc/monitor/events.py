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

from collections.abc import Mapping
from typing import Any

from vramdoc.monitor.schema import KINDS

MAX_INT = 2**63
MAX_TEXT = 100_000  # characters in one string field (a traceback fits; a runaway does not)

# Field kinds (every field may also be null). Checked by type() in one function, since this
# runs on every line of a log that may hold millions.
UINT = "a whole number in [0, 2**63)"
INT = "a whole number"
NUMBER = "a number"
TEXT = "a string"
BOOL = "true or false"
DICT = "an object"
_NONFINITE = frozenset(("NaN", "Infinity", "-Infinity"))


def _is_uint(v: Any) -> bool:
    return type(v) is int and 0 <= v < MAX_INT


def _ok(kind: str, v: Any) -> bool:
    t = type(v)
    if kind is NUMBER:  # a float as the recorder writes it: a number or a non-finite string
        return t is float or (t is int and -MAX_INT < v < MAX_INT) or (
            t is str and v in _NONFINITE)
    if kind is UINT:
        return t is int and 0 <= v < MAX_INT
    if kind is TEXT:
        return t is str and len(v) <= MAX_TEXT
    if kind is BOOL:
        return t is bool
    if kind is DICT:
        return t is dict
    return t is int and -MAX_INT < v < MAX_INT  # INT


# field -> kind; nested objects map to (DICT, the spec of their fields or "uint-values")
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
        value = obj.get(name)
        if value is None:
            continue
        if isinstance(rule, tuple):
            _, sub = rule
            if type(value) is not dict:
                return f"{where}{name} {_short(value)} is not an object"
            if sub == "uint-values":
                bad = next((k for k, x in value.items() if not _is_uint(x)), None)
                if bad is not None:
                    return f"{where}{name}.{bad} {_short(value[bad])} is not {UINT}"
            else:
                problem = _check(value, sub, f"{where}{name}.")
                if problem:
                    return problem
        elif not _ok(rule, value):
            return f"{where}{name} {_short(value)} is not {rule}"
    return None


_STEP_FLOATS = ("epoch", "loss", "grad_norm", "lr", "loss_scale", "step_time_s", "tokens_per_s",
                "samples_per_s", "time")
_STEP_UINTS = ("step", "skipped_total", "tokens", "samples")
_STEP_BOOLS = ("skipped", "interrupted")
_MEM_KEYS = tuple(_MEM)


def _plain_step(ev: dict[str, Any]) -> bool:
    """True for a step event of the usual shape that :func:`_check` would pass.

    The recorder's own lines (floats as floats, counts as ints, ``mem`` of ints, ``gpu`` as
    written) are checked here in one pass; anything else (a non-finite string, an odd type,
    ``extra``) returns False and goes through :func:`_check`, which finds and names the problem.
    """
    get = ev.get
    for key in _STEP_FLOATS:
        t = type(get(key))
        if t is not float and t is not type(None):
            return False
    for key in _STEP_UINTS:
        v = get(key)
        if v is not None and not (type(v) is int and 0 <= v < MAX_INT):
            return False
    for key in _STEP_BOOLS:
        t = type(get(key))
        if t is not bool and t is not type(None):
            return False
    session = get("session")
    if session is not None and not (type(session) is str and len(session) <= MAX_TEXT):
        return False
    if get("extra") is not None:
        return False
    mem = get("mem")
    if mem is not None:
        if type(mem) is not dict:
            return False
        for key in _MEM_KEYS:
            v = mem.get(key)
            if v is not None and not (type(v) is int and 0 <= v < MAX_INT):
                return False
    gpu = get("gpu")
    return gpu is None or (type(gpu) is dict and _check(gpu, _GPU, "") is None)


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
    if kind == "step" and _plain_step(event):
        return None
    if kind not in KINDS:
        return f"kind {_short(kind)} is not one of {', '.join(KINDS)}"
    return _check(event, _COMMON, f"{kind} event: ") or _check(event, SPECS[kind],
                                                                 f"{kind} event: ")
