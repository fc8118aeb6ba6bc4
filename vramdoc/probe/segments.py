"""Trace a deep model from shallow builds of it: exact layer-segment extrapolation.

When every decoder layer of a model is the same module (same classes, parameter shapes,
dtypes, trainability and settings; only the layer index differs), a training step runs the
same ops for each of them. The step's timeline of allocations and frees is then, phase by
phase, a fixed part with, at fixed places, one copy of a middle layer's events per middle
layer: in the forward and backward one run of events per layer, in the load one run of
parameters per layer, in the optimizer step one slot per layer in each multi-tensor list.

So the probe traces the same setup built with 2, 3 and 4 layers (first, middle and last layer
present), finds where the 3-layer timeline adds events to the 2-layer one, checks that adding
those events twice gives the 4-layer timeline event for event, and builds the L-layer timeline
by adding them L - 2 times. The replay of that timeline (per-phase peaks and components) is the
one a full trace gives, byte for byte (tests/probe/test_segments.py compares them on several
setups). Whenever a check fails (layers that differ: MoE layer patterns, sliding-window layer
patterns, first dense layers; adapters on some layers only; a 4-layer trace that does not
follow; a run that stops with an error or an emulated out-of-memory; a total that could reach
an emulated card's limit) the probe traces all layers instead and says why.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

from vramdoc.probe.result import ProbeResult
from vramdoc.probe.tracker import MemoryTracker, Token, Trace, block_bytes, replay
from vramdoc.setup import TrainSetup

SIZES = (2, 3, 4)  # the layer counts traced: the first two give the pattern, the third checks it
# Below this depth tracing every layer costs about what three shallow traces cost.
MIN_LAYERS = 12
# Attributes that hold a layer's position, not what it computes (transformers' attention
# modules keep ``layer_idx`` to find their cache slot).
_INDEX_ATTRS = frozenset({"layer_idx", "layer_id", "layer_index", "layer_number"})
_LAYER_NAME = re.compile(r"(^|\.)\d+(\.|$)")


@dataclass(frozen=True)
class Plan:
    """A model whose layers are identical, and the shallow specs to trace."""

    layers: int
    specs: tuple[Any, ...]  # the ModelSpec with config for SIZES[i] layers


@dataclass(frozen=True)
class Shallow:
    """What one shallow run gave: its result and its tracker."""

    result: ProbeResult
    tracker: MemoryTracker | None


def plan(setup: TrainSetup, spec: Any, *, min_layers: int | None = None
         ) -> tuple[Plan | None, str]:
    """Whether ``spec``'s decoder layers are identical for ``setup``, and the shallow builds.

    Returns the plan, or None and why not ("" when the model is too shallow to gain).
    """
    from vramdoc.probe import build

    cfg = build.hf_config(spec.model_type, spec.config, setup)
    layers = getattr(cfg, "num_hidden_layers", None)
    least = MIN_LAYERS if min_layers is None else min_layers
    if not isinstance(layers, int) or layers < max(least, SIZES[-1] + 1):
        return None, ""
    names = _setup_names(setup)
    pinned = [n for n in names if _LAYER_NAME.search(n)]
    if pinned:
        return None, f"{pinned[0]!r} names one layer's module, so the layers differ"
    uneven = _uneven_lists(cfg, layers)
    if uneven:
        return None, f"config {uneven} differs between layers"
    key = getattr(cfg, "attribute_map", {}).get("num_hidden_layers", "num_hidden_layers")
    specs = []
    for n in SIZES:
        config = copy.deepcopy(dict(spec.config))
        for k, v in list(config.items()):
            if isinstance(v, list) and len(v) == layers:
                config[k] = v[:n]
        config[key] = n
        if "num_hidden_layers" in config:  # the name transformers maps to ``key``
            config["num_hidden_layers"] = n
        if getattr(build.hf_config(spec.model_type, config, setup), "num_hidden_layers",
                   None) != n:
            return None, f"a {n}-layer config of this model cannot be built"
        specs.append(replace(spec, config=config))
    reference = None
    for s in (spec, *specs):
        sigs = _layer_signatures(setup, s)
        if not sigs:
            return None, "no repeated decoder layers found"
        if reference is None:
            reference = sigs[0]
        for i, sig in enumerate(sigs):
            if sig != reference:
                what = _first_difference(reference, sig)
                return None, f"decoder layer {i} differs from layer 0 ({what})" if s is spec \
                    else f"a shallow build's layers differ from the model's ({what})"
    return Plan(layers, tuple(specs)), ""


def extrapolate(plan: Plan, shallow: Sequence[Shallow], limit_bytes: int | None
                ) -> tuple[tuple[ProbeResult, Trace | None] | None, str]:
    """The ``plan.layers``-layer result and timeline from the shallow runs, or None and why
    not. The result is the last shallow run's with the full model's counts, figures to come
    from the returned trace."""
    for n, run in zip(SIZES, shallow, strict=True):
        if run.result.step_error is not None or run.result.oom is not None \
                or run.tracker is None:
            return None, f"the {n}-layer run stopped ({run.result.step_error or 'out of memory'})"
    timelines = [run.tracker.timeline(ops=True, layers=n)  # type: ignore[union-attr]
                 for n, run in zip(SIZES, shallow, strict=True)]
    round_to = shallow[0].tracker.round_to  # type: ignore[union-attr]
    pattern = derive(*timelines, round_to)
    if pattern is None:
        return None, (f"the {SIZES[2]}-layer timeline is not the {SIZES[0]}-layer one with "
                      "two middle layers' events added")
    traces = [run.tracker.trace() for run in shallow]  # type: ignore[union-attr]
    per_layer = _per_layer([t.saved_activation_bytes_per_layer for t in traces], plan.layers)
    saved = _per_layer([t.saved_in_layer for t in traces], plan.layers)
    counts = _linear([(r.result.n_params, r.result.n_trainable) for r in shallow], plan.layers)
    if per_layer is None or saved is None or counts is None:
        return None, "the shallow runs' per-layer figures do not repeat"
    replayed = replay(expand(timelines[0], pattern, plan.layers - SIZES[0], round_to))
    if limit_bytes is not None and replayed.live_peak_bytes > limit_bytes:
        return None, "the run may reach the emulated card's limit"
    base = shallow[-1].result
    result = replace(base, n_params=counts[0], n_trainable=counts[1], notes=list(base.notes),
                     measured_items=list(base.measured_items), findings=[])
    result.extrapolated = {"layers": plan.layers, "traced_layers": list(SIZES),
                           "repeated_layers": plan.layers - SIZES[0]}
    result.notes.append(
        f"the {plan.layers} decoder layers are identical, so the step was traced on "
        f"{', '.join(str(n) for n in SIZES[:-1])} and {SIZES[-1]}-layer builds and the "
        f"{plan.layers}-layer timeline is the {SIZES[0]}-layer one with "
        f"{plan.layers - SIZES[0]} copies of a middle layer's events (checked on the "
        f"{SIZES[-1]}-layer trace): the same bytes as a full trace; --no-extrapolate traces "
        "every layer")
    return (result, replayed.trace(per_layer, saved)), ""


def run(plan: Plan, trace_once: Callable[[Any, bool], Shallow], limit_bytes: int | None
        ) -> tuple[tuple[ProbeResult, Trace | None] | None, str]:
    """Trace the plan's shallow specs with ``trace_once(spec, last)`` and extrapolate
    (``limit_bytes``: the emulated card's limit for the full model, if any).

    Ctrl-C during a shallow run gives that run's result without figures (the trace None).
    """
    shallow: list[Shallow] = []
    for n, s in zip(SIZES, plan.specs, strict=True):
        got = trace_once(s, n == SIZES[-1])
        if got.result.interrupted:
            r = replace(got.result, measured=None, steps=[], steps_run=0,
                        notes=[*got.result.notes, f"interrupted while tracing the {n}-layer "
                               "build: no figures (see --no-extrapolate)"])
            return (r, None), ""
        if got.result.step_error is not None or got.result.oom is not None:
            return None, f"the {n}-layer run stopped"
        shallow.append(got)
    return extrapolate(plan, shallow, limit_bytes)


# --- timelines ---------------------------------------------------------------------------


def _segments(tokens: Sequence[Token]) -> list[tuple[Token | None, list[Token]]]:
    """The timeline cut at its phase markers: (marker, events after it)."""
    out: list[tuple[Token | None, list[Token]]] = [(None, [])]
    for tok in tokens:
        if tok[0] == "|":
            out.append((tok, []))
        else:
            out[-1][1].append(tok)
    return out


Runs = list[tuple[int, list[Token]]]  # (position in the shorter timeline, inserted events)
_WINDOW = 256  # events compared after a candidate change (_align)


def _single(a: list[Token], b: list[Token]) -> _Pattern | None:
    """``b`` as ``a`` with one run inserted (any valid place expands the same)."""
    p = 0
    while p < len(a) and a[p] == b[p]:
        p += 1
    d = len(b) - len(a)
    return _Pattern([(p, b[p:p + d])], {}) if b[p + d:] == a[p:] else None


@dataclass(frozen=True)
class _Pattern:
    """What one more middle layer changes in one segment of the timeline."""

    runs: Runs  # events inserted (per middle layer) before the shorter timeline's events
    grow: dict[int, int]  # event index -> storage bytes added per middle layer (a tensor
    #                       with one entry per layer or parameter, e.g. clipping's stacked norms)


def _apply(a: list[Token], pattern: _Pattern, copies: int, round_to: int) -> Iterator[Token]:
    prev = 0
    for pos, run in [*pattern.runs, (len(a), [])]:
        for i in range(prev, pos):
            add = pattern.grow.get(i)
            yield a[i] if add is None else _grown(a[i], copies * add, round_to)
        for _ in range(copies):
            yield from run
        prev = pos


def _key(t: Token) -> Token:
    """An event without its size: the same op, component and layer in a deeper model."""
    return (t[0], *t[2:6])


def _grown(t: Token, add: int, round_to: int) -> Token:
    raw = t[6] + add
    return (t[0], block_bytes(raw, round_to), *t[2:6], raw)


def _agree(a: list[Token], i: int, b: list[Token], j: int, c: list[Token], k: int) -> int:
    """How many events agree from a[i], b[j] and c[k] on (at most _WINDOW)."""
    n = 0
    while (n < _WINDOW and i + n < len(a) and j + n < len(b) and k + n < len(c)
           and a[i + n] == b[j + n] == c[k + n]):
        n += 1
    return n


def _align(a: list[Token], b: list[Token], c: list[Token], round_to: int) -> _Pattern | None:
    """Read ``b`` as ``a`` plus inserted runs and grown storages (a tensor with one entry per
    layer or parameter, such as gradient clipping's stacked norms) such that ``c`` is ``a``
    plus each run twice and each storage grown twice as much. At each disagreement the
    choice whose next events agree longest in all three wins (the shorter run, then no
    growth, on a tie); the caller checks the whole result."""
    runs: Runs = []
    grow: dict[int, int] = {}
    i = j = k = 0
    while i < len(a):
        if j < len(b) and k < len(c) and a[i] == b[j] == c[k]:
            i, j, k = i + 1, j + 1, k + 1
            continue
        best: tuple[int, int, int] | None = None  # (score, -run, -grown)
        choice = (0, 0)
        budget = min(len(b) - j - (len(a) - i), (len(c) - k - (len(a) - i)) // 2)
        for s in range(budget + 1):
            run = b[j:j + s]
            if s and c[k:k + s] != run or c[k + s:k + 2 * s] != run:
                continue
            bt, ct = b[j + s], c[k + 2 * s]
            if bt == a[i] == ct:
                add = 0
            elif _key(bt) == _key(a[i]) and ct == _grown(a[i], 2 * (bt[6] - a[i][6]),
                                                         round_to):
                add = bt[6] - a[i][6]
            else:
                continue
            score = (_agree(a, i + 1, b, j + s + 1, c, k + 2 * s + 1), -s, -bool(add))
            if best is None or score > best:
                best, choice = score, (s, add)
        if best is None:
            return None
        s, add = choice
        if s:
            runs.append((i, b[j:j + s]))
        if add:
            grow[i] = add
        i, j, k = i + 1, j + s + 1, k + 2 * s + 1
    if b[j:] + b[j:] != c[k:]:
        return None
    if j < len(b):
        runs.append((len(a), b[j:]))
    return _Pattern(runs, grow)


def _pattern(a: list[Token], b: list[Token], c: list[Token], round_to: int) -> _Pattern | None:
    """What one more middle layer changes in ``a`` (``b``: one more layer, ``c``: two more),
    checked event for event: ``c`` must be ``a`` with the change made twice."""
    if len(b) < len(a):
        return None
    for got in (_single(a, b), _align(a, b, c, round_to)):
        if got is not None and list(_apply(a, got, 2, round_to)) == c:
            return got
    return None


Insertions = list[_Pattern]  # per segment of the timeline


def derive(a: Sequence[Token], b: Sequence[Token], c: Sequence[Token],
           round_to: int) -> Insertions | None:
    """What one more middle layer changes, segment by segment, from timelines of n, n + 1
    and n + 2 layers (None: the n + 2 timeline is not the n one plus twice those changes)."""
    sa, sb, sc = _segments(a), _segments(b), _segments(c)
    if not [m for m, _ in sa] == [m for m, _ in sb] == [m for m, _ in sc]:
        return None
    out: Insertions = []
    for (_m, ea), (_n, eb), (_o, ec) in zip(sa, sb, sc, strict=True):
        got = _pattern(ea, eb, ec, round_to)
        if got is None:
            return None
        out.append(got)
    return out


def expand(a: Sequence[Token], pattern: Insertions, copies: int, round_to: int
           ) -> Iterator[Token]:
    """``a`` with each inserted run repeated ``copies`` times and each grown storage grown
    ``copies`` times (a generator)."""
    for (marker, events), seg in zip(_segments(a), pattern, strict=True):
        if marker is not None:
            yield marker
        yield from _apply(events, seg, copies, round_to)


# --- per-layer figures and counts ---------------------------------------------------------
def _per_layer(maps: list[dict[int, Any]], layers: int) -> dict[int, Any] | None:
    """The shallow runs' first, middle and last layer values, spread over ``layers`` layers
    (None when the shallow runs disagree)."""
    firsts = [m.get(0) for m in maps]
    lasts = [m.get(n - 1) for m, n in zip(maps, SIZES, strict=True)]
    middles = [m.get(i) for m, n in zip(maps, SIZES, strict=True) for i in range(1, n - 1)]
    outside = [k for m, n in zip(maps, SIZES, strict=True) for k in m if not 0 <= k < n]
    if outside or any(v != vs[0] for vs in (firsts, lasts, middles) for v in vs):
        return None
    out: dict[int, Any] = {}
    for i in range(layers):
        v = firsts[0] if i == 0 else lasts[0] if i == layers - 1 else middles[0]
        if v is not None:
            out[i] = v
    return out


def _linear(counts: list[tuple[int, int]], layers: int) -> tuple[int, int] | None:
    """Parameter counts for ``layers`` layers from the shallow builds' (None if not linear)."""
    (a, at), (b, bt), (c, ct) = counts
    if c - b != b - a or ct - bt != bt - at:
        return None
    k = layers - SIZES[0]
    return a + k * (b - a), at + k * (bt - at)


# --- are the layers identical? -------------------------------------------------------------
def _setup_names(setup: TrainSetup) -> list[str]:
    names: list[str] = []
    if setup.lora is not None:
        names += [t for t in setup.lora.target_modules if t != "all-linear"]
        names += list(setup.lora.modules_to_save)
    if setup.quantization is not None:
        names += list(getattr(setup.quantization, "llm_int8_skip_modules", ()) or ())
    return names


def _uneven_lists(cfg: Any, layers: int) -> str:
    """The first per-layer setting of the config whose values differ between layers."""
    for k, v in sorted(vars(cfg).items()):
        if isinstance(v, list | tuple) and len(v) == layers and len(set(map(repr, v))) > 1:
            return str(k)
    return ""


def _simple(v: Any) -> bool:
    if v is None or isinstance(v, bool | int | float | str):
        return True
    return isinstance(v, list | tuple) and all(_simple(x) for x in v)


def _layer_signatures(setup: TrainSetup, spec: Any) -> list[Any]:
    """Each decoder layer of the model as transformers builds it (on meta): module classes,
    parameters and buffers (shape, dtype) and plain settings, the layer's index left out."""
    import torch

    from vramdoc.probe import build

    cfg = build.hf_config(spec.model_type, spec.config, setup)
    attn = build._attn(setup, "fake", [])
    with torch.device("meta"):
        model = build._auto_class(setup, cfg).from_config(
            cfg, dtype=build.load_dtype(setup, spec.checkpoint_dtype), attn_implementation=attn)
    layers = build.BuiltModel(model, model, torch.float32, attn, 0, 0).decoder_layers()
    if len(layers) != cfg.num_hidden_layers:
        return []
    sigs = []
    for layer in layers:
        sig = []
        for name, m in layer.named_modules():
            attrs = tuple(sorted((k, repr(v)) for k, v in vars(m).items()
                                 if not k.startswith("_") and k not in _INDEX_ATTRS
                                 and _simple(v)))
            params = tuple((n, tuple(p.shape), str(p.dtype), p.requires_grad)
                           for n, p in m.named_parameters(recurse=False))
            buffers = tuple((n, tuple(b.shape), str(b.dtype))
                            for n, b in m.named_buffers(recurse=False))
            sig.append((name, type(m).__qualname__, attrs, params, buffers))
        sigs.append(tuple(sig))
    return sigs


def _first_difference(a: Any, b: Any) -> str:
    for x, y in zip(a, b, strict=False):
        if x != y:
            where = str(x[0] or y[0] or "the layer itself")
            return f"{where}: {x[1]} vs {y[1]}" if x[1] != y[1] else where
    return "module count"
