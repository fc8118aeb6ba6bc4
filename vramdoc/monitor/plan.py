"""What the recorder stores of a plan or an estimate, and how it reads one.

The watch compares measured memory with the estimate the run was planned with. It accepts the
``vramdoc estimate --json`` object (``MemoryEstimate.to_json()``), a ``vramdoc plan --json``
document that holds one (the first object with ``peak_allocated_bytes`` found, breadth-first),
a path to either, or a :class:`vramdoc.setup.TrainSetup` / setup file to estimate from. It keeps
only what the watch reads, so the header stays small and independent of the estimator's
internals.
"""

from __future__ import annotations

import json
from collections import deque
from pathlib import Path
from typing import Any

from vramdoc.errors import UsageError

# Keys of the estimate the watch reads (CONTRACTS.md, "Estimator").
_INT_KEYS = ("peak_allocated_bytes", "peak_reserved_bytes", "device_bytes",
             "cuda_context_bytes", "paged_bytes", "headroom_bytes")


def _find_estimate(doc: Any) -> dict[str, Any] | None:
    queue: deque[Any] = deque([doc])
    while queue:
        item = queue.popleft()
        if isinstance(item, dict):
            if isinstance(item.get("peak_allocated_bytes"), int | float):
                return item
            queue.extend(item.values())
        elif isinstance(item, list):
            queue.extend(item)
    return None


def _gpu_fields(gpu: Any) -> tuple[str | None, int | None]:
    if isinstance(gpu, dict):
        name = gpu.get("name")
        mem = gpu.get("memory_bytes")
        return (str(name) if name else None, int(mem) if isinstance(mem, int | float) else None)
    if isinstance(gpu, str):
        return gpu, None
    return None, None


def _method(est: dict[str, Any]) -> str | None:
    """The estimate's method: given by a plan entry, else read from its setup mapping."""
    if isinstance(est.get("method"), str):
        return str(est["method"])
    setup = est.get("setup")
    if not isinstance(setup, dict):
        return None
    if not setup.get("lora"):
        return "full"
    q = setup.get("quantization")
    if not isinstance(q, dict) or not q:
        return "lora"
    if q.get("quant_method") in ("gptq", "awq"):
        return f"{q['quant_method']}-lora"
    return "qlora-int8" if q.get("load_in_8bit") else "qlora"


def normalize_plan(doc: Any, source: str = "") -> dict[str, Any] | None:
    """Reduce an estimate or plan document to the figures the watch shows.

    Returns None when ``doc`` holds no estimate. Sizes stay int bytes; components are the
    estimator's names (weights, quant_state, adapters, gradients, optimizer_states,
    optimizer_temporaries, activations, logits) at the peak phase.

    >>> p = normalize_plan({"peak_allocated_bytes": 10, "components": {"weights": 6, "x": 4},
    ...                     "gpu": {"name": "T4", "memory_bytes": 16}})
    >>> p["peak_allocated_bytes"], p["components"], p["gpu_name"], p["gpu_memory_bytes"]
    (10, {'weights': 6, 'x': 4}, 'T4', 16)
    """
    est = _find_estimate(doc)
    if est is None:
        return None
    out: dict[str, Any] = {"source": source}
    for key in _INT_KEYS:
        value = est.get(key)
        out[key] = int(value) if isinstance(value, int | float) else None
    comps = est.get("components")
    out["components"] = ({str(k): int(v) for k, v in comps.items() if isinstance(v, int | float)}
                         if isinstance(comps, dict) else {})
    phases = est.get("phases")
    out["phases"] = ({str(k): int(v) for k, v in phases.items() if isinstance(v, int | float)}
                     if isinstance(phases, dict) else {})
    out["peak_phase"] = est.get("peak_phase") if isinstance(est.get("peak_phase"), str) else None
    out["fits"] = est.get("fits") if isinstance(est.get("fits"), bool) else None
    gpu_name, gpu_mem = _gpu_fields(est.get("gpu"))
    if gpu_mem is None and isinstance(doc, dict):  # a plan document names the GPU once, on top
        top_name, top_mem = _gpu_fields(doc.get("gpu"))
        gpu_name, gpu_mem = gpu_name or top_name, top_mem
    out["gpu_name"] = gpu_name
    out["gpu_memory_bytes"] = gpu_mem
    out["method"] = _method(est)
    setup = est.get("setup")
    model = est.get("model") or (setup.get("model") if isinstance(setup, dict) else None)
    if model is None and isinstance(doc, dict):
        model = doc.get("model")
    out["model"] = model if isinstance(model, str) else None
    out["label"] = est.get("label") if isinstance(est.get("label"), str) else None
    return out


def load_plan(plan: Any) -> dict[str, Any] | None:
    """Read a plan given as None, a mapping, or a path to a JSON file.

    Raises:
        UsageError: the path does not exist, is not JSON, or holds no estimate.
    """
    if plan is None:
        return None
    if isinstance(plan, dict):
        out = normalize_plan(plan, source="dict")
        if out is None:
            raise UsageError("the plan mapping holds no estimate (no peak_allocated_bytes)",
                             "pass the object `vramdoc estimate --json` prints")
        return out
    if hasattr(plan, "to_json") and callable(plan.to_json):  # a MemoryEstimate
        return normalize_plan(plan.to_json(), source="MemoryEstimate")
    path = Path(plan)
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise UsageError(f"plan file {path} does not exist",
                         "write it with `vramdoc estimate ... --json > plan.json`") from exc
    except (OSError, ValueError) as exc:
        raise UsageError(f"plan file {path} is not readable JSON: {exc}",
                         "write it with `vramdoc estimate ... --json > plan.json`") from exc
    out = normalize_plan(doc, source=str(path))
    if out is None:
        raise UsageError(f"plan file {path} holds no estimate (no peak_allocated_bytes)",
                         "write it with `vramdoc estimate ... --json > plan.json`")
    return out


def plan_from_setup(setup: Any) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """Estimate from a setup (TrainSetup, mapping or setup-file path): (setup mapping, plan).

    The estimator is optional here: if it is missing or fails, the plan is None and the
    caller records the setup alone.
    """
    from vramdoc import setup as setup_mod

    if isinstance(setup, setup_mod.TrainSetup):
        ts = setup
    elif isinstance(setup, dict):
        ts = setup_mod.setup_from_mapping(setup, source="setup")
    else:
        ts = setup_mod.load_setup_file(setup)
    mapping = setup_mod.setup_to_mapping(ts)
    try:
        from vramdoc.estimate import estimate
    except ImportError:
        return mapping, None
    est = estimate(ts)
    return mapping, normalize_plan(est.to_json(), source="vramdoc.estimate")
