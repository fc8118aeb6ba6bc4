"""`vramdoc plan --json`: the whole result as one JSON object (stable field names)."""

from __future__ import annotations

from typing import Any


def plan_to_json(plan: Any) -> dict[str, Any]:
    """One plan: its setup (setup-file format), memory, step time, rules."""
    from vramdoc.setup import setup_to_mapping

    est = plan.estimate
    return {
        "label": plan.label,
        "method": plan.setup.method,
        "setup": setup_to_mapping(plan.setup),
        "peak_allocated_bytes": est.peak_allocated_bytes,
        "peak_reserved_bytes": est.peak_reserved_bytes,
        "device_bytes": est.device_bytes,
        "peak_phase": est.peak_phase,
        "components": est.components,
        "margin_bytes": plan.margin_bytes,
        "headroom_bytes": plan.headroom_bytes,
        "fits": plan.fits,
        "step_time_s": plan.step.total_s,
        "step_time_parts_s": {"compute": plan.step.compute_s, "dequant": plan.step.dequant_s,
                              "attention": plan.step.attention_s,
                              "optimizer": plan.step.optimizer_s,
                              "communication": plan.step.comm_s},
        "num_gpus": plan.setup.num_gpus,
        "nodes": plan.setup.nodes,
        "strategy": est.strategy,
        "host_ram": est.host.to_json() if est.host is not None else None,
        "tokens_per_s": plan.tokens_per_s,
        "rules": [f.to_json() for f in plan.findings],
        "applied": [{"code": c, "key": k, "old": o, "new": n} for c, k, o, n in plan.applied],
    }


def result_to_json(result: Any) -> dict[str, Any]:
    """The ``vramdoc plan --json`` object."""
    st = result.stats
    req = result.request
    return {
        "fits": result.fits,
        "model": result.spec.name,
        "gpu": {"name": result.gpu.name, "memory_bytes": int(result.gpu.memory_bytes),
                "compute_capability": list(result.gpu.compute_capability),
                "assumed": bool(result.gpu.assumed)},
        "request": {"seq_len": req.seq_len, "effective_batch": req.effective_batch,
                    "methods": list(req.methods), "allow_shorter_seq": req.allow_shorter_seq,
                    "top_k": req.top_k},
        "margin_bytes": result.margin_bytes,
        "search": {"candidates": st.candidates, "rejected": st.rejected,
                   "rejected_by_rule": dict(sorted(st.rejected_by_rule.items())),
                   "skipped_by_bound": st.skipped_by_bound, "estimated": st.estimated,
                   "fitting_found": st.fitting_found},
        "plans": [plan_to_json(p) for p in result.plans],
        "closest": plan_to_json(result.closest) if result.closest is not None else None,
        "missing_bytes": result.missing_bytes,
        "suggestions": list(result.suggestions),
        "user_setup": plan_to_json(result.user_plan) if result.user_plan is not None else None,
    }
