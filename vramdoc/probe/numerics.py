"""Numerics watch: what a real step's values do, module by module (cpu and cuda devices).

Forward hooks record each module's output absolute maximum (one reduction, no full-size
temporary: ``linalg.vector_norm(ord=inf)`` is NaN when the output holds a NaN and inf when it
holds an inf), collected without a host sync until the step ends. From them: the first module
whose output went non-finite (hooks fire in execution order, innermost first) and the modules
whose outputs approach fp16's largest finite value, 65504 (IEEE 754 binary16). After backward:
non-finite gradients by parameter group; after the optimizer: non-finite parameters. The
tracker is paused inside the hooks so the doctor's own scalars never count as training memory.
"""

from __future__ import annotations

import contextlib
import math
import re
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils._pytree import tree_flatten

FP16_MAX = 65504.0  # largest finite IEEE 754 binary16 value
_LAYER_INDEX = re.compile(r"\.(\d+)\.")
_SKIP = (nn.ModuleList, nn.ModuleDict, nn.Dropout, nn.Identity)


def group_name(param_name: str) -> str:
    """``base_model.model.model.layers.3.self_attn.q_proj.lora_A.default.weight`` ->
    ``layers.{i}.self_attn.q_proj.lora_A.weight``: one group per role across layers."""
    name = param_name
    for prefix in ("base_model.model.", "model.model.", "model."):
        if name.startswith(prefix):
            name = name[len(prefix):]
            break
    name = name.replace(".default.", ".")
    return _LAYER_INDEX.sub(".{i}.", name)


@dataclass
class StepNumerics:
    """What one optimizer step's values did."""

    step: int
    loss: float | None = None
    grad_norm: float | None = None
    lr: float | None = None
    scale_before: float | None = None
    scale_after: float | None = None
    skipped: bool = False
    first_nonfinite_module: str | None = None
    first_nonfinite_value: float | None = None  # nan or +-inf
    module_absmax: dict[str, float] = field(default_factory=dict)
    module_dtype: dict[str, str] = field(default_factory=dict)
    nonfinite_grad_params: list[str] = field(default_factory=list)
    nonfinite_params_after: list[str] = field(default_factory=list)


class NumericsWatch:
    """Hooks on every module of ``model``; call the step methods from the recipe."""

    def __init__(self, model: nn.Module, pause: Any = None) -> None:
        self.model = model
        self._pause = pause or contextlib.nullcontext
        self.active = False
        self._pending: list[tuple[str, torch.Tensor, torch.dtype]] = []
        self.steps: list[StepNumerics] = []
        self._handles = []
        for name, mod in model.named_modules():
            if not name or isinstance(mod, _SKIP):
                continue
            self._handles.append(mod.register_forward_hook(self._hook(name)))

    def close(self) -> None:
        for h in self._handles:
            h.remove()

    def _hook(self, name: str) -> Any:
        def hook(module: nn.Module, args: Any, output: Any) -> None:
            if not self.active:
                return
            tensors = [t for t in tree_flatten(output)[0]
                       if isinstance(t, torch.Tensor) and t.is_floating_point() and t.numel()]
            if not tensors:
                return
            with self._pause(), torch.no_grad(), torch.autocast(tensors[0].device.type,
                                                               enabled=False):
                amax = torch.stack([torch.linalg.vector_norm(t.detach(), float("inf")).float()
                                    for t in tensors]).max()
            self._pending.append((name, amax, tensors[0].dtype))
        return hook

    # --- per step ------------------------------------------------------------------------
    def begin_forward(self, step: int) -> StepNumerics:
        if not self.steps or self.steps[-1].step != step:
            self.steps.append(StepNumerics(step))
        self.active = True
        return self.steps[-1]

    def end_forward(self, loss: torch.Tensor | None) -> None:
        self.active = False
        rec = self.steps[-1]
        with self._pause(), torch.no_grad():
            if self._pending:
                values = torch.stack([a for _, a, _ in self._pending]).cpu().tolist()
                for (name, _, dtype), v in zip(self._pending, values, strict=True):
                    old = rec.module_absmax.get(name)
                    if old is None or not math.isfinite(v) or (math.isfinite(old) and v > old):
                        rec.module_absmax[name] = v
                    rec.module_dtype[name] = str(dtype).replace("torch.", "")
                    if not math.isfinite(v) and rec.first_nonfinite_module is None:
                        rec.first_nonfinite_module, rec.first_nonfinite_value = name, v
            if loss is not None:
                value = float(loss.detach().float().cpu())
                rec.loss = value if rec.loss is None else rec.loss + value
        self._pending.clear()

    def check_gradients(self, model: nn.Module) -> None:
        rec = self.steps[-1]
        with self._pause(), torch.no_grad():
            named = [(n, p.grad) for n, p in model.named_parameters()
                     if p.requires_grad and p.grad is not None]
            if not named:
                return
            norms = torch.stack([torch.linalg.vector_norm(g, float("inf")).float()
                                 for _, g in named]).cpu().tolist()
        rec.nonfinite_grad_params = [n for (n, _), v in zip(named, norms, strict=True)
                                     if not math.isfinite(v)]

    def check_parameters(self, model: nn.Module) -> None:
        rec = self.steps[-1]
        with self._pause(), torch.no_grad():
            named = [(n, p) for n, p in model.named_parameters()
                     if p.requires_grad and p.is_floating_point()]
            if not named:
                return
            values = torch.stack([torch.linalg.vector_norm(p.detach(), float("inf")).float()
                                  for _, p in named]).cpu().tolist()
        rec.nonfinite_params_after = [n for (n, _), v in zip(named, values, strict=True)
                                      if not math.isfinite(v)]
