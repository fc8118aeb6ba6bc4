"""Model architectures: ModelSpec, the exact parameter inventory, the offline catalog.

Pure Python (no torch / transformers at import time). See CONTRACTS.md for the interface::

    from vramdoc.models import ModelSpec, ParamGroup, resolve_model, catalog, param_groups
    spec = resolve_model("llama-2-7b")
    groups = param_groups(spec)                       # task=None: the model's default task
    groups = param_groups(spec, task="sequence-classification", num_labels=2)
"""

from __future__ import annotations

from vramdoc.models._catalog import catalog, catalog_entries
from vramdoc.models.inventory import (
    CAUSAL_LM,
    SEQUENCE_CLASSIFICATION,
    SUPPORTED_MODEL_TYPES,
    TASKS,
    default_task,
    param_groups,
    spec_from_config,
)
from vramdoc.models.resolve import resolve_model
from vramdoc.models.spec import (
    EMBEDDING,
    EXPERTS,
    HEAD,
    LINEAR,
    NORM,
    OTHER,
    ROUTER,
    ModelSpec,
    ParamGroup,
)

__all__ = [
    "CAUSAL_LM", "EMBEDDING", "EXPERTS", "HEAD", "LINEAR", "NORM", "OTHER", "ROUTER",
    "SEQUENCE_CLASSIFICATION", "SUPPORTED_MODEL_TYPES", "TASKS", "ModelSpec", "ParamGroup",
    "catalog", "catalog_entries", "default_task", "param_groups", "resolve_model",
    "spec_from_config",
]
