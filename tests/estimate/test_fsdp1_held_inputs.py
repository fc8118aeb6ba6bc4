"""FSDP1 keeps every checkpointed block input, and its gradient, to the end of backward when
transformers (up to 4.51) checkpoints the FSDP unit from outside with reentrant checkpointing
and the unit's parameters are frozen (LoRA): vramdoc.estimate.fsdp.holds_block_inputs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from vramdoc.estimate import estimate
from vramdoc.estimate.core import _reentrant
from vramdoc.estimate.fsdp import holds_block_inputs
from vramdoc.setup import setup_from_mapping

ROOT = Path(__file__).resolve().parents[2]


def _setup(tf: str = "4.48.1", *, lora: bool = True, version: int = 1, gpus: int = 2,
           reentrant: bool | None = None, fsdp: str = "full_shard auto_wrap") -> object:
    training: dict[str, object] = {"per_device_train_batch_size": 2, "gradient_checkpointing": True,
                                   "optim": "adamw_torch"}
    if gpus > 1:
        training["fsdp"] = fsdp
        training["fsdp_config"] = {"version": version}
    if reentrant is not None:
        training["gradient_checkpointing_kwargs"] = {"use_reentrant": reentrant}
    m: dict[str, object] = {"model": "llama-2-7b", "model_kwargs": {"dtype": "bfloat16"},
                            "stack": {"transformers": tf}, "num_gpus": gpus,
                            "training": training, "max_seq_length": 4096}
    if lora:
        m["lora"] = {"r": 16, "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"]}
    return setup_from_mapping(m)


def test_trainer_checkpointing_is_reentrant_before_transformers_5() -> None:
    # transformers 4.35-4.57 gradient_checkpointing_enable: {"use_reentrant": True} by
    # default; transformers 5: {"use_reentrant": False}; an explicit value wins
    assert _reentrant(_setup("4.48.1"), True)
    assert not _reentrant(_setup("5"), True)
    assert not _reentrant(_setup("4.48.1", reentrant=False), True)
    assert _reentrant(_setup("5", reentrant=True), True)
    assert not _reentrant(_setup("4.48.1"), False)


@pytest.mark.parametrize(("kwargs", "held"), [
    ({}, True),
    ({"tf": "4.51.3"}, True),
    ({"tf": "4.52.1"}, False),  # GradientCheckpointingLayer: the checkpoint is inside the unit
    ({"tf": "5"}, False),  # and non-reentrant by default
    ({"reentrant": False}, False),
    ({"version": 2}, False),  # FSDP2 hooks the inputs with an autograd function
    ({"lora": False}, False),  # trainable units reshard from their gradient hook
    ({"fsdp": "no_shard auto_wrap"}, True),  # the hook is registered whatever the strategy
])
def test_which_runs_hold_the_block_inputs(kwargs: dict[str, Any], held: bool) -> None:
    s = _setup(**kwargs)
    assert holds_block_inputs(s, _reentrant(s, True)) is held


def test_held_inputs_raise_the_backward_to_two_per_layer() -> None:
    # Llama-2-7B LoRA, batch 2 x 4096 tokens, bf16: one block input is 2*4096*4096*2 bytes.
    # Held (transformers 4.51), the backward's activations reach every input and the
    # gradients made for 30 of them, beside layer 0's recomputation; not held (4.52, the
    # same loss code), one input and that recomputation
    c = 2 * 4096 * 4096 * 2
    held = estimate(_setup("4.51.3")).phase_components["backward"]["activations"]
    free = estimate(_setup("4.52.1")).phase_components["backward"]["activations"]
    assert held >= 32 * c + 30 * c
    assert free < 32 * c + 30 * c
    assert held - free >= 30 * c


def test_fms_llama2_70b_qlora_on_two_gpus() -> None:
    # fms-acceleration a100_80gb.csv (@24bdadb2) FMS-23: Llama-2-70B QLoRA, 2x A100 FSDP
    # FULL_SHARD, batch 2 x 4096, transformers 4.48.1: peak allocated 43.479 GiB per GPU
    # (shared calibration); 33.9 GiB before the held inputs were modelled
    from tests.benchmarks.calibration_cases import CASES
    from vramdoc.units import GiB

    est = estimate(setup_from_mapping(dict(CASES["FMS-23"])))
    assert est.peak_allocated_bytes / GiB == pytest.approx(43.479, rel=0.03)


def test_torch_fsdp1_holds_inputs_only_when_checkpointed_from_outside() -> None:
    # the mechanism itself, on torch's FSDP1 (gloo, one rank): frozen units with adapters in
    # units of their own, reentrant checkpointing. From outside the unit, backward's peak rises
    # over the same step without FSDP by one to two block inputs per layer; from inside the
    # unit (transformers 4.52+), not at all
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    rows, h = 256, 128
    out = subprocess.run([sys.executable, str(ROOT / "tests/estimate/_fsdp1_hold_run.py"),
                          str(rows), str(h), "8", "16"], capture_output=True, text=True,
                         env=env, timeout=300, check=True)
    r = json.loads(out.stdout.strip().splitlines()[-1])
    c = rows * h * 4  # one fp32 block input
    for layers in (8, 16):
        assert r[f"{layers}/inside_fsdp"] == r[f"{layers}/inside_plain"]
        assert r[f"{layers}/outside_plain"] == r[f"{layers}/inside_plain"]
    extra8 = r["8/outside_fsdp"] - r["8/outside_plain"]
    extra16 = r["16/outside_fsdp"] - r["16/outside_plain"]
    per_layer = (extra16 - extra8) / 8
    assert c <= per_layer <= 2 * c
