"""TRL config YAML (``trl sft --config cfg.yaml``) or ``trl sft`` flags -> setup.

TRL's defaults that differ from transformers' (read at huggingface/trl@f2cd5771, 2026-07-24):

- SFTConfig: ``max_length`` 1024 (``max_seq_length`` is its old name), ``packing`` False,
  ``learning_rate`` 2e-5: trl/trainer/sft_config.py; ``gradient_checkpointing`` True,
  ``bf16`` = not ``fp16``, ``logging_steps`` 10: trl/trainer/base_config.py
- ModelConfig: ``dtype`` "float32" (SFTTrainer loads in float32 when no dtype is given),
  ``use_peft`` False, ``lora_r`` 16, ``lora_alpha`` 32, ``lora_dropout`` 0.05,
  ``lora_target_modules`` None (PEFT's per-architecture default), ``bnb_4bit_quant_type`` nf4,
  ``use_bnb_nested_quant`` False: trl/trainer/model_config.py
- the 4-bit BitsAndBytesConfig takes ``bnb_4bit_compute_dtype`` = ``dtype``
  (trl/trainer/utils.py ``get_quantization_config``); SFTTrainer does not call PEFT's
  ``prepare_model_for_kbit_training`` and casts a quantized model's trainable (LoRA)
  parameters to bf16 (trl/trainer/sft_trainer.py)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vramdoc.readers import _frameworks as fw
from vramdoc.readers._common import (
    Collector,
    as_bool,
    as_float,
    as_int,
    as_list,
    as_targets,
    open_mapping,
)
from vramdoc.readers.findings import SourceReport

KIND = "trl"
# TRL's defaults this reader relies on (checked against the installed trl by
# tests/readers/test_trl_defaults.py when trl is there)
DEFAULTS: dict[str, Any] = {
    "max_length": 1024, "learning_rate": 2e-5, "gradient_checkpointing": True,
    "dtype": "float32", "use_peft": False, "lora_r": 16, "lora_alpha": 32, "lora_dropout": 0.05,
    "bnb_4bit_quant_type": "nf4", "use_bnb_nested_quant": False, "packing": False,
}
_SRC = "trl/trainer"
_SIGNS = ("use_peft", "max_length", "max_seq_length", "packing", "dataset_name",
          "dataset_text_field", "lora_r", "lora_target_modules", "load_in_4bit",
          "completion_only_loss", "assistant_only_loss", "padding_free", "use_liger_kernel")


def detect(path: str | Path, text: str) -> bool:
    path = Path(path)
    if path.suffix.lower() not in (".yml", ".yaml"):
        return False
    keys = fw.top_keys(text)
    return "model_name_or_path" in keys and (any(k in keys for k in _SIGNS)
                                             or "learning_rate" in keys)


def read(path: str | Path, text: str) -> SourceReport:
    path = Path(path)
    col, cfg, lines = open_mapping(path, text, KIND, "a TRL config")
    if cfg is not None:
        apply(col, path, cfg, lines.get)
    return col.report()


def apply(col: Collector, path: Path, cfg: dict[str, Any], ln: Any,
          trainer: str = "sft") -> None:
    """Map TRL ModelConfig + SFTConfig arguments (from YAML or flags) into ``col``."""
    used: set[str] = set(_MAPPED)
    model = cfg.get("model_name_or_path")
    if model:
        col.set("model", str(model), ln("model_name_or_path"))
    else:
        col.add("R209", "error", "model_name_or_path: missing, so there is no model to estimate",
                "add model_name_or_path: <repo id or path>", None)
    if trainer != "sft":
        col.add("R201", "warning", f"trl {trainer} holds more than one policy forward "
                "(reference model, pairs or generations); estimated as SFT of one model, which "
                "understates the memory", "", None)
    # --- model loading (ModelConfig, model_init_kwargs) ------------------------------
    raw_mik = cfg.get("model_init_kwargs")
    mik: dict[str, Any] = raw_mik if isinstance(raw_mik, dict) else {}
    dtype_key = next((k for k in ("dtype", "torch_dtype") if cfg.get(k)), None)
    dtype = cfg.get(dtype_key) if dtype_key else mik.get("dtype", mik.get("torch_dtype"))
    if dtype_key == "torch_dtype":
        col.add("R205", "info", "torch_dtype: TRL's ModelConfig now calls it dtype",
                "write dtype", ln("torch_dtype"))
    if dtype is None:
        dtype = DEFAULTS["dtype"]
        col.add("R202", "info", f"dtype not set: TRL loads the model in float32 "
                f"({_SRC}/model_config.py, {_SRC}/sft_trainer.py)",
                "write dtype: bfloat16 to load half-precision weights", None)
    col.set("model_kwargs.dtype", str(dtype).replace("torch.", ""),
            ln(dtype_key) if dtype_key else ln("model_init_kwargs"))
    attn = cfg.get("attn_implementation") or mik.get("attn_implementation")
    if attn:
        fw.set_attn(col, str(attn), ln("attn_implementation") or ln("model_init_kwargs"))
    if as_bool(cfg.get("trust_remote_code")):
        col.set("model_kwargs.trust_remote_code", True, ln("trust_remote_code"))
    # --- LoRA -----------------------------------------------------------------------
    use_peft = bool(as_bool(cfg.get("use_peft", DEFAULTS["use_peft"])))
    if use_peft:
        col.set("lora.r", as_int(cfg.get("lora_r", DEFAULTS["lora_r"])),
                ln("lora_r") or ln("use_peft"))
        col.set("lora.lora_alpha", as_int(cfg.get("lora_alpha", DEFAULTS["lora_alpha"])),
                ln("lora_alpha"))
        col.set("lora.lora_dropout", as_float(cfg.get("lora_dropout", DEFAULTS["lora_dropout"])),
                ln("lora_dropout"))
        if cfg.get("lora_target_modules"):
            col.set("lora.target_modules", as_targets(cfg["lora_target_modules"]),
                    ln("lora_target_modules"))
        if cfg.get("lora_modules_to_save"):
            mts = cfg["lora_modules_to_save"]
            col.set("lora.modules_to_save", as_list(mts) or None,
                    ln("lora_modules_to_save"))
        for key in ("use_dora", "use_rslora"):
            if as_bool(cfg.get(key)):
                col.set(f"lora.{key}", True, ln(key))
        missing = [k for k in ("lora_r", "lora_alpha", "lora_dropout") if k not in cfg]
        if missing:
            col.add("R202", "info", f"{', '.join(missing)} not set: TRL's ModelConfig "
                    f"defaults (lora_r 16, lora_alpha 32, lora_dropout 0.05; "
                    f"{_SRC}/model_config.py)", "", ln("use_peft"))
    elif any(k in cfg for k in ("lora_r", "lora_alpha", "lora_target_modules")):
        col.add("R201", "warning", "lora_* keys without use_peft: true are ignored by TRL; "
                "estimated as a full fine-tune", "add use_peft: true", ln("lora_r"))
    # --- quantization ------------------------------------------------------------------
    four = bool(as_bool(cfg.get("load_in_4bit")))
    eight = bool(as_bool(cfg.get("load_in_8bit")))
    if (four or eight) and not use_peft:
        col.add("R204", "warning", "load_in_4bit/load_in_8bit without use_peft: a quantized base "
                "cannot be fine-tuned; quantization ignored", "add use_peft: true",
                ln("load_in_4bit") or ln("load_in_8bit"))
    elif four:
        compute = "bfloat16" if str(dtype) in ("auto", "None") else str(dtype)
        quant: dict[str, Any] = {
            "load_in_4bit": True,
            "bnb_4bit_quant_type": str(cfg.get("bnb_4bit_quant_type",
                                               DEFAULTS["bnb_4bit_quant_type"])),
            "bnb_4bit_use_double_quant": bool(as_bool(cfg.get(
                "use_bnb_nested_quant", DEFAULTS["use_bnb_nested_quant"]))),
            "bnb_4bit_compute_dtype": compute.replace("torch.", "")}
        if cfg.get("bnb_4bit_quant_storage"):
            quant["bnb_4bit_quant_storage"] = str(cfg["bnb_4bit_quant_storage"])
        col.set("quantization", quant, ln("load_in_4bit"))
    elif eight:
        col.set("quantization", {"load_in_8bit": True}, ln("load_in_8bit"))
    if col.get("quantization") is not None:
        col.set("prepare_model_for_kbit_training", False, ln("load_in_4bit") or ln("load_in_8bit"))
        col.add("R201", "info", "SFTTrainer casts a quantized model's LoRA weights to bf16 "
                f"({_SRC}/sft_trainer.py); the estimate keeps PEFT's fp32 adapters (a small "
                "overstatement). It does not call prepare_model_for_kbit_training, so no fp32 "
                "upcast of embeddings is counted", "", ln("load_in_4bit") or ln("load_in_8bit"))
    # --- SFTConfig ---------------------------------------------------------------------
    length_key = next((k for k in ("max_length", "max_seq_length") if k in cfg), None)
    if length_key == "max_seq_length":
        col.add("R205", "warning", "max_seq_length: TRL renamed it max_length (SFTConfig)",
                "write max_length", ln("max_seq_length"))
    length = cfg.get(length_key) if length_key else DEFAULTS["max_length"]
    if length_key is None:
        col.add("R202", "info", f"max_length not set: SFTConfig's default 1024 "
                f"({_SRC}/sft_config.py)", "", None)
    if length is None:
        col.add("R201", "warning", "max_length: null does not truncate; estimated at 1024",
                "set max_length to your longest sequence", ln(length_key or ""))
        length = DEFAULTS["max_length"]
    col.set("max_seq_length", length, ln(length_key) if length_key else None)
    fp16 = bool(as_bool(cfg.get("fp16", False)))
    bf16 = as_bool(cfg["bf16"]) if cfg.get("bf16") is not None else not fp16
    if "bf16" not in cfg:
        col.add("R202", "info", f"bf16 not set: TRL's default is true unless fp16 "
                f"({_SRC}/base_config.py)", "", None)
    col.set("training.bf16", bool(bf16), ln("bf16"))
    col.set("training.fp16", fp16, ln("fp16"))
    gc = as_bool(cfg.get("gradient_checkpointing", DEFAULTS["gradient_checkpointing"]))
    col.set("training.gradient_checkpointing", bool(gc), ln("gradient_checkpointing"))
    if "gradient_checkpointing" not in cfg:
        col.add("R202", "info", f"gradient_checkpointing not set: TRL's default is true "
                f"({_SRC}/base_config.py)", "", None)
    col.set("training.learning_rate", as_float(cfg.get("learning_rate",
                                                       DEFAULTS["learning_rate"])),
            ln("learning_rate"))
    if "per_device_train_batch_size" not in cfg:
        col.add("R202", "info", "per_device_train_batch_size not set: transformers' default 8",
                "", None)
    for key, value in cfg.items():
        if key in _MAPPED or key in _KERNELS:
            continue
        from vramdoc.setup import REMOVED_TRAINING_KEYS, hf_names

        if key in hf_names()["TrainingArguments"] or key in REMOVED_TRAINING_KEYS:
            used.add(key)
            if value is None:
                continue
            if key == "optim":
                fw.set_optim(col, str(value), ln(key))
            elif key in ("weight_decay", "max_grad_norm", "warmup_ratio"):
                col.training(key, as_float(value), ln(key))
            elif key == "deepspeed":
                from vramdoc.readers import deepspeed

                deepspeed.apply_reference(col, path, value, ln(key))
            elif key in ("fsdp", "fsdp_config"):
                col.add("R207", "info", f"{key} read; FSDP is estimated when the number of GPUs "
                        "is known", "pass --num-gpus N --fsdp ...", ln(key))
            else:
                col.training(key, value, ln(key))
    for key, what in _KERNELS.items():
        if as_bool(cfg.get(key)):
            if key == "use_liger_kernel":
                col.set("training.use_liger_kernel", True, ln(key))
            col.add("R201", "warning" if key in ("padding_free", "activation_offloading")
                    else "info", f"{key}: {what}", "", ln(key))
    fw.unknown_keys(col, cfg, ln, used, "trl", frozenset({"config", "env"}))


_MAPPED = frozenset({
    "model_name_or_path", "model_init_kwargs", "dtype", "torch_dtype", "attn_implementation",
    "trust_remote_code", "use_peft", "lora_r", "lora_alpha", "lora_dropout",
    "lora_target_modules", "lora_modules_to_save", "use_dora", "use_rslora", "load_in_4bit",
    "load_in_8bit", "bnb_4bit_quant_type", "use_bnb_nested_quant", "bnb_4bit_quant_storage",
    "max_length", "max_seq_length", "bf16", "fp16", "gradient_checkpointing", "learning_rate"})
_KERNELS = {
    "packing": "rows are filled to max_length, so the estimate at max_length is the memory of "
               "every step, not a worst case",
    "padding_free": "padding-free batches hold only real tokens; the estimate at max_length "
                    "is an upper bound",
    "use_liger_kernel": "passed on as training.use_liger_kernel (the fused linear "
                        "cross-entropy); Liger's RMSNorm/SwiGLU/RoPE kernels are estimated as "
                        "transformers' modules (an upper bound)",
    "activation_offloading": "activations offloaded to CPU are estimated as kept on the GPU "
                             "(an overstatement)",
}
