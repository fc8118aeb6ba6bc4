"""The data-parallel lever: which engine shards a run over several GPUs, and what it costs.

Strategies (each is the engine's own configuration, written into the setup so the estimator,
the snippet and the run kit read the same thing):

- ``ddp``: plain data parallelism (every GPU holds everything);
- ``fsdp_full`` / ``fsdp_grad_op`` / ``fsdp_offload``: TrainingArguments ``fsdp``
  "full_shard auto_wrap", "shard_grad_op auto_wrap", "full_shard offload auto_wrap" (FSDP2,
  transformers 5's default version);
- ``zero2`` / ``zero3`` / ``zero3_offload``: a DeepSpeed config with ZeRO stage 2 or 3 (and
  optimizer + parameter offload to CPU), every size "auto" so transformers fills it in.

Communication per optimizer step (ring collectives move ``(N-1)/N`` of the data per GPU;
Rajbhandari et al. 2020, arXiv 1910.02054, section 7: DDP all-reduce = 2x the gradients, ZeRO-3
= 3x the parameters): DDP all-reduces the gradients once per step (accelerate's ``no_sync``
under accumulation); FSDP full_shard / ZeRO-3 all-gather the 16-bit parameters in forward
and backward (once more when gradient checkpointing recomputes a layer) and reduce-scatter the
gradients, every micro-batch; shard_grad_op / ZeRO-2 reduce-scatter the gradients every
micro-batch and all-gather the updated parameters once per step. Offload adds the PCIe copies
of parameters and gradients and the optimizer step on the host CPU. Collectives overlap with
the backward pass (about two thirds of the compute); only what exceeds it adds to the step.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from vramdoc.setup import TrainSetup

STRATEGIES = ("ddp", "fsdp_full", "fsdp_grad_op", "fsdp_offload", "zero2", "zero3",
              "zero3_offload")
# adapters train a few parameters: no offload, ZeRO-2 buys nothing over FSDP shard_grad_op
ADAPTER_STRATEGIES = ("ddp", "fsdp_full", "fsdp_grad_op", "zero3")
LABELS = {"ddp": "DDP", "fsdp_full": "FSDP full_shard", "fsdp_grad_op": "FSDP shard_grad_op",
          "fsdp_offload": "FSDP full_shard + CPU offload", "zero2": "ZeRO-2", "zero3": "ZeRO-3",
          "zero3_offload": "ZeRO-3 + CPU offload"}
FSDP_WORDS = {"fsdp_full": "full_shard auto_wrap", "fsdp_grad_op": "shard_grad_op auto_wrap",
              "fsdp_offload": "full_shard offload auto_wrap"}
OVERLAP = 2 / 3  # share of the step's compute that collectives can hide behind (backward)
# Host-side optimizer step (ZeRO-Offload's CPU Adam): a memory-bound pass over fp32 master,
# two states and the gradient (read + write: 28 B per parameter); a two-socket server's DDR
# bandwidth is of the order of 100-200 GB/s; 100 GB/s taken (an assumption, stated).
HOST_ADAM_BYTES_PER_PARAM = 28
HOST_MEMORY_GBPS = 100.0


def strategies_for(method: str, num_gpus: int, base: TrainSetup) -> tuple[str, ...]:
    """The strategies the search tries: none on one GPU or when the config names its engine."""
    if num_gpus <= 1 or base.training.fsdp or base.training.deepspeed:
        return ("",)
    return STRATEGIES if method == "full" else ADAPTER_STRATEGIES


def deepspeed_config(strategy: str) -> dict[str, Any]:
    """The DeepSpeed JSON of a ZeRO strategy: sizes "auto" (transformers fills them in)."""
    zo: dict[str, Any] = {"stage": 2 if strategy == "zero2" else 3, "overlap_comm": True,
                          "contiguous_gradients": True, "reduce_bucket_size": "auto"}
    if zo["stage"] == 3:
        zo.update(stage3_prefetch_bucket_size="auto", stage3_param_persistence_threshold="auto",
                  stage3_max_live_parameters=1_000_000_000,
                  stage3_gather_16bit_weights_on_model_save=True)
    out: dict[str, Any] = {"bf16": {"enabled": "auto"}, "fp16": {"enabled": "auto"},
                           "zero_optimization": zo, "gradient_accumulation_steps": "auto",
                           "gradient_clipping": "auto", "train_batch_size": "auto",
                           "train_micro_batch_size_per_gpu": "auto"}
    if strategy == "zero3_offload":
        zo.update(offload_optimizer={"device": "cpu", "pin_memory": True},
                  offload_param={"device": "cpu", "pin_memory": True})
        # DeepSpeed refuses a client optimizer with ZeRO-Offload (zero_force_ds_cpu_optimizer):
        # its own AdamW (DeepSpeedCPUAdam) runs on the host
        out["optimizer"] = {"type": "AdamW", "params": {"lr": "auto", "betas": "auto",
                                                        "eps": "auto", "weight_decay": "auto"}}
    return out


def apply_strategy(setup: TrainSetup, strategy: str) -> TrainSetup:
    """``setup`` run with ``strategy`` (``""``: unchanged)."""
    if not strategy:
        return setup
    t = setup.training
    fsdp = FSDP_WORDS.get(strategy, "")
    ds = json.dumps(deepspeed_config(strategy), sort_keys=True) if strategy.startswith(
        "zero") else ""
    # FSDP plans load the checkpoint on one process and broadcast it (accelerate's
    # cpu_ram_efficient_loading): one copy in host RAM instead of one per GPU
    fsdp_config = json.dumps({"cpu_ram_efficient_loading": True}) if fsdp else ""
    out = setup.replace_training(fsdp=fsdp, fsdp_config=fsdp_config, deepspeed=ds)
    q = out.quantization
    if q is not None and q.quant_method == "bitsandbytes" and q.bits == 4 and (fsdp or ds):
        # FSDP and ZeRO-3 flatten a unit's parameters into one dtype: the 4-bit weights must be
        # stored in the compute dtype (transformers' FSDP QLoRA docs, bnb_4bit_quant_storage)
        storage = q.bnb_4bit_compute_dtype if q.bnb_4bit_compute_dtype != "float32" else \
            "bfloat16" if t.bf16 else "float16" if t.fp16 else "float32"
        out = out.replace(quantization=replace(q, bnb_4bit_quant_storage=storage))
    return out


def strategy_of(setup: TrainSetup) -> str:
    """The strategy name of a setup (its engine settings), for the step-time model."""
    if setup.num_gpus <= 1 and not setup.training.deepspeed:
        return ""
    ds = setup.training.deepspeed
    if ds:
        from vramdoc.parallel import zero_options

        zo = zero_options(setup)
        if zo is None:
            return "ddp"
        if zo.stage == 3:
            return "zero3_offload" if zo.offload_optimizer != "none" else "zero3"
        return "zero2" if zo.stage >= 1 else "ddp"
    words = set(setup.training.fsdp.split())
    if not words or "no_shard" in words:
        return "ddp"
    if "offload" in words:
        return "fsdp_offload"
    return "fsdp_grad_op" if "shard_grad_op" in words or "hybrid_shard_zero2" in words \
        else "fsdp_full"


def comm_seconds(strategy: str, *, n_params: float, trainable: float, param_bytes: int,
                 grad_bytes: int, grad_accum: int, ckpt: bool, gpu: Any, num_gpus: int,
                 nodes: int) -> tuple[float, float]:
    """(collective seconds that can overlap compute, seconds that cannot) per step."""
    from vramdoc.hardware.interconnect import links

    n = max(num_gpus, 1)
    if n <= 1 and strategy != "zero3_offload":
        return 0.0, 0.0
    lk = links(gpu)
    gbps = lk.inter_node_gbps if nodes > 1 else lk.intra_gbps
    ring = (n - 1) / n
    P = n_params * param_bytes  # 16-bit parameters all-gathered
    G = trainable * grad_bytes  # gradients reduced
    if strategy in ("", "ddp"):
        volume = 2 * G
    elif strategy in ("fsdp_full", "fsdp_offload", "zero3", "zero3_offload"):
        volume = grad_accum * ((3 if ckpt else 2) * P + G)
    else:  # shard_grad_op / ZeRO-2
        volume = grad_accum * G + P
    overlappable = ring * volume / (gbps * 1e9)
    serial = 0.0
    if strategy in ("fsdp_offload", "zero3_offload"):
        # parameters up and gradients down over PCIe every micro-batch, per rank's share
        serial += grad_accum * (P + G) / n / (lk.host_gbps * 1e9)
        serial += trainable / n * HOST_ADAM_BYTES_PER_PARAM / (HOST_MEMORY_GBPS * 1e9)
    return overlappable, serial


def label(strategy: str, num_gpus: int) -> str:
    """``"8 GPUs · FSDP full_shard"`` (empty on one GPU without an engine)."""
    if not strategy:
        return ""
    return f"{num_gpus} GPUs · {LABELS[strategy]}"


def expand(combos: Any, base: TrainSetup) -> Any:
    """Every combo once per strategy the base's GPUs allow (space.combos x strategies)."""
    from dataclasses import replace as dc_replace

    for combo in combos:
        strategies = strategies_for(combo.method, base.num_gpus, base)
        for strategy in strategies:
            if strategy.startswith("zero") and combo.optim not in ZERO_OPTIMIZERS:
                continue  # ZeRO steps torch optimizers on its fp32 partitions
            if strategy == "zero3_offload" and combo.optim != ZERO_OPTIMIZERS[0]:
                continue  # the config's own optimizer (DeepSpeedCPUAdam) replaces Trainer's
            yield dc_replace(combo, dist=strategy) if strategy else combo


