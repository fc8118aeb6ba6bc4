"""When nothing fits: what would (a larger catalog GPU, a shorter sequence, more GPUs)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from vramdoc.units import format_bytes

if TYPE_CHECKING:
    from vramdoc.planner.search import Plan, _Search


def _larger_gpu(search: _Search, closest: Plan) -> str | None:
    from vramdoc.estimate.core import build_estimate
    from vramdoc.hardware import gpu_catalog
    from vramdoc.planner.search import default_margin

    need = closest.estimate.device_bytes
    bigger = sorted((g for g in gpu_catalog() if g.memory_bytes > search.gpu.memory_bytes
                     and not g.assumed), key=lambda g: (g.memory_bytes, -g.release_year))
    for g in bigger:
        if g.memory_bytes - default_margin(g.memory_bytes) < need * 0.9:
            continue  # cheap skip; the CUDA context differs a little by generation
        est = build_estimate(closest.setup, search.spec, search.groups, g)
        spare = g.memory_bytes - default_margin(g.memory_bytes) - est.device_bytes
        if spare >= 0:
            return (f"a larger GPU: {g.name} ({format_bytes(g.memory_bytes)}) fits the closest "
                    f"plan with {format_bytes(spare)} to spare (vramdoc plan --gpu {g.name})")
    return None


def _shorter_seq(search: _Search, closest: Plan) -> str | None:
    from vramdoc.estimate.core import build_estimate

    setup = closest.setup
    seq = setup.max_seq_length // 2
    while seq >= 128:
        s2 = setup.replace(max_seq_length=seq)
        est = build_estimate(s2, search.spec, search.groups, search.gpu)
        if est.device_bytes <= search.budget:
            return (f"a shorter sequence: max_seq_length {seq} fits the closest plan "
                    f"(--seq-len {seq}, or --allow-shorter-seq to let the planner choose)")
        seq //= 2
    return None


def _more_gpus(search: _Search, closest: Plan) -> str | None:
    from vramdoc.planner.parallel import fewest_gpus

    return fewest_gpus(search, closest, start=2 * max(closest.setup.num_gpus, 1))


def what_would_fit(search: _Search, closest: Plan) -> list[str]:
    """Suggestions, each a sentence; empty when none of them helps."""
    out: list[Any] = [_larger_gpu(search, closest)]
    if not search.req.allow_shorter_seq:
        out.append(_shorter_seq(search, closest))
    out.append(_more_gpus(search, closest))
    return [s for s in out if s]
