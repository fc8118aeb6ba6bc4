"""Assemble the phases of one training step and find the peak.

Peak memory is the maximum over the phases of a step, never the sum of everything
(shared/REFERENCE.md section 1). In the steady state (step 2 onwards) optimizer states exist
during forward and backward; gradients exist from backward until ``zero_grad(set_to_none=True)``
after the step, and through the forward passes of the later micro-batches when
``gradient_accumulation_steps > 1``.

- load: weights + quantization constants + adapters.
- forward: + optimizer states + saved activations + the logits / loss buffers at the end of
  forward (+ gradients under accumulation).
- backward: the larger of its start (all saved activations + the fp32 loss-gradient chain)
  and its end (all gradients + the block being recomputed or the first block's activations).
- optimizer_step: weights + gradients + states + the step's temporaries.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from vramdoc.estimate.activations import ActivationAccount, ActSetup, account_activations
from vramdoc.estimate.distributed import shard, sharding
from vramdoc.estimate.optimizer import OptimizerAccount, account_optimizer
from vramdoc.estimate.overhead import cuda_context_bytes, reserved_bytes
from vramdoc.estimate.params import DTYPE_BYTES, ParamAccount, account_params, is_quantized
from vramdoc.estimate.stack import (
    experts_are_linear,
    foreach_default,
    grads_freed_after_step,
    lazy_module_loading,
    loss_shift_copy,
)
from vramdoc.models.spec import EMBEDDING, EXPERTS, HEAD, ROUTER
from vramdoc.setup import TrainSetup

PHASES = ("load", "forward", "backward", "optimizer_step")
COMPONENTS = ("weights", "quant_state", "adapters", "gradients", "optimizer_states",
              "optimizer_temporaries", "activations", "logits")


@dataclass(frozen=True)
class MemoryEstimate:
    """Predicted memory of one training step, in bytes. Compute here, render elsewhere."""

    setup: TrainSetup
    model_name: str
    n_params: int
    trainable_params: int
    phase_components: dict[str, dict[str, int]]
    peak_phase: str
    peak_allocated_bytes: int
    peak_reserved_bytes: int
    device_bytes: int
    cuda_context_bytes: int
    paged_bytes: int
    gpu: Any = None  # vramdoc.hardware.GpuSpec or None
    notes: tuple[str, ...] = ()
    details: dict[str, int] = field(default_factory=dict)

    @property
    def components(self) -> dict[str, int]:
        return dict(self.phase_components[self.peak_phase])

    @property
    def phases(self) -> dict[str, int]:
        return {p: sum(c.values()) for p, c in self.phase_components.items()}

    @property
    def fits(self) -> bool | None:
        if self.gpu is None:
            return None
        return bool(self.device_bytes <= int(self.gpu.memory_bytes))

    @property
    def headroom_bytes(self) -> int | None:
        if self.gpu is None:
            return None
        return int(self.gpu.memory_bytes) - self.device_bytes

    def to_json(self) -> dict[str, Any]:
        """The ``vramdoc estimate --json`` object (stable field names)."""
        from vramdoc.setup import setup_to_mapping

        out: dict[str, Any] = {
            "model": self.model_name,
            "n_params": self.n_params,
            "trainable_params": self.trainable_params,
            "peak_allocated_bytes": self.peak_allocated_bytes,
            "peak_reserved_bytes": self.peak_reserved_bytes,
            "device_bytes": self.device_bytes,
            "peak_phase": self.peak_phase,
            "components": self.components,
            "phases": self.phases,
            "phase_components": self.phase_components,
            "cuda_context_bytes": self.cuda_context_bytes,
            "paged_bytes": self.paged_bytes,
            "setup": setup_to_mapping(self.setup),
            "notes": list(self.notes),
        }
        if self.gpu is not None:
            out["gpu"] = {"name": self.gpu.name, "memory_bytes": int(self.gpu.memory_bytes)}
            out["fits"] = self.fits
            out["headroom_bytes"] = self.headroom_bytes
        return out


def _act_setup(setup: TrainSetup, params: ParamAccount, spec: Any, groups: Any) -> ActSetup:
    t = setup.training
    dense = DTYPE_BYTES[params.weight_dtype_after_prep]
    quantized = frozenset(g.leaf for g in groups if is_quantized(g, setup))
    lora = setup.lora
    return ActSetup(
        b=t.per_device_train_batch_size, s=setup.max_seq_length, r=dense, weight_elem=dense,
        autocast=t.bf16 or t.fp16, full=lora is None,
        lora=frozenset(m.leaf for m in params.lora_modules),
        lora_r=lora.r if lora else 0, lora_dropout=lora.lora_dropout if lora else 0.0,
        quantized=quantized, attn=setup.attn_implementation,
    )


def _embedding_grads(setup: TrainSetup, spec: Any, groups: Any, div: int) -> tuple[int, int]:
    """Gradient bytes of the trainable input embeddings: (untied ones, ones a head is tied
    to). An untied one's gradient is allocated last; a tied one's exists from the head's
    backward on, and its own backward adds a V*h result into it."""
    heads = {g.tied_to for g in groups if g.kind == HEAD and g.tied_to}

    def grads_of(tied: bool) -> int:
        emb = account_params(setup, spec, tuple(g for g in groups if g.kind == EMBEDDING
                                                and (g.path in heads) == tied))
        return shard(emb.trainable_bytes, div) if emb.embedding_trainable else 0

    return grads_of(False), grads_of(True)


def build_estimate(setup: TrainSetup, spec: Any, groups: Any, gpu: Any = None) -> MemoryEstimate:
    """The estimate for a resolved setup, model spec, inventory and optional GPU."""
    if experts_are_linear(setup.transformers_version):
        # per-expert nn.Linear modules and an nn.Linear router: bitsandbytes quantizes them
        groups = tuple(replace(g, quantizable=True) if g.kind in (EXPERTS, ROUTER) else g
                       for g in groups)
    params = account_params(setup, spec, groups)
    t = setup.training
    opt: OptimizerAccount = account_optimizer(t.optim, params, t.weight_decay,
                                              foreach=foreach_default(setup.torch_version))
    # peft's prepare_model_for_kbit_training turns gradient checkpointing on by default
    # (use_gradient_checkpointing=True); Trainer's flag does the same for any setup.
    # ... for k-bit (bitsandbytes) and GPTQ bases only: AWQ is not in its list (peft 0.21)
    q = setup.quantization
    ckpt = t.gradient_checkpointing or (
        q is not None and q.quant_method in ("bitsandbytes", "gptq")
        and setup.prepare_model_for_kbit_training)
    st = _act_setup(setup, params, spec, groups)
    acts: ActivationAccount = account_activations(
        spec, groups, st, ckpt, task=setup.task, num_labels=setup.num_labels,
        lm_head_trains=params.lm_head_trainable, head_elem=st.weight_elem,
        loss_shift_copy=loss_shift_copy(setup.transformers_version),
    )
    sh = sharding(setup)
    # GPTQ/AWQ layers keep qweight/qzeros/scales/g_idx as buffers, which FSDP does not shard;
    # bitsandbytes' Params4bit/Int8Params are parameters and are sharded like the rest
    buffers = q is not None and q.quant_method in ("gptq", "awq")
    packed = params.quantized_weight_bytes if buffers else 0
    base = {"weights": shard(params.weights_bytes - packed, sh.params_div) + packed,
            "quant_state": params.quant_state_bytes if buffers
            else shard(params.quant_state_bytes, sh.params_div),
            "adapters": shard(params.adapters_bytes, sh.params_div)}
    grads = shard(params.trainable_bytes, sh.grads_div)
    states = shard(opt.states_bytes, sh.states_div)
    temps = shard(opt.temporaries_bytes, sh.states_div)
    paged = shard(opt.paged_bytes, sh.states_div)
    gathered = unit_grads = 0
    if sh.gathered_units:
        # FULL_SHARD: whole decoder layers all-gathered for compute, and one layer's full
        # gradient before its reduce-scatter
        blocks = account_params(setup, spec, tuple(g for g in groups if g.in_block))
        L = max(spec.num_hidden_layers, 1)
        sharded_block = blocks.weights_bytes + blocks.adapters_bytes + (
            0 if buffers else blocks.quant_state_bytes) - (
            blocks.quantized_weight_bytes if buffers else 0)
        gathered = sh.gathered_units * sharded_block // L
        unit_grads = blocks.trainable_bytes // L
    if sh.cpu_offload:
        base = dict.fromkeys(base, 0)
        grads = states = temps = paged = 0
    if sh.ddp_bucket_copy:
        grads *= 2  # DDP buckets hold a copy of every gradient
    ga = t.gradient_accumulation_steps
    # gradients live through forward under accumulation, or when zero_grad keeps them
    grads_fwd = grads if ga > 1 or not grads_freed_after_step(setup.torch_version) else 0
    mode = setup.training.fsdp or "DDP"
    notes_dist = [f"figures are per GPU of {sh.world} ({mode})"] if sh.world > 1 else []
    zero = dict.fromkeys(COMPONENTS, 0)

    load = {**zero, **base}
    # forward peaks either inside the last block (its transient buffers) or at the loss (the
    # logits chain); both on top of everything saved so far
    in_block = acts.layer_transient_bytes > acts.logits_forward_bytes
    live = {**base, "weights": base["weights"] + gathered}
    forward = {**zero, **live, "optimizer_states": states, "gradients": grads_fwd,
               "activations": acts.saved_total_bytes + acts.autocast_cache_bytes
               + (acts.layer_transient_bytes if in_block else 0),
               "logits": 0 if in_block else acts.logits_forward_bytes}
    bwd_start = {**zero, **live, "optimizer_states": states, "gradients": grads_fwd + unit_grads,
                 "activations": acts.saved_total_bytes,
                 "logits": acts.logits_backward_bytes}
    end_acts = (acts.recompute_bytes if ckpt else acts.per_layer_bytes) + acts.layer_transient_bytes
    # Backward runs the model in reverse: a trainable input embedding is the last module it
    # reaches. When the embedding's backward runs, the first block's tensors (saved or
    # recomputed activations, its checkpointed input) are freed; live are all gradients, the
    # gradient of the embedding output (b*s*h in the compute dtype) and, for an untied
    # embedding, nothing else (its fresh gradient becomes .grad) or, for one tied to the head
    # (whose backward made .grad long before), embedding_dense_backward's V*h result that is
    # then added into .grad. Counting all gradients with the first block's activations paired
    # instants that never coincide, and made a checkpointed step look larger than a plain one
    # (by its checkpointed input) for short sequences, where this end of backward is the peak.
    # Fake-tensor traces (vramdoc probe --device fake, full bf16, eager, batch 1) have the
    # same activations at the backward peak with and without checkpointing: llama-2-7b seq 32
    # 263,168 B (the output gradient + 1 KiB), qwen2.5-0.5b seq 16 272,270,336 B (V*h*2 + 1 KiB).
    untied, tied = _embedding_grads(setup, spec, groups, sh.grads_div)
    block0 = {**zero, **live, "optimizer_states": states,
              "gradients": grads + unit_grads - untied,
              "activations": end_acts + (acts.checkpoint_bytes
                                         // max(spec.num_hidden_layers, 1))}
    last = {**zero, **live, "optimizer_states": states, "gradients": grads + unit_grads,
            "activations": t.per_device_train_batch_size * setup.max_seq_length
            * spec.hidden_size * st.r + tied}
    bwd_end = block0 if not (untied or tied) or sum(block0.values()) >= sum(
        last.values()) else last
    backward = bwd_start if sum(bwd_start.values()) >= sum(bwd_end.values()) else bwd_end
    step = {**zero, **base, "optimizer_states": states, "gradients": grads,
            "optimizer_temporaries": temps}
    phase_components = {"load": load, "forward": forward, "backward": backward,
                        "optimizer_step": step}
    totals = {p: sum(c.values()) for p, c in phase_components.items()}
    peak_phase = max(PHASES, key=lambda p: (totals[p], -PHASES.index(p)))
    peak = totals[peak_phase]
    static = sum(base.values()) + states + grads
    reserved = reserved_bytes(peak, min(static, peak))
    ctx = cuda_context_bytes(gpu.compute_capability if gpu is not None else None,
                             lazy=lazy_module_loading(setup.torch_version))
    device = reserved + ctx + paged
    notes = list(notes_dist)
    if ckpt and not t.gradient_checkpointing:
        notes.append("prepare_model_for_kbit_training enables gradient checkpointing")
    if paged:
        notes.append("paged optimizer states live in CUDA unified memory: not in torch's "
                     "allocated/reserved figures, counted in the device view")
    if setup.max_seq_length > spec.max_position_embeddings > 0:
        notes.append(f"max_seq_length {setup.max_seq_length} exceeds the model's "
                     f"max_position_embeddings {spec.max_position_embeddings}")
    return MemoryEstimate(
        setup=setup, model_name=spec.name, n_params=params.n_params,
        trainable_params=params.trainable_numel, phase_components=phase_components,
        peak_phase=peak_phase, peak_allocated_bytes=peak, peak_reserved_bytes=reserved,
        device_bytes=device, cuda_context_bytes=ctx, paged_bytes=paged, gpu=gpu,
        notes=tuple(notes),
        details={"per_layer_activation_bytes": acts.per_layer_bytes,
                 "checkpoint_bytes": acts.checkpoint_bytes,
                 "layer_transient_bytes": acts.layer_transient_bytes,
                 "gradient_checkpointing": int(ckpt)},
    )
