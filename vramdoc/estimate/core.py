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

from vramdoc.estimate.activations import (
    ActivationAccount,
    ActSetup,
    account_activations,
    block_linears,
)
from vramdoc.estimate.adapters import check_lora_targets, zero_trainable_error
from vramdoc.estimate.distributed import DistParts, shard, sharding
from vramdoc.estimate.hostram import host_ram
from vramdoc.estimate.liger import flce_bytes, liger_applies
from vramdoc.estimate.optimizer import OptimizerAccount, account_optimizer
from vramdoc.estimate.overhead import (
    cuda_context_bytes,
    reserved_bytes,
    sharded_reserved_bytes,
)
from vramdoc.estimate.params import DTYPE_BYTES, ParamAccount, account_params, is_quantized
from vramdoc.estimate.stack import (
    bnb_skips_linear_subclasses,
    cache_copies,
    checkpointing_ignored,
    checkpointing_keeps_presents,
    experts_are_linear,
    foreach_default,
    grads_freed_after_step,
    lazy_module_loading,
    logits_upcast_in_model,
    loss_shift_copy,
    model_computes_own_loss,
    trainer_checkpointing_reentrant,
)
from vramdoc.models.spec import EMBEDDING, EXPERTS, HEAD, LINEAR, ROUTER
from vramdoc.setup import TrainSetup
from vramdoc.units import MiB

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
    host: Any = None  # vramdoc.estimate.hostram.HostRam: the node's host RAM
    strategy: str = ""  # the data-parallel strategy ("" on one GPU without an engine)

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
        if self.setup.num_gpus > 1 or self.strategy:
            out["per_gpu"] = True
            out["num_gpus"] = self.setup.num_gpus
            out["nodes"] = self.setup.nodes
            out["strategy"] = self.strategy
        if self.host is not None:
            out["host_ram"] = self.host.to_json()
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
    leaves = frozenset(m.leaf for m in params.lora_modules)
    paths = {m.path for m in params.lora_modules}
    return ActSetup(
        b=t.per_device_train_batch_size, s=setup.max_seq_length, r=dense, weight_elem=dense,
        autocast=t.bf16 or t.fp16, full=lora is None,
        lora=leaves,
        # Linear roles that share a wrapped role's leaf name but are not wrapped themselves
        # (DeepSeek-V2 all-linear: the experts' down_proj is, the shared experts' is not)
        lora_skip=frozenset(g.path for g in groups if g.kind == LINEAR and g.leaf in leaves
                            and g.path not in paths),
        lora_r=lora.r if lora else 0, lora_dropout=lora.lora_dropout if lora else 0.0,
        quantized=quantized, attn=setup.attn_implementation,
        dora=bool(lora is not None and lora.use_dora), kbit=setup.quantization is not None,
        # GPTQ LoRA runs as bitsandbytes QLoRA does (fms-acceleration's A100 runs: Mistral-7B
        # GPTQ 2 GPUs b2/b4 8.79 / 14.89 GiB, NF4 8.78 / 14.87 GiB)
        dequant_gemm=bool(quantized) and (_bnb4(setup) or _gptq(setup)),
        double_quant=setup.quantization is not None and _bnb4(setup)
        and bool(setup.quantization.bnb_4bit_use_double_quant),
        fused_experts=not experts_are_linear(setup.transformers_version),
        use_cache=setup.use_cache, cache_copies=cache_copies(setup.transformers_version),
        presents_held=checkpointing_keeps_presents(spec.model_type, setup.transformers_version),
    )


def _gptq(setup: TrainSetup) -> bool:
    q = setup.quantization
    return q is not None and q.quant_method == "gptq"


def _bnb4(setup: TrainSetup) -> bool:
    q = setup.quantization
    return q is not None and q.quant_method == "bitsandbytes" and q.bits == 4


_PARAMS_MEMO: dict[tuple[Any, ...], tuple[Any, ParamAccount]] = {}


def _account_params(setup: TrainSetup, spec: Any, groups: Any) -> ParamAccount:
    """``account_params``, memoized on what it reads (the planner estimates many candidates
    that differ only in batch, sequence, attention or optimizer)."""
    # every setup field account_params reads (tests/estimate/test_engines.py: peft_version)
    key = (id(groups), spec.name, spec.model_type, setup.torch_dtype, setup.quantization,
           setup.lora, setup.prepare_model_for_kbit_training, setup.task, setup.peft_version)
    hit = _PARAMS_MEMO.get(key)
    if hit is not None and hit[0] is groups:  # the same inventory object, not a reused id
        return hit[1]
    params = account_params(setup, spec, groups)
    if len(_PARAMS_MEMO) > 256:
        _PARAMS_MEMO.clear()
    _PARAMS_MEMO[key] = (groups, params)
    return params


