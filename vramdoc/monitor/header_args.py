"""The TrainingArguments a session's header carries, checked once before the alerts read them.

:func:`vramdoc.monitor.events.check_event` lets a header's ``max_grad_norm`` be a non-finite
string (``"NaN"``), as it lets every float field be; a tracker source turns MLflow params or
W&B config text back into values (``coerce_arg``) and may carry any type. The alerts and the
curve rules read these arguments at every step, so one value of the wrong kind would raise at
every step and no alert would ever fire. :func:`clean_args` replaces such a value with
TrainingArguments' default (or with "not recorded" where there is no default worth assuming)
and says so; the watch prints it on its ``file`` line.
"""

from __future__ import annotations

import math
from typing import Any

_NUMBER = "a finite number"
_WHOLE = "a whole number"
_TEXT = "a string"
_BOOL = "true or false"

# name -> (kind, value used instead of a bad one). Defaults are TrainingArguments' own
# (transformers 5.24, training_args.py: max_grad_norm=1.0, warmup_steps=0,
# lr_scheduler_type="linear", fp16=bf16=False, logging_nan_inf_filter=True); None where the
# default depends on the run (max_steps=-1 means "from the epochs") and the value is dropped.
_ARGS: dict[str, tuple[str, Any]] = {
    "max_grad_norm": (_NUMBER, 1.0),
    "warmup_steps": (_NUMBER, 0),
    "learning_rate": (_NUMBER, None),
    "num_train_epochs": (_NUMBER, None),
    "max_steps": (_WHOLE, None),
    "save_steps": (_NUMBER, None),
    "eval_steps": (_NUMBER, None),
    "logging_steps": (_NUMBER, None),
    "gradient_accumulation_steps": (_WHOLE, None),
    "per_device_train_batch_size": (_WHOLE, None),
    "lr_scheduler_type": (_TEXT, "linear"),
    "optim": (_TEXT, None),
    "metric_for_best_model": (_TEXT, None),
    "fp16": (_BOOL, False),
    "bf16": (_BOOL, False),
    "logging_nan_inf_filter": (_BOOL, True),
    "load_best_model_at_end": (_BOOL, False),
}


def _fits(kind: str, v: Any) -> bool:
    if kind == _BOOL:
        return type(v) is bool
    if kind == _TEXT:
        return isinstance(v, str)
    if isinstance(v, bool) or not isinstance(v, int | float):
        return False
    if kind == _WHOLE:
        return isinstance(v, int) or (math.isfinite(v) and v == int(v))
    return math.isfinite(v)


def _short(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 40 else text[:37] + "..."


def clean_args(args: Any) -> tuple[dict[str, Any], list[str]]:
    """``args`` with every known argument of the wrong kind replaced, and what was replaced.

    >>> clean, problems = clean_args({"max_grad_norm": "NaN", "fp16": True})
    >>> clean
    {'max_grad_norm': 1.0, 'fp16': True}
    >>> problems[0][:60]
    "header args.max_grad_norm 'NaN' is not a finite number: read"
    >>> clean_args({"max_grad_norm": 0.3})
    ({'max_grad_norm': 0.3}, [])
    >>> clean_args([1, 2])[1]
    ['header args [1, 2] is not an object: arguments not read']
    """
    if args is None:
        return {}, []
    if not isinstance(args, dict):
        return {}, [f"header args {_short(args)} is not an object: arguments not read"]
    out = dict(args)
    problems = []
    for name, (kind, default) in _ARGS.items():
        value = out.get(name)
        if value is None or _fits(kind, value):
            continue
        if default is None:
            del out[name]
            then = "not used"
        else:
            out[name] = default
            then = f"read as {default!r} (TrainingArguments' default)"
        problems.append(f"header args.{name} {_short(value)} is not {kind}: {then}")
    return out, problems
