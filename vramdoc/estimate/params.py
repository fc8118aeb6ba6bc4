"""Weights, quantization state, adapters and trainable tensors, from the exact inventory.

Everything here is counted per parameter tensor of the model as Hugging Face builds it
(``vramdoc.models.param_groups``), so shapes, GQA, tied embeddings and MoE experts come from
the architecture, never from a bytes-per-parameter rule of thumb.

Sources for the storage layouts:
- bitsandbytes 4-bit (``Params4bit`` / ``QuantState``): packed weight of numel/2 bytes in
  ``bnb_4bit_quant_storage`` (the byte count does not depend on the storage dtype), absmax
  per 64-weight block in fp32; with double quantization absmax becomes uint8 plus an fp32
  absmax per 256 blocks (Dettmers et al. 2023, "QLoRA", arXiv 2305.14314, section 3:
  32/64 = 0.5 bit/param vs 8/64 + 32/(64*256) = 0.127 bit/param).
- bitsandbytes LLM.int8 (``Int8Params``): int8 weight + fp32 ``SCB`` per output row
  (Dettmers et al. 2022, arXiv 2208.07339, vector-wise quantization).
- GPTQ (AutoGPTQ / GPTQModel ``QuantLinear``): ``qweight`` int32 (in*bits/32, out),
  ``qzeros`` int32 (groups, out*bits/32), ``scales`` fp16 (groups, out), ``g_idx`` int32 (in).
- AWQ (AutoAWQ ``WQLinear_GEMM``): ``qweight`` int32 (in, out*bits/32), ``qzeros`` int32
  (groups, out*bits/32), ``scales`` fp16 (groups, out).
- ``prepare_model_for_kbit_training`` (peft/utils/other.py) casts every fp16/bf16 parameter
  that is not a ``Params4bit`` to fp32 for bitsandbytes bases, and none for GPTQ/AWQ.
- PEFT creates LoRA weights in fp32 when the base is fp16/bf16 (``autocast_adapter_dtype=
  True``, peft/tuners/tuners_utils.py); LoRA A is (r, in), B is (out, r); DoRA adds a
  magnitude vector of ``out`` per module.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

from vramdoc.estimate.stack import adapters_fp32
from vramdoc.models.spec import (
    EMBEDDING,
    EXPERTS,
    HEAD,
    LINEAR,
    NORM,
    ROUTER,
    ModelSpec,
    ParamGroup,
)
from vramdoc.setup import TrainSetup

DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2, "uint8": 1, "int8": 1}
BNB_4BIT_BLOCK = 64  # bitsandbytes Linear4bit default blocksize for weights
BNB_DQ_BLOCK = 256  # second-level block of double quantization
# The CUDA caching allocator rounds every block up to 512 bytes (c10/cuda/CUDACachingAllocator.cpp,
# kMinBlockSize). Small tensors (norm weights, LoRA vectors, quant constants) pay it.
CUDA_BLOCK_BYTES = 512


def round_block(n_bytes: int) -> int:
    """Bytes the CUDA caching allocator really hands out for one tensor of n_bytes."""
    if n_bytes <= 0:
        return 0
    return -(-n_bytes // CUDA_BLOCK_BYTES) * CUDA_BLOCK_BYTES


@cache
def _peft_defaults() -> dict[str, list[str]]:
    text = resources.files("vramdoc.data").joinpath("peft_defaults.json").read_text()
    data: dict[str, list[str]] = json.loads(text)["default_lora_targets"]
    return data


def resolve_load_dtype(setup: TrainSetup, spec: ModelSpec) -> str:
    """``from_pretrained(dtype="auto")`` is the checkpoint's dtype in transformers 5."""
    if setup.torch_dtype == "auto":
        return spec.checkpoint_dtype if spec.checkpoint_dtype in DTYPE_BYTES else "float32"
    return setup.torch_dtype


def lora_targets(setup: TrainSetup, spec: ModelSpec) -> tuple[str, ...]:
    """Leaf names LoRA wraps: the user's, or PEFT's per-architecture default."""
    assert setup.lora is not None
    targets = setup.lora.target_modules
    if not targets:
        return tuple(_peft_defaults().get(spec.model_type, ()))
    return targets


# PEFT adds these to modules_to_save for task_type SEQ_CLS (peft 0.21 peft_model.py,
# PeftModelForSequenceClassification.__init__: classifier_module_names)
SEQ_CLS_SAVED = ("classifier", "score")


