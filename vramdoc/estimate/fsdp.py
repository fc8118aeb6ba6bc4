"""PyTorch FSDP as accelerate and HF Trainer run it: FSDP1 and FSDP2, per rank.

Option names are the engine's (:class:`vramdoc.parallel.FsdpOptions`). What one rank holds:

- Sharded 1/N: parameters (FULL_SHARD, HYBRID_SHARD within a node), gradients and optimizer
  states (all but NO_SHARD). ``cpu_offload`` moves the sharded parameters, gradients and
  states to host RAM (torch ``CPUOffload(offload_params=True)``); the optimizer steps there.
- Gathered for compute: decoder layers at full size (FSDP1: one in forward, two in a full
  fine-tune's backward, one under LoRA but at the end of a layer's backward; FSDP2 prefetches
  one ahead: :func:`dp_parts` says which when), and the *root* unit (embeddings, final norm,
  LM head):
  neither FSDP1 (``_post_forward_reshard``: the root is not resharded) nor FSDP2
  (``fully_shard``: "the root FSDP state has its value specially set to False") frees the
  root's parameters after forward, since backward needs them at once.
- A unit's unsharded gradient before its reduce-scatter.
- Reserved, beyond what is allocated: all-gathers run on their own CUDA stream and the
  caching allocator never hands a block cached for one stream to another
  (``CUDACachingAllocator``: blocks are pooled per stream), so the gathered parameters form a
  pool of their own whose high-water mark adds to the default stream's. FSDP1 holds one more
  unit there (a freed unit's block waits for the next all-gather); FSDP2 all-gathers into one
  flat output buffer and copies out to the parameters (``foreach_all_gather`` /
  ``foreach_all_gather_copy_out``), one more unit. FSDP1 ``record_stream``s each unsharded
  gradient to the reduce-scatter stream, so its block stays reserved until the collective
  finishes: one unit's gradient more. The sharded gradients are allocated on the
  reduce-scatter stream and form a third pool; the default stream's pool starts at what
  wrapping the model left cached (:func:`init_cache_bytes`); the pools add up
  (:func:`vramdoc.estimate.overhead.sharded_reserved_bytes`).
- Not sharded: bitsandbytes' quantization constants (``quant_state``), which are module
  attributes rather than parameters, and GPTQ/AWQ buffers: whole on every rank.
- Device only: NCCL's buffers (:data:`vramdoc.estimate.distributed.NCCL_BYTES`).
- Units: Trainer wraps each decoder layer (``_no_split_modules``) and, for PEFT models, each
  LoRA leaf separately (peft ``fsdp_auto_wrap_policy``), so a unit's parameters are all
  frozen or all trainable: FSDP1's ``use_orig_params`` then changes no memory (with mixed
  units FSDP1 would allocate the whole flat gradient). FSDP1 is taken with torch's default
  ``backward_prefetch`` (BACKWARD_PRE) and no ``forward_prefetch``, as accelerate and Trainer
  run it; ``forward_prefetch=True`` would add the next layer in forward (not modelled).
  FSDP2 prefetches one layer ahead in both directions (implicit prefetch).
- Mixed precision: with ``bf16``/``fp16`` Trainer has accelerate give FSDP a mixed-precision
  policy whose ``param_dtype`` is the 16-bit dtype (accelerate ``FullyShardedDataParallelPlugin``
  ``set_mixed_precision``): the shards stay in their dtype (fp32 masters), the all-gathered
  copies are 16-bit, and autocast finds them already cast (no cached weight copies).
"""

from __future__ import annotations

from typing import Any

from vramdoc.estimate.distributed import NCCL_BYTES, DistParts, Sharding, shard
from vramdoc.estimate.params import DTYPE_BYTES
from vramdoc.estimate.stack import checkpoint_outside_layer
from vramdoc.models.spec import EMBEDDING, HEAD
from vramdoc.parallel import FsdpOptions, fsdp_options
from vramdoc.setup import TrainSetup


def _tf_major(setup: TrainSetup) -> int:
    head = setup.transformers_version.split(".")[0]
    return int(head) if head.isdigit() else 5


def options(setup: TrainSetup) -> FsdpOptions | None:
    return fsdp_options(setup.training, _tf_major(setup))


