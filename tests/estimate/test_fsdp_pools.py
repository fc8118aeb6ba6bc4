"""FSDP's reserved view: one allocator pool per stream, the wrap-time cache, what is not sharded."""

from __future__ import annotations

from typing import Any

import pytest

from vramdoc.estimate import estimate
from vramdoc.estimate.fsdp import init_cache_bytes
from vramdoc.estimate.overhead import reserved_bytes, sharded_reserved_bytes
from vramdoc.setup import setup_from_mapping
from vramdoc.units import GiB, MiB

FSDP1 = {"version": 1, "backward_prefetch": "BACKWARD_PRE", "limit_all_gathers": True,
         "use_orig_params": False}


def _setup(num_gpus: int = 2, fsdp: str = "full_shard auto_wrap", *, qlora: bool = False,
           lora: bool = True, config: dict[str, Any] | None = None, batch: int = 1) -> Any:
    m: dict[str, Any] = {
        "model": "llama-2-7b", "num_gpus": num_gpus, "max_seq_length": 512,
        "model_kwargs": {"dtype": "bfloat16"},
        "training": {"per_device_train_batch_size": batch, "optim": "adamw_torch",
                     "gradient_checkpointing": True}}
    if num_gpus > 1:
        m["training"]["fsdp"] = fsdp
        m["training"]["fsdp_config"] = dict(FSDP1 if config is None else config)
    if lora:
        m["lora"] = {"r": 64, "target_modules": ["q_proj", "v_proj"]}
    if qlora:
        m["quantization"] = {"load_in_4bit": True, "bnb_4bit_quant_type": "nf4",
                             "bnb_4bit_quant_storage": "bfloat16"}
        m["prepare_model_for_kbit_training"] = False
    return setup_from_mapping(m)


def test_bnb_quant_state_stays_whole_on_every_rank() -> None:
    # bitsandbytes keeps quant_state on the module, not as a parameter: FSDP does not shard it
    one = estimate(_setup(1, qlora=True)).phase_components["load"]
    two = estimate(_setup(2, qlora=True)).phase_components["load"]
    assert two["quant_state"] == one["quant_state"] > 0
    assert two["weights"] < one["weights"]


def test_cpu_offload_leaves_the_bnb_quant_state_on_the_device() -> None:
    # FSDP offloads parameters; a Params4bit's quant_state is a plain attribute on the GPU
    kept = estimate(_setup(2, qlora=True)).phase_components["load"]
    off = estimate(_setup(2, "full_shard offload auto_wrap", qlora=True))
    load = off.phase_components["load"]
    assert load["quant_state"] == kept["quant_state"] > 0
    assert load["weights"] == 0
    assert off.host.per_process["offloaded parameters"] == kept["weights"] + kept["adapters"]


def test_init_cache_two_layers_and_a_larger_root() -> None:
    # a root larger than a layer leaves its moved parameters and its flat copy cached; the
    # embedding, when no larger than a layer, took the layer's freed flat block instead
    assert init_cache_bytes(386 * MiB, 500 * MiB, 250 * MiB) == 2 * 386 * MiB + 750 * MiB
    # QLoRA: 4-bit layers are smaller than the embedding, which then needs its own segment
    assert init_cache_bytes(98 * MiB, 500 * MiB, 250 * MiB) == 2 * 98 * MiB + 1000 * MiB
    assert init_cache_bytes(500 * MiB, 300 * MiB, 150 * MiB) == 1000 * MiB


def test_default_pool_never_below_the_wrapped_model() -> None:
    est = estimate(_setup())
    load = est.phase_components["load"]
    # Llama-2-7B: a decoder layer is 202,383,360 bf16 params, the root 2 * 32000 * 4096 + 4096
    layer, root = 2 * 202_383_360, 2 * (2 * 32000 * 4096 + 4096)
    embedding = 2 * 32000 * 4096
    assert est.peak_reserved_bytes >= sum(load.values()) + 2 * layer + 2 * root - embedding
    # FSDP2 wraps per parameter (no flat copy): the term is FSDP1's only; at batch 1 x 512
    # the wrap-time blocks exceed what training itself reserves on the default stream
    v2 = estimate(_setup(config={**FSDP1, "version": 2}))
    assert est.peak_reserved_bytes - v2.peak_reserved_bytes > layer


def test_pools_add_up() -> None:
    totals = {"load": 4 * GiB, "forward": 12 * GiB, "backward": 9 * GiB,
              "optimizer_step": 12 * GiB}
    grads = {"load": 0, "forward": 0, "backward": 3 * GiB, "optimizer_step": 3 * GiB}
    G1 = {"forward": 1 * GiB, "backward": 1 * GiB}  # gathered in both phases
    got = sharded_reserved_bytes(totals, G1, 1 * GiB, 0, grads, 7 * GiB, 0)
    # default stream: max(12 - 1, 9 - 1 - 3, 12 - 3) = 11 GiB, static 7 - 3 = 4 GiB
    assert got == reserved_bytes(11 * GiB, 4 * GiB) + 1 * GiB + 3 * GiB
    # when the forward peaks, the gradients' own pool costs more than sharing the default
    # stream's blocks (freed by zero_grad before the forward) would
    shared = sharded_reserved_bytes(totals, G1, 1 * GiB, 0, dict.fromkeys(totals, 0), 7 * GiB, 0)
    assert got > shared
    # nothing cached at wrap time below the default stream's own peak changes nothing
    assert sharded_reserved_bytes(totals, G1, 1 * GiB, 0, grads, 7 * GiB, 2 * GiB) == got
    assert sharded_reserved_bytes(totals, G1, 1 * GiB, 0, grads, 7 * GiB, 20 * GiB) == \
        20 * GiB + 1 * GiB + 3 * GiB


def test_no_shard_keeps_one_gradient_copy() -> None:
    # FSDP NO_SHARD all-reduces flat_param.grad in place (no DDP bucket copy)
    one = estimate(_setup(1, lora=False)).phase_components["optimizer_step"]
    ns = estimate(_setup(2, "no_shard auto_wrap", lora=False)).phase_components["optimizer_step"]
    assert ns["gradients"] == one["gradients"]


def test_measured_fsdp_lora_reserved() -> None:
    # AnswerDotAI/fsdp_qlora@05ed9f2a benchmarks_03_2024.md, FSDPQ-03: Llama-2-7B LoRA r=64,
    # 2x RTX 3090 FSDP FULL_SHARD, batch 1, context 512: peak reserved 10.24 GiB per GPU, peak
    # allocated 8.28 GiB (tests/benchmarks/data/calibration/measured.csv)
    from tests.benchmarks.calibration_cases import CASES

    est = estimate(setup_from_mapping(dict(CASES["FSDPQ-03"])))
    assert est.peak_allocated_bytes / GiB == pytest.approx(8.28, rel=0.03)
    assert est.peak_reserved_bytes / GiB == pytest.approx(10.24, rel=0.10)


def test_device_line_names_nccl_under_fsdp() -> None:
    from vramdoc.estimate.render import render_estimate

    assert "+ NCCL buffers 256 MiB" in render_estimate(estimate(_setup()))
    assert "NCCL" not in render_estimate(estimate(_setup(1))).split("device =")[1].split("\n")[0]
