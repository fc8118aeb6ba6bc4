"""The optimizer and LR schedule Trainer would build for a setup, and how its state is counted.

Trainer's own code picks the class and keywords (``Trainer.get_optimizer_cls_and_kwargs``) and
the two parameter groups (``get_decay_parameter_names``: no weight decay on biases and norms),
so the probe runs the optimizer a Trainer run would run. Both are called through the modules
they are built from (``transformers/trainer_optimizer.py``, ``trainer_pt_utils.py``), not through
``transformers.trainer``, whose import (datasets, pandas, pyarrow, callbacks) a probe never uses.

On a CUDA GPU torch's optimizers default to their multi-tensor (``foreach``) implementation
(``torch/optim/optimizer.py::_default_to_fused_or_foreach``: foreach for CUDA tensors, the
per-tensor loop on CPU). On cpu and fake devices the probe asks for ``foreach=True`` so the
traced temporaries are the ones a GPU step allocates (CPU runs the same foreach ops through
torch's slow path, which allocates the same output lists).
"""

from __future__ import annotations

import contextlib
import inspect
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from vramdoc.errors import UsageError
from vramdoc.setup import TrainSetup

# bitsandbytes pages a state buffer (CUDA unified memory) only for tensors of at least 1e5
# elements (bitsandbytes/optim/optimizer.py, Optimizer8bit.get_state_buffer).
BNB_PAGED_MIN_NUMEL = 100_000
_BNB_PAGED_KEYS = ("state1", "state2")


@dataclass
class OptimizerRun:
    """The optimizer, its LR schedule, and facts the report needs."""

    optimizer: torch.optim.Optimizer
    scheduler: Any
    name: str
    paged: bool
    device_step: bool  # torch keeps ``state["step"]`` on the device (fused / capturable)
    notes: list[str] = field(default_factory=list)

    def state_roles(self) -> list[tuple[torch.Tensor, str]]:
        """Every optimizer state tensor with the role it plays in GPU memory."""
        out: list[tuple[torch.Tensor, str]] = []
        for p, st in self.optimizer.state.items():
            for key, v in st.items():
                if not isinstance(v, torch.Tensor):
                    continue
                if key == "step" and not self.device_step:
                    out.append((v, "host"))
                elif self.paged and key in _BNB_PAGED_KEYS and p.numel() >= BNB_PAGED_MIN_NUMEL:
                    out.append((v, "paged"))
                else:
                    out.append((v, "optimizer_states"))
        return out


def _training_args(setup: TrainSetup) -> Any:
    from transformers import TrainingArguments

    t = setup.training
    extra = dict(t.extra)
    keep = {k: extra[k] for k in ("adam_beta1", "adam_beta2", "adam_epsilon", "optim_args")
            if k in extra}
    return TrainingArguments(output_dir=tempfile.gettempdir(), optim=t.optim,
                             learning_rate=t.learning_rate, weight_decay=t.weight_decay,
                             use_cpu=True, report_to="none", **keep)


# transformers/trainer.py, Trainer.get_decay_parameter_names: the parameter names matching
# these patterns (or inside an nn.LayerNorm) get no weight decay.
_NO_DECAY_PATTERNS = [r"bias", r"layernorm", r"rmsnorm", r"(?:^|\.)norm(?:$|\.)", r"_norm(?:$|\.)"]


def decay_parameter_names(model: nn.Module) -> list[str]:
    """``Trainer.get_decay_parameter_names(model)``: its body, run without importing
    ``transformers.trainer`` (tests/probe/test_build_optim.py checks both agree)."""
    try:
        from transformers.trainer_pt_utils import get_parameter_names
    except ImportError:  # pragma: no cover - a transformers without the split-out helpers
        from transformers import Trainer

        return list(Trainer.get_decay_parameter_names(None, model))  # type: ignore[arg-type]
    return list(get_parameter_names(model, [nn.LayerNorm], _NO_DECAY_PATTERNS))


