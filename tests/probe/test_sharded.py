"""The sharded fake probe: one rank of an FSDP2 run of N ranks in this process (tiny Llama)."""

from __future__ import annotations

import json

import pytest

from tests.probe.conftest import TINY_LLAMA, tiny_setup, tiny_spec

pytest.importorskip("torch.distributed")


def _run(method: str, n: int, fsdp: str, rank: int = 0, **training):
    from vramdoc.probe.devices import quiet
    from vramdoc.probe.recipe import run_probe
    from vramdoc.probe.sharded import sharded_run

    setup = tiny_setup(method, **training).replace(num_gpus=n).replace_training(fsdp=fsdp)
    with quiet():
        result = run_probe(setup, tiny_spec(), device="fake", steps=2,
                           sharded=sharded_run(setup, rank=rank))
    assert result.step_error is None, result.step_error
    return result


def _shard_bytes(n: int, buffers: bool = False) -> int:
    """What fully_shard keeps of every fp32 parameter on one rank: ceil(dim0 / n) rows (the
    padded shard), each storage counted in 512-byte blocks as CUDA's allocator hands them out;
    ``buffers``: plus the buffers (rotary tables), which FSDP does not shard."""
    import torch

    from vramdoc.probe.build import build_meta
    from vramdoc.probe.tracker import block_bytes

    built = build_meta(tiny_setup("full"), "llama", dict(TINY_LLAMA), "float32")
    total = 0
    for p in built.model.parameters():
        rows = -(-p.shape[0] // n)
        total += block_bytes(rows * (p.numel() // p.shape[0]) * 4, 512)
        assert p.dtype == torch.float32
    if buffers:
        total += sum(block_bytes(b.numel() * b.element_size(), 512)
                     for b in built.model.buffers())
    return total


def _grad_bytes(n: int) -> int:
    """Sharded gradients: per FSDP unit (each decoder layer, the embedding, [norm, lm_head])
    one reduce-scatter output holding every parameter's padded shard, the gradients views."""
    from vramdoc.probe.build import build_meta
    from vramdoc.probe.tracker import block_bytes

    built = build_meta(tiny_setup("full"), "llama", dict(TINY_LLAMA), "float32")
    units: dict[str, int] = {}
    for name, p in built.model.named_parameters():
        parts = name.split(".")
        unit = ".".join(parts[:3]) if parts[1] == "layers" else (
            "embed" if "embed" in name else "tail")
        units[unit] = units.get(unit, 0) + -(-p.shape[0] // n) * (p.numel() // p.shape[0]) * 4
    assert len(units) == TINY_LLAMA["num_hidden_layers"] + 2
    return sum(block_bytes(b, 512) for b in units.values())


@pytest.mark.parametrize("n", [2, 4])
def test_full_shard_keeps_one_nth_of_every_parameter(n):
    import torch.distributed as dist

    r = _run("full", n, "full_shard auto_wrap")
    m = r.measured
    assert m.phase_components["load"]["weights"] == _shard_bytes(n, buffers=True)
    # the optimizer step holds the shards: gradients (views into one reduce-scatter output per
    # FSDP unit) and AdamW's two states per parameter
    step = m.phase_components["optimizer_step"]
    assert step["gradients"] == _grad_bytes(n)
    assert step["optimizer_states"] >= 2 * _shard_bytes(n)
    # forward and backward all-gather layers on top of the shards
    assert m.phase_components["forward"]["weights"] > _shard_bytes(n)
    assert r.sharding == {"engine": "fsdp2", "world_size": n, "rank": 0,
                          "reshard_after_forward": True, "cpu_offload": False,
                          "label": "FSDP2 full_shard"}
    assert r.estimate is not None  # compared with the per-GPU estimate of the same setup
    assert not dist.is_initialized()  # the fake process group is gone


def test_every_rank_holds_the_same_bytes():
    first, last = _run("full", 4, "full_shard auto_wrap"), _run("full", 4, "full_shard auto_wrap",
                                                                rank=3)
    assert last.sharding["rank"] == 3
    assert first.measured.phases == last.measured.phases


def test_shard_grad_op_keeps_layers_gathered_until_backward():
    full = _run("full", 2, "full_shard auto_wrap").measured
    zero2 = _run("full", 2, "shard_grad_op auto_wrap").measured
    assert zero2.phase_components["load"] == full.phase_components["load"]
    # reshard_after_forward=False: every layer's unsharded parameters live from its forward
    # to its backward, so forward ends with more weights than under full_shard
    assert zero2.phase_components["forward"]["weights"] > full.phase_components["forward"][
        "weights"]


def test_cpu_offload_keeps_sharded_state_off_the_device():
    m = _run("full", 2, "full_shard offload auto_wrap").measured
    step = m.phase_components["optimizer_step"]
    buffers = _shard_bytes(2, buffers=True) - _shard_bytes(2)  # moved to the device, unsharded
    assert step["weights"] == m.phase_components["load"]["weights"] == buffers
    assert step["gradients"] == step["optimizer_states"] == step["optimizer_temporaries"] == 0
    assert m.phase_components["forward"]["weights"] > 0  # gathered layers are on the device


def test_mixed_precision_upcasts_trainable_parameters_to_fp32():
    r = _run("full", 2, "full_shard auto_wrap", dtype="bfloat16", bf16=True)
    assert any("upcast to fp32" in n for n in r.notes)
    assert r.measured.phase_components["load"]["weights"] == _shard_bytes(2, buffers=True)


def test_lora_shards_base_and_adapters():
    r = _run("lora", 2, "full_shard auto_wrap")
    load = r.measured.phase_components["load"]
    assert load["weights"] > 0 and load["adapters"] > 0
    assert r.measured.phase_components["optimizer_step"]["optimizer_states"] > 0


@pytest.fixture
def tiny_dir(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(TINY_LLAMA))
    return tmp_path


def test_cli_traces_a_rank(run_cli, tiny_dir):
    code, out, err = run_cli("probe", "--model", str(tiny_dir), "--batch", "2", "--seq-len",
                             "32", "--device", "fake", "--num-gpus", "2", "--fsdp",
                             "full_shard auto_wrap", "--json")
    assert code in (0, 1), err
    data = json.loads(out)
    assert data["sharding"]["world_size"] == 2
    assert data["measured"]["device"] == "fake"
    assert "rank 0 of 2" in err


@pytest.mark.parametrize(("extra", "message"), [
    (["--fsdp", "full_shard auto_wrap", "--rank", "5"], "rank 5 is outside 0..1"),
    (["--fsdp", "full_shard auto_wrap", "--nodes", "2"], "--nodes > 1 is estimate-only"),
])
def test_cli_refuses_what_it_cannot_trace(run_cli, tiny_dir, extra, message):
    code, _out, err = run_cli("probe", "--model", str(tiny_dir), "--device", "fake",
                              "--num-gpus", "2", *extra)
    assert code == 2
    assert message in err and "Traceback" not in err


def test_fsdp1_is_estimate_only(tiny_dir, run_cli, tmp_path):
    cfg = tmp_path / "run.yaml"
    cfg.write_text(f"model: {tiny_dir}\nnum_gpus: 2\ntraining:\n  fsdp: full_shard auto_wrap\n"
                   "  fsdp_config: {version: 1}\n")
    code, _out, err = run_cli("probe", "--config", str(cfg), "--device", "fake")
    assert code == 2 and "FSDP2" in err and "estimate-only" in err


def test_deepspeed_is_estimate_only_and_said_so(run_cli, tiny_dir, tmp_path):
    ds = tmp_path / "ds.json"
    ds.write_text(json.dumps({"zero_optimization": {"stage": 3}}))
    code, _out, err = run_cli("probe", "--model", str(tiny_dir), "--device", "fake", "--batch",
                              "1", "--seq-len", "16", "--num-gpus", "2", "--deepspeed", str(ds),
                              "--steps", "1")
    assert code in (0, 1), err
    assert "DeepSpeed is estimate-only" in err
