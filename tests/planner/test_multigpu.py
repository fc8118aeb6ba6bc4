"""The planner over several GPUs: strategies, per-GPU figures, fewest GPUs, a config's engine."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vramdoc.cli import main
from vramdoc.estimate import estimate
from vramdoc.hardware import resolve_gpu
from vramdoc.planner import PlanRequest, plan
from vramdoc.planner.parallel import comm_seconds, strategy_of
from vramdoc.setup import TrainSetup, load_setup_file, setup_from_mapping


def test_70b_full_on_eight_a100_is_a_sharded_plan() -> None:
    gpu = resolve_gpu("A100-80GB")
    res = plan(PlanRequest(model="llama-2-70b", gpu=gpu, methods=("full",),
                           base=TrainSetup(model="llama-2-70b", num_gpus=8)))
    assert res.fits
    best = res.best
    assert best is not None and best.setup.num_gpus == 8
    assert strategy_of(best.setup) in ("fsdp_full", "fsdp_offload", "zero3", "zero3_offload")
    assert best.label.startswith("8 GPUs · ")
    # the effective batch 16 is split over 8 GPUs: 2 per GPU
    assert best.setup.effective_batch_size == 2
    # the plan re-estimates the same from its own setup
    again = estimate(best.setup, gpu=gpu)
    assert again.device_bytes == best.estimate.device_bytes <= gpu.memory_bytes


def test_a_config_with_num_gpus_and_fsdp_is_planned_as_such(tmp_path: Path) -> None:
    # the case: num_gpus 2 + fsdp full_shard came back as a one-GPU QLoRA plan
    cfg = tmp_path / "run.yaml"
    cfg.write_text("model: llama-2-7b\nnum_gpus: 2\ntraining:\n  fsdp: full_shard auto_wrap\n"
                   "  bf16: true\n")
    base = load_setup_file(cfg)
    res = plan(PlanRequest(model=base.model, gpu=resolve_gpu("RTX-4090"), base=base,
                           judge_base=True))
    assert res.best is not None
    for p in res.plans:
        assert p.setup.num_gpus == 2 and p.setup.training.fsdp == "full_shard auto_wrap"
        assert "per GPU of 2" in " ".join(p.estimate.notes)


def test_nothing_fits_on_one_gpu_names_the_fewest_that_do() -> None:
    res = plan(PlanRequest(model="llama-2-70b", gpu=resolve_gpu("A100-80GB"),
                           methods=("full",)))
    assert not res.fits
    more = [s for s in res.suggestions if s.startswith("more GPUs")]
    assert more and "per GPU" in more[0] and "host RAM" in more[0]
    n = int(more[0].split(": ", 1)[1].split(" x ")[0])
    assert 2 <= n <= 16


def test_communication_ranks_nvlink_over_pcie_and_ddp_over_full_shard() -> None:
    kw = dict(n_params=7e9, trainable=7e9, param_bytes=2, grad_bytes=2, grad_accum=1,
              ckpt=True, num_gpus=8, nodes=1)
    nvl = comm_seconds("fsdp_full", gpu=resolve_gpu("A100-80GB"), **kw)[0]
    pcie = comm_seconds("fsdp_full", gpu=resolve_gpu("A100-80GB-PCIe"), **kw)[0]
    assert pcie > nvl * 5  # 300 vs 31.5 GB/s per direction
    ddp = comm_seconds("ddp", gpu=resolve_gpu("A100-80GB"), **kw)[0]
    assert ddp < nvl
    two_nodes = comm_seconds("fsdp_full", gpu=resolve_gpu("A100-80GB"),
                             **{**kw, "nodes": 2})[0]
    assert two_nodes > nvl  # InfiniBand HDR (25 GB/s) under NVLink


def test_kit_into_the_same_dir_twice_changes_nothing(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "kit"
    argv = ["plan", "--model", "llama-2-70b", "--gpu", "8xA100-80GB", "--method", "full",
            "--out", str(out)]
    assert main(argv) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == ["accelerate_config.yaml", "launch.sh", "setup.yaml", "snippet.py"]
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "already exist" in err and "setup.yaml" in err and "--force" in err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    # setup.yaml re-estimates within the card
    setup = load_setup_file(out / "setup.yaml")
    assert setup.num_gpus == 8
    est = estimate(setup)
    assert est.fits is True
    assert main([*argv, "--force"]) == 0


def test_deepspeed_config_is_kept_and_written(tmp_path: Path) -> None:
    cfg = tmp_path / "run.yaml"
    cfg.write_text("model: llama-2-7b\nnum_gpus: 4\ntraining:\n  bf16: true\n  deepspeed:\n"
                   "    bf16: {enabled: auto}\n    zero_optimization: {stage: 2}\n")
    out = tmp_path / "kit"
    assert main(["plan", "--config", str(cfg), "--gpu", "A100-80GB", "--method", "full",
                 "--out", str(out)]) == 0
    ds = json.loads((out / "ds_config.json").read_text())
    assert ds["zero_optimization"] == {"stage": 2}
    s = load_setup_file(out / "setup.yaml")
    assert s.num_gpus == 4 and strategy_of(s) == "zero2"


def test_host_ram_limit_rules_out_offload() -> None:
    gpu = resolve_gpu("A100-80GB")
    base = setup_from_mapping({"model": "llama-2-70b", "num_gpus": 8})
    tight = plan(PlanRequest(model="llama-2-70b", gpu=gpu, methods=("full",), base=base,
                             host_ram_bytes=64 * 2**30, top_k=1))
    for p in tight.plans:
        assert p.estimate.host is None or p.estimate.host.fits is not False