def modules_to_save(setup: TrainSetup) -> tuple[str, ...]:
    """The modules PEFT wraps in ModulesToSaveWrapper: the user's, plus the classification
    head's names for a sequence-classification task (the probe and the emitted LoraConfig
    pass ``task_type="SEQ_CLS"`` for it)."""
    assert setup.lora is not None
    saved = tuple(setup.lora.modules_to_save)
    if setup.task == "sequence-classification":
        saved += tuple(m for m in SEQ_CLS_SAVED if m not in saved)
    return saved


def _module_prefixes(g: ParamGroup) -> list[str]:
    parts = g.path.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


def _inside_saved(g: ParamGroup, saved: tuple[str, ...]) -> bool:
    """PEFT never puts LoRA on a module inside one it saves whole (peft 0.21
    tuners_utils.check_target_module_exists: ``(^|.*\\.){m}($|\\..*)`` against the key)."""
    return any(re.match(rf"(^|.*\.){re.escape(m)}($|\..*)", g.path) for m in saved)


def _is_output_layer(g: ParamGroup, groups: tuple[ParamGroup, ...]) -> bool:
    """The model's last head Linear: lm_head / score / classifier (BERT) / out_proj (RoBERTa).
    PEFT's all-linear leaves it out (get_output_embeddings, or the SEQ_CLS head); a head-side
    Linear before it (BERT's pooler, RoBERTa's classifier.dense) is an ordinary Linear."""
    heads = [x for x in groups if x.kind == HEAD]
    return bool(heads) and heads[-1] is g


def _is_lora_target(g: ParamGroup, targets: tuple[str, ...],
                    groups: tuple[ParamGroup, ...] = (), saved: tuple[str, ...] = ()) -> bool:
    if saved and _inside_saved(g, saved):
        return False
    if targets == ("all-linear",) and g.kind in (EXPERTS, ROUTER):
        # peft 0.21 on transformers 5 MoE: all-linear also wraps the router and the fused
        # 3-D expert parameters (checked on a built Mixtral: mlp.gate and mlp.experts get
        # lora_A/lora_B); not Qwen2-MoE's (ParamGroup.all_linear)
        return g.all_linear
    if g.kind not in (LINEAR, HEAD) or g.tied_to is not None:
        return False
    if targets == ("all-linear",):
        # PEFT's all-linear: every Linear except the output layer (peft/tuners/tuners_utils.py,
        # _maybe_include_all_linear_layers), and except the MLP Linears of a DeepSeek-V2 as
        # built (ParamGroup.all_linear False: checked against a PEFT model)
        if g.kind == LINEAR and not g.all_linear:
            return False
        return g.kind == LINEAR or (g.kind == HEAD and bool(groups)
                                    and not _is_output_layer(g, groups))
    return g.leaf in targets or any(g.path.endswith("." + t) for t in targets if "." in t)


def _saved_module(g: ParamGroup, modules_to_save: tuple[str, ...]) -> bool:
    """Whether ``g`` lies in a module PEFT copies: one whose name ends with an entry
    (peft 0.21 utils/other.py _set_trainable: ``key.endswith(target_key)``), e.g. RoBERTa's
    whole ``classifier`` head with its dense and out_proj."""
    return bool(modules_to_save) and (
        g.leaf in modules_to_save or g.path.split(".{i}")[0].split(".")[-1] in modules_to_save
        or any(p.endswith(m) for p in _module_prefixes(g) if "{i}" not in p
               for m in modules_to_save)
    )


@dataclass(frozen=True)
class LoraModule:
    """One LoRA-wrapped Linear role, repeated ``count`` times."""

    leaf: str
    in_features: int
    out_features: int
    count: int
    path: str = ""  # the ParamGroup path (two roles may share a leaf name)


@dataclass(frozen=True)
class ParamAccount:
    """Bytes and element counts of the model's resident tensors, by component."""

    load_dtype: str
    weight_dtype_after_prep: str  # dtype of unquantized weights after k-bit preparation
    weights_bytes: int  # base weights (packed, for quantized modules) incl. modules_to_save copies
    quant_state_bytes: int  # absmax / scales / zeros / g_idx / SCB
    quantized_weight_bytes: int  # the packed weights of quantized layers (part of weights_bytes)
    adapters_bytes: int  # LoRA A/B (+ DoRA magnitude)
    trainable_numel: int
    trainable_bytes: int  # = gradient bytes
    trainable_dtype: str
    trainable_tensors: tuple[tuple[int, int, int, int], ...]  # (rows, cols, count, elem bytes)
    lora_modules: tuple[LoraModule, ...]
    quantized_linear_max_numel: int  # largest quantized weight (dequantization transient)
    n_params: int
    frozen_trainable_norms: bool  # True when norm weights are frozen (LoRA)
    lm_head_trainable: bool
    embedding_trainable: bool