def fsdp2_upcasts(setup: TrainSetup) -> bool:
    """accelerate's ``fsdp2_prepare_model`` (accelerate 1.15, utils/fsdp_utils.py) upcasts
    every trainable parameter that is not fp32 to fp32 under mixed precision ("FSDP2 requires
    uniform orig_dtype among trainable params") unless the model holds bitsandbytes 4-bit
    weights; the MixedPrecisionPolicy then gathers 16-bit copies for compute. A full fine-tune
    loaded in bf16 thus keeps fp32 shards, fp32 gradients and fp32 AdamW states (checked by the
    sharded fake probe, tests/benchmarks/bench_sharded_probe.py). LoRA adapters are fp32
    already (PEFT's autocast_adapter_dtype) and their frozen base is not touched."""
    if setup.num_gpus <= 1 or not setup.training.fsdp or setup.training.deepspeed:
        return False
    o = options(setup)
    t = setup.training
    return bool(o is not None and o.version == 2 and (t.bf16 or t.fp16)
                and setup.lora is None and setup.quantization is None
                and setup.torch_dtype != "float32")


def holds_block_inputs(setup: TrainSetup, reentrant: bool) -> bool:
    """Whether FSDP1 keeps every decoder block's checkpointed input, and the gradient made for
    it, until the end of backward.

    A unit whose ``FlatParameter`` needs no gradient (a decoder layer under LoRA: peft's wrap
    policy puts the adapters in units of their own) has no gradient hook to reshard on, so
    FSDP1's ``_pre_forward`` registers ``_post_backward_reshard_only_hook`` on the unit's
    inputs that need a gradient, through ``torch.autograd.graph.register_multi_grad_hook``
    (torch 2.1 to 2.13, ``_runtime_utils.py``). Under reentrant checkpointing that runs in
    the recomputation, whose input is ``CheckpointFunction``'s detached copy of the saved
    block input: a leaf, so the hook's closure holds its ``AccumulateGrad`` node (the
    ``grad_fns`` list), which holds the leaf, whose ``.grad`` receives the block's input
    gradient. The hook handle lives in ``flat_param._post_backward_hook_state`` until
    ``_finalize_params`` at the end of backward, so each block's input and its gradient stay
    allocated until then instead of being freed as backward moves down the layers.

    This needs the checkpoint outside the FSDP unit, as transformers up to 4.51 calls it
    (:func:`vramdoc.estimate.stack.checkpoint_outside_layer`): from 4.52 the unit's
    ``_pre_forward`` runs with gradients on, before the layer checkpoints itself, and hooks the
    input's own ``grad_fn``, which holds no tensor; so does non-reentrant checkpointing. FSDP2
    (``RegisterPostBackwardFunction`` on the inputs) keeps nothing either.

    Measured on CPU (transformers 4.48.1, peft 0.13.2, torch 2.13 FSDP1 on gloo, one and two
    ranks, a 16- and 32-layer Mistral with LoRA on q,k,v,o and reentrant checkpointing;
    ``tests/estimate/test_fsdp1_held_inputs.py`` runs the one-rank case): backward's peak
    rises over the same step without FSDP by one block input per layer, linear in layers and
    batch; with transformers 5.24 it does not rise.
    """
    if not reentrant or setup.num_gpus <= 1 or not setup.training.fsdp or setup.training.deepspeed:
        return False
    if not checkpoint_outside_layer(setup.transformers_version):
        return False
    o = options(setup)
    return bool(o is not None and o.version == 1 and setup.lora is not None)


def mp_compute_bytes(setup: TrainSetup) -> int | None:
    """Element bytes of every parameter as the forward and backward see it under FSDP2's
    mixed-precision policy, or None when there is none.

    accelerate gives ``fully_shard`` ``MixedPrecisionPolicy(param_dtype=<16-bit>, ...)``
    under Trainer's ``bf16``/``fp16`` (``FullyShardedDataParallelPlugin.set_mixed_precision``),
    and FSDP2 all-gathers every floating parameter of a unit in that dtype
    (``FSDPParam.init_dtype_attrs``, ``_fsdp_collectives.py`` ``_get_param_all_gather_inputs``):
    the fp32 embeddings, norms and head of ``prepare_model_for_kbit_training`` and PEFT's fp32
    adapters compute as 16-bit tensors. The embedding's output, hence the residual stream, is
    16-bit, and autocast finds no fp32 weight to cast: no cached or saved 16-bit weight copy,
    no fp32 input copy for an adapter (the sharded fake probe traces exactly this).
    """
    if setup.num_gpus <= 1 or not setup.training.fsdp or setup.training.deepspeed:
        return None
    o = options(setup)
    t = setup.training
    if o is None or o.version != 2 or not (t.bf16 or t.fp16):
        return None
    return 2