_EMB_MEMO: dict[tuple[Any, ...], tuple[Any, Any, tuple[int, int]]] = {}
_ACTS_MEMO: dict[tuple[Any, ...], tuple[Any, Any, ActivationAccount]] = {}


def _account_activations(spec: Any, groups: Any, st: ActSetup, ckpt: bool,
                         **kw: Any) -> ActivationAccount:
    """``account_activations``, memoized on its arguments: the walk reads nothing else, and
    the planner estimates many candidates that differ only in the optimizer (the account is
    a frozen dataclass, so sharing it is safe)."""
    key = (id(spec), id(groups), st, ckpt, *sorted(kw.items()))
    hit = _ACTS_MEMO.get(key)
    if hit is not None and hit[0] is spec and hit[1] is groups:
        return hit[2]
    acts = account_activations(spec, groups, st, ckpt, **kw)
    if len(_ACTS_MEMO) > 256:
        _ACTS_MEMO.clear()
    _ACTS_MEMO[key] = (spec, groups, acts)
    return acts


def _liger_logits(acts: ActivationAccount, spec: Any, st: ActSetup, params: ParamAccount,
                  head_elem: int) -> ActivationAccount:
    """Liger's fused linear cross-entropy in place of transformers' logits chain."""
    fwd, saved = flce_bytes(st.b * st.s, spec.hidden_size, spec.vocab_size, hidden_elem=st.r,
                            logit_elem=2 if st.autocast else head_elem, head_elem=head_elem,
                            head_trains=params.lm_head_trainable)
    return replace(acts, logits_forward_bytes=fwd, logits_backward_bytes=saved,
                   logits_saved_bytes=saved, logits_output_bytes=0)


def _fsdp_checkpointing(setup: TrainSetup) -> bool:
    """fsdp_config activation_checkpointing: accelerate wraps every decoder layer with torch's
    checkpoint wrapper, the same one-input-per-layer memory as gradient checkpointing."""
    if not setup.training.fsdp or setup.num_gpus <= 1:
        return False
    from vramdoc.estimate.fsdp import options

    o = options(setup)
    return bool(o is not None and o.activation_checkpointing)


def _reentrant(setup: TrainSetup, ckpt: bool) -> bool:
    """Whether checkpointing runs torch's reentrant variant.

    - ``gradient_checkpointing_kwargs={"use_reentrant": ...}`` decides when given.
    - accelerate's ``fsdp_config`` activation checkpointing wraps each layer with torch's
      ``checkpoint_wrapper`` and ``CheckpointImpl.NO_REENTRANT``: non-reentrant.
    - Trainer's flag calls ``gradient_checkpointing_enable`` with transformers' default:
      ``{"use_reentrant": False}`` in transformers 5 (modeling_utils
      ``_activation_checkpointing_enable``), ``{"use_reentrant": True}`` from 4.35 to 4.57
      (``gradient_checkpointing_enable``); before 4.35 no kwargs reach
      ``torch.utils.checkpoint``, whose default was reentrant.
    - peft's prepare_model_for_kbit_training alone passes ``gradient_checkpointing_kwargs={}``,
      which transformers keeps, and torch.utils.checkpoint without ``use_reentrant`` runs
      reentrant (torch 2.13 checkpoint.py, with a warning).
    """
    t = setup.training
    if not ckpt:
        return False
    if t.use_reentrant is not None:
        return bool(t.use_reentrant)
    if not t.gradient_checkpointing:
        return not _fsdp_checkpointing(setup)
    return trainer_checkpointing_reentrant(setup.transformers_version)


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


_LAYER_MEMO: dict[tuple[Any, ...], tuple[Any, Any, tuple[int, int, int, int]]] = {}


