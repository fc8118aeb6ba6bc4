"""DeepSpeed ZeRO 0/1/2/3 as the Hugging Face integration runs it, per rank.

Option names and defaults: :class:`vramdoc.parallel.ZeroOptions` (deepspeed 0.19
``runtime/zero/config.py``; "auto" resolved as transformers' ``HfTrainerDeepSpeedConfig``).
What one rank holds (read in deepspeed 0.19 ``runtime/engine.py``, ``runtime/zero/
stage_1_and_2.py``, ``runtime/zero/stage3.py``):

- 16-bit module: with ``bf16``/``fp16`` enabled the engine casts the whole module to that
  dtype (``_configure_distributed_model``: ``module.bfloat16()`` / ``half()``), adapters too;
  ZeRO-3 keeps 1/N of every parameter (``zero.Init`` partitions while loading).
- fp32 master copy of the trainable parameters (``single_partition_of_fp32_groups``,
  ``fp32_partitioned_groups_flat``), 1/N from stage 1 on; the optimizer's states on it, 1/N
  from stage 1 on. Counted under optimizer states. Without fp16/bf16 there is no master copy.
- Gradients in the model dtype (``grad_accum_dtype`` defaults to it): whole in stage 0/1;
  stage 2 keeps its partition in a contiguous buffer (``contiguous_gradients``) plus the
  ``ipg_buffer`` of ``reduce_bucket_size`` elements (two with ``overlap_comm``); stage 3 its
  partition in ``grad_partitions_flat_buffer`` plus one ``reduce_bucket_size`` bucket.
  At the step the partition's fp32 gradient exists (``single_grad_partition``).
- ZeRO-3 gathers a layer's parameters for compute and prefetches ``stage3_prefetch_bucket_size``
  elements ahead, never more than ``stage3_max_live_parameters`` at once; parameters under
  ``stage3_param_persistence_threshold`` elements stay whole (norms, biases: small, and
  counted with the gathered layer here).
- Offload: ``offload_optimizer`` cpu/nvme moves the master copy, its states and the fp32
  gradient partition to host RAM (pinned when ``pin_memory``) or NVMe; ``offload_param``
  (ZeRO-3) moves the 16-bit partitions; NVMe offload keeps ``buffer_count`` pinned buffers
  of ``buffer_size`` elements in host RAM.
"""

from __future__ import annotations

from typing import Any

from vramdoc.estimate.distributed import NCCL_BYTES, DistParts, Sharding
from vramdoc.parallel import ZeroOptions, zero_options
from vramdoc.setup import TrainSetup

_DEFAULT_HIDDEN = 4096  # only used before the model is known (validation)


def options(setup: TrainSetup, spec: Any = None) -> ZeroOptions:
    h = int(getattr(spec, "hidden_size", 0) or _DEFAULT_HIDDEN)
    zo = zero_options(setup, h)
    assert zo is not None
    return zo


def label(zo: ZeroOptions) -> str:
    parts = [f"ZeRO-{zo.stage}"]
    if zo.offload_optimizer != "none":
        parts.append(f"optimizer on {zo.offload_optimizer}")
    if zo.offload_param != "none":
        parts.append(f"params on {zo.offload_param}")
    return "DeepSpeed " + " + ".join(parts)


def zero_sharding(setup: TrainSetup) -> Sharding:
    zo = options(setup)
    n = setup.num_gpus
    s = zo.stage
    return Sharding(n, n if s == 3 else 1, n if s >= 2 else 1, n if s >= 1 else 1,
                    1 if s == 3 else 0, False, zo.offload_optimizer != "none", "deepspeed",
                    label(zo))


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b) if b > 1 else a