# optimizers ZeRO runs as Trainer's client optimizer (bitsandbytes' paged / 8-bit states are
# not partitioned by DeepSpeed)
ZERO_OPTIMIZERS = ("adamw_torch_fused", "adamw_torch")


def fewest_gpus(search: Any, closest: Any, start: int = 2, limit: int = 64) -> str | None:
    """The fewest GPUs (powers of two from ``start``) on which the closest plan's setup fits
    sharded, with the per-GPU and host-RAM cost; None when even ``limit`` GPUs do not do."""
    from vramdoc.estimate.core import build_estimate
    from vramdoc.units import format_bytes

    per_node = 8  # GPUs per node in NVIDIA's HGX / DGX designs
    n = start
    while n <= limit:
        nodes = max(1, -(-n // per_node))
        for strategy in ("fsdp_full", "zero3", "fsdp_offload", "zero3_offload"):
            setup = apply_strategy(closest.setup.replace(num_gpus=n, nodes=nodes), strategy)
            if strategy.startswith("zero") and setup.training.optim not in ZERO_OPTIMIZERS:
                setup = setup.replace_training(optim="adamw_torch_fused")
            est = build_estimate(setup, search.spec, search.groups, search.gpu)
            if est.device_bytes <= search.budget:
                host = est.host
                host_txt = (f", host RAM {format_bytes(host.peak_bytes)} per node"
                            if host is not None else "")
                where = f"{nodes} nodes of {n // nodes}" if nodes > 1 else f"{n}"
                return (f"more GPUs: {where} x {search.gpu.name} with {LABELS[strategy]} fit "
                        f"the closest plan: {format_bytes(est.device_bytes)} per GPU"
                        f"{host_txt} (vramdoc plan --gpu {n}x{search.gpu.name}"
                        + (f" --nodes {nodes}" if nodes > 1 else "") + ")")
        n *= 2
    return None
