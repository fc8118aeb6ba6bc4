"""The run kit loads in the engines' own parsers (CPU only): accelerate's config loader,
DeepSpeed's config model, and TrainingArguments built from the snippet's engine arguments."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from vramdoc.emit.kit import write_kit
from vramdoc.emit.snippet import engine_kwargs
from vramdoc.hardware import resolve_gpu
from vramdoc.planner import PlanRequest, plan
from vramdoc.planner.parallel import apply_strategy
from vramdoc.setup import TrainSetup

accelerate_cfg = pytest.importorskip("accelerate.commands.config.config_args")
transformers = pytest.importorskip("transformers")

pytestmark = pytest.mark.slow


def _kit(tmp_path: Path, strategy: str, num_gpus: int = 4, nodes: int = 1) -> tuple[Path, Any]:
    base = TrainSetup(model="llama-2-7b", num_gpus=num_gpus, nodes=nodes)
    res = plan(PlanRequest(model="llama-2-7b", gpu=resolve_gpu("A100-80GB"), methods=("full",),
                           base=base, top_k=1))
    assert res.best is not None
    best = res.best
    from dataclasses import replace

    p = replace(best, setup=apply_strategy(best.setup, strategy))
    out = tmp_path / strategy
    write_kit(out, p, res.spec, res.gpu)
    return out, p


@pytest.mark.parametrize("strategy", ["fsdp_full", "fsdp_offload", "fsdp_grad_op"])
def test_fsdp_kit_loads_in_accelerate_and_transformers(tmp_path: Path, strategy: str) -> None:
    out, p = _kit(tmp_path, strategy)
    cfg = accelerate_cfg.load_config_from_file(str(out / "accelerate_config.yaml"))
    assert str(cfg.distributed_type) == "DistributedType.FSDP"
    assert cfg.num_processes == 4 and cfg.num_machines == 1
    assert cfg.fsdp_config["fsdp_offload_params"] is (strategy == "fsdp_offload")
    assert cfg.fsdp_config["fsdp_reshard_after_forward"] is (strategy != "fsdp_grad_op")
    kwargs = {k: v for k, v, _c in engine_kwargs(p.setup)}
    args = transformers.TrainingArguments(output_dir=str(tmp_path / "o"), use_cpu=True,
                                          **kwargs)
    plugin = args._process_fsdp_args() if hasattr(args, "_process_fsdp_args") else None
    assert args.fsdp
    assert args.fsdp_config.get("reshard_after_forward") is (strategy != "fsdp_grad_op")
    assert plugin is None or plugin.get("cpu_offload", False) is (strategy == "fsdp_offload")


@pytest.mark.parametrize("strategy", ["zero2", "zero3", "zero3_offload"])
def test_deepspeed_kit_loads_in_accelerate_deepspeed_and_transformers(
        tmp_path: Path, strategy: str) -> None:
    pytest.importorskip("deepspeed")
    from deepspeed.runtime.zero.config import DeepSpeedZeroConfig

    out, p = _kit(tmp_path, strategy, num_gpus=16, nodes=2)
    cfg = accelerate_cfg.load_config_from_file(str(out / "accelerate_config.yaml"))
    assert str(cfg.distributed_type) == "DistributedType.DEEPSPEED"
    assert cfg.num_processes == 16 and cfg.num_machines == 2
    assert cfg.deepspeed_config["deepspeed_config_file"] == "ds_config.json"
    ds = json.loads((out / "ds_config.json").read_text())
    zc = DeepSpeedZeroConfig(**{k: v for k, v in ds["zero_optimization"].items()
                                if v != "auto"})
    assert int(zc.stage) == (2 if strategy == "zero2" else 3)
    if strategy == "zero3_offload":
        assert zc.offload_optimizer is not None and str(zc.offload_optimizer.device).endswith(
            "cpu")
    cwd = os.getcwd()
    os.chdir(out)
    try:
        args = transformers.TrainingArguments(output_dir=str(tmp_path / "o"), use_cpu=True,
                                              bf16=True, deepspeed="ds_config.json")
        hf = args.hf_deepspeed_config
        hf.trainer_config_process(args)
        assert hf.config["zero_optimization"]["stage"] == int(zc.stage)
        assert hf.config["bf16"]["enabled"] is True  # "auto" filled from TrainingArguments
    finally:
        os.chdir(cwd)
    launch = (out / "launch.sh").read_text()
    assert "accelerate launch --config_file accelerate_config.yaml" in launch
    assert "--machine_rank" in launch and os.access(out / "launch.sh", os.X_OK)
