"""Per-GPU memory under FSDP and DDP."""

from __future__ import annotations

import pytest

from vramdoc.errors import ConfigError
from vramdoc.estimate import estimate
from vramdoc.setup import setup_from_mapping
from vramdoc.units import GiB


def _full(num_gpus: int = 1, fsdp: str = "", version: int = 0, **training) -> object:
    t = {"per_device_train_batch_size": 1, "optim": "adamw_torch", **training}
    if fsdp:
        t["fsdp"] = fsdp
    if version:
        t["fsdp_config"] = {"version": version}
    return setup_from_mapping({"model": "llama-2-7b", "model_kwargs": {"dtype": "bfloat16"},
                               "num_gpus": num_gpus, "training": t, "max_seq_length": 512})


def test_full_shard_divides_params_grads_and_states() -> None:
    one = estimate(_full()).phase_components["optimizer_step"]
    four = estimate(_full(4, "full_shard auto_wrap")).phase_components["optimizer_step"]
    for key in ("weights", "gradients", "optimizer_states", "optimizer_temporaries"):
        assert four[key] == pytest.approx(one[key] / 4, rel=1e-6), key


def test_fsdp1_shard_grad_op_unshards_every_unit_until_its_backward() -> None:
    # torch ShardingStrategy.SHARD_GRAD_OP: "parameters are sharded outside computation ...
    # unshards before the forward, does not reshard them after the forward, and only
    # reshards them after the backward": the local shards stay resident (the step sees only
    # them) and at the loss every layer's and the root's unsharded flat parameter is live
    # beside them (the figure was whole parameters in every phase: no shard, none resharded)
    one = estimate(_full()).phase_components["optimizer_step"]
    est = estimate(_full(4, "shard_grad_op auto_wrap", version=1))
    z2, fwd = est.phase_components["optimizer_step"], est.phase_components["forward"]
    assert z2["weights"] == pytest.approx(one["weights"] / 4, rel=1e-6)
    assert z2["optimizer_states"] == pytest.approx(one["optimizer_states"] / 4, rel=1e-6)
    root = (2 * 32_000 * 4_096 + 4_096) * 2
    assert fwd["weights"] - z2["weights"] == 32 * 2 * 202_383_360 + root


def test_fsdp2_shard_grad_op_shards_parameters_and_gathers_every_layer_in_forward() -> None:
    # fully_shard(reshard_after_forward=False) shards the parameters all the same (the sharded
    # fake probe: the same load bytes as full_shard); each layer's unsharded copy lives from
    # its forward to its backward, the embedding's too (accelerate gives it the same
    # reshard_after_forward). The forward peaks when the tail [norm, lm_head] is gathered:
    # all 32 layers, the last one's all-gather output, the embedding, the tail's all-gather
    # output and its unsharded copy (traced by bench_sharded_probe)
    one = estimate(_full()).phase_components["optimizer_step"]
    est = estimate(_full(4, "shard_grad_op auto_wrap"))
    step, fwd = est.phase_components["optimizer_step"], est.phase_components["forward"]
    assert step["weights"] == pytest.approx(one["weights"] / 4, rel=1e-6)
    embedding, tail = 32_000 * 4_096 * 2, (32_000 * 4_096 + 4_096) * 2
    assert fwd["weights"] - step["weights"] == (32 + 1) * 2 * 202_383_360 + embedding + 2 * tail
    assert fwd["logits"] == 0  # before the head makes them


def test_fsdp2_mixed_precision_keeps_fp32_shards_of_a_full_fine_tune() -> None:
    # accelerate's fsdp2_prepare_model upcasts trainable bf16 parameters to fp32 under bf16
    # mixed precision: shards, gradients and AdamW states are fp32 (twice the bf16 bytes)
    plain = estimate(_full(4, "full_shard auto_wrap")).phase_components["optimizer_step"]
    amp = estimate(_full(4, "full_shard auto_wrap", bf16=True)).phase_components[
        "optimizer_step"]
    for key in ("weights", "gradients", "optimizer_states"):
        assert amp[key] == pytest.approx(2 * plain[key], rel=1e-3), key
    fsdp1 = estimate(_full(4, "full_shard auto_wrap", version=1, bf16=True)).phase_components[
        "optimizer_step"]
    assert fsdp1["weights"] == plain["weights"]


def test_fsdp2_full_shard_materialises_three_layers_in_forward() -> None:
    # two all-gather outputs (the current layer's, kept until the next copy-out, and the
    # next one's) and one layer's unsharded parameters, traced by the sharded fake probe; the
    # tail [norm, lm_head] is gathered from its forward on: with one layer still gathered at
    # the loss, which is the larger instant here (a 64 M-parameter head, a 202 M layer)
    est = estimate(_full(2, "full_shard"))
    fwd, step = est.phase_components["forward"], est.phase_components["optimizer_step"]
    layer, head = 2 * 202_383_360, 2 * (32000 * 4096 + 4096)
    assert fwd["weights"] - step["weights"] in (3 * layer, layer + head - head // 2)


def test_fsdp1_full_shard_gathers_one_layer_in_forward_two_in_backward() -> None:
    # FSDP1 frees a unit's unsharded flat parameter in its _post_forward, before the next
    # unit's _pre_forward all-gathers (no forward prefetch): one Llama-2-7B decoder layer
    # (202,383,360 params in bf16) beside the root. The root unit (embed_tokens + norm +
    # lm_head: 2 * 32000 * 4096 + 4096 params) is not resharded after forward, and its
    # unsharded copy is a full-size buffer beside the kept shard (FlatParamHandle:
    # _full_param_padded beside _local_shard). In a full fine-tune's backward, BACKWARD_PRE
    # prefetches the layer below the one computing: two layers.
    est = estimate(_full(2, "full_shard", version=1))
    fwd, bwd = est.phase_components["forward"], est.phase_components["backward"]
    step = est.phase_components["optimizer_step"]
    layer, root = 2 * 202_383_360, 2 * (2 * 32000 * 4096 + 4096)
    assert fwd["weights"] - step["weights"] == pytest.approx(layer + root, rel=1e-3)
    assert bwd["weights"] - step["weights"] == pytest.approx(2 * layer + root, rel=1e-3)


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
