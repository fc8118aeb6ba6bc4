"""Compare estimates with measured peaks, like with like (the accuracy benchmark and
``vramdoc validate`` both use this)."""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from vramdoc.errors import UsageError

# Which estimator view a measured metric is compared with. A figure whose source does not say
# how it was measured ("unknown") is compared with the device view (what nvidia-smi shows):
# such figures are most often read off nvidia-smi, and it is the conservative choice
# (allocated <= reserved <= device).
VIEW_OF_METRIC = {
    "peak_allocated": "peak_allocated_bytes",
    "allocated": "peak_allocated_bytes",
    "peak_reserved": "peak_reserved_bytes",
    "reserved": "peak_reserved_bytes",
    "nvidia_smi": "device_bytes",
    "device": "device_bytes",
    "unknown": "device_bytes",
}


@dataclass(frozen=True)
class Comparison:
    """One measured run against its estimate."""

    id: str
    metric: str
    view: str
    measured_bytes: int
    predicted_bytes: int
    peak_phase: str

    @property
    def error(self) -> float:
        """Relative error of the prediction; negative = under-estimate (the dangerous side)."""
        return (self.predicted_bytes - self.measured_bytes) / self.measured_bytes


@dataclass(frozen=True)
class Summary:
    count: int
    median_abs_error: float
    worst_abs_error: float
    worst_under_estimate: float  # <= 0


def view_of(metric: str) -> str:
    try:
        return VIEW_OF_METRIC[metric]
    except KeyError:
        raise UsageError(f"metric {metric!r} is not one vramdoc compares",
                         f"use one of: {', '.join(sorted(VIEW_OF_METRIC))}") from None


def compare(case_id: str, est: object, metric: str, measured_bytes: int) -> Comparison:
    """Compare ``est`` (a MemoryEstimate) with one measured figure of the given metric."""
    view = view_of(metric)
    return Comparison(id=case_id, metric=metric, view=view.replace("_bytes", ""),
                      measured_bytes=int(measured_bytes),
                      predicted_bytes=int(getattr(est, view)),
                      peak_phase=str(getattr(est, "peak_phase", "")))


def summarize(results: list[Comparison]) -> Summary:
    if not results:
        return Summary(0, 0.0, 0.0, 0.0)
    errs = [abs(r.error) for r in results]
    return Summary(count=len(results), median_abs_error=statistics.median(errs),
                   worst_abs_error=max(errs),
                   worst_under_estimate=min(0.0, min(r.error for r in results)))
