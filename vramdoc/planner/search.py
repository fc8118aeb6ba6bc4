"""Search the setups that fit a GPU, rank them, explain them.

1. Enumerate every combo of levers (space.py) x micro-batch x sequence length.
2. Drop candidates an error-severity hardware constraint (H rules) forbids; count, per rule,
   how many it removed.
3. Rank the rest without estimating anything: sequence length kept first, then fidelity (full >
   LoRA > QLoRA; fp32 master weights over pure bf16; 32- over 16- over 8- over 4-bit optimizer
   states), then fewer warning rules (a setup a rule warns about is worse than a smaller LoRA),
   then the LoRA shape (all-linear over the default targets, rank 16 over 8), then predicted
   step time (steptime.py).
4. Walk each method's candidates best-first and estimate only what can change the answer: a
   combo is first estimated at micro-batch 1 without accumulation (if that does not fit, no
   micro-batch does), then the largest fitting micro-batch with accumulation is found by
   bisection (memory grows with the micro-batch) and micro-batch = effective batch (no
   accumulation, no gradients during the forward) is checked on its own. Whole groups (method,
   precision, LoRA shape, sequence) are skipped when their lower bound (micro-batch 1,
   checkpointing, sdpa/FA2, the cheapest optimizer) does not fit.
5. The best fitting candidate of each method and the next distinct combos become plans; their
   hyperparameters come from the guidance rules (T) whose proposals are memory-neutral, and
   every plan rule is evaluated on the final setup with its estimate to say what shaped it.

A candidate fits when ``GPU memory - device view - margin >= 0`` (the device view is what
nvidia-smi would show: allocated peak + allocator reserve + CUDA context). The margin is
``max(256 MiB, 4 % of GPU memory)``: the estimator's median error is a few percent and
fragmentation varies from run to run.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from dataclasses import replace as dc_replace
from typing import Any

from vramdoc.engine import Finding, Rule, evaluate, holds, load_rules
from vramdoc.errors import UsageError
from vramdoc.planner.context import (  # noqa: F401 - the margin is re-exported here
    MARGIN_FRACTION,
    MEMORY_NAMES,
    MIN_MARGIN_BYTES,
    default_margin,
    gpu_context,
    memory_context,
    model_context,
    setup_context,
)
from vramdoc.planner.parallel import ZERO_OPTIMIZERS, expand
from vramdoc.planner.space import (
    ALL_METHODS,
    DEFAULT_METHODS,
    Candidate,
    Combo,
    combos,
    micro_batches,
    optim_state_bits,
    seq_lengths,
    to_setup,
)
from vramdoc.planner.steptime import ModelDims, StepTime, model_dims, step_time
from vramdoc.setup import TrainSetup, setup_from_mapping, setup_to_mapping

# Setup keys a guidance rule may change in a plan without changing its memory.
MEMORY_NEUTRAL_KEYS = frozenset({
    "training.learning_rate", "training.warmup_steps", "training.lr_scheduler_type",
    "training.max_grad_norm", "training.weight_decay", "lora.lora_alpha",
})
PER_CANDIDATE_NAMES = frozenset({"micro_batch", "grad_accum", "seq_len", "effective_batch",
                                 "user_seq_len"})
# The context names (context.setup_context) each lever of a Combo sets and no other lever
# does; tests/planner/test_plain_search.py checks it on every combo of several models.
LEVER_NAMES: dict[str, frozenset[str]] = {
    "ckpt": frozenset({"gradient_checkpointing", "use_reentrant"}),
    "targets": frozenset({"lora_targets", "lora_all_linear"}),
    "upcast": frozenset({"prepare_kbit"}),
    "liger": frozenset({"use_liger_kernel"}),
}
METHOD_RANK = {"full": 0, "lora": 1, "qlora-int8": 2, "qlora": 3, "gptq-lora": 3, "awq-lora": 3}
STATE_RANK = {32: 0, 16: 1, 8: 2, 4: 3, None: 3}


@dataclass(frozen=True)
class PlanRequest:
    """What the user asked for. ``base`` carries model, task and hyperparameters of a config."""

    model: str
    gpu: Any  # GpuSpec
    seq_len: int = 512
    effective_batch: int = 16
    methods: tuple[str, ...] = DEFAULT_METHODS
    base: TrainSetup | None = None
    allow_shorter_seq: bool = False
    top_k: int = 3
    margin_bytes: int | None = None
    judge_base: bool = False  # also estimate and judge ``base`` as given (it came from --config)
    host_ram_bytes: int | None = None  # host RAM per node (--host-ram): offload must fit it


@dataclass(frozen=True)
class Plan:
    """One ranked setup with its estimate, step time and the rules that shaped it."""

    setup: TrainSetup
    estimate: Any  # MemoryEstimate
    step: StepTime
    margin_bytes: int
    gpu_memory_bytes: int
    findings: tuple[Finding, ...]  # every plan rule that holds on the final setup
    applied: tuple[tuple[str, str, Any, Any], ...]  # (code, key, old, new) guidance changes
    candidate: Candidate

    @property
    def headroom_bytes(self) -> int:
        return int(self.gpu_memory_bytes - self.estimate.device_bytes - self.margin_bytes)

    @property
    def fits(self) -> bool:
        return self.headroom_bytes >= 0

    @property
    def tokens_per_s(self) -> float:
        """All GPUs together (each processes its own effective batch per step)."""
        return self.step.tokens_per_s(self.setup.effective_batch_size * self.setup.max_seq_length
                                      * max(self.setup.num_gpus, 1))

    @property
    def label(self) -> str:
        return describe(self.setup)


@dataclass
class SearchStats:
    """How the search went: counts a user (and the benchmark) can check."""

    candidates: int = 0
    rejected_by_rule: Counter[str] = field(default_factory=Counter)
    estimated: int = 0
    skipped_by_bound: int = 0
    fitting_found: int = 0

    @property
    def rejected(self) -> int:
        return sum(self.rejected_by_rule.values())


@dataclass(frozen=True)
class PlanResult:
    """Plans best first (empty when nothing fits), else the closest plan and what would fit."""

    request: PlanRequest
    spec: Any
    gpu: Any
    margin_bytes: int
    plans: tuple[Plan, ...]
    closest: Plan | None
    missing_bytes: int
    suggestions: tuple[str, ...]
    stats: SearchStats
    user_plan: Plan | None  # the --config setup as given, judged by the same rules

    @property
    def fits(self) -> bool:
        return bool(self.plans)

    @property
    def best(self) -> Plan | None:
        return self.plans[0] if self.plans else None


def describe(setup: TrainSetup) -> str:
    """One-line label: ``QLoRA r16 all-linear · fp16 · sdpa · ckpt · paged_adamw_8bit · 1x16``."""
    t = setup.training
    m = {"full": "full", "lora": "LoRA", "qlora": "QLoRA NF4", "qlora-int8": "LoRA int8",
         "gptq-lora": "GPTQ+LoRA", "awq-lora": "AWQ+LoRA"}[setup.method]
    if setup.lora is not None:
        tgt = "all-linear" if setup.lora.target_modules == ("all-linear",) else (
            ",".join(setup.lora.target_modules) or "default targets")
        m += f" r{setup.lora.r} {tgt}"
    prec = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16", "auto": "auto"}[
        setup.torch_dtype]
    amp = "+bf16 AMP" if t.bf16 else "+fp16 AMP" if t.fp16 else ""
    parts = [m, f"{prec}{amp}", setup.attn_implementation]
    if setup.quantization is not None and not setup.prepare_model_for_kbit_training:
        parts.append("no fp32 upcast")
    if t.gradient_checkpointing:
        parts.append("ckpt")
    if t.use_liger_kernel:
        parts.append("liger")
    parts.append(t.optim)
    parts.append(f"{t.per_device_train_batch_size}x{t.gradient_accumulation_steps}")
    parts.append(f"seq {setup.max_seq_length}")
    from vramdoc.planner.parallel import label, strategy_of

    dist = label(strategy_of(setup), setup.num_gpus)
    return " · ".join([dist, *parts] if dist else parts)


class _Search:
    """State of one search (kept in one object so the steps read top to bottom)."""

    def __init__(self, req: PlanRequest, spec: Any, base: TrainSetup, margin: int) -> None:
        from vramdoc.models import param_groups

        self.req, self.spec, self.base, self.margin = req, spec, base, margin
        self.gpu = req.gpu
        self.budget = self.gpu.memory_bytes - margin
        self.rules = load_rules("plan")
        self.errors = [r for r in self.rules if r.kind == "constraint" and r.severity == "error"]
        self.warnings = [r for r in self.rules if r.severity == "warning"
                         and not set(r.names) & set(MEMORY_NAMES)
                         and not (r.propose and set(r.propose) <= MEMORY_NEUTRAL_KEYS)]
        self.guidance = [r for r in self.rules if r.kind == "guidance" and r.propose
                         and set(r.propose) <= MEMORY_NEUTRAL_KEYS]
        self.base_ctx = {**model_context(spec), **gpu_context(self.gpu, base.num_gpus)}
        self.groups = param_groups(spec, task=base.task, num_labels=base.num_labels)
        self.dims: ModelDims = model_dims(spec)
        self.stats = SearchStats()
        self.cache: dict[Candidate, Any] = {}
        self.times: dict[tuple[Any, ...], StepTime] = {}  # step time per timed() key
        self.user_seq = req.seq_len
        # LoRA settings of a --config that the levers do not choose (alpha follows the rank)
        lo = base.lora
        self.lora_extra: dict[str, Any] = {} if lo is None else {
            "lora_dropout": lo.lora_dropout, "modules_to_save": lo.modules_to_save,
            "use_rslora": lo.use_rslora}

    def world(self, combo: Combo) -> dict[str, Any]:
        """step_time's data-parallel arguments for a combo on this search's GPUs."""
        from vramdoc.planner.parallel import strategy_of

        return {"num_gpus": self.base.num_gpus, "nodes": self.base.nodes,
                "strategy": combo.dist or strategy_of(self.base)}

    def setup_of(self, cand: Candidate) -> TrainSetup:
        """The TrainSetup of a candidate on this search's base."""
        return to_setup(cand, self.base, lora_extra=self.lora_extra)

    # -- estimates -------------------------------------------------------------------------
    def estimate(self, cand: Candidate) -> Any:
        est = self.cache.get(cand)
        if est is None:
            from vramdoc.estimate.core import build_estimate

            est = build_estimate(self.setup_of(cand), self.spec, self.groups, self.gpu,
                                 host_limit=self.req.host_ram_bytes)
            self.cache[cand] = est
            self.stats.estimated += 1
        return est

    def fits(self, cand: Candidate) -> bool:
        est = self.estimate(cand)
        host_ok = est.host is None or est.host.fits is not False
        return bool(est.device_bytes <= self.budget and host_ok)

    # -- rules on the lever space ----------------------------------------------------------
    def _split(self, rules: list[Rule]) -> tuple[list[Rule], list[Rule]]:
        per_cand = [r for r in rules if set(r.names) & PER_CANDIDATE_NAMES]
        return [r for r in rules if r not in per_cand], per_cand

    def judge(self) -> list[tuple[tuple[Any, ...], Candidate]]:
        """Every candidate, rule-filtered, with its ranking key, best first."""
        return [kc for group in self.rank() for kc in self.timed(group)]

    def timed(self, group: list[tuple[tuple[Any, ...], tuple[Any, ...], Candidate]]
              ) -> list[tuple[tuple[Any, ...], Candidate]]:
        """A group of candidates with equal key prefix, with step times, ordered by them."""
        eb = self.req.effective_batch
        out = []
        for prefix, tkey, cand in group:
            st = self.times.get(tkey)
            if st is None:
                combo = cand.combo
                st = self.times[tkey] = step_time(cand, self.dims, self.gpu, eb,
                                                  _trainable_guess(combo, self),
                                                  **self.world(combo))
            out.append(((*prefix, st.total_s), cand))
        out.sort(key=lambda kc: kc[0][-1])  # stable: equal times keep the enumeration order
        return out

    def rank(self) -> list[list[tuple[tuple[Any, ...], tuple[Any, ...], Candidate]]]:
        """Every candidate, rule-filtered, in groups of equal key prefix (everything but the
        step time), best group first; within a group in enumeration order.

        Sorting by the prefix and then each group by step time (both stable) gives exactly
        the order of one sort by the full key; step times are computed only for the groups
        the walk reaches (``timed``).
        """
        seqs = seq_lengths(self.req.seq_len, self.req.allow_shorter_seq)
        mbs = micro_batches(self.req.effective_batch)
        eb = self.req.effective_batch
        err_combo, err_cand = self._split(self.errors)
        warn_combo, warn_cand = self._split(self.warnings)
        ranked: list[tuple[tuple[Any, ...], tuple[Any, ...], Candidate]] = []
        from vramdoc.estimate.adapters import has_default_targets

        # PEFT raises for LoraConfig() without target_modules on a model type it has no
        # default for: such plans are not candidates at all
        peft_default = has_default_targets(self.spec)
        from vramdoc.estimate.liger import liger_applies

        liger = liger_applies(self.spec.model_type, self.base.task, self.spec.is_encoder)
        combo_names = _names_read(err_combo + warn_combo)
        cand_names = _names_read(err_cand + warn_cand, exclude=("micro_batch", "grad_accum",
                                                                 "seq_len"))
        combo_memo: dict[tuple[Any, ...], tuple[Rule | None, int]] = {}
        cand_memo: dict[tuple[Any, ...], tuple[Rule | None, int]] = {}
        # levers whose context names no rule reads: combos differing only in them share one
        # context (built once, for the first of them)
        read = set(combo_names) | set(cand_names) | PER_CANDIDATE_NAMES
        unread = tuple(f for f, names in LEVER_NAMES.items() if not names & read)
        ctx_memo: dict[Combo, dict[str, Any]] = {}
        for combo in expand(combos(self.req.methods, liger=liger), self.base):
            if combo.targets == "default" and not peft_default:
                continue
            n = len(seqs) * len(mbs)
            self.stats.candidates += n
            rkey = dc_replace(combo, **{f: None for f in unread}) if unread else combo
            ctx = ctx_memo.get(rkey)
            if ctx is None:
                probe = Candidate(combo, mbs[0], eb // mbs[0], seqs[0])
                ctx = ctx_memo[rkey] = setup_context(self.setup_of(probe), self.spec,
                                                     self.base_ctx, self.user_seq)
            # a rule's verdict depends only on the names it reads: combos that agree on every
            # name the rules read share one verdict (most combos differ only in levers no rule
            # reads), so the rules run once per distinct signature, not once per combo
            sig = _signature(ctx, combo_names)
            verdict = combo_memo.get(sig) if sig is not None else None
            if verdict is None:
                bad = next((r for r in err_combo if holds(r, ctx)), None)
                verdict = (bad, 0 if bad is not None else
                           sum(1 for r in warn_combo if holds(r, ctx)))
                if sig is not None:
                    combo_memo[sig] = verdict
            bad, n_warn = verdict
            if bad is not None:
                self.stats.rejected_by_rule[bad.code] += n
                continue
            fid = fidelity(combo)
            csig = _signature(ctx, cand_names) if err_cand or warn_cand else None
            for si, seq in enumerate(seqs):
                for mb in mbs:
                    cand = Candidate(combo, mb, eb // mb, seq)
                    w = n_warn
                    if err_cand or warn_cand:
                        cverdict = cand_memo.get((csig, mb, seq)) if csig is not None else None
                        if cverdict is None:
                            c2 = dict(ctx, micro_batch=mb, grad_accum=eb // mb, seq_len=seq)
                            bad = next((r for r in err_cand if holds(r, c2)), None)
                            cverdict = (bad, 0 if bad is not None else
                                        sum(1 for r in warn_cand if holds(r, c2)))
                            if csig is not None:
                                cand_memo[(csig, mb, seq)] = cverdict
                        bad = cverdict[0]
                        if bad is not None:
                            self.stats.rejected_by_rule[bad.code] += 1
                            continue
                        w += cverdict[1]
                    # the k-bit upcast and Liger do not change the step-time model: one
                    # figure per (levers it reads, micro-batch, sequence)
                    tkey = (combo.method, combo.dtype, combo.amp, combo.attn, combo.ckpt,
                            combo.optim, combo.targets, combo.r, combo.dist, mb, seq)
                    ranked.append(((si, *fid[:3], w, *fid[3:]), tkey, cand))
        ranked.sort(key=lambda e: e[0])
        groups: list[list[tuple[tuple[Any, ...], tuple[Any, ...], Candidate]]] = []
        for e in ranked:
            if groups and groups[-1][0][0] == e[0]:
                groups[-1].append(e)
            else:
                groups.append([e])
        return groups

    # -- the walk ----------------------------------------------------------------------------
    def group_feasible(self, cand: Candidate, memo: dict[tuple[Any, ...], bool]) -> bool:
        c = cand.combo
        key = (c.method, c.dtype, c.amp, c.targets, c.r, c.upcast, c.liger, cand.seq_len,
               c.dist)
        if key not in memo:
            from vramdoc.estimate.core import resident_floor_bytes
            from vramdoc.planner.space import OPTIMIZERS_ADAPTER, OPTIMIZERS_FULL

            # the weights alone (same for every optimizer, attention and batch of the group)
            # already too large: no estimate needed
            floor = resident_floor_bytes(self.setup_of(Candidate(c, 1, 1, cand.seq_len)),
                                         self.spec, self.groups)
            if floor is not None and floor > self.budget:
                memo[key] = False
                return False
            optims = OPTIMIZERS_FULL if c.method == "full" else OPTIMIZERS_ADAPTER
            # micro-batch 1 without accumulation: below every rung of every combo in the group
            memo[key] = any(
                self.fits(Candidate(Combo(c.method, c.dtype, c.amp, attn, True, o, c.targets,
                                          c.r, c.upcast, c.liger, c.dist), 1, 1, cand.seq_len))
                for o in optims for attn in ("sdpa", "flash_attention_2")
                if not (c.dist.startswith("zero") and o not in ZERO_OPTIMIZERS))
        return memo[key]

    def fitting_mbs(self, cand: Candidate, memo: dict[tuple[Combo, int], frozenset[int]]
                    ) -> frozenset[int]:
        """Micro-batches of the candidate's combo that fit.

        Memory grows with the micro-batch while accumulation stays > 1 (gradients are then live
        during every forward); at accumulation 1 the gradients are gone during the forward, so
        the last rung (micro-batch = effective batch) can need less than the one before it. The
        rungs with accumulation > 1 are bisected; the last is checked on its own; micro-batch 1
        without accumulation is a lower bound of both.
        """
        key = (cand.combo, cand.seq_len)
        if key not in memo:
            eb = self.req.effective_batch
            seq = cand.seq_len

            def ok(mb: int, ga: int | None = None) -> bool:
                return self.fits(Candidate(cand.combo, mb, eb // mb if ga is None else ga, seq))

            fit: set[int] = set()
            if ok(1, 1):
                ladder = [mb for mb in micro_batches(eb) if mb < eb]
                if ladder and ok(ladder[0]):
                    lo, hi = 0, len(ladder) - 1  # ladder[lo] fits; find the last that fits
                    while lo < hi:
                        mid = (lo + hi + 1) // 2
                        if ok(ladder[mid]):
                            lo = mid
                        else:
                            hi = mid - 1
                    fit.update(ladder[: lo + 1])
                if ok(eb):
                    fit.add(eb)
            memo[key] = frozenset(fit)
        return memo[key]

    def walk(self, ranked: list[tuple[tuple[Any, ...], Candidate]] | None = None
             ) -> list[Candidate]:
        """Best fitting candidates: up to top_k distinct combos per method, best first.

        ``ranked``: the full ranking (judge()); by default the walk takes the groups of
        rank() and times only the groups in which a candidate can still be taken: in a group
        where every candidate is skipped (its method has its plans, its shape is taken or its
        memory group cannot fit) the order inside the group changes nothing.
        """
        group_memo: dict[tuple[Any, ...], bool] = {}
        mb_memo: dict[tuple[Combo, int], frozenset[int]] = {}
        found: dict[str, list[Candidate]] = {m: [] for m in self.req.methods}
        taken: set[tuple[Any, ...]] = set()
        k = max(self.req.top_k, 1)
        order: list[Candidate] = []
        groups = ([[(key, (), c)] for key, c in ranked] if ranked is not None
                  else self.rank())
        done = False
        for group in groups:
            if ranked is None:
                live = any(len(found[c.combo.method]) < k and shape(c) not in taken
                           and self.group_feasible(c, group_memo) for _p, _t, c in group)
                if not live:
                    for _p, _t, cand in group:
                        order.append(cand)
                        if len(found[cand.combo.method]) < k and shape(cand) not in taken:
                            self.stats.skipped_by_bound += 1
                    continue
                entries = self.timed(group)
            else:
                entries = [(p, c) for p, _t, c in group]
            for _key, cand in entries:
                order.append(cand)
                if done:
                    continue
                lst = found[cand.combo.method]
                if len(lst) >= k or shape(cand) in taken:
                    continue
                if not self.group_feasible(cand, group_memo):
                    self.stats.skipped_by_bound += 1
                    continue
                if cand.micro_batch not in self.fitting_mbs(cand, mb_memo):
                    continue
                lst.append(cand)
                taken.add(shape(cand))
                if all(len(v) >= k for v in found.values()):
                    done = True
            if done:
                break
        pos = {c: i for i, c in enumerate(order)}
        best = sorted((c for v in found.values() for c in v), key=lambda c: pos[c])
        self.stats.fitting_found = len(best)
        return best

    def closest(self, allowed: list[Candidate]) -> Candidate | None:
        """The rule-allowed candidate with the smallest device view (nothing fits)."""
        if not allowed:
            return None
        small_mb = min(c.micro_batch for c in allowed)
        short = min(c.seq_len for c in allowed)
        lean = [c for c in allowed if c.micro_batch == small_mb and c.seq_len == short
                and c.combo.ckpt and c.combo.attn != "eager"] or allowed
        # a plan a warning rule objects to (fp32 QLoRA compute, H113 ...) is no plan to show:
        # the closest one must pass the hardware and numerics rules too
        clean = [c for c in lean if not any(
            holds(r, setup_context(self.setup_of(c), self.spec, self.base_ctx, self.user_seq))
            for r in self.warnings)] or lean
        return min(clean, key=lambda c: self.estimate(c).device_bytes)

    # -- plans -------------------------------------------------------------------------------
    def make_plan(self, cand: Candidate) -> Plan:
        from vramdoc.estimate.core import build_estimate

        setup, applied = apply_guidance(self.setup_of(cand), self.spec, self.base_ctx,
                                        self.guidance, self.user_seq)
        est = build_estimate(setup, self.spec, self.groups, self.gpu,
                             host_limit=self.req.host_ram_bytes)
        ctx = memory_context(setup_context(setup, self.spec, self.base_ctx, self.user_seq),
                             est, self.gpu.memory_bytes, self.margin)
        st = step_time(cand, self.dims, self.gpu, self.req.effective_batch,
                       float(est.trainable_params), **self.world(cand.combo))
        return Plan(setup=setup, estimate=est, step=st, margin_bytes=self.margin,
                    gpu_memory_bytes=self.gpu.memory_bytes,
                    findings=tuple(evaluate(self.rules, ctx)), applied=tuple(applied),
                    candidate=cand)


def _names_read(rules: list[Rule], exclude: tuple[str, ...] = ()) -> tuple[str, ...]:
    """Every context name the rules' conditions read, in a fixed order."""
    return tuple(sorted({n for r in rules for n in r.names} - set(exclude)))


def _signature(ctx: dict[str, Any], names: tuple[str, ...]) -> tuple[Any, ...] | None:
    """The values of ``names`` in ``ctx`` (missing ones None, as holds() reads them), or None
    when one is unhashable (then the rules run on the context itself)."""
    sig = tuple([ctx.get(n) for n in names])
    try:
        hash(sig)
    except TypeError:
        return None
    return sig


def shape(cand: Candidate) -> tuple[Any, ...]:
    """What makes two plans different alternatives (attention and checkpointing are free
    choices the best of each shape makes)."""
    c = cand.combo
    return (c.method, c.dtype, c.amp, c.optim, c.targets, c.r, c.upcast, c.liger, cand.seq_len,
            c.dist)


def _trainable_guess(combo: Combo, search: _Search) -> float:
    """Trainable parameters for the step-time model before any estimate exists."""
    if combo.method == "full":
        return float(search.spec.n_params)
    # LoRA: r·(in + out) per adapted Linear; all-linear ~ 7 matrices per layer, default ~ 2
    h, L = search.spec.hidden_size, search.spec.num_hidden_layers
    per_layer = 7 if combo.targets == "all-linear" else 2
    return float((combo.r or 16) * 2 * h * per_layer * L)


def fidelity(c: Combo) -> tuple[int, ...]:
    """Lower is better: method, master weights, optimizer-state precision, LoRA shape."""
    # 16-bit trainable weights (pure bf16 full) or 16-bit frozen norms / head / embeddings
    # (k-bit upcast skipped, M219) give up fp32 where the usual recipe keeps it; DeepSpeed
    # keeps an fp32 master copy whatever the module's dtype (zero.py)
    master = 1 if (c.method == "full" and c.dtype != "float32" and not c.dist.startswith(
        "zero")) or not c.upcast else 0
    param_dtype = c.dtype if c.method == "full" else "float32"
    state = STATE_RANK[optim_state_bits(c.optim, param_dtype)]
    targets = 0 if c.targets in (None, "all-linear") else 1
    rank = 0 if c.r is None or c.r >= 16 else 1
    # Liger is one more dependency: a plan without it wins at equal fidelity, warnings and
    # LoRA shape
    return (METHOD_RANK.get(c.method, 4), master, state, targets, rank, int(c.liger))


def apply_changes(setup: TrainSetup, changes: dict[str, Any]) -> TrainSetup:
    """Apply dotted setup-file keys (a rule's ``propose``) through the setup-file format."""
    mapping = setup_to_mapping(setup)
    for key, value in changes.items():
        parts = key.split(".")
        if len(parts) == 1:
            mapping[parts[0]] = value
        else:
            mapping.setdefault(parts[0], {})[parts[1]] = value
    return setup_from_mapping(mapping, source="plan")


def apply_guidance(setup: TrainSetup, spec: Any, base_ctx: dict[str, Any], guidance: list[Rule],
                   user_seq: int) -> tuple[TrainSetup, list[tuple[str, str, Any, Any]]]:
    """Apply the memory-neutral proposals of firing guidance rules until none fires."""
    applied: list[tuple[str, str, Any, Any]] = []
    for _ in range(4):
        ctx = setup_context(setup, spec, base_ctx, user_seq)
        current = setup_to_mapping(setup)
        changes: dict[str, Any] = {}
        for f in evaluate(guidance, ctx):
            for key, value in f.propose.items():
                sec, _, name = key.partition(".")
                old = current.get(sec, {}).get(name) if name else current.get(sec)
                if old != value and key not in changes:
                    changes[key] = value
                    applied.append((f.code, key, old, value))
        if not changes:
            break
        setup = apply_changes(setup, changes)
    return setup, applied


def plan(req: PlanRequest) -> PlanResult:
    """Search the setups for ``req`` and return the ranked plans (or the closest one).

    Raises:
        UsageError: unknown method, non-positive sizes; UnknownModelError from the model.
    """
    from vramdoc.models import resolve_model

    bad = [m for m in req.methods if m not in ALL_METHODS]
    if bad:
        raise UsageError(f"unknown method {bad[0]!r}", f"use one of {', '.join(ALL_METHODS)}")
    if req.effective_batch <= 0 or req.seq_len <= 0:
        raise UsageError("effective batch and sequence length must be larger than zero",
                         "e.g. --effective-batch 16 --seq-len 512")
    spec = resolve_model(req.base.model if req.base else req.model)
    if req.base is not None:
        base = req.base
    else:
        base = TrainSetup(model=req.model, max_seq_length=req.seq_len)
    if base.task == "auto":  # the model's natural task, as estimate() resolves it
        from vramdoc.models import default_task

        base = base.replace(task=default_task(spec))
    margin = req.margin_bytes if req.margin_bytes is not None else default_margin(
        req.gpu.memory_bytes)
    asked = req
    if base.num_gpus > 1:
        # the effective batch is the global one: each GPU takes its share (at least 1)
        from dataclasses import replace as dc_replace

        req = dc_replace(req, effective_batch=max(req.effective_batch // base.num_gpus, 1))
    search = _Search(req, spec, base, margin)
    chosen = search.walk()
    plans = tuple(search.make_plan(c) for c in _pick(chosen, req))
    user_plan = None
    if req.base is not None and req.judge_base:
        user_plan = _judge_user(search, req.base.replace(task=base.task))
    if plans:
        return PlanResult(asked, spec, req.gpu, margin, plans, None, 0, (), search.stats,
                          user_plan)
    closest_cand = search.closest([c for _k, c in search.judge()])
    closest = search.make_plan(closest_cand) if closest_cand is not None else None
    missing = -closest.headroom_bytes if closest else 0
    from vramdoc.planner.advice import what_would_fit

    suggestions = what_would_fit(search, closest) if closest else ()
    return PlanResult(asked, spec, req.gpu, margin, (), closest, missing, tuple(suggestions),
                      search.stats, user_plan)


def _pick(chosen: list[Candidate], req: PlanRequest) -> list[Candidate]:
    """The best plan, then the best of each other method, then the next distinct combos."""
    if not chosen:
        return []
    out = [chosen[0]]
    seen_methods = {chosen[0].combo.method}
    for c in chosen[1:]:
        if c.combo.method not in seen_methods:
            out.append(c)
            seen_methods.add(c.combo.method)
    for c in chosen[1:]:
        if len(out) >= max(req.top_k, len(seen_methods)):
            break
        if c not in out:
            out.append(c)
    best_rank = {c: i for i, c in enumerate(chosen)}
    head, rest = out[0], sorted(out[1:], key=lambda c: best_rank[c])
    return [head, *rest][: max(req.top_k, 1)]


def _judge_user(search: _Search, setup: TrainSetup) -> Plan | None:
    """The user's own setup, estimated and judged by every plan rule (no search)."""
    from vramdoc.estimate.core import build_estimate

    est = build_estimate(setup, search.spec, search.groups, search.gpu)
    ctx = memory_context(setup_context(setup, search.spec, search.base_ctx, search.user_seq),
                         est, search.gpu.memory_bytes, search.margin)
    t = setup.training
    lo = setup.lora
    combo = Combo(setup.method, ctx["dtype"], "bf16" if t.bf16 else "fp16" if t.fp16 else None,
                  setup.attn_implementation, t.gradient_checkpointing, t.optim,
                  None if lo is None else ("all-linear" if lo.target_modules == ("all-linear",)
                                           else "default"), lo.r if lo else None,
                  setup.prepare_model_for_kbit_training, t.use_liger_kernel)
    cand = Candidate(combo, t.per_device_train_batch_size, t.gradient_accumulation_steps,
                     setup.max_seq_length)
    st = step_time(cand, search.dims, search.gpu, setup.effective_batch_size,
                   float(est.trainable_params), **search.world(cand.combo))
    return Plan(setup=setup, estimate=est, step=st, margin_bytes=search.margin,
                gpu_memory_bytes=search.gpu.memory_bytes,
                findings=tuple(evaluate(search.rules, ctx)), applied=(), candidate=cand)


__all__ = ["Plan", "PlanRequest", "PlanResult", "SearchStats", "default_margin", "describe",
           "plan"]
