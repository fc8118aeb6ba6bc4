"""Many steps at once: the watch's rule context and alerts over columns, bit for bit.

``vramdoc watch --once`` on a long log spends its time per step: the context the W rules read
(:class:`~vramdoc.monitor.context.ContextBuilder`: medians, a slope, sums) and the rules
themselves. For a run of the recorder's step lines (a
:class:`~vramdoc.monitor.fastdecode.StepRun`), :func:`take_run` computes, with numpy, every
name a live rule reads as a column over the run, evaluates the rules' conditions over those
columns, finds the alert episodes, and builds a full context (the per-step code itself) only
where a message needs one: the first step of an episode and the last firing of each episode
in the run. At the end the builder is set to the state it would have after the run, and the
run's last step goes through :meth:`ContextBuilder.push`, so the per-step path (late steps,
other events, the live screen) carries on from exactly where it would be.

**Exactness.** The columns follow the per-step arithmetic operation for operation: medians
sort and take the middle value or ``(a + b) / 2``; the memory slope sums left to right as
:func:`sum` does (its compensated summation on Python 3.12+), and is computed by the per-step
function for any window whose deviations are not whole numbers (where ``d ** 2`` goes through
the C library's ``pow``); every integer is below 2**53 (so float64 holds it exactly) or the
run is not taken. A run outside what is handled here (a step number that does not move forward,
another session, a ``-0.0``, a rule the column evaluator does not cover ...) returns False and
the caller feeds it step by step. ``tests/monitor/test_batch.py`` compares both paths on
varied, hostile and random logs: events, counts, summary, alerts, messages, chart window and
the builder's state.

numpy is imported here only, lazily (the ``plan`` path never loads this module).
"""

from __future__ import annotations

import ast
import copy
import math
import statistics
import sys
from collections import deque
from operator import attrgetter, itemgetter
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view as _windows

from vramdoc.monitor.context import RECENT, WINDOW, ContextBuilder, _slope
from vramdoc.monitor.curves import (
    CLIP_WINDOW,
    IMPROVE,
    LR_TINY,
    SCALE_WINDOW,
    SMOOTH,
    TPUT_SKIP,
    TPUT_WINDOW,
)
from vramdoc.monitor.curves import _finite as _number
from vramdoc.monitor.fastdecode import ColumnRun

_EXACT = float(2**53)
# Tests set this: a fault in take_run raises instead of falling back to the per-step path.
STRICT = False
_NAN = math.nan


_NUMBERS = attrgetter("step", "loss", "grad_norm", "lr", "loss_scale", "tokens_per_s",
                      "step_time_s")
_MEM = itemgetter("allocated_bytes", "reserved_bytes", "peak_allocated_bytes",
                  "peak_reserved_bytes", "alloc_retries")


class Unsupported(Exception):
    """Something this module does not take: the caller goes step by step."""


# --- sums as Python's sum() does them ---------------------------------------------------------

def _sum_plain(m: np.ndarray) -> np.ndarray:
    """``sum(column)`` for each column of ``m`` (shape: terms x sums), added in order, as
    CPython before 3.12 adds floats."""
    acc = 0.0 + m[0]
    for k in range(1, m.shape[0]):
        acc = acc + m[k]
    return acc


def _sum_neumaier(m: np.ndarray) -> np.ndarray:
    """``sum(column)`` as CPython 3.12+ adds floats (Neumaier's compensated summation)."""
    f = 0.0 + m[0]
    c = np.zeros_like(f)
    for k in range(1, m.shape[0]):
        x = m[k]
        t = f + x
        c = c + np.where(np.abs(f) >= np.abs(x), (f - t) + x, (x - t) + f)
        f = t
    return np.where((c != 0) & np.isfinite(c), f + c, f)


_SUM: list[Any] = []


def _row_sum() -> Any:
    """The row summation matching this interpreter's ``sum``, checked once on odd data;
    None when neither matches (then no run is taken)."""
    if not _SUM:
        rng = np.random.default_rng(9)
        m = np.concatenate([rng.normal(size=(200, 21)) * 10.0 ** rng.integers(-8, 12, (200, 21)),
                            np.full((1, 21), 0.1), np.array([[1e16, 1.0, -1e16] * 7])])
        found = None
        for fn in ((_sum_plain, _sum_neumaier) if sys.version_info < (3, 12)
                   else (_sum_neumaier, _sum_plain)):
            got = fn(m.T.copy())
            ints = np.round(m * 1e6)  # the slope's last point is an int (the bytes read)
            mixed = np.concatenate([m[:, :-1], ints[:, -1:]], axis=1)
            if all(float(g) == sum(row.tolist()) for g, row in zip(got, m, strict=True)) and \
                    all(float(g) == sum(row[:-1].tolist() + [int(row[-1])])
                        for g, row in zip(fn(mixed.T.copy()), mixed, strict=True)):
                found = fn
                break
        _SUM.append(found)
    return _SUM[0]


# --- columns ------------------------------------------------------------------------------------

def _arr(values: list[Any]) -> np.ndarray:
    """Floats (None -> nan) as float64."""
    return np.array(values, dtype=np.float64)


def _nones(col: np.ndarray) -> list[float | None]:
    """A column back as the values read (nan stands for None: the fast path reads no NaN)."""
    return [None if v != v else v for v in col.tolist()]