def zero_parts(setup: TrainSetup, spec: Any, groups: Any, params: Any, opt: Any) -> DistParts:
    """Per-rank parts under DeepSpeed (the module docstring says what each holds)."""
    from vramdoc.estimate.optimizer import OPTIMIZER_KINDS
    from vramdoc.estimate.params import account_params

    zo = options(setup, spec)
    n = max(setup.num_gpus, 1)
    s = zo.stage
    half = zo.half
    e16 = 2 if half else 4
    p16 = account_params(setup.replace(torch_dtype=half), spec, groups) if half else params
    T = p16.trainable_numel
    weights, quant = p16.weights_bytes, p16.quant_state_bytes
    adapters = p16.adapters_bytes * e16 // 4 if half else p16.adapters_bytes
    pdiv = n if s == 3 else 1
    base = {"weights": _ceil_div(weights, pdiv), "quant_state": _ceil_div(quant, pdiv),
            "adapters": _ceil_div(adapters, pdiv)}
    odiv = n if s >= 1 else 1
    # optimizer: the config's own (DeepSpeed's fused Adam: two fp32 states, in place) or
    # Trainer's optim on the fp32 master partition
    if zo.ds_optimizer is not None:
        n_states, state_elem, temp_copies = 2, 4.0, 0
    else:
        kind = OPTIMIZER_KINDS.get(setup.training.optim, OPTIMIZER_KINDS["adamw_torch"])
        n_states = kind.n_states
        state_elem = 4.0 if kind.bits == 32 else kind.bits / 8
        temp_copies = kind.foreach_temp_copies
    master = 4 * T if half else 0
    states = _ceil_div(master + int(n_states * state_elem * T), odiv)
    temps = _ceil_div(int(temp_copies * state_elem * T), odiv)
    step_fp32_grads = _ceil_div(4 * T, odiv) if half else 0
    bucket = min(zo.reduce_bucket_size, max(T, 1)) * e16
    L = max(spec.num_hidden_layers, 1)
    unit_grads = T // L * e16
    if s <= 1:
        grads = T * e16
        comm = bucket if s == 1 else 0
    elif s == 2:
        grads = _ceil_div(T * e16, n)
        comm = bucket * (2 if zo.overlap_comm else 1) if zo.contiguous_gradients else bucket
    else:
        grads = _ceil_div(T * e16, n)
        comm = bucket
    gathered = 0
    if s == 3:
        blocks = account_params(setup.replace(torch_dtype=half) if half else setup, spec,
                                tuple(g for g in groups if g.in_block))
        layer = (blocks.weights_bytes + blocks.quant_state_bytes
                 + (blocks.adapters_bytes * e16 // 4 if half else blocks.adapters_bytes)) // L
        live_cap = zo.max_live_parameters * e16
        gathered = min(layer + zo.prefetch_bucket_size * e16, live_cap)
        gathered -= _ceil_div(layer, n)  # the rank's own partition is resident already
    host: dict[str, int] = {}
    if zo.offload_optimizer != "none":
        where = "offloaded optimizer (fp32 master + states + fp32 gradients)"
        host_bytes = states + step_fp32_grads
        if zo.offload_optimizer == "nvme":
            host["NVMe swap buffers (pinned)"] = zo.nvme_buffer_count * zo.nvme_buffer_size * 4
            host["NVMe (not RAM): " + where] = 0
        else:
            host[where] = host_bytes
        # stage 3 keeps the 16-bit gradient partitions on the host too
        if s == 3:
            host["offloaded gradient partitions"] = grads
            grads = 0
        states = temps = step_fp32_grads = 0
    if zo.offload_param != "none":
        if zo.offload_param == "cpu":
            host["offloaded 16-bit parameters"] = sum(base.values())
        else:
            host["NVMe swap buffers for parameters (pinned)"] = (zo.nvme_buffer_count
                                                                 * zo.nvme_buffer_size * e16)
        base = dict.fromkeys(base, 0)
    return DistParts(base, grads, states, temps, 0, gathered, unit_grads if s >= 2 else 0,
                     comm_bytes=comm, step_bytes=step_fp32_grads,
                     device_extra_bytes=NCCL_BYTES if n > 1 else 0, host=host,
                     label=label(zo), autocast_cache=half is None)
