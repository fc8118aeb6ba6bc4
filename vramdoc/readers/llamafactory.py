"""LLaMA-Factory YAML (or ``llamafactory-cli train`` flags) -> setup, with its own defaults.

Every default relied on cites where it lives in LLaMA-Factory's source (read at
hiyouga/LLaMA-Factory@ff6d4d12, 2026-08-18):

- ``finetuning_type`` lora, ``stage`` sft, ``lora_rank`` 8, ``lora_alpha`` None -> 2 x rank,
  ``lora_dropout`` 0.0, ``lora_target`` "all", ``pure_bf16`` False:
  src/llamafactory/hparams/finetuning_args.py
- ``cutoff_len`` 2048, ``packing`` None -> true only for stage pt:
  src/llamafactory/hparams/data_args.py, src/llamafactory/hparams/parser.py
- ``quantization_method`` bnb, ``quantization_type`` nf4, ``double_quantization`` True,
  ``flash_attn`` auto, ``disable_gradient_checkpointing`` False (checkpointing ON),
  ``use_reentrant_gc`` True: src/llamafactory/hparams/model_args.py
- the base loads with ``torch_dtype="auto"`` (src/llamafactory/model/loader.py); trainable
  parameters are cast to fp32 unless pure_bf16 / BAdam, or ZeRO-3 on an unquantized base
  (src/llamafactory/model/adapter.py ``init_adapter``): a full fine-tune holds fp32 weights
- the 4-bit BitsAndBytesConfig uses the compute dtype (bf16 when ``bf16``) for both
  ``bnb_4bit_compute_dtype`` and ``bnb_4bit_quant_storage``
  (src/llamafactory/model/model_utils/quantization.py); PEFT's
  ``prepare_model_for_kbit_training`` is not called (LLaMA-Factory's own
  ``prepare_model_for_training`` upcasts only with ``upcast_layernorm``,
  src/llamafactory/model/model_utils/checkpointing.py)
- ``lora_target: all`` = every Linear but lm_head (src/llamafactory/model/model_utils/misc.py
  ``find_all_linear_modules``): PEFT's "all-linear"
- training keys are transformers' Seq2SeqTrainingArguments (per_device_train_batch_size 8 ...)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vramdoc.readers import _frameworks as fw
from vramdoc.readers._common import Collector, as_bool, as_float, as_int, as_list, open_mapping
from vramdoc.readers.findings import SourceReport

KIND = "llamafactory"
_SIGNS = ("finetuning_type", "cutoff_len", "lora_target", "template", "quantization_bit",
          "stage", "flash_attn", "lora_rank")
_HP = "src/llamafactory/hparams"
_ATTN = {"fa2": "flash_attention_2", "sdpa": "sdpa", "disabled": "eager",
         "fa3": "flash_attention_3"}


def detect(path: str | Path, text: str) -> bool:
    path = Path(path)
    if path.suffix.lower() not in (".yml", ".yaml"):
        return False
    keys = fw.top_keys(text)
    if "model" in keys and sum(k in keys for k in _V1) >= 2:
        return True  # the v1 format (src/llamafactory/v1)
    return sum(k in keys for k in _SIGNS) >= 2 and "base_model" not in keys


def read(path: str | Path, text: str) -> SourceReport:
    path = Path(path)
    col, data, lines = open_mapping(path, text, KIND, "a LLaMA-Factory config")
    if data is None:
        return col.report()
    if "model" in data and sum(k in data for k in _V1) >= 2:
        col.add("R201", "warning", "LLaMA-Factory's v1 format (model_class, peft_config, "
                "dist_config ...) is not read yet; no setup is estimated",
                "write the run in the llamafactory-cli train format (model_name_or_path, "
                "finetuning_type, ...)", lines.get("model_class") or lines.get("model"))
        return col.report()
    apply(col, path, data, lines.get)
    return col.report()


def apply(col: Collector, path: Path, cfg: dict[str, Any], ln: Any) -> None:
    """Map LLaMA-Factory arguments (from a YAML or a command line) into ``col``."""
    used: set[str] = set(_MAPPED)
    model = cfg.get("model_name_or_path")
    if model:
        col.set("model", str(model), ln("model_name_or_path"))
    else:
        col.add("R209", "error", "model_name_or_path: missing, so there is no model to estimate",
                "add model_name_or_path: <repo id or path>", None)
    if as_bool(cfg.get("trust_remote_code")):
        col.set("model_kwargs.trust_remote_code", True, ln("trust_remote_code"))
    if cfg.get("adapter_name_or_path"):
        col.add("R201", "info", "adapter_name_or_path: training continues from a saved adapter; "
                "estimated as a fresh adapter of the same shape", "",
                ln("adapter_name_or_path"))
    stage = str(cfg.get("stage", "sft"))
    if stage in ("rm", "ppo", "dpo", "kto"):
        col.add("R201", "warning", f"stage: {stage} holds more than one policy forward (a "
                "reference model, a value head or paired sequences); estimated as supervised "
                "fine-tuning of one model, which understates the memory", "", ln("stage"))
    bf16 = bool(as_bool(cfg.get("bf16")))
    fp16 = bool(as_bool(cfg.get("fp16")))
    pure_bf16 = bool(as_bool(cfg.get("pure_bf16")))
    compute = "bfloat16" if (bf16 or pure_bf16) else "float16" if fp16 else "bfloat16"
    if not (bf16 or fp16 or pure_bf16):
        col.add("R202", "info", "neither bf16 nor fp16: LLaMA-Factory infers the compute dtype "
                "from the model and GPU (src/llamafactory/extras/misc.py infer_optim_dtype); "
                "taken as bfloat16, and training runs without mixed precision",
                "write bf16: true (or fp16: true on a T4/V100)", None)

    # --- method -------------------------------------------------------------------
    ftype = str(cfg.get("finetuning_type", "lora"))
    if "finetuning_type" not in cfg:
        col.add("R202", "info", f"finetuning_type not set: LLaMA-Factory's default lora "
                f"({_HP}/finetuning_args.py)", "", None)
    qbit = as_int(cfg.get("quantization_bit"))
    qmethod = str(cfg.get("quantization_method", "bnb"))
    zero3 = False
    if cfg.get("deepspeed"):
        facts = _deepspeed(col, path, cfg, ln)
        zero3 = facts.get("zero_stage") == 3
    if ftype in ("lora", "oft"):
        if ftype == "oft":
            col.add("R201", "warning", "finetuning_type: oft is estimated as LoRA of the same "
                    "rank on the same modules", "", ln("finetuning_type"))
        _lora(col, cfg, ln)
        col.set("model_kwargs.dtype", "auto", ln("model_name_or_path"))
        if pure_bf16:
            col.add("R201", "info", "pure_bf16 keeps the adapters in bf16; the estimate keeps "
                    "PEFT's fp32 adapters (a small overstatement)", "", ln("pure_bf16"))
    else:
        if ftype == "freeze":
            col.add("R201", "warning", "finetuning_type: freeze trains only some layers "
                    f"(freeze_trainable_layers, default 2, {_HP}/finetuning_args.py); "
                    "estimated as a full fine-tune, which overstates gradients and optimizer "
                    "states", "", ln("finetuning_type"))
        elif ftype != "full":
            col.add("R204", "warning", f"finetuning_type: {ftype!r} is not lora, oft, freeze or "
                    "full; estimated as a full fine-tune", "", ln("finetuning_type"))
        if pure_bf16 or (zero3 and qbit is None):
            col.set("model_kwargs.dtype", "bfloat16" if pure_bf16 else "auto",
                    ln("pure_bf16") or ln("finetuning_type"))
        else:
            col.set("model_kwargs.dtype", "float32", ln("finetuning_type"))
            col.add("R202", "info", "a full fine-tune holds fp32 weights: LLaMA-Factory casts "
                    "trainable parameters to float32 (src/llamafactory/model/adapter.py "
                    "init_adapter)", "", ln("finetuning_type"))
    if qbit is not None:
        if qmethod != "bnb":
            col.add("R201", "warning", f"quantization_method: {qmethod} is not modelled; "
                    "estimated with a 16-bit base", "use quantization_method: bnb to estimate "
                    "a bitsandbytes base", ln("quantization_method"))
        elif col.get("lora") is None:
            col.add("R204", "warning", "quantization_bit without LoRA: a quantized base cannot "
                    "be fully fine-tuned; quantization ignored", "use finetuning_type: lora",
                    ln("quantization_bit"))
        elif qbit == 4:
            col.set("quantization", {
                "load_in_4bit": True,
                "bnb_4bit_quant_type": str(cfg.get("quantization_type", "nf4")),
                "bnb_4bit_use_double_quant": as_bool(cfg.get("double_quantization", True)),
                "bnb_4bit_compute_dtype": compute, "bnb_4bit_quant_storage": compute},
                ln("quantization_bit"))
            col.add("R202", "info", "4-bit base as LLaMA-Factory builds it: "
                    f"{cfg.get('quantization_type', 'nf4')}, double quantization "
                    f"{cfg.get('double_quantization', True)}, compute and storage dtype {compute} "
                    "(src/llamafactory/model/model_utils/quantization.py)", "",
                    ln("quantization_bit"))
        elif qbit == 8:
            col.set("quantization", {"load_in_8bit": True}, ln("quantization_bit"))
        else:
            col.add("R204", "warning", f"quantization_bit: {qbit} is not 4 or 8 for "
                    "bitsandbytes; estimated with a 16-bit base", "", ln("quantization_bit"))
        if col.get("quantization") is not None:
            col.set("prepare_model_for_kbit_training", False, ln("quantization_bit"))

    # --- attention, checkpointing, sequence -------------------------------------------
    attn = str(cfg.get("flash_attn", "auto"))
    if attn in _ATTN:
        fw.set_attn(col, _ATTN[attn], ln("flash_attn"))
    elif attn != "auto":
        col.add("R204", "warning", f"flash_attn: {attn!r} is not auto, fa2, fa3, sdpa or "
                "disabled; estimated with sdpa", "", ln("flash_attn"))
    if as_bool(cfg.get("disable_gradient_checkpointing")):
        col.set("training.gradient_checkpointing", False, ln("disable_gradient_checkpointing"))
    else:
        reentrant = as_bool(cfg.get("use_reentrant_gc", True))
        col.set("training.gradient_checkpointing", True,
                ln("disable_gradient_checkpointing"))
        col.set("training.gradient_checkpointing_kwargs", {"use_reentrant": bool(reentrant)},
                ln("use_reentrant_gc"))
        if "disable_gradient_checkpointing" not in cfg:
            col.add("R202", "info", "gradient checkpointing is on: LLaMA-Factory enables it "
                    f"unless disable_gradient_checkpointing: true ({_HP}/model_args.py, "
                    "src/llamafactory/model/model_utils/checkpointing.py)", "", None)
    cutoff = cfg.get("cutoff_len")
    if cutoff is None:
        cutoff = 2048
        col.add("R202", "info", f"cutoff_len not set: LLaMA-Factory's default 2048 "
                f"({_HP}/data_args.py)", "", None)
    col.set("max_seq_length", cutoff, ln("cutoff_len"))
    packing = cfg.get("packing")
    if as_bool(packing) or (packing is None and stage == "pt") or as_bool(cfg.get("neat_packing")):
        col.add("R201", "info", "packing: every row is filled to cutoff_len, so the estimate "
                "at cutoff_len is the memory of every step, not a worst case", "",
                ln("packing") or ln("neat_packing") or ln("stage"))

    # --- training arguments -------------------------------------------------------
    if "per_device_train_batch_size" not in cfg:
        col.add("R202", "info", "per_device_train_batch_size not set: transformers' default 8",
                "", None)
    for key, value in cfg.items():
        if key in _MAPPED or key in _KERNELS or not _is_ta(key):
            continue
        used.add(key)
        if value is None:
            continue
        if key in ("fsdp", "fsdp_config"):
            if key == "fsdp" or not cfg.get("fsdp"):
                fw.distribution(col, path, {k: cfg.get(k) for k in ("fsdp", "fsdp_config")},
                                ln, used)
        elif key == "optim":
            fw.set_optim(col, str(value), ln(key))
        elif key in ("learning_rate", "weight_decay", "max_grad_norm", "warmup_ratio"):
            col.training(key, as_float(value), ln(key))
        elif key in ("bf16", "fp16", "do_train"):
            col.training(key, bool(as_bool(value)), ln(key))
        else:
            col.training(key, value, ln(key))
    if pure_bf16:
        col.set("training.bf16", True, ln("pure_bf16"))

    # --- kernels and optimizers the schema cannot express ------------------------------
    if as_bool(cfg.get("enable_liger_kernel")) and stage in ("pt", "sft"):
        # LLaMA-Factory applies Liger with its fused linear cross-entropy for pt/sft
        # (src/llamafactory/model/model_utils/liger_kernel.py, model/loader.py require_logits)
        used.add("enable_liger_kernel")
        col.set("training.use_liger_kernel", True, ln("enable_liger_kernel"))
        col.add("R201", "info", "enable_liger_kernel: Liger's fused linear cross-entropy "
                "(applied for stage pt/sft) is passed on as training.use_liger_kernel; its "
                "RMSNorm/SwiGLU/RoPE kernels are estimated as transformers' modules (an upper "
                "bound)", "", ln("enable_liger_kernel"))
    for key, what in _KERNELS.items():
        if key in used:
            continue
        if as_bool(cfg.get(key)):
            used.add(key)
            col.add("R201", "warning", f"{key}: {what}", "", ln(key))
    fw.unknown_keys(col, cfg, ln, used, "llamafactory", _SEQ2SEQ)


def _is_ta(key: str) -> bool:
    from vramdoc.setup import REMOVED_TRAINING_KEYS, hf_names

    return key in hf_names()["TrainingArguments"] or key in REMOVED_TRAINING_KEYS


def _deepspeed(col: Collector, path: Path, cfg: dict[str, Any], ln: Any) -> dict[str, Any]:
    from vramdoc.readers import deepspeed

    return deepspeed.apply_reference(col, path, cfg["deepspeed"], ln("deepspeed"))


def _lora(col: Collector, cfg: dict[str, Any], ln: Any) -> None:
    rank = as_int(cfg.get("lora_rank", 8)) or 8
    col.set("lora.r", rank, ln("lora_rank"))
    alpha = as_int(cfg.get("lora_alpha")) or rank * 2
    col.set("lora.lora_alpha", alpha, ln("lora_alpha") or ln("lora_rank"))
    col.set("lora.lora_dropout", as_float(cfg.get("lora_dropout", 0.0)) or 0.0,
            ln("lora_dropout"))
    target = cfg.get("lora_target") or "all"
    targets = [t.strip() for t in target.split(",")] if isinstance(target, str) else \
        as_list(target) or ["all"]
    if targets == ["all"]:
        col.set("lora.target_modules", "all-linear", ln("lora_target"))
        col.add("R202", "info", "lora_target: all (LLaMA-Factory's default) targets every "
                "Linear but lm_head (src/llamafactory/model/model_utils/misc.py "
                "find_all_linear_modules), as PEFT's all-linear", "", ln("lora_target"))
    else:
        col.set("lora.target_modules", targets, ln("lora_target"))
    extra = cfg.get("additional_target")
    if extra:
        col.set("lora.modules_to_save", [t.strip() for t in str(extra).split(",")],
                ln("additional_target"))
    for key in ("use_dora", "use_rslora"):
        if as_bool(cfg.get(key)):
            col.set(f"lora.{key}", True, ln(key))


_MAPPED = frozenset({
    "model_name_or_path", "trust_remote_code", "adapter_name_or_path", "stage", "pure_bf16",
    "finetuning_type", "quantization_bit", "quantization_method", "quantization_type",
    "double_quantization", "flash_attn", "disable_gradient_checkpointing", "use_reentrant_gc",
    "cutoff_len", "packing", "neat_packing", "lora_rank", "lora_alpha", "lora_dropout",
    "lora_target", "additional_target", "use_dora", "use_rslora", "deepspeed"})
# Seq2SeqTrainingArguments' own keys (transformers/training_args_seq2seq.py)
_SEQ2SEQ = frozenset({"predict_with_generate", "generation_max_length", "generation_num_beams",
                      "generation_config", "sortish_sampler"})
_V1 = ("model_class", "peft_config", "dist_config", "kernel_config", "train_dataset")
_KERNELS = {
    "use_unsloth": "Unsloth's kernels and offloaded checkpointing are not modelled; estimated "
                   "with transformers' and PEFT's modules (usually an overstatement)",
    "use_unsloth_gc": "Unsloth's offloaded gradient checkpointing keeps layer inputs in CPU "
                      "memory; estimated as plain checkpointing (an overstatement)",
    "enable_liger_kernel": "Liger kernels without the fused linear cross-entropy (stage rm, "
                           "ppo, dpo, kto need the logits) are estimated as transformers' "
                           "modules (an upper bound)",
    "use_galore": "GaLore's low-rank optimizer states are not modelled; estimated as a full "
                  "fine-tune with the named optimizer",
    "use_apollo": "APOLLO's optimizer states are not modelled; estimated with the named optimizer",
    "use_badam": "BAdam trains one block at a time; estimated as a full fine-tune",
    "use_adam_mini": "Adam-mini's reduced states are not modelled; estimated with the named "
                     "optimizer",
    "use_muon": "Muon's states are not modelled; estimated with the named optimizer",
    "use_llama_pro": "LLaMA Pro's expanded blocks are not modelled",
    "shift_attn": "LongLoRA shift-short attention is not modelled",
}