def is_quantized(g: ParamGroup, setup: TrainSetup) -> bool:
    """Whether the base of ``g`` is a k-bit layer under this setup's quantization.

    bitsandbytes replaces exactly the modules ``ParamGroup.quantizable`` marks (every
    ``nn.Linear`` outside the skip lists, heads included); GPTQ and AWQ checkpoints quantize
    the Linear layers inside the repeated blocks only.
    """
    q = setup.quantization
    if q is None or g.tied_to is not None:
        return False
    if q.quant_method == "bitsandbytes":
        return g.quantizable and g.leaf not in set(q.llm_int8_skip_modules)
    return g.in_block and (g.kind == LINEAR or (g.kind == EXPERTS and g.quantizable))


def _quantized_bytes(g: ParamGroup, setup: TrainSetup) -> tuple[int, int]:
    """(weight bytes, constants bytes) per copy of a quantized Linear."""
    q = setup.quantization
    assert q is not None
    numel = g.weight_numel
    n_in, n_out = g.in_features, g.out_features
    n_exp = max(g.n_experts, 1)  # fused 3-D expert tensors hold n_exp (out, in) matrices
    if q.quant_method == "bitsandbytes" and q.bits == 4:
        w = round_block(math.ceil(numel / 2))
        blocks = math.ceil(numel / BNB_4BIT_BLOCK)
        if q.bnb_4bit_use_double_quant:
            # uint8 absmax per block + fp32 absmax per 256 blocks + 256-entry fp32 code + offset
            consts = (round_block(blocks) + round_block(4 * math.ceil(blocks / BNB_DQ_BLOCK))
                      + round_block(256 * 4) + round_block(4))
        else:
            consts = round_block(4 * blocks)
        # + the 16-entry fp32 NF4/FP4 code each quantize_4bit call creates on the device and
        # keeps in the layer's QuantState (bitsandbytes 0.50 functional.py, get_4bit_type)
        consts += round_block(16 * 4)
        return w, consts
    if q.quant_method == "bitsandbytes" and q.bits == 8:
        return round_block(numel), round_block(4 * n_out * n_exp)
    # GPTQ / AWQ 4-bit: int32 packing of 8 weights, per-group fp16 scales and packed zeros
    groups = 1 if q.group_size <= 0 else math.ceil(n_in / q.group_size)
    w = round_block(n_exp * n_in * n_out // 2)
    consts = round_block(n_exp * groups * n_out // 2) + round_block(n_exp * 2 * groups * n_out)
    if q.quant_method == "gptq":
        consts += round_block(4 * n_in * n_exp)  # g_idx
    return w, consts


def account_params(
    setup: TrainSetup, spec: ModelSpec, groups: tuple[ParamGroup, ...]
) -> ParamAccount:
    """Resident bytes of weights, quantization constants and adapters; trainable tensors."""
    load_dtype = resolve_load_dtype(setup, spec)
    q = setup.quantization
    bnb = q is not None and q.quant_method == "bitsandbytes"
    # prepare_model_for_kbit_training casts fp16/bf16 params to fp32 except for GPTQ, AQLM,
    # EETQ, HQQ and torchao bases (peft/utils/other.py): bitsandbytes and AWQ bases are upcast
    upcast = (bnb or (q is not None and q.quant_method == "awq")) and \
        setup.prepare_model_for_kbit_training
    dense_dtype = "float32" if upcast else load_dtype
    dense_b = DTYPE_BYTES[dense_dtype]
    lora = setup.lora
    targets = lora_targets(setup, spec) if lora else ()
    saved = modules_to_save(setup) if lora else ()
    # Adapters are fp32 unless the base is already fp32 (peft autocast_adapter_dtype=True);
    # peft < 0.12 gave them the base weight's float dtype (vramdoc.estimate.stack)
    adapter_dtype = "float32"
    if not adapters_fp32(setup.peft_version):
        storage = load_dtype if q is None else (
            q.bnb_4bit_quant_storage if bnb and q.bits == 4 else "uint8")
        if storage in ("bfloat16", "float16"):
            adapter_dtype = storage
    adapter_b = DTYPE_BYTES[adapter_dtype]

    weights = quant = adapters = packed = 0
    trainable: list[tuple[int, int, int, int]] = []  # (rows, cols, count, elem bytes)
    h = spec.hidden_size

    def shape(g: ParamGroup) -> tuple[int, int]:
        if g.out_features and g.in_features and g.kind != EXPERTS:
            return g.out_features, g.in_features
        if g.kind == EMBEDDING and g.weight_numel % h == 0:
            return g.weight_numel // h, h
        if g.kind == EXPERTS and g.in_features:
            return g.weight_numel // g.in_features, g.in_features
        return g.weight_numel, 1
    loras: list[LoraModule] = []
    max_q = 0
    n_params = 0
    lm_head_trainable = embedding_trainable = False
    for g in groups:
        n_params += g.numel
        if g.tied_to is not None:
            continue
        quantized = is_quantized(g, setup)
        if quantized:
            w, c = _quantized_bytes(g, setup)
            weights += w * g.count
            packed += w * g.count
            quant += c * g.count
            max_q = max(max_q, g.weight_numel // max(g.n_experts, 1))
            if g.bias_numel:
                weights += round_block(g.bias_numel * dense_b) * g.count
        else:
            weights += round_block(g.weight_numel * dense_b) * g.count
            if g.bias_numel:
                weights += round_block(g.bias_numel * dense_b) * g.count
        if lora is None:
            if not quantized:
                trainable.append((*shape(g), g.count, dense_b))
                if g.bias_numel:
                    trainable.append((g.bias_numel, 1, g.count, dense_b))
                if g.kind == HEAD:
                    lm_head_trainable = True
                if g.kind == EMBEDDING:
                    embedding_trainable = True
            continue
        if _is_lora_target(g, targets, groups, saved):
            loras.append(LoraModule(g.leaf, g.in_features, g.out_features, g.count, g.path))
            # fused experts: one adapter over all experts, rank r per expert (peft 0.21 gives
            # gate_up_proj 2*E*r and down_proj E*r, as built)
            r = lora.r
            if g.kind == EXPERTS:
                r *= g.n_experts * (2 if g.leaf == "gate_up_proj" else 1)
            a = round_block(r * g.in_features * adapter_b)
            b = round_block(r * g.out_features * adapter_b)
            adapters += (a + b) * g.count
            trainable += [(r, g.in_features, g.count, adapter_b),
                          (g.out_features, r, g.count, adapter_b)]
            if lora.use_dora:
                adapters += round_block(g.out_features * adapter_b) * g.count
                trainable.append((g.out_features, 1, g.count, adapter_b))
        if _saved_module(g, saved):
            # ModulesToSaveWrapper keeps the original and a trainable deep copy.
            copy = round_block(g.weight_numel * dense_b) + round_block(g.bias_numel * dense_b)
            weights += copy * g.count
            trainable.append((*shape(g), g.count, dense_b))
            if g.bias_numel:
                trainable.append((g.bias_numel, 1, g.count, dense_b))
            lm_head_trainable |= g.kind == HEAD
            embedding_trainable |= g.kind == EMBEDDING
        elif lora.bias == "all" and g.bias_numel and g.kind in (LINEAR, NORM):
            trainable.append((g.bias_numel, 1, g.count, dense_b))
    if spec.buffer_bytes:
        weights += round_block(spec.buffer_bytes)  # resident from load on, like the weights
    t_dtype = load_dtype if lora is None else adapter_dtype
    t_numel = sum(r * k * c for r, k, c, _ in trainable)
    t_bytes = sum(round_block(r * k * e) * c for r, k, c, e in trainable)
    return ParamAccount(
        load_dtype=load_dtype, weight_dtype_after_prep=dense_dtype, weights_bytes=weights,
        quant_state_bytes=quant, quantized_weight_bytes=packed, adapters_bytes=adapters,
        trainable_numel=t_numel,
        trainable_bytes=t_bytes, trainable_dtype=t_dtype, trainable_tensors=tuple(trainable),
        lora_modules=tuple(loras), quantized_linear_max_numel=max_q, n_params=n_params,
        frozen_trainable_norms=lora is not None, lm_head_trainable=lm_head_trainable,
        embedding_trainable=embedding_trainable,
    )
