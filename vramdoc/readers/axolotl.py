"""axolotl YAML -> setup, with axolotl's own defaults and shorthands.

Every default relied on cites where it lives in axolotl's source (read at
axolotl-ai-cloud/axolotl@067b021c, 2026-07-24):

- ``micro_batch_size`` 1, ``gradient_accumulation_steps`` 1, ``optimizer``
  adamw_torch_fused, ``lr_scheduler`` cosine, ``weight_decay`` 0.0:
  src/axolotl/utils/schemas/training.py
- ``sequence_len`` 512, ``bf16`` "auto", ``gradient_checkpointing`` False:
  src/axolotl/utils/schemas/config.py
- ``lora_dropout`` 0.0, ``load_in_4bit``/``load_in_8bit`` False: src/axolotl/utils/schemas/peft.py
- the load dtype: bf16 (or ``bfloat16``) -> bfloat16, else load_in_8bit / fp16 / ``float16`` ->
  float16, else float32; ``bf16: auto`` becomes true on a GPU with bf16, else fp16:
  src/axolotl/utils/config/__init__.py ``resolve_dtype``
- QLoRA's BitsAndBytesConfig: nf4, double quantization, compute dtype = the load dtype,
  quant storage bfloat16, only with ``adapter: qlora`` + ``load_in_4bit``; ``adapter: lora`` +
  ``load_in_8bit`` gives an int8 base: src/axolotl/loaders/model.py ``_set_quantization_config``
- after k-bit preparation axolotl casts embeddings and norms back to the load dtype whenever an
  adapter is used (``_apply_post_model_load_setup``, ``_convert_embedding_modules_dtype``), so
  PEFT's fp32 upcast of those does not last: the setup says prepare_model_for_kbit_training: false
- ``lora_target_linear`` adds every Linear but lm_head (src/axolotl/loaders/adapter.py
  ``find_all_linear_names``): PEFT's "all-linear"
- legacy ``flash_attention`` / ``sdp_attention`` / ``eager_attention`` flags map to
  ``attn_implementation`` (src/axolotl/utils/schemas/config.py
  ``normalize_attn_implementation``); none given leaves transformers' default (sdpa)
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

KIND = "axolotl"
_SIGNS = ("base_model", "micro_batch_size", "sequence_len", "lora_target_linear", "adapter",
          "num_epochs", "datasets")
_LEGACY_ATTN = (("flash_attention", "flash_attention_2"), ("sdp_attention", "sdpa"),
                ("flex_attention", "flex_attention"), ("eager_attention", "eager"),
                ("xformers_attention", "xformers"))
_SCHEMAS = "src/axolotl/utils/schemas"


def detect(path: str | Path, text: str) -> bool:
    path = Path(path)
    if path.suffix.lower() not in (".yml", ".yaml"):
        return False
    keys = fw.top_keys(text)
    return "base_model" in keys or sum(k in keys for k in _SIGNS) >= 2


def read(path: str | Path, text: str) -> SourceReport:
    path = Path(path)
    col, cfg, lines = open_mapping(path, text, KIND, "an axolotl config")
    if cfg is None:
        return col.report()
    ln = lines.get
    used: set[str] = set()

    def take(key: str) -> Any:
        used.add(key)
        return cfg.get(key)

    model = take("base_model")
    if model:
        col.set("model", str(model), ln("base_model"))
    else:
        col.add("R209", "error", "base_model: missing, so there is no model to estimate",
                "add base_model: <repo id or path>", None)
    model_type = str(take("model_type") or "")
    if "SequenceClassification" in model_type:
        col.set("task", "sequence-classification", ln("model_type"))
    if take("trust_remote_code") is True:
        col.set("model_kwargs.trust_remote_code", True, ln("trust_remote_code"))

    # --- precision (resolve_dtype) -------------------------------------------------
    bf16_raw = take("bf16")
    fp16 = as_bool(take("fp16")) or False
    bfloat16 = as_bool(take("bfloat16")) or False
    float16 = as_bool(take("float16")) or False
    load_8 = as_bool(take("load_in_8bit")) or False
    load_4 = as_bool(take("load_in_4bit")) or False
    if bf16_raw is None and "bf16" not in cfg:
        bf16_raw = "auto"
        col.add("R202", "info", "bf16 not set: axolotl's default is auto "
                f"({_SCHEMAS}/config.py)", "", None)
    if bf16_raw == "auto":
        bf16 = not fp16
        if bf16:
            col.add("R202", "info", "bf16: auto read as true, as axolotl decides on a GPU with "
                    "bf16 (Ampere or newer); on a T4 or V100 it runs fp16 "
                    "(src/axolotl/utils/config/__init__.py resolve_dtype)",
                    "write bf16: true or fp16: true to say which", ln("bf16"))
    elif bf16_raw == "full":
        bf16 = True
    else:
        bf16 = bool(as_bool(bf16_raw))
    if bf16:
        fp16 = False
    if bf16 or bfloat16:
        dtype = "bfloat16"
    elif load_8 or fp16 or float16:
        dtype = "float16"
    else:
        dtype = "float32"
    col.set("model_kwargs.dtype", dtype, ln("bf16") or ln("fp16"))
    col.set("training.bf16", bool(bf16 or bfloat16), ln("bf16"))
    col.set("training.fp16", bool(fp16), ln("fp16"))
    if bfloat16 or float16:
        col.add("R202", "info", f"{'bfloat16' if bfloat16 else 'float16'}: true loads the model "
                f"in {dtype} without mixed precision (pure half precision)", "",
                ln("bfloat16") or ln("float16"))

    # --- attention ---------------------------------------------------------------
    attn = take("attn_implementation")
    for flag, impl in _LEGACY_ATTN:
        if take(flag) and not attn:
            attn = impl
            col.add("R205", "info", f"{flag}: true is axolotl's legacy spelling of "
                    f"attn_implementation: {impl} ({_SCHEMAS}/config.py)",
                    f"write attn_implementation: {impl}", ln(flag))
    if attn:
        fw.set_attn(col, str(attn), ln("attn_implementation") or _first_line(ln, _LEGACY_ATTN))

    # --- adapter and quantization -------------------------------------------------
    adapter = take("adapter")
    gptq = as_bool(take("gptq")) or False
    lora_keys = ("lora_r", "lora_alpha", "lora_dropout", "lora_target_modules",
                 "lora_target_linear", "lora_modules_to_save", "peft_use_dora", "peft_use_rslora",
                 "lora_fan_in_fan_out", "lora_model_dir", "bnb_config_kwargs")
    for k in lora_keys:
        used.add(k)
    if adapter in ("lora", "qlora"):
        _lora(col, cfg, ln)
        if gptq:
            col.set("quantization", {"quant_method": "gptq", "bits": 4}, ln("gptq"))
            col.add("R202", "info", "gptq: true uses the checkpoint's GPTQ quantization_config; "
                    "estimated as 4-bit, group size 128 (GPTQConfig's defaults)",
                    "check the model's quantize_config", ln("gptq"))
        elif adapter == "qlora" and load_4:
            quant: dict[str, Any] = {
                "load_in_4bit": True, "bnb_4bit_quant_type": "nf4",
                "bnb_4bit_use_double_quant": True, "bnb_4bit_compute_dtype": dtype,
                "bnb_4bit_quant_storage": "bfloat16"}
            extra = cfg.get("bnb_config_kwargs")
            if isinstance(extra, dict):
                for k, v in extra.items():
                    if k in ("bnb_4bit_quant_type", "bnb_4bit_use_double_quant",
                             "bnb_4bit_compute_dtype", "bnb_4bit_quant_storage",
                             "llm_int8_skip_modules"):
                        quant[k] = str(v).replace("torch.", "") if "dtype" in k or "storage" in k \
                            else v
            col.set("quantization", quant, ln("load_in_4bit"))
            col.add("R202", "info", "QLoRA base as axolotl builds it: nf4, double quantization, "
                    f"compute dtype {dtype}, quant storage bfloat16 "
                    "(src/axolotl/loaders/model.py _set_quantization_config)", "",
                    ln("adapter"))
        elif load_8:
            col.set("quantization", {"load_in_8bit": True}, ln("load_in_8bit"))
        elif load_4:
            col.add("R201", "warning", "load_in_4bit with adapter: lora is not quantized by "
                    "axolotl (only adapter: qlora builds a 4-bit BitsAndBytesConfig, "
                    "src/axolotl/loaders/model.py); estimated as a 16-bit base",
                    "write adapter: qlora for a 4-bit base", ln("adapter"))
        elif adapter == "qlora":
            col.add("R201", "warning", "adapter: qlora without load_in_4bit: true loads an "
                    "unquantized base (src/axolotl/loaders/model.py); estimated as LoRA",
                    "add load_in_4bit: true", ln("adapter"))
        if col.get("quantization") is not None:
            # axolotl casts embeddings and norms back to the load dtype after k-bit prep
            col.set("prepare_model_for_kbit_training", False, ln("adapter"))
            col.add("R202", "info", "after k-bit preparation axolotl casts embeddings and "
                    f"norms back to {dtype} (src/axolotl/loaders/model.py "
                    "_convert_embedding_modules_dtype), so the setup says "
                    "prepare_model_for_kbit_training: false (no lasting fp32 upcast)", "",
                    ln("adapter"))
    elif adapter:
        col.add("R201", "warning", f"adapter: {adapter!r} is not LoRA/QLoRA; estimated as a "
                "full fine-tune, which overstates the memory", "", ln("adapter"))
    elif load_4 or load_8:
        col.add("R204", "warning", "load_in_4bit/load_in_8bit without an adapter: a quantized "
                "base cannot be fine-tuned; estimated as a full fine-tune in "
                f"{dtype}", "add adapter: qlora (or lora for 8-bit)",
                ln("load_in_4bit") or ln("load_in_8bit"))

    # --- training ---------------------------------------------------------------
    _training(col, cfg, ln, used)

    # --- distribution -----------------------------------------------------------
    fw.distribution(col, path, cfg, ln, used)

    # --- what the schema cannot express ----------------------------------------
    _kernels(col, cfg, ln, used)

    fw.unknown_keys(col, cfg, ln, used, "axolotl", _IGNORED)
    return col.report()


def _first_line(ln: Any, flags: Any) -> int | None:
    for flag, _ in flags:
        if ln(flag):
            return int(ln(flag))
    return None


def _lora(col: Collector, cfg: dict[str, Any], ln: Any) -> None:
    r = as_int(cfg.get("lora_r"))
    if r is None:
        col.add("R204", "warning", "lora_r: not set; estimated with LoraConfig's r=8",
                "set lora_r", ln("adapter"))
        r = 8
    col.set("lora.r", r, ln("lora_r"))
    alpha = as_int(cfg.get("lora_alpha"))
    if alpha is not None:
        col.set("lora.lora_alpha", alpha, ln("lora_alpha"))
    dropout = as_float(cfg.get("lora_dropout"))
    col.set("lora.lora_dropout", dropout if dropout is not None else 0.0, ln("lora_dropout"))
    if cfg.get("lora_dropout") is None:
        col.add("R202", "info", f"lora_dropout: axolotl's default 0.0 ({_SCHEMAS}/peft.py)", "",
                None)
    targets = cfg.get("lora_target_modules")
    if as_bool(cfg.get("lora_target_linear")):
        col.set("lora.target_modules", "all-linear", ln("lora_target_linear"))
        col.add("R202", "info", "lora_target_linear: true targets every Linear but lm_head "
                "(src/axolotl/loaders/adapter.py find_all_linear_names), as PEFT's all-linear",
                "", ln("lora_target_linear"))
    elif targets:
        col.set("lora.target_modules", as_targets(targets), ln("lora_target_modules"))
    else:
        col.add("R202", "info", "no lora_target_modules and no lora_target_linear: PEFT's "
                "default targets for the architecture", "", ln("adapter"))
    if cfg.get("lora_modules_to_save"):
        col.set("lora.modules_to_save", as_list(cfg["lora_modules_to_save"]) or None,
                ln("lora_modules_to_save"))
    if as_bool(cfg.get("peft_use_dora")):
        col.set("lora.use_dora", True, ln("peft_use_dora"))
    if as_bool(cfg.get("peft_use_rslora")):
        col.set("lora.use_rslora", True, ln("peft_use_rslora"))


# axolotl key -> TrainingArguments name (src/axolotl/core/builders/base.py)
_RENAMES = {"micro_batch_size": "per_device_train_batch_size",
            "optimizer": "optim", "lr_scheduler": "lr_scheduler_type",
            "num_epochs": "num_train_epochs"}
_PASS = ("gradient_accumulation_steps", "learning_rate", "weight_decay", "max_grad_norm",
         "warmup_steps", "warmup_ratio", "max_steps", "torch_compile",
         "gradient_checkpointing_kwargs", "seed", "logging_steps", "save_steps", "eval_steps",
         "output_dir", "save_total_limit")


def _training(col: Collector, cfg: dict[str, Any], ln: Any, used: set[str]) -> None:
    for key in (*_RENAMES, *_PASS, "sequence_len", "gradient_checkpointing",
                "activation_offloading", "tf32"):
        used.add(key)
    mbs = cfg.get("micro_batch_size")
    if mbs is None:
        mbs = 1
        col.add("R202", "info", "micro_batch_size not set: axolotl's default 1 "
                f"({_SCHEMAS}/training.py)", "", None)
    col.set("training.per_device_train_batch_size", mbs, ln("micro_batch_size"))
    col.set("training.gradient_accumulation_steps", cfg.get("gradient_accumulation_steps") or 1,
            ln("gradient_accumulation_steps"))
    seq = cfg.get("sequence_len")
    if seq is None:
        seq = 512
        col.add("R202", "info", f"sequence_len not set: axolotl's default 512 "
                f"({_SCHEMAS}/config.py)", "", None)
    col.set("max_seq_length", seq, ln("sequence_len"))
    gc = cfg.get("gradient_checkpointing")
    if gc in ("offload", "offload_disk") or cfg.get("activation_offloading"):
        col.set("training.gradient_checkpointing", True,
                ln("gradient_checkpointing") or ln("activation_offloading"))
        col.add("R201", "warning", "activation offloading moves checkpointed activations to CPU "
                "memory; estimated as plain gradient checkpointing (activations kept on GPU), "
                "which overstates the peak", "", ln("gradient_checkpointing")
                or ln("activation_offloading"))
    else:
        col.set("training.gradient_checkpointing", bool(as_bool(gc)),
                ln("gradient_checkpointing"))
    optim = cfg.get("optimizer")
    if optim is None:
        optim = "adamw_torch_fused"
        col.add("R202", "info", "optimizer not set: axolotl's default adamw_torch_fused "
                f"({_SCHEMAS}/training.py)", "", None)
    fw.set_optim(col, str(optim), ln("optimizer"))
    sched = cfg.get("lr_scheduler", "cosine")
    if sched in ("one_cycle", "rex"):
        sched = "cosine"  # src/axolotl/core/builders/base.py _configure_scheduler
    if sched:
        col.training("lr_scheduler_type", str(sched), ln("lr_scheduler"), "lr_scheduler")
    lr = as_float(cfg.get("learning_rate"))
    if lr is not None:
        col.set("training.learning_rate", lr, ln("learning_rate"))
    if cfg.get("num_epochs") is not None:
        col.training("num_train_epochs", as_float(cfg["num_epochs"]), ln("num_epochs"),
                     "num_epochs")
    for key in _PASS:
        if key in ("gradient_accumulation_steps", "learning_rate") or cfg.get(key) is None:
            continue
        value = cfg[key]
        if key in ("weight_decay", "max_grad_norm", "warmup_ratio"):
            value = as_float(value)
        if key == "warmup_ratio":  # axolotl turns it into warmup_steps itself
            col.set("training.warmup_steps", value, ln(key))
        else:
            col.training(key, value, ln(key))


def _kernels(col: Collector, cfg: dict[str, Any], ln: Any, used: set[str]) -> None:
    plugins = as_list(cfg.get("plugins"))
    used.add("plugins")
    if cfg.get("sample_packing"):
        used.add("sample_packing")
        col.add("R201", "info", "sample_packing: every micro-batch row is filled to "
                "sequence_len, so the estimate at sequence_len is the memory of every step, "
                "not a worst case", "", ln("sample_packing"))
    liger = [k for k in cfg if k.startswith("liger_") and cfg[k]]
    used.update(k for k in cfg if k.startswith("liger_"))
    if liger or any("liger" in p.lower() for p in plugins):
        flce = bool(as_bool(cfg.get("liger_fused_linear_cross_entropy")))
        if flce:  # the same fused linear cross-entropy TrainingArguments(use_liger_kernel) applies
            col.set("training.use_liger_kernel", True, ln("liger_fused_linear_cross_entropy"))
        col.add("R201", "warning" if not flce else "info",
                "Liger kernels (" + (", ".join(liger) or "plugin") + "): " +
                ("the fused linear cross-entropy is passed on as training.use_liger_kernel; "
                 "Liger's RMSNorm/SwiGLU/RoPE kernels are estimated as transformers' modules "
                 "(an upper bound)" if flce else "estimated as transformers' own modules (an "
                 "upper bound)"),
                "", ln(liger[0]) if liger else ln("plugins"))
    if cfg.get("cut_cross_entropy") or any("cut_cross_entropy" in p for p in plugins):
        used.add("cut_cross_entropy")
        col.add("R201", "warning", "Cut Cross-Entropy never materialises the logits; the "
                "estimate counts them, so it overstates the logits memory", "",
                ln("cut_cross_entropy") or ln("plugins"))
    if cfg.get("rl"):
        used.add("rl")
        col.add("R201", "warning", f"rl: {cfg['rl']} holds more than one policy forward (a "
                "reference model, paired or generated sequences); estimated as supervised "
                "fine-tuning of one model, which understates the memory", "", ln("rl"))
    if cfg.get("unfrozen_parameters"):
        used.add("unfrozen_parameters")
        col.add("R201", "warning", "unfrozen_parameters trains only the listed parameters; "
                "estimated as a full fine-tune, which overstates gradients and optimizer "
                "states", "", ln("unfrozen_parameters"))
    unsloth = [k for k in cfg if k.startswith("unsloth_") and cfg[k]]
    used.update(k for k in cfg if k.startswith("unsloth_"))
    if unsloth:
        col.add("R201", "warning", f"Unsloth kernels ({', '.join(unsloth)}): estimated with "
                "PEFT's LoRA modules; Unsloth's fused kernels usually save activation memory",
                "", ln(unsloth[0]))


# axolotl keys that change nothing vramdoc estimates (data, logging, saving, hub ...)
_IGNORED = frozenset({"datasets", "test_datasets", "dataset_prepared_path", "val_set_size",
                      "special_tokens", "tokens", "wandb_project", "wandb_entity", "wandb_watch",
                      "wandb_name", "wandb_log_model", "hub_model_id", "evals_per_epoch",
                      "saves_per_epoch", "resume_from_checkpoint", "tokenizer_type",
                      "tokenizer_config", "base_model_config", "chat_template", "strict"})
