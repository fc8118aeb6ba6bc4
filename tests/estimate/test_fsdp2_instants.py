"""FSDP2 instants of the estimator, from torch 2.13's ``fully_shard`` source and the sharded
fake probe (``vramdoc probe --num-gpus 8 --fsdp ... --device fake``, rank 0 of 8, the
two-layer llama-2-7b of ``tests/benchmarks/bench_sharded_probe.py``)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.benchmarks.bench_sharded_probe import scaled_spec
from vramdoc.estimate import estimate
from vramdoc.estimate.fsdp import mp_compute_bytes
from vramdoc.probe.traces import make_setup
from vramdoc.setup import TrainSetup

MiB = 2**20
FULL_SHARD, OFFLOAD = "full_shard auto_wrap", "full_shard offload auto_wrap"
V1 = '{"version": 1}'  # TrainSetup keeps fsdp_config as canonical JSON text


def _setup(method: str, fsdp: str = FULL_SHARD, gpus: int = 8, **kw: Any) -> TrainSetup:
    s = make_setup("llama-2-7b", method, batch=1, seq_len=512, **kw).replace(num_gpus=gpus)
    return s.replace_training(fsdp=fsdp) if fsdp else s


SPEC = scaled_spec("llama-2-7b", 2)
# one decoder layer of llama-2-7b: 4 h*h attention matrices, 3 h*f MLP matrices, 2 norms
H, F = 4096, 11008
LAYER = 4 * H * H + 3 * H * F + 2 * H


def test_mixed_precision_policy_only_under_fsdp2_with_16_bit() -> None:
    assert mp_compute_bytes(_setup("full")) == 2
    assert mp_compute_bytes(_setup("full", bf16=False)) is None
    assert mp_compute_bytes(_setup("full", fsdp="", gpus=1)) is None
    v1 = _setup("full").replace_training(fsdp_config=V1)
    assert mp_compute_bytes(v1) is None


def test_qlora_under_fsdp2_computes_in_16_bit_whatever_k_bit_preparation_upcast() -> None:
    # prepare_model_for_kbit_training makes the embedding, norms and head fp32; FSDP2's
    # MixedPrecisionPolicy all-gathers them in bf16, so the residual stream and the head's
    # input are bf16 and autocast saves no bf16 copy of the fp32 head
    prepared = estimate(_setup("qlora"), model=SPEC)
    # without k-bit preparation (which also turns checkpointing on): bf16 embedding and head
    plain = estimate(_setup("qlora", grad_ckpt=True).replace(
        prepare_model_for_kbit_training=False), model=SPEC)
    act = prepared.phase_components["forward"]["activations"]
    assert act == plain.phase_components["forward"]["activations"]
    # the sharded fake probe traces 21,248,000 B of activations at this forward peak (the two
    # checkpointed bf16 layer inputs and what the loss keeps): the cast head copy (V*h*2 =
    # 250 MiB) the single-GPU account keeps is not there
    assert act < 32 * MiB
    one_gpu = estimate(_setup("qlora", fsdp="", gpus=1), model=SPEC)
    assert one_gpu.phase_components["forward"]["activations"] > act + 240 * MiB


def test_full_fine_tune_backward_matches_the_traced_instant() -> None:
    # traced: the end of layer 0's backward. Weights: the resident fp32 shards, layer 0
    # unsharded (bf16) and the input embedding's prefetched all-gather output. Gradients:
    # the sharded fp32 ones made so far (the tail's and layer 1's), layer 1's reduce-scatter
    # input kept in reduce_scatter_states and layer 0's unsharded bf16 gradients.
    est = estimate(_setup("full"), model=SPEC)
    assert est.peak_phase == "backward"
    bwd = est.phase_components["backward"]
    assert bwd["gradients"] == 976_263_168  # probe: 976,263,168 B
    # probe 1,000,369,152 B: two fewer 512-byte blocks' rounding of small tensors
    assert abs(bwd["weights"] - 1_000_369_152) <= 2 * 512
    layer_bf16 = 2 * LAYER
    sharded = est.phase_components["optimizer_step"]["gradients"]
    assert bwd["gradients"] - 2 * layer_bf16 < sharded  # layer 0's and the embedding's shards
    # not yet made


def test_forward_three_units_only_at_the_copy_out() -> None:
    # forward peak traced at the last layer's all-gather copy-out: 1,547,758,592 B of
    # weights (the resident shards plus three units) and 104,153,088 B of activations (layer
    # 0's, not the last layer's own); the estimate's forward peak is that instant
    est = estimate(_setup("full"), model=SPEC)
    fwd = est.phase_components["forward"]
    resident = est.phase_components["load"]["weights"]
    assert fwd["weights"] - resident == 3 * 2 * LAYER
    assert abs(fwd["weights"] - 1_547_758_592) <= 2 * 512
    assert fwd["activations"] < 104_153_088  # no layer's own saved tensors beside 3 units
    assert fwd["logits"] == 0


def test_cpu_offload_keeps_no_sharded_gradient_on_the_device() -> None:
    # traced: the first layer's backward (layer 1) is the peak under CPU offload, with the
    # tail's reduce-scatter input (250 MiB) and layer 1's unsharded gradients (386 MiB):
    # 666,918,912 B, no sharded gradient (they are on the host)
    est = estimate(_setup("full", fsdp=OFFLOAD), model=SPEC)
    bwd = est.phase_components["backward"]
    assert bwd["gradients"] == 666_918_912
    assert abs(bwd["weights"] - 809_534_464) <= 2 * 512  # layer 1 and layer 0's prefetch


@pytest.mark.parametrize("fsdp", [FULL_SHARD, OFFLOAD])
def test_fsdp1_keeps_its_measured_account(fsdp: str) -> None:
    # the FSDP2 instants are guarded by fields FSDP1 never sets
    est = estimate(_setup("full", fsdp=fsdp).replace_training(fsdp_config=V1),
                   model=SPEC)
    assert "FSDP1" in est.strategy
    fwd = est.phase_components["forward"]["weights"] - est.phase_components["load"]["weights"]
    assert fwd > 2 * 2 * LAYER  # two layers plus the whole root


def test_tied_model_holds_its_tail_and_starts_backward_without_a_prefetch() -> None:
    # Qwen2.5-0.5B ties its head to the input embedding: accelerate puts both in the tail
    # group (reshard_after_forward=False), gathered from the embedding's forward on. Traced
    # (two layers, rank 0 of 8): the forward peak at the loss holds the tail and the last
    # layer's all-gather output (385,079,808 B of weights); the backward peak is the loss
    # chain's backward, before the tail's pre-backward hook on the logits prefetches layer
    # L-1 (355,254,784 B of weights, no gradient yet)
    spec = scaled_spec("qwen2.5-0.5b", 2)
    s = make_setup("qwen2.5-0.5b", "full", batch=1, seq_len=512).replace(num_gpus=8)
    est = estimate(s.replace_training(fsdp=FULL_SHARD), model=spec)
    fwd, bwd = est.phase_components["forward"], est.phase_components["backward"]
    # the probe rounds each of the model's small tensors (norms, biases) to a 512-byte block
    assert abs(fwd["weights"] - 385_079_808) <= 8 * 512
    assert abs(bwd["weights"] - 355_254_784) <= 8 * 512
    assert bwd["gradients"] == 0
    assert est.peak_phase == "backward"


def test_tied_model_under_shard_grad_op_gathers_its_tail_once() -> None:
    # shard_grad_op keeps every layer unsharded from its forward to its backward; a tied tail
    # (head = input embedding) is gathered before layer 0 and stays whole, so nothing is
    # all-gathered before the head and the loss holds the tail once, beside the layers and the
    # last layer's all-gather output. Traced (sharded fake probe, two layers, rank 0 of 8):
    # forward 444,731,904 B of weights at the loss, backward 414,906,880 B, peak in backward
    # at 1,576,965,120 B (the estimate counted the tail twice at the loss: +242 MiB)
    spec = scaled_spec("qwen2.5-0.5b", 2)
    s = make_setup("qwen2.5-0.5b", "full", batch=1, seq_len=512).replace(num_gpus=8)
    est = estimate(s.replace_training(fsdp="shard_grad_op auto_wrap"), model=spec)
    fwd, bwd = est.phase_components["forward"], est.phase_components["backward"]
    assert abs(fwd["weights"] - 444_731_904) <= 16 * 512
    assert abs(bwd["weights"] - 414_906_880) <= 16 * 512
    assert est.peak_phase == "backward"
    assert abs(est.peak_allocated_bytes - 1_576_965_120) <= 32 * 512