def optimizer_cls_and_kwargs(args: Any, model: nn.Module) -> tuple[Any, Any]:
    """``Trainer.get_optimizer_cls_and_kwargs(args, model)``: its body (transformers/trainer.py
    calls the ``args.optim`` handler of ``trainer_optimizer._OPTIMIZER_HANDLERS`` with this
    context), run without importing ``transformers.trainer`` (tests/probe/test_build_optim.py
    checks both agree)."""
    try:
        from transformers.trainer_optimizer import (
            _OPTIMIZER_HANDLERS,
            OptimizerContext,
            _parse_optim_args,
        )
    except ImportError:  # pragma: no cover - a transformers that keeps them in trainer.py
        from transformers import Trainer

        return Trainer.get_optimizer_cls_and_kwargs(args, model)  # type: ignore[no-any-return]
    ctx = OptimizerContext(
        args=args, model=model, optimizer_kwargs={"lr": args.learning_rate},
        adam_kwargs={"betas": (args.adam_beta1, args.adam_beta2), "eps": args.adam_epsilon},
        optim_args=_parse_optim_args(args.optim_args))
    handler = _OPTIMIZER_HANDLERS.get(args.optim)
    if handler is None:
        raise ValueError(f"Trainer cannot instantiate unsupported optimizer: {args.optim}")
    return handler(ctx)  # type: ignore[no-any-return]


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Trainer.create_optimizer's two groups (decay / no decay), trainable parameters only."""
    decay = set(decay_parameter_names(model))
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    return [
        {"params": [p for n, p in named if n in decay], "weight_decay": weight_decay},
        {"params": [p for n, p in named if n not in decay], "weight_decay": 0.0},
    ]


def total_steps(setup: TrainSetup, probe_steps: int) -> int:
    """The schedule's length: the run's ``max_steps`` when the setup gives it, else the probe's."""
    max_steps = dict(setup.training.extra).get("max_steps")
    if isinstance(max_steps, int) and max_steps > 0:
        return max(max_steps, probe_steps)
    return probe_steps


@contextlib.contextmanager
def _constants_outside_fake() -> Iterator[None]:
    """Build bitsandbytes' quantization maps with real values under FakeTensorMode.

    ``Optimizer8bit.__init__`` computes its 256-entry maps with Python reads of tensor values
    (``functional.create_dynamic_map``), which fake tensors cannot answer; the map is built on
    real tensors and a fake tensor of its shape stands in for it.
    """
    import bitsandbytes.functional as F
    from torch._subclasses.fake_tensor import unset_fake_temporarily

    original = F.create_dynamic_map

    def create_dynamic_map(*args: Any, **kwargs: Any) -> torch.Tensor:
        with unset_fake_temporarily():
            real = original(*args, **kwargs)
        return torch.empty(real.shape, dtype=real.dtype)

    F.create_dynamic_map = create_dynamic_map
    try:
        yield
    finally:
        F.create_dynamic_map = original


def build_optimizer(model: nn.Module, setup: TrainSetup, *, emulate_cuda: bool,
                    probe_steps: int, fake: bool = False) -> OptimizerRun:
    """Trainer's optimizer and scheduler for ``setup`` over ``model``'s trainable parameters."""
    from transformers.optimization import get_scheduler

    t = setup.training
    try:
        cls, kwargs = optimizer_cls_and_kwargs(_training_args(setup), model)
    except ImportError as exc:
        raise UsageError(f"optim {t.optim!r} cannot be built here: {exc}".splitlines()[0],
                         "install the package it names, or probe with another optim") from None
    kwargs = dict(kwargs)
    notes: list[str] = []
    sig = inspect.signature(cls.__init__).parameters
    fused = bool(kwargs.get("fused"))
    if emulate_cuda and "foreach" in sig and not fused and kwargs.get("foreach") is None:
        kwargs["foreach"] = True
        notes.append(f"{cls.__name__} runs its foreach (multi-tensor) path, as on a CUDA GPU")
    groups = param_groups(model, t.weight_decay)
    groups = [g for g in groups if g["params"]]
    if not groups:
        raise UsageError("the model has no trainable parameters",
                         "add a lora section, or train the full model without quantization")
    bnb_fake = fake and cls.__module__.startswith("bitsandbytes")
    with _constants_outside_fake() if bnb_fake else contextlib.nullcontext():
        optimizer = cls(groups, **kwargs)
    paged = bool(kwargs.get("is_paged"))
    if paged and emulate_cuda:
        notes.append("paged optimizer state lives in CUDA unified memory: reported apart, "
                     "not in allocated (it runs unpaged here)")
    device_step = fused or bool(kwargs.get("capturable"))
    n_total = total_steps(setup, probe_steps)
    warmup = t.warmup_steps
    n_warmup = int(warmup) if warmup >= 1 else int(round(warmup * n_total))
    scheduler = get_scheduler(t.lr_scheduler_type, optimizer, num_warmup_steps=n_warmup,
                              num_training_steps=n_total)
    return OptimizerRun(optimizer, scheduler, t.optim, paged, device_step, notes)
