"""A live-storage memory tracker: every byte a training step allocates, with its owner.

A ``TorchDispatchMode`` sees the output of every aten op. Each new storage gets a record
(size, when it was allocated, the phase and context it was allocated in); a weakref on the
storage stamps the record with the moment it is freed. Roles that only become known later
(this storage turned out to be a parameter's ``.grad``, that one an optimizer state) are set
with :meth:`MemoryTracker.tag`, and :meth:`MemoryTracker.trace` replays the timeline with the
final roles to give the peak of each phase and what was live at that instant.

This works the same on real CPU tensors and on fake tensors (``FakeTensorMode``): the
accounting of a fake step equals a real CPU step to the byte (shared/REFERENCE.md section 2,
checked by tests/probe/test_fake_equals_cpu.py). It is ~20x lighter than torch's private
``MemTracker`` and needs no workaround for frozen parameters or repeated steps.

CUDA's caching allocator hands out blocks rounded up to 512 bytes (c10/cuda/
CUDACachingAllocator.cpp, ``kMinBlockSize = 512``, ``round_size``); with ``round_to=512`` each
storage is counted as the block CUDA would allocate for it, so the figures compare with
``torch.cuda.max_memory_allocated``.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from vramdoc.estimate.params import CUDA_BLOCK_BYTES  # one constant for both sides

PHASES = ("load", "forward", "backward", "optimizer_step")
COMPONENTS = ("weights", "quant_state", "adapters", "gradients", "optimizer_states",
              "optimizer_temporaries", "activations", "logits")
# Roles set by tag() that do not live in CUDA device memory on a GPU run: the optimizer's
# step counters (torch keeps them on the host unless fused/capturable) and bitsandbytes'
# paged optimizer state (CUDA unified memory, which torch's allocator does not count).
OFF_DEVICE_ROLES = ("host", "paged")


class EmulatedOutOfMemory(RuntimeError):
    """Raised by the tracker when the tracked bytes pass an emulated card's limit."""

    def __init__(self, phase: str, step: int, allocated_bytes: int, limit_bytes: int,
                 request_bytes: int) -> None:
        super().__init__(
            f"emulated CUDA out of memory in {phase} (step {step}): tried to allocate "
            f"{request_bytes} bytes with {allocated_bytes} bytes allocated, limit {limit_bytes}")
        self.phase = phase
        self.step = step
        self.allocated_bytes = allocated_bytes
        self.limit_bytes = limit_bytes
        self.request_bytes = request_bytes


