"""The trace's components at each phase peak equal a recount of the live records there
(the replay keeps them with its running total instead of recounting every record)."""

from __future__ import annotations

import torch

from vramdoc.probe.tracker import COMPONENTS, MemoryTracker


def _recount(tr: MemoryTracker) -> dict[str, tuple[int, dict[str, int]]]:
    """Per phase: its highest live total over the steps and components_at() at that instant,
    found by recounting every record at every event (the slow, obvious way)."""
    markers = tr._markers + [(tr._seq + 1, "", -1)]
    out: dict[str, tuple[int, dict[str, int]]] = {}
    for mi in range(len(markers) - 1):
        start, phase, _step = markers[mi]
        end = markers[mi + 1][0]
        if not phase:
            continue
        seqs = [end] if phase == "load" else range(start, end + 1)
        for seq in seqs:
            comps = tr.components_at(seq)
            total = sum(comps.values())
            if phase not in out or total > out[phase][0]:
                out[phase] = (total, comps)
    return out


def test_peak_components_equal_a_recount():
    tr = MemoryTracker(round_to=512)
    keep = []
    with tr:
        w = torch.empty(3000)
        tr.tag(w, "weights")
        for step in range(2):
            tr.set_phase("forward", step)
            acts = [torch.empty(100 * (i + 1)) for i in range(5)]
            tr.ctx = "logits"
            logits = torch.empty(700)
            tr.set_phase("backward", step)
            del logits
            g = torch.empty(3000)
            tr.tag(g, "gradients")
            while acts:
                acts.pop()
                torch.empty(50)  # a transient of each layer's backward
            tr.set_phase("optimizer_step", step)
            s = torch.empty(6000)
            tr.tag(s, "optimizer_states")
            tmp = torch.empty(3000)
            del tmp, g
            keep.append(s)
            tr.set_phase("", step)
    trace = tr.trace()
    slow = _recount(tr)
    assert set(trace.phases) == set(slow)
    for phase, (total, comps) in slow.items():
        got = trace.phases[phase]
        assert got.allocated_bytes == total, phase
        assert got.components == comps, phase
        assert set(got.components) >= set(COMPONENTS)