def _layer_grads(setup: TrainSetup, spec: Any, groups: Any, div: int,
                 key: tuple[Any, ...]) -> tuple[int, int, int, int]:
    """Gradient bytes (sharded by ``div``): outside the blocks (embeddings, head, final
    norm), of one block, of one block's MLP output projection (the first weight gradient
    a block's backward makes) and of its attention input projections (the last ones).
    Memoized on ``key`` (what account_params reads)."""
    hit = _LAYER_MEMO.get(key)
    if hit is not None and hit[0] is spec and hit[1] is groups:
        return hit[2]

    def grads_of(sub: tuple[Any, ...]) -> int:
        return shard(account_params(setup, spec, sub).trainable_bytes, div) if sub else 0

    L = max(spec.num_hidden_layers, 1)
    outside = grads_of(tuple(g for g in groups if not g.in_block))
    layer = grads_of(tuple(g for g in groups if g.in_block)) // L
    lin = block_linears(groups)
    out_grads = grads_of((lin.mlp_out,)) // L if lin.mlp_out is not None else 0
    attn_in = grads_of(lin.attn_in) // L
    if len(_LAYER_MEMO) > 256:
        _LAYER_MEMO.clear()
    _LAYER_MEMO[key] = (spec, groups, (outside, layer, out_grads, attn_in))
    return outside, layer, out_grads, attn_in


def resident_floor_bytes(setup: TrainSetup, spec: Any, groups: Any) -> int | None:
    """A lower bound of ``build_estimate(setup, ...).device_bytes`` from the parameters alone:
    the weights, quantization constants and adapters one GPU holds from load on (the load
    phase, below every later phase, the allocator's reserve and the device view). None where
    sharding, an engine config or device_map placement can hold less on the GPU, or where
    build_estimate quantizes other groups than ``groups`` say (older transformers' experts).
    The planner skips whole groups of candidates with it before estimating any."""
    t = setup.training
    if (setup.num_gpus > 1 or setup.max_memory_gpu_bytes or t.fsdp or t.deepspeed
            or experts_are_linear(setup.transformers_version)):
        return None
    params = _account_params(setup, spec, groups)
    return params.weights_bytes + params.quant_state_bytes + params.adapters_bytes