def block_bytes(nbytes: int, round_to: int) -> int:
    """Bytes the allocator hands out for a request (0 stays 0: CUDA allocates nothing)."""
    if nbytes == 0 or round_to <= 1:
        return nbytes
    return max(round_to, -(-nbytes // round_to) * round_to)


@dataclass
class _Record:
    nbytes: int  # as counted (rounded to the allocator block when round_to > 1)
    alloc: int  # event sequence number of the allocation
    phase: str
    step: int
    ctx: str  # activations | logits (forward/backward), else the phase decides
    layer: int | None  # decoder layer running at allocation time (forward only)
    free: int | None = None
    role: str | None = None  # set by tag(): weights, gradients, optimizer_states, host ...
    what: str = ""  # op, shape and dtype (only when the tracker runs with detail=True)
    op: Any = None  # the aten op that allocated it (only when the tracker runs with ops=True)
    raw: int = 0  # the storage's own size (before rounding to the allocator block)


@dataclass(frozen=True)
class PhasePeak:
    """The peak instant of one phase: total and the live bytes by component."""

    phase: str
    step: int
    allocated_bytes: int
    components: dict[str, int]


@dataclass(frozen=True)
class Trace:
    """The replayed timeline of a run: per-phase peaks and per-layer saved activations."""

    phases: dict[str, PhasePeak]  # phase -> its highest peak over all steps
    peak_phase: str
    peak_allocated_bytes: int
    paged_bytes: int  # peak of paged optimizer state (unified memory, not in allocated)
    resident_after_load_bytes: int
    saved_activation_bytes_per_layer: dict[int, int] = field(default_factory=dict)
    forward_end_components: dict[str, int] = field(default_factory=dict)
    saved_in_layer: dict[int, list[tuple[str, int]]] = field(default_factory=dict)  # detail


class MemoryTracker(TorchDispatchMode):
    """Records every storage created under it; see the module docstring.

    Args:
        round_to: count each storage as the block the CUDA allocator would hand out (512) or
            as its exact size (1).
        limit_bytes: emulate an out-of-memory error when the device bytes pass this limit.
    """

    def __init__(self, round_to: int = CUDA_BLOCK_BYTES, limit_bytes: int | None = None,
                 detail: bool = False, ops: bool = False) -> None:
        super().__init__()
        self.detail = detail
        self.ops = ops  # keep each storage's aten op (to align timelines, .segments)
        self._op = ""
        self._func: Any = None
        self.closed = False  # set by close(): what is freed afterwards is not recorded
        self.round_to = round_to
        self.limit_bytes = limit_bytes
        self.phase = "load"
        self.step = 0
        self.ctx = "activations"
        self.layer: int | None = None
        self._seq = 0
        self._records: list[_Record] = []
        self._by_storage: dict[int, tuple[weakref.ref[Any], _Record]] = {}
        self._markers: list[tuple[int, str, int]] = [(0, "load", 0)]
        self._paused = 0
        self.device_bytes = 0  # live bytes on the (emulated) device, updated online
        # role given to every storage created while set (the sharded probe: what FSDP
        # all-gathers is weights, what it reduce-scatters gradients, offloaded state host)
        self.role: str | None = None

    # --- dispatch ------------------------------------------------------------------------
    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        if self.detail:
            self._op = str(func)
        self._func = func
        if not self._paused:
            for t in tree_flatten(out)[0]:
                if isinstance(t, torch.Tensor):
                    self._track(t)
        return out

    def _track(self, t: torch.Tensor) -> _Record | None:
        # a DTensor (sharded probe) reaches the mode before its own dispatch: its storage is
        # this rank's local shard
        t = getattr(t, "_local_tensor", t)
        st = t.untyped_storage()
        key = id(st)
        hit = self._by_storage.get(key)
        if hit is not None and hit[0]() is st:
            return hit[1]
        self._seq += 1
        raw = st.nbytes()
        rec = _Record(block_bytes(raw, self.round_to), self._seq, self.phase, self.step,
                      self.ctx, self.layer, role=self.role, raw=raw)
        if self.detail:
            rec.what = f"{self._op} {tuple(t.shape)} {str(t.dtype).replace('torch.', '')}"
        if self.ops:
            rec.op = self._func
        self._records.append(rec)
        self._by_storage[key] = (weakref.ref(st, self._freer(key, rec)), rec)
        if rec.role in OFF_DEVICE_ROLES:
            return rec
        self.device_bytes += rec.nbytes
        if self.limit_bytes is not None and self.device_bytes > self.limit_bytes:
            raise EmulatedOutOfMemory(self.phase, self.step, self.device_bytes - rec.nbytes,
                                      self.limit_bytes, rec.nbytes)
        return rec

    def _freer(self, key: int, rec: _Record) -> Any:
        def on_free(ref: Any) -> None:
            if self.closed:
                return
            hit = self._by_storage.get(key)
            current = rec
            if hit is not None and hit[0] is ref:
                current = hit[1]  # the storage's latest record (after resize_)
                del self._by_storage[key]
            if current.free is None:
                self._end(current)
        return on_free

    def _end(self, rec: _Record) -> None:
        self._seq += 1
        rec.free = self._seq
        if rec.role not in OFF_DEVICE_ROLES:
            self.device_bytes -= rec.nbytes

    def resized(self, storage: Any, nbytes: int) -> None:
        """A storage changed size in place (``UntypedStorage.resize_``): FSDP2 frees an
        unsharded parameter by resizing its storage to 0 and re-allocates it by resizing it
        back, keeping the tensor. The old size's record ends; a non-zero size starts a new one
        (with the role the storage had)."""
        if self._paused:
            return
        key = id(storage)
        hit = self._by_storage.get(key)
        ref: Any = None
        role = self.role
        what = ""
        if hit is not None and hit[0]() is storage:
            ref, rec = hit
            role, what = self.role or rec.role, rec.what
            if rec.free is None:
                self._end(rec)
        if not nbytes:
            return
        self._seq += 1
        new = _Record(block_bytes(nbytes, self.round_to), self._seq, self.phase, self.step,
                      self.ctx, self.layer, role=role, what=what, raw=nbytes)
        self._records.append(new)
        if ref is None:
            ref = weakref.ref(storage, self._freer(key, new))
        self._by_storage[key] = (ref, new)
        if new.role not in OFF_DEVICE_ROLES:
            self.device_bytes += new.nbytes

    # --- what the recipe tells the tracker ----------------------------------------------
    def set_phase(self, phase: str, step: int) -> None:
        """Start a phase (load, forward, backward, optimizer_step) of a step."""
        self.phase, self.step = phase, step
        self.ctx = "activations"
        self._markers.append((self._seq, phase, step))

    def tag(self, tensor: torch.Tensor | None, role: str) -> None:
        """Declare what a tensor's storage is (adopting storages created outside the mode)."""
        if tensor is None:
            return
        rec = self._track(tensor)
        if rec is None or rec.role == role:
            return
        if role in OFF_DEVICE_ROLES and rec.role not in OFF_DEVICE_ROLES and rec.free is None:
            self.device_bytes -= rec.nbytes
        rec.role = role

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Allocations inside are not recorded (the doctor's own scalars)."""
        self._paused += 1
        try:
            yield
        finally:
            self._paused -= 1

    def close(self) -> None:
        """End the timeline: storages freed from now on (the run's teardown) stay live in it."""
        self.closed = True

    # --- replay --------------------------------------------------------------------------
    @staticmethod
    def component(rec: _Record) -> str | None:
        """The estimator's component a record belongs to (None: not in device memory)."""
        if rec.role in OFF_DEVICE_ROLES:
            return None
        if rec.role is not None:
            return rec.role
        if rec.phase == "optimizer_step":
            return "optimizer_temporaries"
        if rec.phase == "load":
            return "weights"
        return "logits" if rec.ctx == "logits" else "activations"

    def _live_at(self, seq: int) -> Iterator[_Record]:
        for r in self._records:
            if r.alloc <= seq and (r.free is None or r.free > seq):
                yield r

    def components_at(self, seq: int) -> dict[str, int]:
        """Live device bytes by component at event ``seq``."""
        out = dict.fromkeys(COMPONENTS, 0)
        for r in self._live_at(seq):
            comp = self.component(r)
            if comp is not None:
                out[comp] = out.get(comp, 0) + r.nbytes
        return out

    def timeline(self, ops: bool = False, layers: int = 0) -> list[Token]:
        """The run as one ordered list of tokens: every allocation and free with the final
        role's component, and the phase markers, in the order they happened.

        An event is ``(sign, nbytes, component, paged, op, layer, raw)``: +1 allocation / -1
        free; ``nbytes`` as counted (rounded to the allocator block), ``raw`` the storage's size;
        ``component`` None when the bytes are not in device memory; ``paged`` for paged
        optimizer state. A marker is ``("|", phase, step)``: the events after it belong to
        that phase. With ``ops=True`` an event also names the aten op that allocated the
        storage, and an allocation the decoder layer it was made in as
        ``first``/``middle``/``last`` of ``layers`` (forward only), so that runs of models with
        different depths can be aligned (:mod:`vramdoc.probe.segments`).
        """
        slots: list[Any] = [None] * (self._seq + 1)
        last = layers - 1
        for r in self._records:
            comp = self.component(r)
            paged = r.role == "paged"
            op = layer = None
            if ops:
                op = r.op
                if r.layer is not None:
                    layer = "first" if r.layer == 0 else "last" if r.layer == last else "middle"
            slots[r.alloc] = (1, r.nbytes, comp, paged, op, layer, r.raw)
            if r.free is not None:  # freed where the next layer runs: no layer of its own
                slots[r.free] = (-1, r.nbytes, comp, paged, op, None, r.raw)
        out: list[Token] = []
        mi = 0
        markers = self._markers
        for seq in range(self._seq + 1):
            while mi < len(markers) and markers[mi][0] < seq:
                out.append(("|", markers[mi][1], markers[mi][2]))
                mi += 1
            if slots[seq] is not None:
                out.append(slots[seq])
        out.extend(("|", phase, step) for _seq, phase, step in markers[mi:])
        return out

    def trace(self) -> Trace:
        """Replay the timeline with the final roles: per-phase peaks and their components."""
        replayed = replay(self.timeline())
        forward_end_seq: int | None = None
        for i, (_seq, phase, _step) in enumerate(self._markers):
            if phase == "forward":
                nxt = self._markers[i + 1:]
                forward_end_seq = nxt[0][0] if nxt else self._seq + 1
                break
        per_layer: dict[int, int] = {}
        saved: dict[int, list[tuple[str, int]]] = {}
        if forward_end_seq is not None:
            for r in self._live_at(forward_end_seq):
                if r.phase == "forward" and r.layer is not None and self.component(r) in (
                        "activations",):
                    per_layer[r.layer] = per_layer.get(r.layer, 0) + r.nbytes
                    if self.detail:
                        saved.setdefault(r.layer, []).append((r.what, r.nbytes))
        return replayed.trace(dict(sorted(per_layer.items())), saved)


# One entry of MemoryTracker.timeline(): an event (sign, nbytes, component, paged, op, layer,
# raw) or a phase marker ("|", phase, step).
Token = tuple[Any, ...]


@dataclass(frozen=True)
class Replayed:
    """What a replay of a timeline found (the parts of a :class:`Trace` a timeline holds)."""

    phases: dict[str, PhasePeak]
    paged_bytes: int
    resident_after_load_bytes: int
    forward_end_components: dict[str, int]
    live_peak_bytes: int  # highest bytes live in any role (device or not): an upper bound of
    #                       what the tracker counted against an emulated limit at any instant

    def trace(self, per_layer: dict[int, int],
              saved: dict[int, list[tuple[str, int]]]) -> Trace:
        """The :class:`Trace`, given the saved activations per layer at the forward's end."""
        phases = self.phases
        peak_phase = max(phases, key=lambda p: (phases[p].allocated_bytes, -PHASES.index(p)))
        return Trace(phases=phases, peak_phase=peak_phase,
                     peak_allocated_bytes=phases[peak_phase].allocated_bytes,
                     paged_bytes=self.paged_bytes,
                     resident_after_load_bytes=self.resident_after_load_bytes,
                     saved_activation_bytes_per_layer=per_layer,
                     forward_end_components=self.forward_end_components, saved_in_layer=saved)


def replay(tokens: Iterable[Token]) -> Replayed:
    """Per-phase peaks of a timeline: each phase's highest live total over the steps, with the
    live bytes by component at that instant; the load phase counts what stays resident."""
    # phase -> (bytes, step, live bytes by component at that instant)
    best: dict[str, tuple[int, int, dict[str, int]]] = {}
    paged_peak = paged = total = 0
    live = live_peak = 0
    resident_after_load = 0
    forward_end_comps: dict[str, int] | None = None
    # live bytes by component, kept with the running total: the components at a peak are
    # a copy of it taken when the peak is reached (what components_at() would recount)
    comps = dict.fromkeys(COMPONENTS, 0)
    phase, step = "", 0  # before the first marker (the load's, at the start)
    seg_best: tuple[int, dict[str, int]] = (total, comps)
    seg_copied = False

    def close() -> None:
        nonlocal resident_after_load, forward_end_comps, seg_best
        if phase == "load":
            resident_after_load = total
            seg_best = (total, comps)  # load = what stays resident, not build transients
        if phase == "forward" and forward_end_comps is None:
            forward_end_comps = dict(comps)
        if phase and (phase not in best or seg_best[0] > best[phase][0]):
            best[phase] = (seg_best[0], step, _nonzero_extra(seg_best[1]))

    for tok in tokens:
        sign = tok[0]
        if sign == "|":
            close()
            phase, step = tok[1], tok[2]
            seg_best, seg_copied = (total, comps), False
            continue
        nbytes = tok[1]
        live += sign * nbytes
        if live > live_peak:
            live_peak = live
        if tok[3]:
            paged += sign * nbytes
            paged_peak = max(paged_peak, paged)
        comp = tok[2]
        if comp is None:
            continue
        if not seg_copied:  # the start snapshot must not follow later events
            seg_best = (seg_best[0], dict(seg_best[1]))
            seg_copied = True
        total += sign * nbytes
        comps[comp] = comps.get(comp, 0) + sign * nbytes
        if total > seg_best[0]:
            seg_best = (total, dict(comps))
    close()
    return Replayed(phases={p: PhasePeak(p, b[1], b[0], b[2]) for p, b in best.items()},
                    paged_bytes=paged_peak, resident_after_load_bytes=resident_after_load,
                    forward_end_components=_nonzero_extra(forward_end_comps)
                    if forward_end_comps is not None else {},
                    live_peak_bytes=live_peak)


def _nonzero_extra(comps: dict[str, int]) -> dict[str, int]:
    """A copy with every component of COMPONENTS and any other role only while it holds bytes
    (as components_at() counts live records)."""
    return {k: v for k, v in comps.items() if k in COMPONENTS or v}
