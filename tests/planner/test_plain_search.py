"""The planner's fast search gives exactly what the plain exhaustive search gives.

The plain search below does everything the slow way: every candidate gets its own setup, its
own rule context, every rule, its own step time and (in rank order until each method has its
plans) its own fresh estimate. No memo, no bound, no bisection, no lazy ranking. The planner
must choose the same plans, in the same order, with the same estimates, step times, rule
findings and guidance changes; when nothing fits, the same closest plan and suggestions.
"""

from __future__ import annotations

from dataclasses import replace as dc_replace
from typing import Any

import pytest

from vramdoc.engine.evaluate import holds
from vramdoc.errors import VramdocError
from vramdoc.hardware import resolve_gpu
from vramdoc.models import default_task, resolve_model
from vramdoc.planner import PlanRequest, plan
from vramdoc.planner.context import setup_context
from vramdoc.planner.parallel import expand
from vramdoc.planner.search import (
    _pick,
    _Search,
    _trainable_guess,
    default_margin,
    fidelity,
    shape,
)
from vramdoc.planner.space import Candidate, combos, micro_batches, seq_lengths, to_setup
from vramdoc.planner.steptime import step_time
from vramdoc.setup import LoraSetup, TrainingSetup, TrainSetup


def _fresh_estimate(s: _Search, cand: Candidate) -> Any:
    # the estimator's own memos stay (test_speed_memos checks them against empty ones)
    from vramdoc.estimate.core import build_estimate

    return build_estimate(to_setup(cand, s.base, lora_extra=s.lora_extra), s.spec,
                               s.groups, s.gpu, host_limit=s.req.host_ram_bytes)


def _fits(s: _Search, est: Any) -> bool:
    return bool(est.device_bytes <= s.budget and (est.host is None or est.host.fits is not False))


