"""What a probe measured, as plain data (no torch): the report and ``--json`` read only this."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class MemoryView:
    """Bytes per phase and per component; the same shape for measured and estimated."""

    peak_allocated_bytes: int
    peak_phase: str
    phases: dict[str, int]  # allocated bytes at each phase's peak
    components: dict[str, int]  # at the peak phase; sums to peak_allocated_bytes
    phase_components: dict[str, dict[str, int]]
    paged_bytes: int = 0
    peak_reserved_bytes: int | None = None
    device_bytes: int | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "peak_allocated_bytes": self.peak_allocated_bytes,
            "peak_phase": self.peak_phase,
            "phases": dict(self.phases),
            "components": dict(self.components),
            "phase_components": {p: dict(c) for p, c in self.phase_components.items()},
            "paged_bytes": self.paged_bytes,
        }
        if self.peak_reserved_bytes is not None:
            out["peak_reserved_bytes"] = self.peak_reserved_bytes
        if self.device_bytes is not None:
            out["device_bytes"] = self.device_bytes
        return out


@dataclass(frozen=True)
class OomEvent:
    """An out-of-memory error, real (cuda) or emulated (cpu/fake with a GPU limit)."""

    phase: str
    step: int
    allocated_bytes: int  # live when the failing request came
    request_bytes: int
    limit_bytes: int
    emulated: bool
    components: dict[str, int]


@dataclass(frozen=True)
class StepRecord:
    """One optimizer step as the doctor sees it."""

    step: int
    loss: float | None
    grad_norm: float | None
    lr: float | None
    seconds: float
    scale: float | None = None  # GradScaler scale after the step
    skipped: bool = False
    first_nonfinite_module: str | None = None
    first_nonfinite_value: float | None = None
    nonfinite_grad_params: tuple[str, ...] = ()
    nonfinite_params_after: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}


@dataclass
class ProbeResult:
    """Everything one ``vramdoc probe`` run found."""

    model: str
    device: str  # cuda | cpu | fake
    device_name: str
    method: str
    batch_size: int
    seq_len: int
    steps_requested: int
    steps_run: int
    n_params: int
    n_trainable: int
    measured: MemoryView | None
    estimate: MemoryView | None = None
    estimate_error: str | None = None  # why there is no estimate
    gpu: dict[str, Any] | None = None  # name, memory_bytes, bf16 ...
    limit_bytes: int | None = None  # emulated card limit (allocatable bytes)
    oom: OomEvent | None = None
    steps: list[StepRecord] = field(default_factory=list)
    module_absmax: dict[str, float] = field(default_factory=dict)  # max over steps
    module_dtype: dict[str, str] = field(default_factory=dict)
    saved_activation_bytes_per_layer: dict[int, int] = field(default_factory=dict)
    saved_tensors_by_layer: dict[int, list[tuple[str, int]]] = field(default_factory=dict)
    steps_per_s: float | None = None
    tokens_per_s: float | None = None
    measured_items: list[str] = field(default_factory=list)  # what was measured
    modelled_items: list[str] = field(default_factory=list)  # what was modelled, not measured
    notes: list[str] = field(default_factory=list)
    findings: list[dict[str, Any]] = field(default_factory=list)
    next_plan: dict[str, Any] | None = None
    trainable_dtypes: list[str] = field(default_factory=list)
    cuda_stats: dict[str, int] | None = None  # torch.cuda.memory_stats() counters (cuda only)
    step_error: str | None = None  # "Type: message" when a step raised
    interrupted: bool = False  # stopped by Ctrl-C / SIGINT: the figures cover the steps done
    sharding: dict[str, Any] | None = None  # the sharded probe: engine, world_size, rank ...
    # the timeline built from shallow builds (vramdoc.probe.segments): layers, traced_layers
    extrapolated: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        """The ``vramdoc probe --json`` object."""
        measured = self.measured.to_json() if self.measured else None
        if measured is not None:
            per_layer = {str(k): v for k, v in self.saved_activation_bytes_per_layer.items()}
            measured.update(device=self.device, device_name=self.device_name,
                            steps_run=self.steps_run, steps_per_s=self.steps_per_s,
                            tokens_per_s=self.tokens_per_s,
                            saved_activation_bytes_per_layer=per_layer,
                            cuda_stats=self.cuda_stats,
                            measured=self.measured_items, modelled=self.modelled_items)
        out: dict[str, Any] = {
            "model": self.model,
            "method": self.method,
            "batch_size": self.batch_size,
            "seq_len": self.seq_len,
            "n_params": self.n_params,
            "n_trainable": self.n_trainable,
            "measured": measured,
            "estimate": self.estimate.to_json() if self.estimate else None,
            "findings": list(self.findings),
            "steps": [s.to_json() for s in self.steps],
            "notes": list(self.notes),
        }
        if self.estimate_error:
            out["estimate_error"] = self.estimate_error
        if self.gpu is not None:
            out["gpu"] = dict(self.gpu)
        if self.limit_bytes is not None:
            out["limit_bytes"] = self.limit_bytes
        if self.oom is not None:
            out["oom"] = dict(self.oom.__dict__)
        if self.next_plan is not None:
            out["next_plan"] = self.next_plan
        if self.step_error is not None:
            out["step_error"] = self.step_error
        if self.interrupted:
            out["interrupted"] = True
        if self.sharding is not None:
            out["sharding"] = dict(self.sharding)
        if self.extrapolated is not None:
            out["extrapolated"] = dict(self.extrapolated)
        return out