def build_estimate(setup: TrainSetup, spec: Any, groups: Any, gpu: Any = None,
                   host_limit: int | None = None) -> MemoryEstimate:
    """The estimate for a resolved setup, model spec, inventory and optional GPU."""
    if experts_are_linear(setup.transformers_version):
        # per-expert nn.Linear modules and an nn.Linear router: bitsandbytes quantizes them
        groups = tuple(replace(g, quantizable=True) if g.kind in (EXPERTS, ROUTER) else g
                       for g in groups)
    if spec.model_type == "falcon" and not bnb_skips_linear_subclasses(
            setup.transformers_version):
        # FalconLinear, an nn.Linear subclass, is quantized before 5.5 (stack.py)
        groups = tuple(replace(g, quantizable=True) if g.kind == LINEAR and g.in_block else g
                       for g in groups)
    lora_notes: tuple[str, ...] = ()
    if setup.lora is not None:
        # where PEFT itself would raise (no default targets, no match), so do we
        lora_notes = check_lora_targets(setup.lora.target_modules, spec, groups)
    params = _account_params(setup, spec, groups)
    if params.trainable_numel == 0:
        raise zero_trainable_error(spec)
    t = setup.training
    opt: OptimizerAccount = account_optimizer(t.optim, params, t.weight_decay,
                                              foreach=foreach_default(setup.torch_version))
    # peft's prepare_model_for_kbit_training turns gradient checkpointing on by default
    # (use_gradient_checkpointing=True); Trainer's flag does the same for any setup.
    # ... for k-bit (bitsandbytes) and GPTQ bases only: AWQ is not in its list (peft 0.21)
    q = setup.quantization
    ckpt_asked = t.gradient_checkpointing or (
        q is not None and q.quant_method in ("bitsandbytes", "gptq")
        and setup.prepare_model_for_kbit_training)
    # both go through the model's gradient_checkpointing_enable(), which some releases ignore
    # for some models (stack.checkpointing_ignored); accelerate's fsdp_config checkpointing
    # wraps the layers itself
    ckpt_lost = ckpt_asked and checkpointing_ignored(spec.model_type, setup.transformers_version)
    ckpt = (ckpt_asked and not ckpt_lost) or _fsdp_checkpointing(setup)
    st = _act_setup(setup, params, spec, groups)
    reentrant = _reentrant(setup, ckpt)
    if t.fsdp and setup.num_gpus > 1:
        from vramdoc.estimate.fsdp import mp_compute_bytes

        cb = mp_compute_bytes(setup)
        if cb is not None:  # FSDP2's policy gathers every parameter in 16-bit (fsdp.py)
            st = replace(st, r=min(st.r, cb), weight_elem=min(st.weight_elem, cb),
                         adapter_elem=min(st.adapter_elem, cb))
    acts: ActivationAccount = _account_activations(
        spec, groups, st, ckpt, task=setup.task, num_labels=setup.num_labels,
        lm_head_trains=params.lm_head_trainable, head_elem=st.weight_elem,
        loss_shift_copy=loss_shift_copy(setup.transformers_version),
        reentrant=reentrant,
        logits_upcast=logits_upcast_in_model(setup.transformers_version),
        own_loss=model_computes_own_loss(spec.model_type, setup.transformers_version),
    )
    if t.use_liger_kernel and liger_applies(spec.model_type, setup.task, spec.is_encoder):
        acts = _liger_logits(acts, spec, st, params, head_elem=st.weight_elem)
    sh = sharding(setup)
    parts: DistParts
    dparams = params
    if sh.engine == "deepspeed":
        from vramdoc.estimate.zero import zero_parts

        parts = zero_parts(setup, spec, groups, params, opt)
    else:
        from vramdoc.estimate.fsdp import dp_parts, fsdp2_upcasts

        dparams, dopt = params, opt
        if fsdp2_upcasts(setup):  # fp32 shards, gradients and states (fsdp.py)
            dparams = _account_params(setup.replace(torch_dtype="float32"), spec, groups)
            dopt = account_optimizer(t.optim, dparams, t.weight_decay,
                                     foreach=foreach_default(setup.torch_version))
        parts = dp_parts(setup, spec, groups, dparams, dopt, sh)
    placement = None
    if setup.max_memory_gpu_bytes and sh.world <= 1:
        from dataclasses import replace as dc_replace

        from vramdoc.estimate.placement import place

        placement = place(setup, spec, groups)
        if placement.cpu_bytes:
            resident = parts.base["weights"] + parts.base["quant_state"]
            keep = placement.gpu_bytes / max(resident, 1)
            parts = dc_replace(
                parts, base={**parts.base, "weights": int(parts.base["weights"] * keep),
                             "quant_state": int(parts.base["quant_state"] * keep)},
                gathered=parts.gathered + placement.layer_bytes,
                host={**parts.host, "weights offloaded by device_map": placement.cpu_bytes})
    base, grads, states = parts.base, parts.grads, parts.states
    temps, paged = parts.temps + parts.step_bytes, parts.paged
    gathered, unit_grads = parts.gathered, parts.unit_grads
    unit_grads_first = unit_grads if parts.unit_grads_first is None else parts.unit_grads_first
    ga = t.gradient_accumulation_steps
    # gradients live through forward under accumulation, or when zero_grad keeps them
    grads_fwd = grads if ga > 1 or not grads_freed_after_step(setup.torch_version) else 0
    mode = parts.label or setup.training.fsdp or "DDP"
    notes_dist = [f"figures are per GPU of {sh.world} ({mode})"] if sh.world > 1 else []
    zero = dict.fromkeys(COMPONENTS, 0)

    load = {**zero, **base}
    # forward peaks either inside the last block (its transient buffers) or at the loss (the
    # logits chain); both on top of everything saved so far
    # Without checkpointing, a peak inside the last block (LoRA / DoRA layers, with what the
    # calling frames hold) comes before the final norm and the head save anything; the
    # checkpointed forward keeps its own account (layer_transient_bytes on top of all saved).
    # On a 16-bit / fp32 base that forward instant is modelled op by op
    # (forward_transient_bytes); layer_transient_bytes adds the LoRA backward proxy (3 fp32
    # output-sized buffers), which is no forward instant: with a fused gate_up (phi3) it
    # is 2f wide and stood above the traced forward (phi3 all-linear +4.4 to +6.5 %). k-bit
    # bases keep it (their backward dequantize buffers are counted in it). Encoders used it
    # too, for eager attention's forward instant; with the held attention weights and
    # adapter frames walked (activations.BlockWalker) their forward instant is op by op as
    # well (traced: bert all-linear sdpa no-ckpt +1.2 -> -0.1 %, eager -0.1 % either way).
    fwd_block = acts.forward_transient_bytes if not st.kbit else max(
        acts.forward_transient_bytes, acts.layer_transient_bytes)
    in_block_bytes = acts.layer_transient_bytes if ckpt else (
        fwd_block - acts.after_blocks_bytes)
    in_block = in_block_bytes > acts.logits_forward_bytes + acts.loss_held_bytes
    live = {**base, "weights": base["weights"] + gathered}
    g_loss = gathered if parts.gathered_loss is None else parts.gathered_loss
    g_bwd = gathered if parts.gathered_backward is None else parts.gathered_backward
    at_loss = {**base, "weights": base["weights"] + g_loss}
    at_loss_fwd = at_loss if parts.gathered_forward_loss is None else {
        **base, "weights": base["weights"] + parts.gathered_forward_loss}
    in_bwd = {**base, "weights": base["weights"] + g_bwd}
    # the end of layer 0's backward (FSDP2: its prefetch is the input embedding's unit, and
    # its own sharded gradient is not made yet)
    in_bwd_end = in_bwd if parts.gathered_backward_end is None else {
        **base, "weights": base["weights"] + parts.gathered_backward_end}
    # communication buckets (ZeRO's ipg buffers) are allocated once and kept: through backward,
    # and through the next forward; counted with the gradients
    grads_fwd_comm = parts.comm_bytes
    def forward_at(block: bool) -> dict[str, int]:
        return {**zero, **(live if block else at_loss_fwd), "optimizer_states": states,
                "gradients": grads_fwd + grads_fwd_comm,
                "activations": acts.saved_total_bytes + acts.output_held_bytes
                + (acts.autocast_cache_bytes if parts.autocast_cache else 0)
                + (in_block_bytes if block else acts.loss_held_bytes),
                "logits": 0 if block else acts.logits_forward_bytes}

    forward = forward_at(in_block)
    if parts.gathered_loss is not None:  # FSDP2 gathers more inside a block than at the loss
        other = forward_at(not in_block)
        if sum(other.values()) > sum(forward.values()):
            forward = other
    if parts.gathered_copy_out is not None:
        # FSDP2: the last layer's all-gather copy-out, before it saves anything: the earlier
        # layers' activations (and, with checkpointing, every block input) and the last
        # layer's input
        rows_h_r = t.per_device_train_batch_size * setup.max_seq_length * spec.hidden_size * st.r
        earlier = acts.saved_total_bytes - acts.after_blocks_bytes - (
            0 if ckpt else max(acts.per_layer_bytes - rows_h_r, 0))
        copy_out = {**forward_at(True), "weights": base["weights"] + parts.gathered_copy_out,
                    "activations": earlier + acts.output_held_bytes, "logits": 0}
        if sum(copy_out.values()) > sum(forward.values()):
            forward = copy_out
    if parts.gathered_before_head is not None:  # FSDP2 shard_grad_op: the tail's all-gather
        head = {**forward_at(False), "weights": base["weights"] + parts.gathered_before_head,
                "logits": 0}
        if sum(head.values()) > sum(forward.values()):
            forward = head
    bwd_start = {**zero, **at_loss, "optimizer_states": states,
                 "gradients": grads_fwd + grads_fwd_comm + (
                     unit_grads if parts.unit_grads_loss is None else 0),
                 "activations": acts.saved_total_bytes,
                 "logits": acts.logits_backward_bytes}
    if parts.gathered_loss_chain is not None:
        # FSDP2: the tail's pre-backward hook, which prefetches layer L-1, fires on the
        # logits' gradient, after the loss chain's backward (fsdp.py)
        bwd_start = {**bwd_start, "weights": base["weights"] + parts.gathered_loss_chain}
    head_grad = None
    if parts.unit_grads_loss is not None:
        # FSDP2: the loss chain's fp32 buffers are freed before the head's backward makes the
        # tail's unsharded gradient; then the logits' gradient in the compute dtype is left
        head_grad = {**bwd_start, **at_loss,
                     "gradients": bwd_start["gradients"] + parts.unit_grads_loss,
                     "logits": acts.logits_saved_bytes // 2}
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
    # memoized on what it reads: the inventory and account_params' setup fields (as
    # _account_params), and the shard divisor
    # FSDP2 upcasts a bf16 full fine-tune's trainable parameters: fp32 sharded gradients
    gsetup = setup.replace(torch_dtype="float32") if dparams is not params else setup
    ekey = (id(spec), id(groups), gsetup.torch_dtype, setup.quantization, setup.lora,
            setup.prepare_model_for_kbit_training, setup.task, setup.peft_version,
            sh.grads_div)
    ehit = _EMB_MEMO.get(ekey)
    if ehit is not None and ehit[0] is spec and ehit[1] is groups:
        untied, tied = ehit[2]
    else:
        untied, tied = _embedding_grads(gsetup, spec, groups, sh.grads_div)
        if len(_EMB_MEMO) > 256:
            _EMB_MEMO.clear()
        _EMB_MEMO[ekey] = (spec, groups, (untied, tied))
    # FSDP's CPU offload keeps the sharded gradients on the host (fsdp.py): none on the device
    host_grads = sh.cpu_offload and sh.engine == "fsdp"
    if host_grads:
        untied = 0
    # FSDP1 with reentrant checkpointing of frozen units (fsdp.holds_block_inputs): each block
    # input and the gradient made for it stay until the end of backward. At layer 0's
    # backward the other L-1 inputs are still there, and the gradients of layers 2..L-1
    # (layer 1's is layer 0's output gradient, counted in its recomputed peak); by the
    # embedding's backward all L inputs and L-1 gradients are
    n_layers = max(spec.num_hidden_layers, 1)
    block_in = acts.checkpoint_bytes // n_layers
    held0 = held_end = 0
    if ckpt and n_layers > 1 and sh.engine == "fsdp":
        from vramdoc.estimate.fsdp import holds_block_inputs

        if holds_block_inputs(setup, reentrant):
            held0, held_end = (2 * n_layers - 3) * block_in, (2 * n_layers - 1) * block_in
    block0 = {**zero, **in_bwd_end, "optimizer_states": states,
              "gradients": grads + unit_grads + grads_fwd_comm - untied - parts.pending_grads,
              "activations": end_acts + block_in + held0}
    last_w, last_g = (in_bwd, grads + unit_grads) if parts.embedding_backward is None else (
        {**base, "weights": base["weights"] + parts.embedding_backward[0]},
        grads - untied + parts.embedding_backward[1])
    last = {**zero, **last_w, "optimizer_states": states,
            "gradients": last_g + grads_fwd_comm,
            "activations": t.per_device_train_batch_size * setup.max_seq_length
            * spec.hidden_size * st.r + tied + held_end}
    candidates = [bwd_start] + ([head_grad] if head_grad is not None else [])
    if ckpt and acts.recompute_peak_bytes:
        # Non-reentrant checkpointing (torch.utils.checkpoint, use_reentrant=False, as
        # transformers 5 calls it): a block's saved tensors exist only while its backward
        # runs; recomputation stops once the last one needed is made (early stop), so the
        # block's output is not recomputed. The MLP's backward is the block's peak
        # (BlockWalker.mlp_backward_extra). Two blocks make the backward's candidates:
        # - the first one recomputed (the last layer): every block input is still kept; the
        #   gradients made so far are those outside the blocks (head, final norm; not an
        #   untied input embedding, made last) and the MLP output projection's;
        # - the last one recomputed (layer 0): one block input is left, and every gradient
        #   but the untied embedding's and the rest of layer 0's own.
        # Traces (bench_trace_matrix, llama full / LoRA, gpt_neox LoRA) peak at one of them.
        outside, layer_g, out_g, attn_in_g = _layer_grads(gsetup, spec, groups, sh.grads_div,
                                               ("layers", *ekey))
        if host_grads:
            outside = layer_g = out_g = attn_in_g = 0
        L = max(spec.num_hidden_layers, 1)
        first = {**zero, **in_bwd, "optimizer_states": states,
                 "gradients": outside - untied + out_g + unit_grads_first + grads_fwd_comm,
                 "activations": acts.checkpoint_bytes + acts.ids_bytes
                 + acts.embedding_saved_bytes + acts.checkpoint_args_bytes
                 + acts.recompute_peak_bytes}
        block0 = {**zero, **in_bwd_end, "optimizer_states": states,
                  "gradients": grads + unit_grads + grads_fwd_comm - untied - layer_g + out_g,
                  "activations": acts.checkpoint_bytes // L + acts.ids_bytes
                  + acts.embedding_saved_bytes + acts.checkpoint_args_bytes + held0
                  + (acts.recompute_peak_layer0_bytes or acts.recompute_peak_bytes)}
        candidates.append(first)
        if acts.recompute_attn_peak_bytes:
            # eager attention: softmax's backward, after the MLP's and o_proj's (their
            # gradients made, the saved tensors after the softmax freed)
            candidates.append({**first, "gradients": first["gradients"] + layer_g - out_g
                               - attn_in_g,
                               "activations": first["activations"] - acts.recompute_peak_bytes
                               + acts.recompute_attn_peak_bytes})
            candidates.append({**block0, "gradients": block0["gradients"] + layer_g - out_g
                               - attn_in_g,
                               "activations": block0["activations"]
                               - (acts.recompute_peak_layer0_bytes or acts.recompute_peak_bytes)
                               + (acts.recompute_attn_peak_layer0_bytes
                                  or acts.recompute_attn_peak_bytes)})
        if acts.recompute_end_bytes:
            # encoders: the recomputed block's forward end, before its MLP output projection's
            # weight gradient exists
            for c in (first, block0):
                candidates.append({**c, "gradients": c["gradients"] - out_g,
                                   "activations": c["activations"] - acts.recompute_peak_bytes
                                   + acts.recompute_end_bytes})
    elif parts.unit_grads_first is not None:
        # FSDP2 without checkpointing: the first layer's backward (layer L-1), every block's
        # activations still saved (the head's freed), its own backward's transients, its
        # unsharded gradients and the tail's reduce-scatter input; beside it only the
        # tail's sharded gradients. It wins where little is sharded onto the device
        # (CPU offload) or the activations are large.
        outside = 0 if host_grads else _layer_grads(gsetup, spec, groups, sh.grads_div,
                                                    ("layers", *ekey))[0]
        candidates.append({**zero, **in_bwd, "optimizer_states": states,
                           "gradients": outside - untied + unit_grads_first + grads_fwd_comm,
                           "activations": acts.saved_total_bytes - acts.after_blocks_bytes
                           + acts.layer_transient_bytes})
    # one GPU / DDP / FSDP1 / ZeRO: the last block's MLP and softmax backward. FSDP2's own
    # first-layer instant above covers that block (its gathered weights and gradients differ)
    if not ckpt and parts.unit_grads_first is None and (acts.mlp_backward_bytes
                                                        or acts.attn_backward_bytes):
        outside, layer_g, out_g, attn_in_g = _layer_grads(gsetup, spec, groups, sh.grads_div,
                                               ("layers", *ekey))
        if host_grads:
            outside = layer_g = out_g = attn_in_g = 0
        if acts.mlp_backward_bytes:
            # the last block's MLP backward: its output projection's gradient is made
            candidates.append({**zero, **in_bwd, "optimizer_states": states,
                               "gradients": outside - untied + out_g + unit_grads_first
                               + grads_fwd_comm,
                               "activations": acts.mlp_backward_bytes})
        if acts.attn_backward_bytes:
            # the last block's softmax backward (BlockWalker.attention): its MLP's and output
            # projection's gradients are made, its attention input projections' not yet
            candidates.append({**zero, **in_bwd, "optimizer_states": states,
                               "gradients": outside - untied + layer_g - attn_in_g
                               + unit_grads_first + grads_fwd_comm,
                               "activations": acts.attn_backward_bytes})
    if ckpt and acts.recompute_fwd_peak_bytes:
        # k-bit bases (activations._kbit_recompute): the recomputed forward's peak comes before
        # the block's first weight gradient; at the first block recomputed (every block input
        # kept, the gradients outside the blocks made) and at layer 0 (one block input left,
        # every gradient but the untied embedding's and layer 0's own)
        outside, layer_g, _out_g, _attn_in_g = _layer_grads(gsetup, spec, groups,
                                                            sh.grads_div, ("layers", *ekey))
        if host_grads:
            outside = layer_g = 0
        L = max(spec.num_hidden_layers, 1)
        first_fwd = {**zero, **in_bwd, "optimizer_states": states,
                     "gradients": outside - untied + unit_grads_first + grads_fwd_comm,
                     "activations": acts.checkpoint_bytes + acts.ids_bytes
                     + acts.recompute_fwd_peak_bytes}
        candidates.append(first_fwd)
        candidates.append({**first_fwd, "gradients": grads + unit_grads + grads_fwd_comm
                           - untied - layer_g,
                           "activations": acts.checkpoint_bytes // L + acts.ids_bytes
                           + held0 + acts.recompute_fwd_peak_bytes})
    if parts.gathered_layer_end is not None:
        # FSDP1 under LoRA (fsdp.dp_parts): the end of a layer's backward, its first adapter's
        # prefetch of the layer below done and the layer itself not yet resharded; live are
        # the block inputs left, the gradient arriving at the layer and the one it makes for
        # its input. The last layer's (every block input still kept) and, where FSDP1 holds
        # them (held0), layer 1's (every input and the gradients made for layers 2..L-1)
        rows_h_r = t.per_device_train_batch_size * setup.max_seq_length * spec.hidden_size * st.r
        ends = [acts.checkpoint_bytes if ckpt else acts.saved_total_bytes - acts.after_blocks_bytes]
        if held0:
            ends.append(acts.checkpoint_bytes + (n_layers - 2) * block_in)
        for held_acts in ends:
            candidates.append({**zero, **base, "optimizer_states": states,
                               "weights": base["weights"] + parts.gathered_layer_end,
                               "gradients": grads + unit_grads + grads_fwd_comm - untied,
                               "activations": held_acts + acts.ids_bytes + 2 * rows_h_r})
    candidates.append(block0)
    if untied or tied:
        candidates.append(last)
    backward = max(candidates, key=lambda c: sum(c.values()))
    step = {**zero, **base, "optimizer_states": states, "gradients": grads + grads_fwd_comm,
            "optimizer_temporaries": temps}
    if setup.hold_outputs:
        # the loop's ``output`` keeps the returned logits from the loss until after
        # ``optimizer.step()`` (fsdp_qlora train.py: ``output = None`` follows the step): beside
        # the whole backward and the step; fp32 where the model upcast them itself
        held = acts.logits_output_bytes
        backward = {**backward, "logits": backward["logits"] + held,
                    "activations": backward["activations"] + acts.output_held_bytes}
        step = {**step, "logits": step["logits"] + held,
                "activations": step["activations"] + acts.output_held_bytes}
    phase_components = {"load": load, "forward": forward, "backward": backward,
                        "optimizer_step": step}
    totals = {p: sum(c.values()) for p, c in phase_components.items()}
    peak_phase = max(PHASES, key=lambda p: (totals[p], -PHASES.index(p)))
    peak = totals[peak_phase]
    static = sum(base.values()) + states + grads
    if gathered and sh.world > 1:
        # the gathered parameters (and FSDP's sharded gradients) sit in the collectives'
        # streams' own allocator pools (overhead.sharded_reserved_bytes); what is gathered
        # differs by phase under FSDP2 (fsdp.py), so each phase's is read off its weights
        # (the backward's unsharded unit gradient stays on the default stream)
        sharded_grads = dict.fromkeys(PHASES, 0)
        if parts.grads_on_comm_stream:
            sharded_grads.update(forward=grads_fwd, optimizer_step=grads, backward=min(
                grads, max(backward["gradients"] - unit_grads - grads_fwd_comm, 0)))
        in_pool = {p: phase_components[p]["weights"] - base["weights"]
                   for p in ("forward", "backward")}
        pool_peak = gathered if parts.gathered_pool is None else parts.gathered_pool
        reserved = sharded_reserved_bytes(totals, in_pool, max(pool_peak, *in_pool.values()),
                                          parts.pool_bytes, sharded_grads, static,
                                          sum(base.values()) + parts.init_cache_bytes)
    else:
        reserved = reserved_bytes(peak, min(static, peak)) + parts.pool_bytes
    ctx = cuda_context_bytes(gpu.compute_capability if gpu is not None else None,
                             lazy=lazy_module_loading(setup.torch_version))
    device = reserved + ctx + paged + parts.device_extra_bytes
    notes = [*lora_notes, *notes_dist]
    if spec.generic:
        notes.insert(0, f"generic (approximate activations): model_type {spec.model_type!r} "
                     "is built from its config by transformers; the parameters are exact, the "
                     "activations follow a generic block, not this architecture's own")
    if ckpt and not t.gradient_checkpointing:
        notes.append("prepare_model_for_kbit_training enables gradient checkpointing")
    if ckpt_lost:
        notes.append(f"transformers {setup.transformers_version} ignores gradient checkpointing "
                     f"for {spec.model_type} (4.54-4.57 call no checkpoint function in its "
                     "layers): estimated without it; transformers >= 5.0 (or <= 4.53) "
                     "checkpoints them")
    elif ckpt and acts.output_held_bytes:
        notes.append(f"transformers {setup.transformers_version} keeps {spec.model_type}'s KV "
                     f"cache under gradient checkpointing ({acts.output_held_bytes // MiB} MiB "
                     "of fused QKV outputs held to the loss): pass use_cache=False to "
                     "from_pretrained, or use transformers >= 4.53")
    if placement is not None and placement.cpu_bytes:
        notes.append(f"device_map places {placement.gpu_blocks} of "
                     f"{placement.gpu_blocks + placement.cpu_blocks} decoder layers on the GPU "
                     "within max_memory; the rest, and the LM head, run from host RAM (one "
                     "layer copied in at a time)")
    if parts.device_extra_bytes:
        notes.append("device view includes NCCL's communication buffers "
                     f"({parts.device_extra_bytes // MiB} MiB, outside torch's allocator)")
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
        notes=tuple(notes), strategy=parts.label,
        host=host_ram(setup, params, parts, paged, host_limit),
        details={"per_layer_activation_bytes": acts.per_layer_bytes,
                 "checkpoint_bytes": acts.checkpoint_bytes,
                 "layer_transient_bytes": acts.layer_transient_bytes,
                 "gradient_checkpointing": int(ckpt)},
    )
