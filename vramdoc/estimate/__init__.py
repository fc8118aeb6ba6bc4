"""The analytical memory model: pure Python, no torch.

>>> from vramdoc.estimate import estimate           # doctest: +SKIP
>>> est = estimate(setup)                            # doctest: +SKIP
>>> est.peak_allocated_bytes, est.peak_phase         # doctest: +SKIP

``estimate(setup, model=None, gpu=None)`` resolves the model (catalog name, repo id or
config.json) and the GPU when they are not given, then returns a ``MemoryEstimate``: bytes per
component (weights, quant_state, adapters, gradients, optimizer_states,
optimizer_temporaries, activations, logits) for each phase of a step (load, forward,
backward, optimizer_step), the peak, and three views (allocated, reserved, device).
"""

from __future__ import annotations

from typing import Any

from vramdoc.estimate.core import COMPONENTS, PHASES, MemoryEstimate, build_estimate
from vramdoc.setup import TrainSetup

__all__ = ["COMPONENTS", "PHASES", "MemoryEstimate", "estimate"]


def estimate(setup: TrainSetup, model: Any = None, gpu: Any = None,
             host_limit: int | None = None) -> MemoryEstimate:
    """Estimate the memory of one training step of ``setup``.

    Args:
        setup: the run, as read from a setup file or CLI flags.
        model: a ``ModelSpec``; resolved from ``setup.model`` when None.
        gpu: a ``GpuSpec``; resolved from ``setup.gpu`` when None and the setup names one.
        host_limit: host RAM per node in bytes (``--host-ram``), to judge the host view.

    Raises:
        UnknownModelError, UnknownGpuError: the model or GPU is not known.
    """
    from vramdoc.models import param_groups, resolve_model

    spec = model if model is not None else resolve_model(setup.model)
    if gpu is None and setup.gpu:
        from vramdoc.hardware import resolve_gpu

        gpu = resolve_gpu(setup.gpu)
    notes: tuple[str, ...] = ()
    supported = getattr(spec, "attn_implementations", ())
    if supported and setup.attn_implementation not in supported:
        # transformers picks the first implementation the model supports when none is given,
        # and raises for an explicit unsupported one
        fallback = "sdpa" if "sdpa" in supported else supported[0]
        notes = (f"{spec.name} does not support attn_implementation="
                 f"'{setup.attn_implementation}' in transformers 5 (it accepts "
                 f"{', '.join(supported)}); estimated with '{fallback}'",)
        setup = setup.replace(attn_implementation=fallback)
    if setup.task == "auto":
        from vramdoc.models import default_task

        setup = setup.replace(task=default_task(spec))
    groups = param_groups(spec, task=setup.task, num_labels=setup.num_labels)
    est = build_estimate(setup, spec, groups, gpu, host_limit=host_limit)
    if notes:
        from dataclasses import replace

        est = replace(est, notes=notes + est.notes)
    return est
