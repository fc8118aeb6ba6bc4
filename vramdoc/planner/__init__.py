"""The planner: search the setups that fit a GPU, rank them, explain them with rules.

>>> from vramdoc.planner import PlanRequest, plan          # doctest: +SKIP
>>> result = plan(PlanRequest(model="llama-2-7b", gpu=resolve_gpu("6GB")))  # doctest: +SKIP
>>> result.best.label                                       # doctest: +SKIP
'QLoRA NF4 r16 all-linear · fp16+fp16 AMP · sdpa · ckpt · paged_adamw_8bit · 1x16 · seq 512'
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vramdoc.planner.search import (
        Plan,
        PlanRequest,
        PlanResult,
        SearchStats,
        default_margin,
        describe,
        plan,
    )

__all__ = ["Plan", "PlanRequest", "PlanResult", "SearchStats", "default_margin", "describe",
           "plan"]


def __getattr__(name: str) -> Any:
    # the search is imported on first use: `vramdoc estimate` and `vramdoc doctor` read
    # vramdoc.planner.context without paying for the search module (PEP 562)
    if name in __all__:
        from vramdoc.planner import search

        return getattr(search, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
