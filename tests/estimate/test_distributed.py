"""Per-GPU memory under FSDP and DDP."""

from __future__ import annotations

import pytest

from vramdoc.errors import ConfigError
from vramdoc.estimate import estimate
from vramdoc.setup import setup_from_mapping
from vramdoc.units import GiB


def _full(num_gpus: int = 1, fsdp: str = "", **training) -> object:
    t = {"per_device_train_batch_size": 1, "optim": "adamw_torch", **training}
    if fsdp:
        t["fsdp"] = fsdp
    return setup_from_mapping({"model": "llama-2-7b", "model_kwargs": {"dtype": "bfloat16"},
                               "num_gpus": num_gpus, "training": t, "max_seq_length": 512})


def test_full_shard_divides_params_grads_and_states() -> None:
    one = estimate(_full()).phase_components["optimizer_step"]
    four = estimate(_full(4, "full_shard auto_wrap")).phase_components["optimizer_step"]
    for key in ("weights", "gradients", "optimizer_states", "optimizer_temporaries"):
        assert four[key] == pytest.approx(one[key] / 4, rel=1e-6), key


def test_shard_grad_op_keeps_whole_parameters() -> None:
    one = estimate(_full()).phase_components["optimizer_step"]
    z2 = estimate(_full(4, "shard_grad_op auto_wrap")).phase_components["optimizer_step"]
    assert z2["weights"] == one["weights"]
    assert z2["optimizer_states"] == pytest.approx(one["optimizer_states"] / 4, rel=1e-6)


def test_full_shard_materialises_two_layers_and_the_root_in_forward() -> None:
    est = estimate(_full(2, "full_shard"))
    fwd, step = est.phase_components["forward"], est.phase_components["optimizer_step"]
    # Llama-2-7B decoder layer: 202,383,360 params in bf16; two are gathered at once. The root
    # unit (embed_tokens + norm + lm_head: 2 * 32000 * 4096 + 4096 params) is not resharded
    # after forward, and its unsharded copy is a full-size buffer beside the kept shard
    # (FSDP1 FlatParamHandle: _full_param_padded beside _local_shard): all of it, in bf16.
    root = 2 * 32000 * 4096 + 4096
    assert fwd["weights"] - step["weights"] == pytest.approx(
        2 * 2 * 202_383_360 + 2 * root, rel=1e-3)


def test_ddp_adds_a_gradient_bucket_copy() -> None:
    one = estimate(_full()).phase_components["optimizer_step"]
    ddp = estimate(_full(2)).phase_components["optimizer_step"]
    assert ddp["gradients"] == 2 * one["gradients"]


def test_fsdp_needs_more_than_one_gpu_and_known_options() -> None:
    with pytest.raises(ConfigError, match="num_gpus > 1"):
        _full(1, "full_shard")
    with pytest.raises(ConfigError, match="not an FSDP option"):
        _full(2, "full_shard zero3")


def test_measured_fsdp_full_fine_tune() -> None:
    # fms-acceleration a100_80gb.csv (foundation-model-stack/fms-acceleration@24bdadb2),
    # FMS-08: Mistral-7B full fine-tune, bf16, 2x A100 80GB FSDP FULL_SHARD, per-device
    # batch 4, seq 4096: peak allocated 33.738 GiB per GPU (tests/benchmarks/data/calibration).
    from tests.benchmarks.calibration_cases import CASES

    est = estimate(setup_from_mapping(dict(CASES["FMS-08"])))
    assert est.peak_allocated_bytes / GiB == pytest.approx(33.738, rel=0.05)