def fsdp_sharding(setup: TrainSetup) -> Sharding:
    n = setup.num_gpus
    o = options(setup)
    assert o is not None
    per_node = max(n // max(setup.nodes, 1), 1)
    label = f"FSDP{o.version} {o.strategy}" + (" + CPU offload" if o.cpu_offload else "")
    if o.strategy == "NO_SHARD":
        # FSDP's NO_SHARD all-reduces each unit's flat gradient in place
        # (``_reduce_grad_no_shard``: ``dist.all_reduce(flat_param.grad)``): no bucket copy
        return Sharding(n, 1, 1, 1, 0, False, o.cpu_offload, "fsdp", label)
    if o.strategy == "SHARD_GRAD_OP":
        # FSDP2 fully_shard(reshard_after_forward=False), and FSDP1 alike ("parameters are
        # sharded outside computation", torch ShardingStrategy.SHARD_GRAD_OP): the shards stay
        # resident, each layer's unsharded copy lives from its forward to its backward
        # (dp_parts counts them)
        return Sharding(n, n, n, n, 1, False, o.cpu_offload, "fsdp", label)
    if o.strategy == "_HYBRID_SHARD_ZERO2":
        return Sharding(n, per_node, per_node, per_node, 1, False, o.cpu_offload, "fsdp",
                        label)
    div = per_node if o.strategy == "HYBRID_SHARD" else n
    return Sharding(n, div, div, div, 2, False, o.cpu_offload, "fsdp", label)


def init_cache_bytes(layer_bytes: int, root_bytes: int, root_param_bytes: int = 0) -> int:
    """Blocks FSDP1's wrapping leaves cached in the default stream's pool, beyond the shards.

    Each unit is wrapped in turn (``_recursive_wrap``, children first, the root last):
    ``_move_module_to_device`` copies the unit's parameters to the GPU (a module on the CPU,
    as Trainer and fsdp_qlora's ``train.py`` hand it over; with ``param_init_fn`` the
    ``to_empty`` copy on other ranks), ``FlatParamHandle.flatten_tensors`` concatenates them
    into one flat tensor (``torch.cat``) while they are still alive, and ``_get_shard`` clones
    this rank's 1/N; then both full-size copies are freed (torch
    ``distributed/fsdp/_init_utils.py``, ``_flat_param.py``). The caching allocator keeps the
    freed blocks (it returns memory to the driver only on an out-of-memory retry or
    ``empty_cache``), and ``reset_peak_memory_stats`` before training resets the peak reserved
    to what is reserved, these blocks included: the default stream's pool starts at the shards
    plus two decoder layers. The root (embeddings, final norm, LM head) is wrapped last; when
    it is larger than a layer its flat copy fits none of the cached blocks and takes a segment
    of its own, and so do its moved parameters: ``_init_param_handle_from_module`` holds them
    (``managed_params``) until it returns, after ``FlatParamHandle.shard`` has cloned this
    rank's 1/N and freed the flat storage (``orig_storage._resize_(0)``), so the moved copies
    and the flat copy are all freed into the cache, two roots. A moved parameter no larger than
    a layer (``root_param_bytes``, the largest of the root's: the embedding) takes the
    layer's freed flat block instead of a segment of its own.
    """
    if root_bytes <= layer_bytes:
        return 2 * layer_bytes
    reused = root_param_bytes if root_param_bytes <= layer_bytes else 0
    return 2 * layer_bytes + 2 * root_bytes - reused


def dp_parts(setup: TrainSetup, spec: Any, groups: Any, params: Any, opt: Any,
             sh: Sharding) -> DistParts:
    """Per-rank parts for a single GPU, DDP or FSDP."""
    from vramdoc.estimate.params import account_params

    q = setup.quantization
    # GPTQ/AWQ layers keep qweight/qzeros/scales/g_idx as buffers, which FSDP does not shard;
    # bitsandbytes' Params4bit/Int8Params are parameters and are sharded like the rest. FSDP
    # shards parameters only, so the quantization constants stay whole on every rank in both
    # cases: bitsandbytes keeps a Linear4bit's quant_state (absmax, nested constants) as a
    # plain attribute of the weight and of the module (bitsandbytes nn/modules.py: Params4bit
    # sets ``module.quant_state``; ``fix_4bit_weight_quant_state_from_module`` restores it
    # "for example for fsdp", after FSDP has flattened the weight)
    # (unless the loader made them parameters: setup.shard_quantized_tensors)
    buffers = q is not None and q.quant_method in ("gptq", "awq") and not (
        setup.shard_quantized_tensors and sh.engine == "fsdp")
    o2 = options(setup) if sh.engine == "fsdp" else None
    if (q is not None and q.quant_method == "bitsandbytes" and q.bits == 4 and o2 is not None
            and o2.version == 2 and not q.bnb_4bit_quant_storage.startswith(("float", "bfloat"))):
        # accelerate's fsdp2_prepare_model leaves frozen non-floating Params4bit out of
        # sharding (ignored_params: "Default uint8 quant_storage cannot survive fully_shard's
        # DTensor conversion"): the packed weights and their constants stay whole on every
        # rank and are never gathered (the sharded fake probe keeps them so too)
        buffers = True
    packed = params.quantized_weight_bytes if buffers else 0
    base = {"weights": shard(params.weights_bytes - packed, sh.params_div) + packed,
            "quant_state": params.quant_state_bytes,
            "adapters": shard(params.adapters_bytes, sh.params_div)}
    grads = shard(params.trainable_bytes, sh.grads_div)
    states = shard(opt.states_bytes, sh.states_div)
    temps = shard(opt.temporaries_bytes, sh.states_div)
    paged = shard(opt.paged_bytes, sh.states_div)
    if sh.world <= 1:
        return DistParts(base, grads, states, temps, paged, 0, 0)
    o = options(setup) if sh.engine == "fsdp" else None
    gathered = unit_grads = pool = init_cache = 0
    g_loss = g_bwd = g_fwd_loss = g_head = tail_grads = g_copy_out = g_bwd_end = None
    g_pool: int | None = None
    g_layer_end: int | None = None
    pending = fsdp2_unit_grads = 0
    emb_bwd: tuple[int, int] | None = None
    first_grads: int | None = None
    g_chain: int | None = None
    if sh.gathered_units:
        o_mp = mp_compute_bytes(setup)

        def sharded_part(acc: Any) -> int:
            adapters = acc.adapters_bytes
            if o_mp is not None and acc.adapters_bytes and acc.weight_dtype_after_prep != "float32":
                # FSDP2's policy all-gathers PEFT's fp32 adapters in 16-bit (mp_compute_bytes);
                # with fp32 weights the whole unit is halved below
                adapters = adapters * o_mp // DTYPE_BYTES[acc.trainable_dtype]
            return int(acc.weights_bytes + adapters
                       - (acc.quantized_weight_bytes if buffers else 0))

        acc_setup = setup.replace(torch_dtype="float32") if fsdp2_upcasts(setup) else setup
        blocks = account_params(acc_setup, spec, tuple(g for g in groups if g.in_block))
        root = account_params(acc_setup, spec, tuple(g for g in groups if not g.in_block))
        L = max(spec.num_hidden_layers, 1)
        # the mixed-precision policy gathers fp32 parameters as 16-bit copies
        t = setup.training
        mp = 2 if (t.bf16 or t.fp16) and params.weight_dtype_after_prep == "float32" else 1
        unit = sharded_part(blocks) // L // mp
        # the unsharded root is a buffer of its own beside the shard each rank keeps (FSDP1
        # FlatParamHandle: ``_full_param_padded``, the all-gather destination, beside
        # ``_local_shard``; FSDP2: the all-gather output beside ``_sharded_param_data``): the
        # whole root, not the half a rank lacks
        root_full = sharded_part(root) // mp
        gathered = sh.gathered_units * unit + root_full
        if o is not None and o.version == 1 and not o.reshard_after_forward:
            # FSDP1 SHARD_GRAD_OP / _HYBRID_SHARD_ZERO2: ``_post_forward`` reshards only the
            # RESHARD_AFTER_FORWARD_HANDLE_STRATEGIES (FULL_SHARD, HYBRID_SHARD); the others
            # keep each unit's unsharded flat parameter beside its local shard until its
            # post-backward frees it (``_should_free_in_backward``, torch
            # distributed/fsdp/_runtime_utils.py): at the loss every layer and the root
            gathered = L * unit + root_full
        elif o is not None and o.version == 1:
            # FSDP1 FULL_SHARD / HYBRID_SHARD, what is allocated at once (torch
            # distributed/fsdp/_runtime_utils.py). In forward a unit's ``_post_forward``
            # frees its unsharded flat parameter before the next unit's ``_pre_forward``
            # all-gathers (no forward prefetch is asked for): one layer beside the root, and
            # at the loss the root alone. In backward, BACKWARD_PRE prefetches the unit that
            # ran post-forward just before the one starting its backward
            # (``_ExecOrderData.get_handle_to_backward_prefetch``): for a full fine-tune the
            # layer below, so two layers; under LoRA the adapters are units of their own,
            # nested in the layer, so a layer's prefetch is its own last adapter and the layer
            # below is all-gathered only when its first adapter's backward runs, at the end of
            # the layer's backward, after its peak: one layer. Layer 0 prefetches nothing
            # (the root ran post-forward last). The all-gather stream's pool still caches two
            # layers' blocks: a freed unit's block waits behind ``record_stream`` while the
            # next is gathered (``gathered_pool``, the reserved view).
            g_pool = gathered
            gathered = g_bwd_end = unit + root_full
            g_loss = root_full
            g_bwd = (1 if setup.lora is not None else 2) * unit + root_full
            if setup.lora is not None:
                g_layer_end = 2 * unit + root_full
        if o is not None and o.version == 2:
            # FSDP2 as accelerate wraps it (fsdp2_prepare_model): each decoder layer, the
            # input embedding when untied (resharded after forward like the layers), and the
            # tail [final norm, LM head] with reshard_after_forward=False (with the embedding
            # when tied). _fsdp_param_group.py wait_for_unshard: in forward a layer's
            # all-gather output is kept (comm_ctx.all_gather_state) until the next layer's
            # copy-out, so inside a layer the next layer's all-gather output, the current
            # one's and its unsharded parameters are live: three units, the tail not yet
            # gathered. From the tail's forward to its backward the tail is whole; in backward
            # the layer computing and the one prefetched are (all traced by the sharded fake
            # probe). Without resharding after forward (shard_grad_op) every layer stays
            # unsharded from its forward to its backward.
            heads = {g.tied_to for g in groups if g.kind == HEAD and g.tied_to}
            tail = account_params(acc_setup, spec, tuple(
                g for g in groups if not g.in_block
                and (g.kind != EMBEDDING or g.path in heads)))
            tail_full = sharded_part(tail) // mp
            # FSDP2's gradient path (_fsdp_param_group.py post_backward, _fsdp_collectives.py
            # foreach_reduce): autograd makes a layer's unsharded gradients against its
            # unsharded 16-bit parameters (the policy's param_dtype); post_backward copies
            # them into a reduce-scatter input in reduce_dtype and frees them
            # (``unsharded_grads.clear()``), and keeps that input alive in
            # ``comm_ctx.reduce_scatter_states`` until the next group's post_backward pops
            # it (``reduce_scatter_max_input_buffers`` = 1). Inside a layer's backward: the
            # previous group's reduce-scatter input plus this layer's own gradients; at the
            # start of backward the list is empty (the root's final callback cleared it).
            e16 = 2 if (t.bf16 or t.fp16) else DTYPE_BYTES[blocks.trainable_dtype]
            fsdp2_unit_grads = 2 * (blocks.trainable_numel // L) * e16
            # the tail's backward runs first: at the start of backward the unsharded
            # gradients are the tail's (post_backward reduce-scatters them before any layer's
            # backward makes its own), not a layer's
            tail_grads = tail.trainable_numel * e16
            first_grads = tail_grads + fsdp2_unit_grads // 2
            # at the end of layer 0's backward its own sharded gradient is not made yet
            # (foreach_reduce makes it in post_backward); offloaded ones live on the host
            pending = 0 if sh.cpu_offload else shard(blocks.trainable_bytes // L, sh.grads_div)
            untied_embedding = any(g.kind == EMBEDDING and g.path not in heads for g in groups)
            if untied_embedding:
                # the input embedding's backward, the last: every layer resharded, the
                # embedding unsharded with its unsharded gradient, layer 0's reduce-scatter
                # input still held
                emb_bwd = (sharded_part(root) // mp - sharded_part(tail) // mp,
                           fsdp2_unit_grads // 2
                           + (root.trainable_numel - tail.trainable_numel) * e16)
            emb_full = sharded_part(root) // mp - tail_full
            if o.reshard_after_forward:
                # wait_for_unshard in forward keeps the previous group's all-gather output
                # (``prev_all_gather_state``, a local, and comm_ctx.all_gather_state) until
                # its own copy-out has filled the unsharded parameters: at the last layer's
                # copy-out three units are live (the previous layer's and its own all-gather
                # outputs, its unsharded parameters) next to the earlier layers' activations;
                # while the layer computes, two (its all-gather output is kept until the next
                # group's copy-out). The tail's all-gather output stays in all_gather_state
                # until the root's post_forward (_fsdp_state.py), past the loss: at the loss
                # the tail twice (that output and the unsharded tail, beside its shard). At
                # the start of backward the tail and layer L-1's all-gather output, which the
                # tail's pre_backward prefetches (_backward_prefetch, post_forward_order). In
                # a layer's backward its unsharded parameters and the next one's prefetched
                # all-gather output; for layer 0 that is the untied input embedding's (its
                # own unit, last in post_forward_order's reverse), prefetched even when frozen.
                gathered, g_copy_out = 2 * unit, 3 * unit
                g_fwd_loss = 2 * tail_full
                g_loss, g_bwd = tail_full + unit, 2 * unit
                # the tail's pre-backward hook sits on its output, the logits
                # (_register_pre_backward_hook): the loss chain's backward runs before it
                # prefetches layer L-1
                g_chain = tail_full
                if untied_embedding:
                    g_bwd_end = unit + emb_full
                elif heads:
                    # tied: the tail group holds the input embedding, so it is gathered at the
                    # start of forward (reshard_after_forward=False) and stays whole; its
                    # all-gather output is freed at layer 0's copy-out, and at the loss the
                    # last layer's is the one still held. Layer 0 has nothing to prefetch
                    # (it is first in post_forward_order: the tail's post-forward runs after
                    # the head).
                    gathered, g_copy_out = gathered + tail_full, g_copy_out + tail_full
                    g_fwd_loss = tail_full + unit
                    g_bwd, g_bwd_end = g_bwd + tail_full, unit + tail_full
                    # its post_backward waits for the embedding's gradient (the root's final
                    # callback): the head's unsharded gradient is held through the whole
                    # backward, no reduce-scatter input precedes layer L-1's, and the tail's
                    # sharded gradient is made last
                    fsdp2_unit_grads += tail_grads
                    first_grads = fsdp2_unit_grads - (blocks.trainable_numel // L) * e16
                    if not sh.cpu_offload:
                        pending += shard(tail.trainable_bytes, sh.grads_div)
            else:
                # shard_grad_op: accelerate hands the input embedding the same
                # reshard_after_forward=False, so it stays unsharded (a whole copy beside its
                # shard) from its forward to its backward, as every layer does; the tail's
                # unsharded copy likewise (FSDPParamGroup.post_forward reshards only when
                # post_forward_mesh_info is set). Traced (bench_sharded_probe, rank 0 of 8):
                # - when the tail is gathered, before the head makes the logits: every layer
                #   unsharded, the last layer's all-gather output, the tail's all-gather output
                #   and its unsharded copy, and the embedding;
                # - at the loss: the same but the last layer's all-gather output (the tail's
                #   is kept in comm_ctx.all_gather_state until the root's _post_forward frees
                #   it, _fsdp_state.py);
                # - at the start of backward (after the root's post-forward) and in the
                #   blocks' backward: the layers and the embedding unsharded; the tail until
                #   its post_backward reshards it.
                # - at the last layer's copy-out (see full_shard above): the earlier L-1
                #   layers unsharded plus the three units full_shard has there, and the
                #   embedding; while it computes, one unit less.
                gathered, g_copy_out = (L + 1) * unit + emb_full, (L + 2) * unit + emb_full
                g_head = (L + 1) * unit + emb_full + 2 * tail_full
                g_fwd_loss = L * unit + emb_full + 2 * tail_full
                g_loss, g_bwd = L * unit + emb_full + tail_full, L * unit + emb_full
                # the layers reshard after their backward (reshard_after_backward): at the end
                # of layer 0's, only it and the untied embedding are still unsharded
                if untied_embedding:
                    g_bwd_end = unit + emb_full
                elif heads:
                    # tied: the tail holds the input embedding, so it is gathered before layer
                    # 0 (as under full_shard above) and stays whole through forward and
                    # backward; nothing is all-gathered before the head, and at the loss the
                    # last layer's all-gather output is the one still held. The tail's
                    # post_backward waits for the embedding's gradient, as under full_shard
                    # (checked against the sharded fake probe: qwen2.5-0.5b, gemma-2b)
                    gathered, g_copy_out = gathered + tail_full, g_copy_out + tail_full
                    g_head = None
                    g_fwd_loss = (L + 1) * unit + tail_full
                    g_bwd, g_bwd_end = g_bwd + tail_full, unit + tail_full
                    fsdp2_unit_grads += tail_grads
                    first_grads = fsdp2_unit_grads - (blocks.trainable_numel // L) * e16
                    if not sh.cpu_offload:
                        pending += shard(tail.trainable_bytes, sh.grads_div)
        unit_grads = blocks.trainable_bytes // L if o is None or o.version == 1 \
            else fsdp2_unit_grads
        extra_units = 1  # FSDP1: a freed unit waiting for reuse; FSDP2: the all-gather output
        pool = extra_units * unit
        if o is not None and o.version == 1:
            pool += unit_grads  # record_stream'ed unsharded gradient
            if not sh.cpu_offload:
                largest = max((sharded_part(account_params(acc_setup, spec, (g,)))
                               for g in groups if not g.in_block), default=0)
                init_cache = init_cache_bytes(sharded_part(blocks) // L, sharded_part(root),
                                              largest)
    host: dict[str, int] = {}
    if sh.cpu_offload:
        # what FSDP does not manage (GPTQ/AWQ buffers; FSDP2's ignored 4-bit weights) is not
        # offloaded: it stays whole on the device (the sharded fake probe keeps it there).
        # Nor are bitsandbytes' quantization constants: FSDP moves parameters only
        # (FSDP1 ``flat_param_to(cpu)``, FSDP2 ``CPUOffloadPolicy``), and a Params4bit's
        # ``quant_state`` is a plain attribute, made on the GPU where bitsandbytes quantizes
        # (fsdp_qlora train.py ``load_and_quantize`` keeps it there when it moves the packed
        # data to the CPU); the dequantizing kernels read it beside the gathered weight
        kept = {"weights": packed if buffers else 0,
                "quant_state": base["quant_state"], "adapters": 0}
        host = {"offloaded parameters": sum(base.values()) - sum(kept.values()),
                "offloaded gradients": grads, "offloaded optimizer states": states + paged}
        base = kept
        grads = states = temps = paged = 0
    if sh.ddp_bucket_copy:
        grads *= 2  # DDP buckets hold a copy of every gradient
    t = setup.training
    return DistParts(base, grads, states, temps, paged, gathered, unit_grads, pool_bytes=pool,
                     init_cache_bytes=init_cache,
                     grads_on_comm_stream=sh.engine == "fsdp" and sh.grads_div > 1,
                     gathered_loss=g_loss, gathered_backward=g_bwd,
                     gathered_forward_loss=g_fwd_loss, gathered_before_head=g_head,
                     unit_grads_loss=tail_grads, gathered_copy_out=g_copy_out,
                     gathered_backward_end=g_bwd_end, pending_grads=pending,
                     embedding_backward=emb_bwd, unit_grads_first=first_grads,
                     gathered_loss_chain=g_chain, gathered_pool=g_pool,
                     gathered_layer_end=g_layer_end,
                     device_extra_bytes=NCCL_BYTES, host=host, label=sh.label,
                     autocast_cache=not (sh.engine == "fsdp" and (t.bf16 or t.fp16)))
