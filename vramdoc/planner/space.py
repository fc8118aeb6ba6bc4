"""The search space: the levers a plan may pull, and how a point in it becomes a TrainSetup.

A *combo* fixes every lever except the micro-batch; a *candidate* is a combo plus a
micro-batch (accumulation = effective batch / micro-batch) and a sequence length. Levers:

- method: full, lora, qlora (NF4 + double quant); gptq-lora / awq-lora / qlora-int8 only
  when asked for (they need a pre-quantized checkpoint or are rarely better);
- precision: (load dtype, autocast): fp32, fp32 + bf16 AMP, fp32 + fp16 AMP, bf16 + bf16,
  fp16 + fp16 (for QLoRA the autocast dtype is also ``bnb_4bit_compute_dtype``);
- attention: eager, sdpa, flash_attention_2;
- gradient checkpointing: off, on (always on for k-bit bases: prepare_model_for_kbit_training
  enables it, and the estimator models that);
- optimizer: per method (full fine-tunes also get 8-bit, paged, 4-bit and Adafactor);
- LoRA: targets all-linear or PEFT's per-architecture default, rank 16 (alpha 32) or 8;
- k-bit fp32 upcast (bitsandbytes / AWQ bases with a 16-bit load dtype): kept, or skipped
  (no ``prepare_model_for_kbit_training``; ``model.enable_input_require_grads()`` and
  checkpointing instead, rule M219): embeddings, norms and head stay 16-bit;
- Liger's fused linear cross-entropy (``use_liger_kernel``), for the model types Liger patches,
  with checkpointing on;
- micro-batch: every divisor of the effective batch; sequence: the user's, or with
  ``allow_shorter_seq`` also halvings down to 128.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from vramdoc.setup import LoraSetup, QuantSetup, TrainingSetup, TrainSetup

DEFAULT_METHODS = ("full", "lora", "qlora")
ALL_METHODS = ("full", "lora", "qlora", "qlora-int8", "gptq-lora", "awq-lora")

# (from_pretrained dtype, autocast) pairs
PRECISIONS: tuple[tuple[str, str | None], ...] = (
    ("float32", "bf16"),
    ("float32", "fp16"),
    ("bfloat16", "bf16"),
    ("float16", "fp16"),
    ("float32", None),
)
KBIT_PRECISIONS: tuple[tuple[str, str | None], ...] = (
    ("bfloat16", "bf16"),
    ("float16", "fp16"),
    ("float32", None),
)
ATTENTIONS = ("flash_attention_2", "sdpa", "eager")
CHECKPOINTING = (False, True)
OPTIMIZERS_FULL = ("adamw_torch_fused", "adamw_torch", "paged_adamw_32bit", "adamw_8bit",
                   "paged_adamw_8bit", "adamw_torch_4bit", "adafactor")
OPTIMIZERS_ADAPTER = ("adamw_torch_fused", "paged_adamw_32bit", "adamw_8bit", "paged_adamw_8bit")
LORA_TARGETS = ("all-linear", "default")  # "default" = PEFT's per-architecture targets
LORA_RANKS = (16, 8)
MIN_SEQ = 128

# Optimizer facts: (state bits with fp32 params, paged, from bitsandbytes, CUDA-only).
# state bits None: factored (Adafactor) or stateless. Sources: transformers OptimizerNames;
# bitsandbytes docs (paged / 8-bit); torch AdamW (fused = CUDA kernel); torchao low-bit optim.
OPTIM_INFO: dict[str, tuple[int | None, bool, bool, bool]] = {
    "adamw_torch": (32, False, False, False),
    "adamw_torch_fused": (32, False, False, True),
    "adamw_torch_4bit": (4, False, False, True),
    "adamw_torch_8bit": (8, False, False, True),
    "adamw_bnb_8bit": (8, False, True, True),
    "adamw_8bit": (8, False, True, True),
    "paged_adamw_8bit": (8, True, True, True),
    "paged_adamw_32bit": (32, True, True, True),
    "adafactor": (None, False, False, False),
    "sgd": (None, False, False, False),
    "adagrad": (32, False, False, False),
    "lion_32bit": (32, False, True, True),
    "lion_8bit": (8, False, True, True),
    "paged_lion_8bit": (8, True, True, True),
    "paged_lion_32bit": (32, True, True, True),
    "rmsprop": (32, False, False, False),
    "rmsprop_bnb": (32, False, True, True),
    "rmsprop_bnb_8bit": (8, False, True, True),
    "rmsprop_bnb_32bit": (32, False, True, True),
    "adamw_anyprecision": (32, False, False, False),
    "ademamix": (32, False, True, True),
    "ademamix_8bit": (8, False, True, True),
    "paged_ademamix_8bit": (8, True, True, True),
    "paged_ademamix_32bit": (32, True, True, True),
}


def optim_state_bits(optim: str, param_dtype: str) -> int | None:
    """Bits per state value: torch optimizers create states like the parameter (bf16 params
    give 16-bit states, shared/REFERENCE.md 'pure bf16'); bitsandbytes and torchao fix theirs."""
    bits, _paged, bnb, _cuda = OPTIM_INFO.get(optim, (32, False, False, False))
    if bits == 32 and not bnb and param_dtype in ("bfloat16", "float16"):
        return 16
    return bits


@dataclass(frozen=True, slots=True)
class Combo:
    """Every lever but the micro-batch and sequence length."""

    method: str
    dtype: str
    amp: str | None  # "bf16" | "fp16" | None
    attn: str
    ckpt: bool
    optim: str
    targets: str | None  # "all-linear" | "default" | None (full)
    r: int | None
    # prepare_model_for_kbit_training's fp32 upcast of the unquantized parts (k-bit bases);
    # False: skipped, the frozen embeddings / norms / head stay in the 16-bit load dtype
    upcast: bool = True
    # Trainer's use_liger_kernel (fused linear cross-entropy), for the model types Liger patches
    liger: bool = False
    dist: str = ""  # data-parallel strategy (planner/parallel.py); "" = the base's own


@dataclass(frozen=True, slots=True)
class Candidate:
    """A combo with its micro-batch, accumulation and sequence length."""

    combo: Combo
    micro_batch: int
    grad_accum: int
    seq_len: int


def divisors(n: int) -> tuple[int, ...]:
    """Micro-batch sizes that divide the effective batch exactly, ascending.

    Trial division up to sqrt(n), each hit giving its pair: 2**16 steps for n = 2**32.

    >>> divisors(12)
    (1, 2, 3, 4, 6, 12)
    >>> divisors(1_000_000_007)
    (1, 1000000007)
    """
    small, large = [], []
    d = 1
    while d * d <= n:
        if n % d == 0:
            small.append(d)
            if d * d != n:
                large.append(n // d)
        d += 1
    return (*small, *reversed(large))


# An effective batch with more divisors than this gets one micro-batch rung per power of two.
# Only effective batches from 10,080 up have more than 64 divisors (7,560 has exactly 64), so
# every everyday value keeps all of its micro-batches.
MAX_RUNGS = 64


def micro_batches(n: int) -> tuple[int, ...]:
    """The micro-batch rungs the planner tries for effective batch ``n``, ascending.

    Every divisor while there are at most ``MAX_RUNGS``; beyond that (720,720 has 240, some
    numbers below 2**32 have 1,344) the largest divisor in each power-of-two range [2**k,
    2**(k+1)), which keeps the search to at most 33 rungs: memory and step time change
    smoothly with the micro-batch, so a rung within 2x of any divisor loses little.

    >>> micro_batches(48)
    (1, 2, 3, 4, 6, 8, 12, 16, 24, 48)
    >>> micro_batches(720720)[:8], len(divisors(720720)), len(micro_batches(720720))
    ((1, 3, 7, 15, 30, 63, 126, 252), 240, 20)
    """
    ds = divisors(n)
    if len(ds) <= MAX_RUNGS:
        return ds
    best: dict[int, int] = {}
    for d in ds:
        best[d.bit_length()] = d  # ascending: the last seen in each range is its largest
    return tuple(sorted({1, n, *best.values()}))


def seq_lengths(seq_len: int, allow_shorter: bool) -> tuple[int, ...]:
    """The user's sequence length, then halvings down to MIN_SEQ when shorter is allowed."""
    out = [seq_len]
    while allow_shorter and out[-1] // 2 >= MIN_SEQ:
        out.append(out[-1] // 2)
    return tuple(out)


def combos(methods: tuple[str, ...], liger: bool = False) -> Iterator[Combo]:
    """Every lever combination for the given methods (rules judge them afterwards).

    ``liger``: the model is one Liger patches; its fused cross-entropy is then offered with
    checkpointing on (the leanest combos, where the logits are what is left to cut).
    """
    for method in methods:
        adapter = method != "full"
        optims = OPTIMIZERS_ADAPTER if adapter else OPTIMIZERS_FULL
        targets: tuple[str | None, ...] = LORA_TARGETS if adapter else (None,)
        ranks: tuple[int | None, ...] = LORA_RANKS if adapter else (None,)
        # a k-bit base's unquantized parts are upcast to fp32 by prepare_model_for_kbit_training,
        # so its load dtype only follows the compute dtype
        precisions = PRECISIONS if method in ("full", "lora") else KBIT_PRECISIONS
        for dtype, amp in precisions:
            for attn in ATTENTIONS:
                # k-bit bases: peft's prepare_model_for_kbit_training turns checkpointing on
                # (use_gradient_checkpointing=True), as the estimator assumes.
                for ckpt in (CHECKPOINTING if method in ("full", "lora") else (True,)):
                    for optim in optims:
                        for tgt in targets:
                            for r in ranks:
                                for upcast in upcasts(method, dtype):
                                    for lg in ((False, True) if liger and ckpt else (False,)):
                                        yield Combo(method, dtype, amp, attn, ckpt, optim, tgt,
                                                    r, upcast, lg)


# prepare_model_for_kbit_training casts fp16/bf16 parameters to fp32 for bitsandbytes and AWQ
# bases, none for GPTQ (peft/utils/other.py); with a float32 load there is nothing to skip
UPCAST_METHODS = ("qlora", "qlora-int8", "awq-lora")


def upcasts(method: str, dtype: str) -> tuple[bool, ...]:
    """Whether the k-bit fp32 upcast may be kept (True) or skipped (False) for a combo."""
    if method in UPCAST_METHODS and dtype in ("bfloat16", "float16"):
        return (True, False)
    return (True,)


def _quant(method: str, amp: str | None) -> QuantSetup | None:
    compute = {"bf16": "bfloat16", "fp16": "float16"}.get(amp or "", "float32")
    if method == "qlora":
        return QuantSetup(quant_method="bitsandbytes", bits=4, bnb_4bit_quant_type="nf4",
                          bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=compute)
    if method == "qlora-int8":
        return QuantSetup(quant_method="bitsandbytes", bits=8)
    if method == "gptq-lora":
        return QuantSetup(quant_method="gptq", bits=4, group_size=128)
    if method == "awq-lora":
        return QuantSetup(quant_method="awq", bits=4, group_size=128)
    return None


def to_setup(cand: Candidate, base: TrainSetup, training: TrainingSetup | None = None,
             lora_extra: dict[str, Any] | None = None) -> TrainSetup:
    """The TrainSetup of a candidate, keeping the model, task and hyperparameters of ``base``.

    ``training`` (default ``base.training``) supplies the memory-neutral hyperparameters
    (learning rate, schedule ...); the levers overwrite the memory-relevant fields.
    """
    c = cand.combo
    t = training if training is not None else base.training
    tr = TrainingSetup(
        per_device_train_batch_size=cand.micro_batch,
        gradient_accumulation_steps=cand.grad_accum,
        gradient_checkpointing=c.ckpt,
        use_reentrant=t.use_reentrant if c.ckpt else None,
        bf16=c.amp == "bf16",
        fp16=c.amp == "fp16",
        optim=c.optim,
        learning_rate=t.learning_rate,
        weight_decay=t.weight_decay,
        max_grad_norm=t.max_grad_norm,
        warmup_steps=t.warmup_steps,
        lr_scheduler_type=t.lr_scheduler_type,
        logging_nan_inf_filter=t.logging_nan_inf_filter,
        torch_compile=t.torch_compile,
        use_liger_kernel=c.liger,
        fsdp=t.fsdp, fsdp_config=t.fsdp_config, deepspeed=t.deepspeed,
        extra=t.extra,
    )
    lora = None
    if c.method != "full":
        assert c.r is not None
        extra = lora_extra or {}
        lora = LoraSetup(
            r=c.r,
            lora_alpha=int(extra.get("lora_alpha", 2 * c.r)),
            target_modules=("all-linear",) if c.targets == "all-linear" else (),
            modules_to_save=tuple(extra.get("modules_to_save", ())),
            lora_dropout=float(extra.get("lora_dropout", 0.0)),
            use_rslora=bool(extra.get("use_rslora", False)),
        )
    from vramdoc.planner.parallel import apply_strategy

    return apply_strategy(TrainSetup(
        model=base.model, task=base.task, num_labels=base.num_labels, torch_dtype=c.dtype,
        attn_implementation=c.attn, quantization=_quant(c.method, c.amp), lora=lora,
        prepare_model_for_kbit_training=base.prepare_model_for_kbit_training and c.upcast,
        training=tr, max_seq_length=cand.seq_len, gpu=base.gpu, num_gpus=base.num_gpus,
        nodes=base.nodes,
    ), c.dist)