def _medians(rows: np.ndarray) -> np.ndarray:
    """``_median`` of each row (nan entries left out; nan when none is left)."""
    s = np.sort(rows, axis=1)
    w = rows.shape[1]
    if w and not np.isnan(s[:, -1]).any():  # no nan at all (a sort puts nan last): the middle
        if w % 2:
            return s[:, w // 2].copy()
        return (s[:, w // 2 - 1] + s[:, w // 2]) / 2
    c = w - np.isnan(s).sum(axis=1)
    r = np.arange(len(s))
    hi = s[r, np.minimum(c // 2, w - 1)]
    lo = s[r, np.maximum(c // 2 - 1, 0)]
    with np.errstate(all="ignore"):
        med = np.where(c % 2 == 1, hi, (lo + hi) / 2)
    med[c == 0] = _NAN
    return med


def _ffill_before(mask: np.ndarray, values: np.ndarray, start: float) -> np.ndarray:
    """For each row, the value at the last row *before* it where ``mask`` holds (else start)."""
    n = len(mask)
    idx = np.where(mask, np.arange(n), -1)
    last = np.maximum.accumulate(idx) if n else idx
    before = np.concatenate([[-1], last[:-1]]) if n else last
    out = np.where(before >= 0, values[np.maximum(before, 0)], start)
    return out.astype(np.float64)


def _last_index(mask: np.ndarray) -> np.ndarray:
    """For each row, the last row at or before it where ``mask`` holds (-1 when none)."""
    idx = np.where(mask, np.arange(len(mask)), -1)
    return np.maximum.accumulate(idx) if len(mask) else idx


def _streak(cond: np.ndarray, start: int) -> np.ndarray:
    """Consecutive True values ending at each row; ``start`` carried in before the first False."""
    k = np.arange(len(cond))
    last_false = _last_index(~cond)
    return np.where(last_false >= 0, k - last_false, start + k + 1)


class _Run:
    """The columns of one run of steps and the builder's state before it."""

    def __init__(self, b: ContextBuilder, structs: list[Any]) -> None:
        # the state before the run, kept apart: the builder itself is set to the run's end
        self.b = b = copy.copy(b)
        b.curves = c = copy.copy(b.curves)
        self.structs = structs
        n = self.n = len(structs)
        columns = type(structs) is ColumnRun
        if columns:  # read into columns already (Follower.poll_runs)
            cols0 = structs.cols
            S, L, G, LR, SC, T, DT = (cols0[k] for k in ("step", "loss", "grad_norm", "lr",
                                                         "loss_scale", "tokens_per_s",
                                                         "step_time_s"))
        else:
            # the fields as columns, a step's numbers taken together (close in memory)
            nums = np.array(list(map(_NUMBERS, structs)), dtype=np.float64)  # None -> nan
            S, L, G, LR, SC, T, DT = nums.T.copy()
        if np.any(np.abs(S) >= _EXACT) or np.isnan(S).any():
            raise Unsupported("a step number past 2**53")
        steps = S.astype(np.int64).tolist()  # the ints read: exact below 2**53
        self.steps = steps
        self.S = S
        for col in (L, G, LR, SC, T, DT):
            if np.any((col == 0) & np.signbit(col)):
                raise Unsupported("-0.0")
        self.L, self.G, self.LR, self.SC = L, G, LR, SC

        if columns:
            A, R, PA, PR, RT, GT = (cols0[k] for k in (
                "allocated_bytes", "reserved_bytes", "peak_allocated_bytes",
                "peak_reserved_bytes", "alloc_retries", "gpu_total_bytes"))
            sk, intr = cols0["skipped"], cols0["interrupted"]
        else:
            skipped, interrupted, mems, gpus = (
                list(map(attrgetter(name), structs))
                for name in ("skipped", "interrupted", "mem", "gpu"))
            try:  # every step has every figure (a GPU run): one C-level pass
                A, R, PA, PR, RT = np.array(list(map(_MEM, mems)), dtype=np.float64).T.copy()
            except (KeyError, TypeError):
                def mem(key: str) -> np.ndarray:
                    return _arr([m.get(key) if m else None for m in mems])

                A, R, PA, PR, RT = (mem("allocated_bytes"), mem("reserved_bytes"),
                                    mem("peak_allocated_bytes"), mem("peak_reserved_bytes"),
                                    mem("alloc_retries"))
            GT = _arr([g.total_bytes if g is not None else None for g in gpus])
            sk = np.array(list(map(bool, skipped)), dtype=bool)
            intr = np.array(list(map(bool, interrupted)), dtype=bool)
        for col in (A, R, PA, PR, RT, GT, S):
            if np.any(np.abs(col) >= _EXACT):
                raise Unsupported("an integer past 2**53")
        self.A, self.R, self.PA, self.PR, self.RT = A, R, PA, PR, RT
        cols: dict[str, tuple[np.ndarray, np.ndarray | None]] = {}
        self.cols = cols
        none = np.isnan

        def put(name: str, values: np.ndarray, missing: np.ndarray | None = None) -> None:
            cols[name] = (values, missing)

        k = np.arange(n)
        put("step", S)
        put("steps_seen", b.steps_seen + 1 + k.astype(np.float64))
        put("loss", L, none(L))
        put("grad_norm", G, none(G))
        put("lr", LR, none(LR))
        put("loss_scale", SC, none(SC))
        false = np.zeros(n, dtype=bool)
        put("loss_nonfinite", false)  # the fast path takes finite numbers only
        put("grad_norm_nonfinite", false)
        self.sk = sk
        put("skipped", sk)
        self.streak = _streak(sk, b.skipped_streak)
        put("skipped_streak", self.streak.astype(np.float64))
        put("interrupted", intr)
        put("mem_allocated_bytes", A, none(A))
        put("mem_reserved_bytes", R, none(R))
        put("mem_peak_allocated_bytes", PA, none(PA))
        put("mem_peak_reserved_bytes", PR, none(PR))
        put("alloc_retries", RT, none(RT))

        with np.errstate(all="ignore"):
            self._medians_and_ratios(L, G)
            self._throughput(structs, T, DT)
            self._memory(A, R, PA, PR, RT, GT)
            self._curves(c, L, G, LR, SC)
        # what sync() reads: the last row (at or before each) holding a value
        self.rt_last = _last_index(~np.isnan(RT))
        self.sc_last = _last_index(~np.isnan(SC))
        self.lr_last = _last_index(~np.isnan(LR))
        self.scale_run_max = np.fmax.accumulate(SC) if n else SC
        self.cum_app = np.cumsum(self.app)
        self.cum_truthy = np.cumsum(self.truthy_alloc)
        self.cum_frag = np.cumsum(~np.isnan(self.frag))

    # -- windows of the previous 20 steps: loss and gradient-norm medians --------------------
    def _medians_and_ratios(self, L: np.ndarray, G: np.ndarray) -> None:
        b, n = self.b, self.n
        for name, col, hist in (("loss", L, b.loss_hist), ("grad_norm", G, b.gn_hist)):
            a = np.full(WINDOW + n, _NAN)
            h = [v if v is not None and math.isfinite(v) else _NAN for v in hist]
            if h:
                a[WINDOW - len(h):WINDOW] = h
            a[WINDOW:] = col
            med = _medians(_windows(a[:-1], WINDOW))
            ok = ~np.isnan(med) & (med > 0) & ~np.isnan(col)
            self.cols[f"{name}_median"] = (med, np.isnan(med))
            self.cols[f"{name}_ratio"] = (np.where(ok, col / med, _NAN), ~ok)

    # -- throughput: W111's ratio over tput_hist ---------------------------------------------
    def _throughput(self, structs: list[Any], T: np.ndarray, DT: np.ndarray) -> None:
        b, n = self.b, self.n
        # tokens/s when counted (truthy), else 1 / step time when finite and not 0, else None
        RA = np.where(~np.isnan(T) & (T != 0), T,
                      np.where(~np.isnan(DT) & (DT != 0), 1.0 / DT, _NAN))
        interrupted = self.cols["interrupted"][0]
        app = ~interrupted & np.isfinite(RA)  # nan (None) is not finite
        self.app = app
        hist = list(b.tput_hist)
        h = len(hist)
        seq = np.concatenate([np.array(hist, dtype=np.float64), RA[app]])
        self.tput_seq = seq
        pos = h + np.cumsum(app) - 1  # position in seq of each appended row
        ratio = np.full(n, _NAN)
        span = WINDOW + RECENT
        rows = np.flatnonzero(app)
        full = rows[pos[rows] >= span - 1]
        if len(full):
            win = _windows(seq, span)[pos[full] - (span - 1)]
            a = _medians(win[:, -RECENT:])
            z = _medians(win[:, :-RECENT])
            ok = (z != 0)
            ratio[full[ok]] = a[ok] / z[ok]
        from vramdoc.monitor.context import _median, _ratio

        for j in rows[(pos[rows] < span - 1) & (pos[rows] >= WINDOW // 2 + RECENT - 1)]:
            p = int(pos[j])
            window = seq[max(0, p - span + 1):p + 1].tolist()
            r = _ratio(_median(window[-RECENT:]), _median(window[:-RECENT]))
            ratio[j] = _NAN if r is None else r
        self.cols["throughput_ratio"] = (ratio, np.isnan(ratio))

    @staticmethod
    def col_list(col: np.ndarray) -> list[float | None]:
        return [None if v != v else v for v in col.tolist()]

    # -- the CUDA allocator's figures: retries, fragmentation, slope, limit, drift -------------
    def _memory(self, A: np.ndarray, R: np.ndarray, PA: np.ndarray, PR: np.ndarray,
                RT: np.ndarray, GT: np.ndarray) -> None:
        b, n, cols, S = self.b, self.n, self.cols, self.S
        put = cols.__setitem__
        has_rt = ~np.isnan(RT)
        prev_rt = _ffill_before(has_rt, RT, _NAN if b.prev_retries is None else b.prev_retries)
        put("alloc_retries_new", (np.where(has_rt & ~np.isnan(prev_rt), RT - prev_rt, 0.0),
                                  None))
        frag = R - A  # nan where either is None
        has_frag = ~np.isnan(frag)
        self.frag = frag
        put("frag_bytes", (frag, ~has_frag))
        fh = list(b.frag_hist)
        fseq = np.concatenate([np.full(WINDOW, np.inf), np.array(fh, dtype=np.float64),
                               frag[has_frag]])
        fpos = len(fh) + np.cumsum(has_frag) - 1  # position among the frags (hist first)
        growth_f = np.full(n, _NAN)
        rows = np.flatnonzero(has_frag)
        if len(rows):
            mins = _windows(fseq[:-1], WINDOW)[fpos[rows]].min(axis=1)
            ok = np.isfinite(mins)
            growth_f[rows[ok]] = frag[rows[ok]] - mins[ok]
        put("frag_growth_bytes", (growth_f, np.isnan(growth_f)))
        ok = has_frag & ~np.isnan(R) & (R != 0)
        put("frag_fraction", (np.where(ok, frag / R, _NAN), ~ok))

        # limit: the device the run saw, else NVML's total, else the plan's GPU
        dev, plan_gpu = b.device_total, b.plan_gpu_bytes
        for v in (dev, plan_gpu):
            if v and not (_number(v) and abs(v) < _EXACT):
                raise Unsupported("a header size that is no number")
        if dev:
            limit = np.full(n, float(int(dev)))
        else:
            fallback = float(int(plan_gpu)) if plan_gpu else _NAN
            limit = np.where(~np.isnan(GT) & (GT != 0), GT, fallback)
        put("gpu_limit_bytes", (limit, np.isnan(limit)))
        top = np.where(~np.isnan(PR), PR, R)
        ok = ~np.isnan(top) & ~np.isnan(limit) & (limit != 0)
        put("mem_used_fraction", (np.where(ok, top / limit, _NAN), ~ok))

        growth = self._slopes(A, S)
        put("mem_growth_bytes_per_step", (growth, np.isnan(growth)))
        ok = ~np.isnan(limit) & (limit != 0) & ~np.isnan(top) & ~np.isnan(growth) & \
            (growth > 2**20)
        v = (limit - top) / growth
        put("mem_steps_to_limit", (np.where(ok, np.where(v > 0.0, v, 0.0), _NAN), ~ok))

        plan = b.plan_peak
        if plan is not None and not (_number(plan) and abs(plan) < _EXACT):
            raise Unsupported("a plan peak that is no number")
        ok = ~np.isnan(PA) & (PA != 0) & bool(plan)
        put("drift_ratio", (np.where(ok, PA / (plan or 1), _NAN), ~ok))
        put("plan_peak_allocated_bytes", (np.full(n, _NAN if plan is None else float(plan)),
                                          np.full(n, plan is None)))

    def _slopes(self, A: np.ndarray, S: np.ndarray) -> np.ndarray:
        """``_slope`` of each step's points: the previous 20 step-end allocations, plus its own."""
        b, n = self.b, self.n
        truthy = ~np.isnan(A) & (A != 0)
        self.truthy_alloc = truthy
        hist = list(b.alloc_hist)
        # the history's ints as float64 (exact below 2**53, as the run's own figures)
        xs = np.concatenate([np.array([p[0] for p in hist], dtype=np.float64), S[truthy]])
        ys = np.concatenate([np.array([p[1] for p in hist], dtype=np.float64), A[truthy]])
        self.alloc_xs, self.alloc_ys = xs, ys
        q = len(hist) + np.cumsum(truthy) - truthy  # points before each row
        end = q + truthy  # one past the last point of the row's window
        width = np.minimum(end, WINDOW + truthy)
        out = np.full(n, _NAN)
        summ = _row_sum()
        if summ is None:
            raise Unsupported("no exact row sum")
        slow: list[int] = []
        for m in (WINDOW + 1, WINDOW):
            rows = np.flatnonzero(width == m)
            if not len(rows):
                continue
            first = end[rows] - m  # each row's window: xs[first:first + m]
            X, Y = _windows(xs, m)[first].T, _windows(ys, m)[first].T  # terms x rows
            mx = X.sum(axis=0) / m  # whole numbers below 2**53: exact, as Python's int sum
            my = summ(Y) / m
            D = X - mx
            whole = np.all((np.floor(D) == D) & (np.abs(D) < 2**26), axis=0)
            sxx = summ(D * D)
            sxy = summ(D * (Y - my))
            with np.errstate(all="ignore"):
                g = np.where(sxx != 0, sxy / sxx, _NAN)
            out[rows[whole]] = g[whole]
            slow.extend(rows[~whole].tolist())
        slow.extend(np.flatnonzero((width < WINDOW) & (width >= 3)).tolist())
        for j in slow:  # the per-step function itself, on the same Python objects
            e, m = int(end[j]), int(width[j])
            pts = list(zip(xs[e - m:e].astype(np.int64).tolist(), ys[e - m:e].tolist(),
                           strict=True))
            if truthy[j]:  # the step's own point holds the int it read
                pts[-1] = (self.steps[j], int(A[j]))
            g = _slope(pts)
            out[j] = _NAN if g is None else g
        return out

    # -- training curves (CurveTracker) ------------------------------------------------------
    def _curves(self, c: Any, L: np.ndarray, G: np.ndarray, LR: np.ndarray,
                SC: np.ndarray) -> None:
        n, cols, S = self.n, self.cols, self.S
        put = cols.__setitem__
        fin = ~np.isnan(L)
        recent0 = list(c.recent)
        fl = np.concatenate([np.array(recent0, dtype=np.float64), L[fin]])
        q = len(recent0) + np.cumsum(fin)  # finite losses so far, this step's included
        self.fl, self.q_loss = fl, q
        m5 = np.full(len(fl), _NAN)
        if len(fl) >= SMOOTH:
            m5[SMOOTH - 1:] = np.sort(_windows(fl, SMOOTH), axis=1)[:, SMOOTH // 2]
        smooth = np.where(q >= SMOOTH, m5[np.maximum(q - 1, 0)] if len(fl) else _NAN, _NAN)
        valid = ~np.isnan(smooth)
        self.smooth, self.valid = smooth, valid
        put("loss_smooth", (smooth, ~valid))
        # loss_start: the first smooth value of the session
        start = np.full(n, _NAN if c.loss_start is None else c.loss_start)
        if c.loss_start is None and valid.any():
            j0 = int(np.argmax(valid))
            start[j0:] = smooth[j0]
        self.loss_start = start
        # the learning rate first: the anchor update reads whether it rose
        self._lr(c, LR)
        finite_lr = ~np.isnan(LR)
        lr_up = finite_lr & ~np.isnan(self.prev_lr) & (self.prev_lr < LR)
        # anchor / best step / plateau: a recurrence, found update by update
        thr = 1 - IMPROVE
        updates: list[int] = []
        anchor = c.anchor
        i = 0
        while i < n:
            span = 256
            found = -1
            while i < n:
                hi = min(n, i + span)
                if anchor is None:
                    cand = valid[i:hi]
                else:
                    cand = valid[i:hi] & ((smooth[i:hi] < anchor * thr) | lr_up[i:hi])
                hit = np.flatnonzero(cand)
                if len(hit):
                    found = i + int(hit[0])
                    break
                i, span = hi, span * 4
            if found < 0:
                break
            updates.append(found)
            anchor = float(smooth[found])
            i = found + 1
        upd = np.zeros(n, dtype=bool)
        upd[updates] = True
        self.updates = upd
        last_u = _last_index(upd)
        cum_v = np.cumsum(valid)
        since = np.where(last_u >= 0, cum_v - cum_v[np.maximum(last_u, 0)],
                         c.since_best + cum_v)
        self.since = since
        best_step = np.where(last_u >= 0, S[np.maximum(last_u, 0)],
                             _NAN if c.loss_best_step is None else c.loss_best_step)
        self.last_u = last_u
        put("plateau_points", (np.where(valid, since, 0).astype(np.float64), None))
        put("loss_best_step", (best_step, np.isnan(best_step)))
        put("plateau_steps", (S - best_step, np.isnan(best_step)))
        lb = np.fmin.accumulate(np.where(valid, smooth, _NAN)) if n else smooth
        if c.loss_best is not None:
            lb = np.fmin(lb, c.loss_best)
        self.loss_best = lb
        put("loss_best", (lb, np.isnan(lb)))
        ok = valid & ~np.isnan(lb) & (lb != 0)
        put("loss_rise", (np.where(ok, smooth / lb, _NAN), ~ok))
        vrows = np.flatnonzero(valid)
        rise_v = _streak(smooth[vrows] > 1.5 * lb[vrows], c.rise_points)
        li = _last_index(valid)
        pos_v = np.cumsum(valid) - 1
        rise = np.where(li >= 0, rise_v[np.maximum(pos_v, 0)] if len(vrows) else 0,
                        c.rise_points)
        self.rise = rise
        put("loss_rise_points", (rise.astype(np.float64), None))
        lae = c.loss_at_eval_best
        ok = valid & bool(lae)
        put("loss_since_eval_best", (np.where(ok, smooth / (lae or 1), _NAN), ~ok))
        self._clip(c, G)
        self._scale(c, SC)
        self._decay(c)

    def _lr(self, c: Any, LR: np.ndarray) -> None:
        """The learning-rate state machine: step by step while warmup has not ended (the
        reference rate is unknown), then over columns."""
        n, S = self.n, self.S
        lr = _nones(LR) if c.lr_ref is None else []  # step by step only before the reference
        prev_lr = c.prev_lr
        rising_col = np.zeros(n, dtype=bool)
        lr_rising = np.zeros(n, dtype=bool)
        lr_ref = np.full(n, _NAN)
        lr_max = np.full(n, _NAN)
        wend = np.full(n, _NAN)
        wseen = np.zeros(n, dtype=bool)
        prev_col = np.full(n, _NAN)
        st_rising, st_ref, st_max = c.lr_rising, c.lr_ref, c.lr_max
        st_wend, st_wseen = c.warmup_end_step, c.warmup_seen
        prev_step = c.prev_step
        j = 0
        while j < n and st_ref is None:
            v = lr[j]
            prev_col[j] = _NAN if prev_lr is None else prev_lr
            if v is not None:  # finite: the fast path takes finite numbers only
                rising = prev_lr is not None and v > prev_lr * (1 + 1e-9)
                st_max = max(st_max or 0.0, float(v))
                if rising:
                    st_wseen = True
                elif prev_lr is not None:
                    st_ref = st_max
                    if st_wseen:
                        st_wend = prev_step
                st_rising = rising
                rising_col[j] = rising
                prev_lr = float(v)
            lr_rising[j] = st_rising
            lr_ref[j] = _NAN if st_ref is None else st_ref
            lr_max[j] = _NAN if st_max is None else st_max
            wend[j] = _NAN if st_wend is None else st_wend
            wseen[j] = st_wseen
            prev_step = self.steps[j]
            j += 1
        if j < n:  # the reference rate is known: the rest over columns
            rest = LR[j:]
            fin = ~np.isnan(rest)
            pl = _ffill_before(fin, rest, _NAN if prev_lr is None else prev_lr)
            prev_col[j:] = pl
            rising = fin & ~np.isnan(pl) & (rest > pl * (1 + 1e-9))
            rising_col[j:] = rising
            last = _last_index(fin)
            lr_rising[j:] = np.where(last >= 0, rising[np.maximum(last, 0)], st_rising)
            lr_ref[j:] = st_ref
            lr_max[j:] = _NAN if st_max is None else st_max
            wend[j:] = _NAN if st_wend is None else st_wend
            wseen[j:] = st_wseen | (np.cumsum(rising) > 0)
        self.prev_lr = prev_col
        self.lr_state = (rising_col, lr_rising, lr_ref, lr_max, wend, wseen)
        cols, put = self.cols, self.cols.__setitem__
        put("lr_rising", (lr_rising, None))
        put("lr_peak", (lr_ref, np.isnan(lr_ref)))
        ok = ~np.isnan(LR) & ~np.isnan(lr_ref) & (lr_ref != 0)
        put("lr_fraction", (np.where(ok, LR / np.where(ok, lr_ref, 1.0), _NAN), ~ok))
        low = c.lr_low or LR_TINY
        put("lr_too_low", (~np.isnan(lr_ref) & (lr_ref < low), None))
        ms = c.max_steps
        if ms:
            if not (abs(ms) < _EXACT):
                raise Unsupported("max_steps past 2**53")
            put("progress", (S / ms, np.zeros(n, dtype=bool)))
            end = np.where(np.isnan(lr_ref), S, wend)
            ok = wseen & ~np.isnan(end) & (end != 0)
            put("warmup_fraction", (np.where(ok, end / ms, _NAN), ~ok))
        else:
            cols["progress"] = (np.full(n, _NAN), np.ones(n, dtype=bool))
            cols["warmup_fraction"] = (np.full(n, _NAN), np.ones(n, dtype=bool))

    def _clip(self, c: Any, G: np.ndarray) -> None:
        n = self.n
        thr = c.clip_threshold
        clipped0 = list(c.clipped)
        active = _number(thr) and thr > 0
        if active:
            if abs(thr) >= _EXACT:
                raise Unsupported("clip threshold past 2**53")
            fin = ~np.isnan(G)
            seq = np.array(clipped0 + (G[fin] > thr).tolist(), dtype=np.int64)
            q = len(clipped0) + np.cumsum(fin)
        else:
            fin = np.zeros(n, dtype=bool)
            seq = np.array(clipped0, dtype=np.int64)
            q = np.full(n, len(clipped0))
        pre = np.concatenate([[0], np.cumsum(seq)])
        length = np.minimum(CLIP_WINDOW, q)
        count = pre[q] - pre[q - length]
        self.clip_fin, self.clip_seq, self.clip_q = fin, seq, q
        ok = length >= CLIP_WINDOW // 2
        with np.errstate(all="ignore"):
            frac = np.where(ok, count / np.maximum(length, 1), _NAN)
        self.cols["clip_fraction"] = (frac, ~ok)
        self.cols["clip_points"] = (length.astype(np.float64), None)

    def _scale(self, c: Any, SC: np.ndarray) -> None:
        fs = ~np.isnan(SC)
        prev = _ffill_before(fs, SC, _NAN if c.prev_scale is None else c.prev_scale)
        drop = fs & ~np.isnan(prev) & (prev > SC)
        self.drop_rows = np.flatnonzero(drop)
        D = np.array(list(c.scale_drops) + [self.steps[j] for j in self.drop_rows],
                     dtype=np.float64)
        self.drops = D
        S = self.S
        count = np.searchsorted(D, S, "right") - np.searchsorted(D, S - SCALE_WINDOW, "right")
        self.cols["loss_scale_drops"] = (count.astype(np.float64), None)

    def _decay(self, c: Any) -> None:
        n = self.n
        app = self.app
        tp = self.tput_seq[len(self.b.tput_hist):]  # the run's finite throughputs, in order
        p0 = c.tput_points
        g = p0 + np.arange(1, len(tp) + 1)  # their point numbers in the session
        base = list(c.tput_base) + tp[(g > TPUT_SKIP) & (g <= TPUT_SKIP + TPUT_WINDOW)].tolist()
        now0 = list(c.tput_now)
        now_new = tp[g > TPUT_SKIP + TPUT_WINDOW]
        self.tp_g = g
        decay = np.full(n, _NAN)
        if len(base) >= TPUT_WINDOW and len(now0) + len(now_new) >= TPUT_WINDOW:
            base_med = statistics.median(base[:TPUT_WINDOW])
            if base_med:
                seq = np.concatenate([np.array(now0, dtype=np.float64), now_new])
                rows = np.flatnonzero(app)[g > TPUT_SKIP + TPUT_WINDOW]
                pos = len(now0) + np.arange(len(now_new))
                ok = pos >= TPUT_WINDOW - 1
                if ok.any():
                    win = _windows(seq, TPUT_WINDOW)[pos[ok] - (TPUT_WINDOW - 1)]
                    decay[rows[ok]] = _medians(win) / base_med
        self.cols["throughput_decay_ratio"] = (decay, np.isnan(decay))

    # -- the builder's state before row i --------------------------------------------------
    def sync(self, b: ContextBuilder, i: int) -> None:
        """Set ``b`` (a copy of the builder the run started from) to the state it has after
        the run's first ``i`` steps: windows from their sequences, running values from the
        last row that set them."""
        b0, c0 = self.b, self.b.curves
        c = b.curves
        j = i - 1  # the last row taken in (-1: none)
        b.steps_seen = b0.steps_seen + i
        lo = max(0, i - WINDOW)
        b.loss_hist = deque((list(b0.loss_hist) + _nones(self.L[lo:i]))[-WINDOW:],
                            maxlen=WINDOW)
        b.gn_hist = deque((list(b0.gn_hist) + _nones(self.G[lo:i]))[-WINDOW:], maxlen=WINDOW)
        span = WINDOW + RECENT
        h = len(b0.tput_hist)
        e = h + (int(self.cum_app[j]) if i else 0)
        b.tput_hist = deque(self.tput_seq[max(0, e - span):e].tolist(), maxlen=span)
        e = len(b0.alloc_hist) + (int(self.cum_truthy[j]) if i else 0)
        xs = self.alloc_xs[max(0, e - WINDOW):e].astype(np.int64).tolist()
        b.alloc_hist = deque(zip(xs, self.alloc_ys[max(0, e - WINDOW):e].tolist(),
                                 strict=True), maxlen=WINDOW)
        nf = int(self.cum_frag[j]) if i else 0
        frags = self.frag[:i][~np.isnan(self.frag[:i])][-WINDOW:].tolist() if nf else []
        b.frag_hist = deque((list(b0.frag_hist) + frags)[-WINDOW:], maxlen=WINDOW)
        b.skipped_streak = int(self.streak[j]) if i else b0.skipped_streak
        top = self.scale_run_max[j] if i else _NAN
        b.scale_max = b0.scale_max if np.isnan(top) else max(b0.scale_max or 0.0, float(top))
        r = int(self.rt_last[j]) if i else -1
        b.prev_retries = int(self.RT[r]) if r >= 0 else b0.prev_retries
        # curves
        q = int(self.q_loss[j]) if i else len(c0.recent)
        c.recent = deque(self.fl[max(0, q - SMOOTH):q].tolist(), maxlen=SMOOTH)
        if not i:
            for name in ("loss_start", "loss_best", "anchor", "loss_best_step", "since_best",
                         "rise_points", "prev_lr", "lr_rising", "lr_ref", "lr_max",
                         "warmup_end_step", "warmup_seen", "prev_step", "prev_scale"):
                setattr(c, name, getattr(c0, name))
        else:
            c.loss_start = None if np.isnan(self.loss_start[j]) else float(self.loss_start[j])
            lb = self.loss_best[j]
            c.loss_best = None if np.isnan(lb) else float(lb)
            u = int(self.last_u[j])
            if u >= 0:
                c.anchor = float(self.smooth[u])
                c.loss_best_step = self.steps[u]
            else:
                c.anchor, c.loss_best_step = c0.anchor, c0.loss_best_step
            c.since_best = int(self.since[j])
            c.rise_points = int(self.rise[j])
            _, lr_rising, lr_ref, lr_max, wend, wseen = self.lr_state
            r = int(self.lr_last[j])
            c.prev_lr = float(self.LR[r]) if r >= 0 else c0.prev_lr
            c.lr_rising = bool(lr_rising[j])
            c.lr_ref = None if np.isnan(lr_ref[j]) else float(lr_ref[j])
            c.lr_max = None if np.isnan(lr_max[j]) else float(lr_max[j])
            c.warmup_end_step = None if np.isnan(wend[j]) else int(wend[j])
            c.warmup_seen = bool(wseen[j])
            c.prev_step = self.steps[j]
            r = int(self.sc_last[j])
            c.prev_scale = float(self.SC[r]) if r >= 0 else c0.prev_scale
        qc = int(self.clip_q[j]) if i else len(c0.clipped)
        clipped = [bool(v) for v in self.clip_seq[max(0, qc - CLIP_WINDOW):qc].tolist()]
        c.clipped = deque(clipped, maxlen=CLIP_WINDOW)
        c.clipped_count = sum(clipped)
        nd = len(c0.scale_drops) + int(np.searchsorted(self.drop_rows, i))
        if i:
            floor = self.steps[j] - SCALE_WINDOW
            c.scale_drops = deque(int(d) for d in self.drops[:nd].tolist() if d > floor)
        else:
            c.scale_drops = deque(c0.scale_drops)
        ntp = int(self.cum_app[j]) if i else 0
        tp = self.tput_seq[h:h + ntp]
        g = c0.tput_points + np.arange(1, ntp + 1)
        c.tput_points = c0.tput_points + ntp
        c.tput_base = list(c0.tput_base) + tp[(g > TPUT_SKIP)
                                              & (g <= TPUT_SKIP + TPUT_WINDOW)].tolist()
        now = list(c0.tput_now) + tp[g > TPUT_SKIP + TPUT_WINDOW][-TPUT_WINDOW:].tolist()
        c.tput_now = deque(now[-TPUT_WINDOW:], maxlen=TPUT_WINDOW)

    def event(self, i: int, to_event: Any) -> dict[str, Any]:
        if type(self.structs) is ColumnRun:
            return self.structs.event(i)
        return to_event(self.structs[i])  # type: ignore[no-any-return]

    def builder_at(self, i: int) -> ContextBuilder:
        """A new builder in the state after the run's first ``i`` steps."""
        b = copy.copy(self.b)
        b.curves = copy.copy(self.b.curves)
        self.sync(b, i)
        return b

    def context_at(self, i: int, to_event: Any) -> dict[str, Any]:
        """The per-step context of row ``i``: ``push`` itself, on a builder set to row ``i``."""
        return self.builder_at(i).push(self.event(i, to_event), texts=False)


# --- rule conditions over columns ------------------------------------------------------------

_ORDER = {ast.Lt: np.less, ast.LtE: np.less_equal, ast.Gt: np.greater,
          ast.GtE: np.greater_equal}


class _Vec:
    """A condition's value over a run: truthiness, where it raised, and (for names and
    constants) the value itself, as a column with its None mask or as one Python value."""

    __slots__ = ("truth", "raises", "value", "missing", "scalar", "is_scalar")

    def __init__(self, truth: np.ndarray, raises: np.ndarray, value: Any = None,
                 missing: Any = None, scalar: Any = None, is_scalar: bool = False) -> None:
        self.truth, self.raises = truth, raises
        self.value, self.missing, self.scalar, self.is_scalar = value, missing, scalar, is_scalar


def _names(node: ast.AST) -> frozenset[str]:
    """The names ``node`` reads; kept per node (the rules' trees live as long as the rules,
    and every run asks again for each of their nodes)."""
    hit = _NAMES.get(id(node))
    if hit is not None and hit[0] is node:
        return hit[1]
    names = frozenset(n.id for n in ast.walk(node) if isinstance(n, ast.Name))
    if len(_NAMES) > 20_000:  # rules loaded again and again (tests): start afresh
        _NAMES.clear()
    _NAMES[id(node)] = (node, names)  # the node is held: its id is not reused meanwhile
    return names


_NAMES: dict[int, tuple[ast.AST, frozenset[str]]] = {}


class VectorRules:
    """The live rules' conditions compiled to column operations (Unsupported if any is not)."""

    def __init__(self, rules: list[Any], constants: dict[str, Any]) -> None:
        self.rules = rules
        self.constants = constants
        for rule in rules:
            self._check(rule.tree)

    def _check(self, node: ast.AST) -> None:
        if _names(node) <= self.constants.keys():
            return
        if isinstance(node, ast.Name):
            if node.id not in COLUMN_NAMES:
                raise Unsupported(f"a rule reads {node.id}")
        elif isinstance(node, ast.BoolOp):
            for v in node.values:
                self._check(v)
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            self._check(node.operand)
        elif isinstance(node, ast.Compare) and len(node.ops) == 1:
            op = type(node.ops[0])
            sides = (node.left, node.comparators[0])
            for side in sides:
                if not (isinstance(side, ast.Name) or _names(side) <= self.constants.keys()):
                    raise Unsupported("a comparison of expressions")
            if op in (ast.Is, ast.IsNot):
                if not any(isinstance(s, ast.Constant) and s.value is None for s in sides):
                    raise Unsupported("`is` with something else than None")
            elif op not in _ORDER and op not in (ast.Eq, ast.NotEq):
                raise Unsupported(f"comparison {op.__name__}")
        else:
            raise Unsupported(f"{type(node).__name__} in a condition")

    def fires(self, cols: dict[str, Any], n: int) -> list[np.ndarray]:
        out = []
        for rule in self.rules:
            v = self._eval(rule.tree, cols, n)
            out.append(v.truth & ~v.raises)
        return out

    def _scalar(self, node: ast.expr, n: int) -> _Vec:
        from vramdoc.engine.conditions import compiled_condition, evaluate_condition

        names = {k: self.constants[k] for k in _names(node)}
        text = ast.unparse(node)
        try:
            fn = compiled_condition(text, node)
            value = fn(names) if fn is not None else evaluate_condition(node, names, text)
        except Exception:  # noqa: BLE001 - raises at every step
            return _Vec(np.zeros(n, bool), np.ones(n, bool), is_scalar=True)
        return _Vec(np.full(n, bool(value)), np.zeros(n, bool), scalar=value, is_scalar=True)

    def _eval(self, node: ast.expr, cols: dict[str, Any], n: int) -> _Vec:  # noqa: C901
        if _names(node) <= self.constants.keys():
            return self._scalar(node, n)
        if isinstance(node, ast.Name):
            values, missing = cols[node.id]
            if missing is None:
                missing = np.zeros(n, bool)
            truth = (values != 0) & ~missing if values.dtype != bool else values.copy()
            return _Vec(truth, np.zeros(n, bool), values, missing)
        if isinstance(node, ast.BoolOp):
            parts = [self._eval(v, cols, n) for v in node.values]
            truth, raises = parts[0].truth, parts[0].raises
            for p in parts[1:]:
                if isinstance(node.op, ast.And):  # the next part runs where all so far held
                    go = truth & ~raises
                    raises = raises | (go & p.raises)
                    truth = np.where(go, p.truth, truth)
                else:  # or: it runs where none so far held
                    go = ~truth & ~raises
                    raises = raises | (go & p.raises)
                    truth = np.where(go, p.truth, truth)
            return _Vec(truth, raises)
        if isinstance(node, ast.UnaryOp):
            p = self._eval(node.operand, cols, n)
            return _Vec(~p.truth, p.raises)
        assert isinstance(node, ast.Compare)
        op = type(node.ops[0])
        left = self._eval(node.left, cols, n)
        right = self._eval(node.comparators[0], cols, n)
        zeros = np.zeros(n, bool)
        if op in (ast.Is, ast.IsNot):
            col = left if not left.is_scalar else right
            truth = col.missing.copy() if not col.is_scalar else np.full(n, col.scalar is None)
            return _Vec(truth if op is ast.Is else ~truth, zeros)
        # a column against a column or one value
        lv, lm = self._operand(left, n)
        rv, rm = self._operand(right, n)
        if op in (ast.Eq, ast.NotEq):
            eq = (lm & rm) | (~lm & ~rm & (lv == rv))
            return _Vec(eq if op is ast.Eq else ~eq, zeros)
        raises = lm | rm
        with np.errstate(all="ignore"):
            truth = _ORDER[op](lv, rv) & ~raises
        return _Vec(truth, raises)

    @staticmethod
    def _operand(v: _Vec, n: int) -> tuple[np.ndarray, np.ndarray]:
        if not v.is_scalar:
            return v.value, v.missing
        s = v.scalar
        if s is None:
            return np.zeros(n), np.ones(n, bool)
        if not _number(s) and not isinstance(s, bool):
            raise Unsupported(f"a comparison with {type(s).__name__}")
        if isinstance(s, int) and abs(s) >= _EXACT:
            raise Unsupported("an integer past 2**53")
        return np.full(n, float(s)), np.zeros(n, bool)


# Per-step names computed as columns (the others a rule may read are header constants).
COLUMN_NAMES = frozenset({
    "step", "steps_seen", "loss", "grad_norm", "lr", "loss_scale", "loss_nonfinite",
    "grad_norm_nonfinite", "skipped", "skipped_streak", "interrupted", "mem_allocated_bytes",
    "mem_reserved_bytes", "mem_peak_allocated_bytes", "mem_peak_reserved_bytes",
    "alloc_retries", "loss_median", "loss_ratio", "grad_norm_median", "grad_norm_ratio",
    "throughput_ratio", "alloc_retries_new", "frag_bytes", "frag_growth_bytes",
    "frag_fraction", "gpu_limit_bytes", "mem_used_fraction", "mem_growth_bytes_per_step",
    "mem_steps_to_limit", "drift_ratio", "plan_peak_allocated_bytes", "loss_smooth",
    "plateau_points", "loss_best_step", "plateau_steps", "loss_best", "loss_rise",
    "loss_rise_points", "loss_since_eval_best", "lr_rising", "lr_peak", "lr_fraction",
    "lr_too_low", "progress", "warmup_fraction", "clip_fraction", "clip_points",
    "loss_scale_drops", "throughput_decay_ratio",
})


def run_constants(b: ContextBuilder) -> dict[str, Any]:
    """Context names fixed over a run of steps: the header's, and the evaluations' (only a
    log event changes them, and a run holds step events only)."""
    c = b.curves
    out = dict(b.constants())
    out.update({
        "eval_loss": c.eval_loss, "eval_step": c.eval_step, "eval_points": c.eval_points,
        "eval_best_loss": c.eval_best, "eval_best_step": c.eval_best_step,
        "eval_since_best": c.eval_since_best,
        "eval_loss_ratio": (c.eval_loss / c.eval_best
                            if c.eval_loss is not None and c.eval_best else None),
    })
    return out


# --- taking a run into RunState --------------------------------------------------------------

def take_run(state: Any, structs: list[Any], to_event: Any) -> bool:
    """Take steps ``structs`` (this session's, step numbers rising above every step seen)
    into ``state`` at once; False, with ``state`` untouched, when this module cannot.

    Everything is computed first (columns, firings, the contexts messages need); ``state``
    changes only once all of it succeeded.
    """
    from vramdoc.monitor.run import CHART_WINDOW, MAX_EPISODES, live_rules

    if state._vector is False:
        return False
    try:
        if state.rules and state._live is None:
            state._live = live_rules(state.rules, state._ctx.constants())
        live = state._live or []
        if state._vector is None:
            state._vector = VectorRules(live, run_constants(state._ctx))
        run = _Run(state._ctx, structs)
        n = run.n
        steps = run.steps
        state._vector.constants = run_constants(state._ctx)
        fires = state._vector.fires(run.cols, n) if state.rules else []
        contexts: dict[int, dict[str, Any]] = {}

        def ctx(i: int) -> dict[str, Any]:
            if i not in contexts:
                contexts[i] = run.context_at(i, to_event)
            return contexts[i]

        last_ctx = ctx(n - 1)
        builder = run.builder_at(n)
        # alert episodes: a firing whose previous step did not fire starts one (while the
        # rule has fewer than MAX_EPISODES); every other firing extends the latest
        prev_step = state._max_step
        extend: list[tuple[Any, int, int, Any]] = []  # (episode, last row, firings, rule)
        new: list[tuple[int, int, int, int, Any]] = []  # (row, rule pos, last row, count, rule)
        for pos, (rule, f) in enumerate(zip(live, fires, strict=True)):
            rows = np.flatnonzero(f)
            if not len(rows):
                continue
            episode = state._latest_alert.get(rule.code)
            before = np.concatenate([[episode is not None and episode.last_step == prev_step],
                                     f[:-1]])
            starts = rows[~before[rows]]
            allowed = MAX_EPISODES - state._episodes.get(rule.code, 0)
            starts = starts[:max(0, allowed)]
            cuts = np.searchsorted(rows, starts)  # each start's place among the firings
            head = int(cuts[0]) if len(cuts) else len(rows)
            if head:
                extend.append((episode, int(rows[head - 1]), head, rule))
            bounds = [*cuts.tolist(), len(rows)]
            for k in range(len(starts)):
                a, z = bounds[k], bounds[k + 1]
                new.append((int(rows[a]), pos, int(rows[z - 1]), z - a, rule))
        for _, last, count, _ in extend:
            if count:
                ctx(last)
        for _, _, last, count, _ in new:
            if count > 1:
                ctx(last)
        from vramdoc.engine import finding

        findings = {}
        for row, pos, _, _, rule in sorted(new, key=lambda t: (t[0], t[1])):
            c = ctx(row)
            if "limit_text" not in c:
                ContextBuilder.add_texts(c)
            findings[(row, pos)] = finding(rule, c)
        # chart window: the length RunState._on_step would leave, and the events in it
        pending = state._window_run
        length = len(state.steps) + (pending[2] - pending[1] if pending else 0)
        for _ in range(n):
            length += 1
            if length > CHART_WINDOW + CHART_WINDOW // 4:
                length = CHART_WINDOW
        first = n - min(n, length)
        defer = (length == n - first and state._defer_window
                 and type(structs) is ColumnRun)  # the window holds this run's rows only
        fresh = [] if defer else [run.event(k, to_event) for k in range(first, n)]
        finite = run.L[~np.isnan(run.L)]
        loss_min = float(finite.min()) if len(finite) else None
        peaks = {}
        for key, col in (("peak_allocated_bytes", run.PA), ("peak_reserved_bytes", run.PR),
                         ("allocated_bytes", run.A), ("reserved_bytes", run.R)):
            if not np.isnan(col).all():
                peaks[key] = int(np.nanmax(col))  # whole numbers below 2**53: exact
    except Unsupported:
        return False
    except Exception:  # noqa: BLE001 - a fault here must not cost the watch: step by step
        if STRICT:
            raise
        return False

    # --- commit -------------------------------------------------------------------------
    from vramdoc.monitor.run import Alert

    state._ctx.__dict__.update(builder.__dict__)
    state._ctx.curves = builder.curves
    state._max_step = steps[-1]
    state.step_count += n
    state.batched_steps += n
    if defer:
        state.steps = []
        state._window_run = (structs.lines_only(first, n), 0, n - first)
    else:
        keep = length - len(fresh)
        if keep:
            state._settle_window()
        else:
            state._window_run = None
        state.steps = (state.steps[len(state.steps) - keep:] if keep else []) + fresh
    if loss_min is not None:
        low = loss_min
        state._loss_min = low if state._loss_min is None else min(state._loss_min, low)
    for key, v in peaks.items():
        if v > state._peaks.get(key, -1):
            state._peaks[key] = v
    state.last_context = last_ctx
    for episode, last, count, rule in extend:
        episode.last_step = steps[last]
        episode.count += count
        episode._last = (rule.message, ctx(last))
    for row, pos, last, count, rule in sorted(new, key=lambda t: (t[0], t[1])):
        f = findings[(row, pos)]
        state._episodes[f.code] = state._episodes.get(f.code, 0) + 1
        alert = Alert(code=f.code, name=f.name, kind=f.kind, severity=f.severity,
                      message=f.message, fix=f.fix, why=f.why, first_step=steps[row],
                      last_step=steps[last], count=count)
        if count > 1:
            alert._last = (rule.message, ctx(last))
        state.alerts.append(alert)
        state._latest_alert[f.code] = alert
    return True
