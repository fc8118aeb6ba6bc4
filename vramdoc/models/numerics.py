"""Per-architecture numerics facts (shipped data, each with its source).

``vramdoc/data/numerics.json`` lists the model types whose activations exceed fp16's range
(65504): Gemma 3 and T5 overflow ('overflows'), Gemma and Gemma 2 were trained in bf16 and fp16
runs have been reported to turn NaN ('risky'). Plan rules H119 / H120 read it as
``fp16_overflow``.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any


@cache
def _table() -> dict[str, dict[str, str]]:
    text = resources.files("vramdoc.data").joinpath("numerics.json").read_text()
    data: dict[str, Any] = json.loads(text)
    return dict(data["fp16_overflow"])


def fp16_overflow(model_type: str) -> str | None:
    """'overflows', 'risky' or None (nothing known) for a config.json model_type."""
    entry = _table().get(model_type)
    return entry["level"] if entry else None


def fp16_overflow_source(model_type: str) -> str | None:
    """Where the fact for ``model_type`` comes from."""
    entry = _table().get(model_type)
    return entry["source"] if entry else None
