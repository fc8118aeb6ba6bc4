"""Layer-segment extrapolation (vramdoc.probe.segments): the same bytes as a full trace.

Each case traces a 6-layer model twice on fake tensors: every layer (``extrapolate=False``)
and from 2-, 3- and 4-layer builds (``extrapolate=True``); the JSON reports must be equal
field for field (phases, components, per-layer saved activations, counts, findings). Models
whose layers differ must fall back to the full trace and say why.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.probe.conftest import tiny_setup, tiny_spec


@pytest.fixture(autouse=True)
def shallow_models_too(monkeypatch):
    from vramdoc.probe import segments

    monkeypatch.setattr(segments, "MIN_LAYERS", 5)  # 6-layer test models extrapolate


def _both(setup: Any, spec: Any, **kw: Any) -> tuple[dict[str, Any], dict[str, Any], Any]:
    from vramdoc.probe.recipe import run_probe

    full = run_probe(setup, spec, device="fake", steps=2, **kw)
    ext = run_probe(setup, spec, device="fake", steps=2, extrapolate=True, **kw)
    a, b = full.to_json(), ext.to_json()
    for d in (a, b):
        for s in d["steps"]:
            s.pop("seconds")
    return a, b, ext


def _same(a: dict[str, Any], b: dict[str, Any]) -> None:
    b = dict(b)
    b.pop("extrapolated", None)
    b["notes"] = [n for n in b["notes"] if "decoder layers are identical" not in n]
    assert json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True,
                                                                    default=str)


CASES = {
    "full": ("full", {}),
    "full-ckpt": ("full", {"gradient_checkpointing": True}),
    "full-bf16-amp-accum": ("full", {"bf16": True, "gradient_accumulation_steps": 2}),
    "full-fp16-amp": ("full", {"fp16": True}),
    "full-no-clipping": ("full", {"max_grad_norm": 0}),
    "lora": ("lora", {}),
    "lora-ckpt": ("lora", {"gradient_checkpointing": True}),
    "qlora": ("qlora", {}),
    "qlora-paged-8bit": ("qlora", {"optim": "paged_adamw_8bit"}),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_extrapolated_equals_full_trace(case):
    method, training = CASES[case]
    a, b, ext = _both(tiny_setup(method, **training), tiny_spec(num_hidden_layers=6))
    assert ext.extrapolated == {"layers": 6, "traced_layers": [2, 3, 4],
                                "repeated_layers": 4}
    assert any("decoder layers are identical" in n for n in ext.notes)
    assert len(b["measured"]["saved_activation_bytes_per_layer"]) in (0, 6)
    _same(a, b)


def test_gpt2_conv1d_and_moe_layers_extrapolate_exactly():
    gpt2 = tiny_spec(model_type="gpt2", n_embd=64, num_hidden_layers=6, n_head=4, vocab_size=256,
                     n_positions=128)
    a, b, ext = _both(tiny_setup("full"), gpt2)
    assert ext.extrapolated is not None, ext.notes
    _same(a, b)
    moe = tiny_spec(model_type="mixtral", num_hidden_layers=6, num_local_experts=4,
                    num_experts_per_tok=2)
    a, b, ext = _both(tiny_setup("lora"), moe)
    assert ext.extrapolated is not None, ext.notes
    _same(a, b)


@pytest.mark.parametrize("overrides, why", [
    ({"model_type": "qwen2", "use_sliding_window": True, "sliding_window": 16,
      "max_window_layers": 3}, "layer_types differs between layers"),
    ({"model_type": "qwen2_moe", "num_experts": 4, "num_experts_per_tok": 2,
      "moe_intermediate_size": 32, "shared_expert_intermediate_size": 32,
      "mlp_only_layers": [1]}, "decoder layer 1 differs"),
])
def test_layers_that_differ_are_traced_in_full(overrides, why):
    a, b, ext = _both(tiny_setup("full"), tiny_spec(num_hidden_layers=6, **overrides))
    assert ext.extrapolated is None
    assert any(n.startswith("traced every layer") and why in n for n in ext.notes), ext.notes
    b["notes"] = [n for n in b["notes"] if not n.startswith("traced every layer")]
    assert a == b


def test_adapters_pinned_to_one_layer_are_traced_in_full():
    from vramdoc.probe.segments import plan
    from vramdoc.setup import setup_from_mapping

    setup = setup_from_mapping({"model": "tiny-llama", "lora": {
        "r": 4, "target_modules": ["layers.3.self_attn.q_proj"]}}, source="test")
    got, why = plan(setup, tiny_spec(num_hidden_layers=6))
    assert got is None and "names one layer's module" in why


def test_shallow_models_are_traced_in_full_silently():
    from vramdoc.probe.recipe import run_probe

    r = run_probe(tiny_setup("full"), tiny_spec(num_hidden_layers=4), device="fake", steps=1,
                  extrapolate=True)
    assert r.extrapolated is None
    assert not any("traced every layer" in n for n in r.notes)


def test_a_card_limit_in_reach_is_traced_in_full():
    """An emulated OOM must be found where the full run meets it: near the limit the probe
    traces every layer."""
    import dataclasses

    from vramdoc.hardware import resolve_gpu
    from vramdoc.probe.recipe import emulated_limit, estimate_view, run_probe

    setup, spec = tiny_setup("full"), tiny_spec(num_hidden_layers=6)
    peak = run_probe(setup, spec, device="fake", steps=2).measured.peak_allocated_bytes
    card = resolve_gpu("24GB")
    context = card.memory_bytes - emulated_limit(card, estimate_view(setup, spec, card)[1])
    gpu = dataclasses.replace(card, memory_bytes=context + peak * 9 // 10)
    a, b, ext = _both(setup, spec, gpu=gpu)
    assert ext.oom is not None and ext.extrapolated is None
    assert any(n.startswith("traced every layer") for n in ext.notes), ext.notes
    b["notes"] = [n for n in b["notes"] if not n.startswith("traced every layer")]
    assert a == b


# --- the timeline algebra on its own ----------------------------------------------------
def _ev(nbytes: int, op: str = "mm", sign: int = 1) -> tuple[Any, ...]:
    from vramdoc.probe.tracker import block_bytes

    return (sign, block_bytes(nbytes, 512), "activations", False, op, None, nbytes)


def test_derive_finds_runs_and_grown_storages():
    from vramdoc.probe.segments import derive, expand

    def timeline(n: int) -> list[tuple[Any, ...]]:
        layer = [_ev(1000, "mm"), _ev(1000, "mm", -1)]
        norms = [_ev(4, "norm") for _ in range(n)]
        return [("|", "forward", 0), _ev(10), *(layer * n), _ev(20),
                ("|", "optimizer_step", 0), *norms, _ev(4 * n, "stack"), _ev(4 * n, "stack", -1)]

    pattern = derive(timeline(2), timeline(3), timeline(4), 512)
    assert pattern is not None
    assert list(expand(timeline(2), pattern, 30, 512)) == timeline(32)
    # 200 entries of 4 bytes: the stacked norms now take two 512-byte blocks
    grown = [t for t in expand(timeline(2), pattern, 198, 512) if t[0] != "|" and t[4] == "stack"]
    assert grown[0][1] == 1024


def test_derive_refuses_what_does_not_repeat():
    from vramdoc.probe.segments import derive

    def timeline(n: int) -> list[tuple[Any, ...]]:
        return [("|", "forward", 0), *(_ev(1000 * (i + 1)) for i in range(n))]  # layers differ

    assert derive(timeline(2), timeline(3), timeline(4), 512) is None