def plain_ranking(s: _Search) -> list[tuple[tuple[Any, ...], Candidate]]:
    """Every rule-allowed candidate with its full ranking key, sorted (stable)."""
    from vramdoc.estimate.adapters import has_default_targets
    from vramdoc.estimate.liger import liger_applies

    req, eb = s.req, s.req.effective_batch
    liger = liger_applies(s.spec.model_type, s.base.task, s.spec.is_encoder)
    out = []
    for combo in expand(combos(req.methods, liger=liger), s.base):
        if combo.targets == "default" and not has_default_targets(s.spec):
            continue
        for si, seq in enumerate(seq_lengths(req.seq_len, req.allow_shorter_seq)):
            for mb in micro_batches(eb):
                cand = Candidate(combo, mb, eb // mb, seq)
                ctx = setup_context(to_setup(cand, s.base, lora_extra=s.lora_extra), s.spec,
                                    s.base_ctx, s.user_seq)
                if any(holds(r, ctx) for r in s.errors):
                    continue
                w = sum(1 for r in s.warnings if holds(r, ctx))
                st = step_time(cand, s.dims, s.gpu, eb, _trainable_guess(combo, s),
                               **s.world(combo))
                fid = fidelity(combo)
                out.append(((si, *fid[:3], w, *fid[3:], st.total_s), cand))
    out.sort(key=lambda kc: kc[0])
    return out


def plain_plan(req: PlanRequest) -> tuple[Any, ...]:
    """(plans, closest) of the exhaustive search, as plan() assembles them."""
    spec = resolve_model(req.base.model if req.base else req.model)
    base = req.base or TrainSetup(model=req.model, max_seq_length=req.seq_len)
    if base.task == "auto":
        base = base.replace(task=default_task(spec))
    margin = req.margin_bytes if req.margin_bytes is not None else default_margin(
        req.gpu.memory_bytes)
    if base.num_gpus > 1:
        req = dc_replace(req, effective_batch=max(req.effective_batch // base.num_gpus, 1))
    s = _Search(req, spec, base, margin)
    ranked = plain_ranking(s)
    k = max(req.top_k, 1)
    found: dict[str, list[Candidate]] = {m: [] for m in req.methods}
    taken: set[tuple[Any, ...]] = set()
    for _key, cand in ranked:
        lst = found[cand.combo.method]
        if len(lst) >= k or shape(cand) in taken:
            continue
        if _fits(s, _fresh_estimate(s, cand)):
            lst.append(cand)
            taken.add(shape(cand))
    pos = {c: i for i, (_k, c) in enumerate(ranked)}
    chosen = sorted((c for v in found.values() for c in v), key=lambda c: pos[c])
    plans = tuple(s.make_plan(c) for c in _pick(chosen, req))
    if plans:
        return plans, None
    allowed = [c for _k, c in ranked]
    if not allowed:
        return (), None
    small_mb = min(c.micro_batch for c in allowed)
    short = min(c.seq_len for c in allowed)
    lean = [c for c in allowed if c.micro_batch == small_mb and c.seq_len == short
            and c.combo.ckpt and c.combo.attn != "eager"] or allowed
    clean = [c for c in lean if not any(holds(r, setup_context(
        to_setup(c, s.base, lora_extra=s.lora_extra), s.spec, s.base_ctx, s.user_seq))
        for r in s.warnings)] or lean
    best = min(clean, key=lambda c: _fresh_estimate(s, c).device_bytes)
    return (), s.make_plan(best)


def _same_plan(a: Any, b: Any) -> None:
    assert a.candidate == b.candidate
    assert a.setup == b.setup
    assert a.estimate == b.estimate
    assert a.step == b.step
    assert a.findings == b.findings
    assert a.applied == b.applied
    assert a.label == b.label


def _req(model: str, gpu: str, **kw: Any) -> PlanRequest:
    return PlanRequest(model=model, gpu=resolve_gpu(gpu), **kw)


CASES = {
    "llama-7b-6gb": lambda: _req("llama-2-7b", "6GB"),
    "llama-7b-4090": lambda: _req("llama-2-7b", "RTX-4090"),
    "qwen-0.5b-t4-top5": lambda: _req("qwen2.5-0.5b", "T4", top_k=5),
    "gemma2-t4": lambda: _req("gemma-2-2b", "T4"),
    "mixtral-h200": lambda: _req("mixtral-8x7b", "H200"),
    "qwen-0.5b-4gb-shorter": lambda: _req("qwen2.5-0.5b", "4GB", seq_len=4096,
                                          allow_shorter_seq=True),
    "13b-4gb-nothing-fits": lambda: _req("llama-2-13b", "4GB"),
    "config-lora-extras": lambda: PlanRequest(
        model="mistral-7b", gpu=resolve_gpu("RTX-3060-12GB"), methods=("lora", "qlora"),
        effective_batch=12, base=TrainSetup(
            model="mistral-7b", task="causal-lm", lora=LoraSetup(r=8, lora_dropout=0.1),
            training=TrainingSetup(learning_rate=1e-4, warmup_steps=10))),
    "2xT4-strategies": lambda: PlanRequest(
        model="qwen2.5-1.5b", gpu=resolve_gpu("T4"),
        base=TrainSetup(model="qwen2.5-1.5b", num_gpus=2)),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_fast_search_equals_plain_exhaustive_search(case: str) -> None:
    req = CASES[case]()
    got = plan(req)
    plans, closest = plain_plan(req)
    assert len(got.plans) == len(plans)
    for a, b in zip(got.plans, plans, strict=True):
        _same_plan(a, b)
    if closest is None:
        assert got.closest is None
    else:
        assert got.closest is not None
        _same_plan(got.closest, closest)


@pytest.mark.parametrize("model", ["llama-2-7b", "qwen2.5-0.5b", "mixtral-8x7b", "gpt2",
                                   "gemma-2-2b"])
def test_weights_floor_is_below_every_estimate(model: str) -> None:
    """The bound the walk skips whole groups with never exceeds an estimate of the group."""
    from vramdoc.estimate.core import build_estimate, resident_floor_bytes
    from vramdoc.models import param_groups

    spec = resolve_model(model)
    base = TrainSetup(model=model, task=default_task(spec))
    groups = param_groups(spec, task=base.task, num_labels=base.num_labels)
    gpu = resolve_gpu("H200")
    checked = 0
    for i, combo in enumerate(combos(("full", "lora", "qlora", "qlora-int8", "gptq-lora",
                                      "awq-lora"), liger=True)):
        if i % 7:
            continue
        for mb, ga in ((1, 1), (1, 16), (16, 1)):
            setup = to_setup(Candidate(combo, mb, ga, 256), base)
            try:
                est = build_estimate(setup, spec, groups, gpu)
            except VramdocError:  # e.g. PEFT has no default targets for the model
                continue
            floor = resident_floor_bytes(setup, spec, groups)
            assert floor is not None and floor <= est.device_bytes, (combo, mb, ga)
            assert floor == sum(est.phase_components["load"].values()), (combo, mb, ga)
            checked += 1
    assert checked > 100
    two = to_setup(Candidate(next(iter(combos(("full",)))), 1, 1, 256), base.replace(
        num_gpus=2))
    assert resident_floor_bytes(two, spec, groups) is None  # sharded: no bound


@pytest.mark.parametrize("case", ["llama-7b-6gb", "config-lora-extras", "2xT4-strategies"])
def test_lever_names_are_all_a_lever_changes_in_the_context(case: str) -> None:
    """search.LEVER_NAMES (what lets rank() share one context between combos that differ in
    levers no rule reads): flipping a lever changes exactly those context names."""
    from vramdoc.planner.search import LEVER_NAMES

    req = CASES[case]()
    spec = resolve_model(req.base.model if req.base else req.model)
    base = req.base or TrainSetup(model=req.model)
    base = base.replace(task=default_task(spec)) if base.task == "auto" else base
    s = _Search(req, spec, base, 0)
    values = {"ckpt": (False, True), "targets": ("all-linear", "default"),
              "upcast": (True, False), "liger": (False, True)}

    def ctx(combo: Any) -> dict[str, Any]:
        return setup_context(to_setup(Candidate(combo, 1, 16, 512), s.base,
                                      lora_extra=s.lora_extra), s.spec, s.base_ctx, 512)

    checked = 0
    for i, combo in enumerate(expand(combos(req.methods, liger=True), s.base)):
        if i % 5 or combo.method == "full":
            continue
        a = ctx(combo)
        for f, names in LEVER_NAMES.items():
            for v in values[f]:
                if getattr(combo, f) == v:
                    continue
                b = ctx(dc_replace(combo, **{f: v}))
                changed = {k for k in a.keys() | b.keys() if a.get(k) != b.get(k)}
                assert changed <= names, (f, combo, changed - names)
                checked += 1
    assert checked > 100
