"""TrainSetup: one fine-tuning run, described with the names users already pass to Hugging Face.

A setup file (YAML or JSON) looks like::

    model: mistralai/Mistral-7B-v0.1
    task: causal-lm                  # or sequence-classification; default: the model's own
    gpu: A100-80GB
    model_kwargs: {dtype: bfloat16, attn_implementation: flash_attention_2}
    quantization: {load_in_4bit: true, bnb_4bit_quant_type: nf4, bnb_4bit_use_double_quant: true}
    lora: {r: 16, lora_alpha: 32, target_modules: [q_proj, k_proj, v_proj, o_proj]}
    training: {per_device_train_batch_size: 4, gradient_checkpointing: true, bf16: true}
    max_seq_length: 4096

Every section uses the keyword names of ``from_pretrained``, ``BitsAndBytesConfig`` /
``GPTQConfig`` / ``AwqConfig``, ``LoraConfig`` and ``TrainingArguments``. Keys those classes
accept but that do not change memory (``output_dir``, ``logging_steps`` ...) are accepted and
echoed; keys that do not exist are errors with a did-you-mean; keys transformers 5 removed
are errors naming their replacement. All problems are reported at once.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import re
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from vramdoc.errors import ConfigError, UsageError
from vramdoc.safeload import MAX_SETUP_BYTES, load_json, load_yaml, read_text, short, show

DTYPES = ("float32", "bfloat16", "float16")
DTYPE_ALIASES = {
    "fp32": "float32", "float": "float32", "float32": "float32", "torch.float32": "float32",
    "bf16": "bfloat16", "bfloat16": "bfloat16", "torch.bfloat16": "bfloat16",
    "fp16": "float16", "half": "float16", "float16": "float16", "torch.float16": "float16",
    "auto": "auto",
}
ATTN_IMPLEMENTATIONS = ("eager", "sdpa", "flash_attention_2", "flash_attention_3", "flex_attention")
TASKS = ("auto", "causal-lm", "sequence-classification")
METHODS = ("full", "lora", "qlora", "qlora-int8", "gptq-lora", "awq-lora")

# Trainer's optimizers that vramdoc models (names as in transformers' OptimizerNames).
OPTIMIZERS = (
    "adamw_torch", "adamw_torch_fused", "adamw_torch_4bit", "adamw_torch_8bit",
    "adamw_bnb_8bit", "adamw_8bit", "paged_adamw_8bit", "paged_adamw_32bit",
    "adafactor", "sgd", "adagrad", "lion_32bit", "lion_8bit", "paged_lion_8bit",
    "paged_lion_32bit", "rmsprop", "rmsprop_bnb", "rmsprop_bnb_8bit", "rmsprop_bnb_32bit",
    "adamw_anyprecision", "ademamix", "ademamix_8bit", "paged_ademamix_8bit",
    "paged_ademamix_32bit", "adamw_hf",
)
# transformers >= 5 with torch >= 2.8 defaults to the fused AdamW
# (transformers/training_args.py, `default_optim`).
DEFAULT_OPTIM = "adamw_torch_fused"

# Caps on counts, far above real use; they keep arithmetic and the planner's search bounded and
# turn a typo (an extra 000) into a message instead of a nonsense answer.
# Longest context windows shipped today are ~10M tokens (Llama 4 Scout); 2**24 = 16.8M.
MAX_SEQ_LENGTH = 2**24
# Per-device micro-batch: even 128-token sequences at 2**20 would need TBs of activations.
MAX_BATCH = 2**20
# Sequences per optimizer step (micro-batch x accumulation [x GPUs]): published LLM runs use
# up to ~16M tokens per step, i.e. thousands of sequences; 2**32 is six orders above and the
# planner factors it in 2**16 trial divisions.
MAX_EFFECTIVE_BATCH = 2**32
# Data-parallel processes: the largest training clusters reported hold ~10**5 GPUs.
MAX_NUM_GPUS = 2**20
# GPUs in one machine: 8 in NVIDIA's HGX / DGX H100 and B200 boards, 16 in the DGX-2 (V100),
# the most NVIDIA has put in one server; more per node is a missing --nodes or a typo.
MAX_GPUS_PER_NODE = 16
# Classifier outputs and LoRA ranks: no real vocabulary, label set or weight matrix comes near.
MAX_NUM_LABELS = 2**24
MAX_LORA_R = 2**16
LORA_BIASES = ("none", "all", "lora_only")  # peft LoraConfig.bias

# Keys transformers 5 removed, with what to write instead (shared/REFERENCE.md section 3).
REMOVED_TRAINING_KEYS = {
    "evaluation_strategy": "eval_strategy",
    "no_cuda": "use_cpu",
    "fp16_opt_level": "nothing (apex AMP is gone; use fp16=True or bf16=True)",
    "fp16_backend": "nothing (native AMP is the only backend)",
    "half_precision_backend": "nothing (native AMP is the only backend)",
    "overwrite_output_dir": "nothing (Trainer no longer refuses a non-empty output_dir)",
    "logging_dir": "nothing (set the logger's own directory, e.g. TENSORBOARD_LOGGING_DIR)",
    "warmup_ratio": "warmup_steps with a float in [0, 1), e.g. warmup_steps: 0.03",
    "fp16_optimization": "fp16: true (this key never existed)",
    "fp16_scale_window": "nothing (this key never existed; GradScaler's growth_interval is fixed)",
    "fp16_scale_tolerance": "nothing (this key never existed)",
}
REMOVED_MODEL_KEYS = {
    "use_flash_attention_2": "attn_implementation: flash_attention_2",
}


@cache
def hf_names() -> dict[str, Any]:
    """Valid keyword names of the Hugging Face classes (read once from shipped data)."""
    text = resources.files("vramdoc.data").joinpath("hf_names.json").read_text()
    data: dict[str, Any] = json.loads(text)
    return data


@dataclass(frozen=True)
class QuantSetup:
    """Quantization of the base model (BitsAndBytesConfig, GPTQConfig or AwqConfig names)."""

    quant_method: str = "bitsandbytes"  # bitsandbytes | gptq | awq
    bits: int = 4  # 4 or 8
    bnb_4bit_quant_type: str = "nf4"  # nf4 | fp4
    bnb_4bit_use_double_quant: bool = False
    bnb_4bit_compute_dtype: str = "float32"  # BitsAndBytesConfig's default
    bnb_4bit_quant_storage: str = "uint8"
    llm_int8_skip_modules: tuple[str, ...] = ()
    group_size: int = 128  # gptq / awq
    desc_act: bool = False  # gptq: act-order keeps a g_idx per input row
    sym: bool = True  # gptq


@dataclass(frozen=True)
class LoraSetup:
    """LoraConfig names; ``target_modules`` holds module-name suffixes or ("all-linear",)."""

    r: int = 8
    lora_alpha: int = 8
    target_modules: tuple[str, ...] = ()  # empty = PEFT's per-architecture default
    modules_to_save: tuple[str, ...] = ()
    lora_dropout: float = 0.0
    bias: str = "none"
    use_dora: bool = False
    use_rslora: bool = False


@dataclass(frozen=True)
class TrainingSetup:
    """TrainingArguments names that change memory, numerics or speed."""

    per_device_train_batch_size: int = 8
    gradient_accumulation_steps: int = 1
    gradient_checkpointing: bool = False
    use_reentrant: bool | None = None  # gradient_checkpointing_kwargs["use_reentrant"]
    bf16: bool = False
    fp16: bool = False
    optim: str = DEFAULT_OPTIM
    learning_rate: float = 5e-5
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    warmup_steps: float = 0
    lr_scheduler_type: str = "linear"
    logging_nan_inf_filter: bool = True
    torch_compile: bool = False
    # TrainingArguments fsdp options, space-joined ("full_shard auto_wrap"); "" = no FSDP
    fsdp: str = ""
    # Liger kernels (Trainer patches the model): the fused linear cross-entropy never
    # materialises the logits (vramdoc.estimate.liger)
    use_liger_kernel: bool = False
    # TrainingArguments fsdp_config and deepspeed, each as canonical JSON text of the mapping
    # ("" = not given; a deepspeed path is read when the setup is parsed). Read them through
    # vramdoc.estimate.fsdp.fsdp_options and vramdoc.estimate.zero.zero_options.
    fsdp_config: str = ""
    deepspeed: str = ""
    # Accepted TrainingArguments keys that do not change memory, echoed back as given.
    extra: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True)
class TrainSetup:
    """One fine-tuning run. ``lora is None`` means a full fine-tune."""

    model: str
    task: str = "auto"  # auto = the model's natural task (causal-lm; encoders: classification)
    num_labels: int = 2
    torch_dtype: str = "auto"  # from_pretrained(dtype=...): auto = the checkpoint's dtype
    attn_implementation: str = "sdpa"
    # from_pretrained(use_cache=...): None keeps the checkpoint config's (True for decoders).
    # A forward without checkpointing fills the KV cache when it is on (and GPTBigCode before
    # transformers 4.53 with checkpointing too: vramdoc.estimate.stack)
    use_cache: bool | None = None
    quantization: QuantSetup | None = None
    lora: LoraSetup | None = None
    prepare_model_for_kbit_training: bool = True  # applies only to k-bit bases
    # the training loop keeps the model's output (its logits) alive through backward and the
    # optimizer step, as a hand-written loop does that assigns ``output = model(...)`` and
    # drops it after ``optimizer.step()`` (Answer.AI fsdp_qlora train.py); HF Trainer's
    # compute_loss returns only the loss, so the output is freed before backward
    hold_outputs: bool = False
    # the loader makes GPTQ / AWQ layers' packed tensors (qweight, qzeros, scales, g_idx)
    # float-typed parameters that FSDP shards, as fms-acceleration's accelerated-peft autogptq
    # plugin does (``register_tensors_as_parameters_patch_rule``); transformers keeps them as
    # buffers, which FSDP leaves whole on every rank (the default)
    shard_quantized_tensors: bool = False
    training: TrainingSetup = field(default_factory=TrainingSetup)
    max_seq_length: int = 512
    gpu: str | None = None
    num_gpus: int = 1  # data-parallel world size (processes, one GPU each), all nodes together
    nodes: int = 1  # machines the num_gpus processes run on (accelerate's num_machines)
    # from_pretrained(device_map=..., max_memory=...) when they place layers on the CPU: the
    # GPU 0 budget in bytes ("auto"/"sequential" placement, vramdoc.estimate.placement);
    # 0 = everything on the GPU
    max_memory_gpu_bytes: int = 0
    # The software stack the run uses: "5" (current) or an older transformers release such as
    # "4.48.1". Older releases differ in ways that change memory (see vramdoc.estimate.stack).
    transformers_version: str = "5"
    torch_version: str = "2.13"
    peft_version: str = "0.21"

    # --- convenience views -------------------------------------------------------------
    @property
    def method(self) -> str:
        """full | lora | qlora | qlora-int8 | gptq-lora | awq-lora."""
        if self.lora is None:
            return "full"
        q = self.quantization
        if q is None:
            return "lora"
        if q.quant_method == "bitsandbytes":
            return "qlora" if q.bits == 4 else "qlora-int8"
        return f"{q.quant_method}-lora"

    @property
    def is_kbit(self) -> bool:
        return self.quantization is not None

    @property
    def effective_batch_size(self) -> int:
        t = self.training
        return t.per_device_train_batch_size * t.gradient_accumulation_steps

    def replace(self, **changes: Any) -> TrainSetup:
        return dataclasses.replace(self, **changes)

    def replace_training(self, **changes: Any) -> TrainSetup:
        return dataclasses.replace(self, training=dataclasses.replace(self.training, **changes))


# --------------------------------------------------------------------------------------
# Reading setups
# --------------------------------------------------------------------------------------

_TOP_KEYS = (
    "model", "task", "num_labels", "gpu", "num_gpus", "model_kwargs", "quantization", "lora",
    "training", "max_seq_length", "prepare_model_for_kbit_training", "stack", "nodes",
    "hold_outputs", "shard_quantized_tensors",
)
FSDP_OPTIONS = ("full_shard", "shard_grad_op", "hybrid_shard", "hybrid_shard_zero2", "no_shard",
                "offload", "auto_wrap")
_VERSION_RE = re.compile(r"^\d+(\.\d+){0,2}$")
_TOP_ALIASES = {"max_seq_len": "max_seq_length", "seq_len": "max_seq_length",
                "quantization_config": "quantization", "peft": "lora", "lora_config": "lora",
                "training_args": "training", "training_arguments": "training"}
_MODEL_KWARGS = ("dtype", "torch_dtype", "attn_implementation", "use_cache", "device_map",
                 "max_memory", "trust_remote_code", "revision", "low_cpu_mem_usage")


def _did_you_mean(key: Any, known: list[str] | tuple[str, ...]) -> str:
    close = difflib.get_close_matches(str(key)[:200], list(known), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def normalize_dtype(value: Any, where: str, problems: list[str], allow_auto: bool = True) -> str:
    key = value.strip().lower() if isinstance(value, str) else None
    dtype = DTYPE_ALIASES.get(key) if key is not None else None
    if dtype is None or (dtype == "auto" and not allow_auto):
        opts = ", ".join(DTYPES + (("auto",) if allow_auto else ()))
        problems.append(f"{where}: {show(value)} is not a dtype; use one of {opts}")
        return "float32"
    return dtype


def _as_tuple(value: Any, where: str = "", problems: list[str] | None = None) -> tuple[str, ...]:
    """A module-name list: one name or a list of names (text, not empty)."""
    if value is None:
        return ()
    items = [value] if isinstance(value, str) else (
        value if isinstance(value, list | tuple) else None)
    if items is None or not all(isinstance(v, str) and v.strip() for v in items):
        if problems is not None:
            problems.append(f"{where}: {show(value)} is not a module name or a list of names; "
                            "write e.g. [q_proj, v_proj]")
        return ()
    return tuple(items)


def _whole(value: Any) -> bool:
    """A finite whole number (int, or a float such as 8.0), not a bool."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return isinstance(value, int) or (math.isfinite(value) and value == int(value))


def _positive_int(value: Any, where: str, problems: list[str], cap: int | None = None) -> int:
    if not _whole(value):
        quoted = " (a quoted text; write the number without quotes)" if isinstance(
            value, str) else ""
        problems.append(f"{where}: {show(value)} is not a whole number{quoted}")
        return 1
    if value <= 0:
        problems.append(f"{where}: must be larger than zero, got {show(value)}")
        return 1
    if cap is not None and value > cap:
        problems.append(f"{where}: {int(value):,} is more than vramdoc plans for (at most "
                        f"{cap:,}); check for a typo")
        return 1
    return int(value)


def _bool(value: Any, where: str, problems: list[str]) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        problems.append(f"{where}: {show(value)} is text, not true or false; write "
                        f"{where.rsplit('.', 1)[-1]}: {value.strip().lower()} without quotes"
                        if value.strip().lower() in ("true", "false") else
                        f"{where}: {show(value)} is text, not true or false; write true or "
                        "false without quotes")
    else:
        problems.append(f"{where}: {show(value)} is not true or false")
    return False


def _opt_bool(data: dict[str, Any], key: str, default: bool, where: str,
              problems: list[str]) -> bool:
    """``data[key]`` as a strict boolean (absent or null: ``default``)."""
    value = data.get(key)
    return default if value is None else _bool(value, where, problems)


def _number(value: Any, where: str, problems: list[str], *, low: float = 0.0,
            high: float | None = None, high_open: bool = False) -> float | None:
    """A finite number in [low, high] (or [low, high) with ``high_open``); None when refused."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        quoted = " (a quoted text; write the number without quotes, e.g. 2e-4)" if isinstance(
            value, str) else ""
        problems.append(f"{where}: {show(value)} is not a number{quoted}")
        return None
    top = "" if high is None else f" and {'<' if high_open else '<='} {high:g}"
    if (not math.isfinite(value) or value < low or (high is not None and (
            value >= high if high_open else value > high))):
        problems.append(f"{where}: {show(value)} must be a finite number >= {low:g}{top}")
        return None
    return value


def _string(value: Any, where: str, problems: list[str], default: str) -> str:
    """Text (a name); a number, list or mapping is refused."""
    if value is None:
        return default
    if not isinstance(value, str):
        problems.append(f"{where}: {show(value)} is not a name; write it as text")
        return default
    return value


def _keyed(value: dict[Any, Any], where: str, problems: list[str]) -> dict[str, Any]:
    """The mapping with its text keys; every non-text key (1, null, true) is a problem."""
    out: dict[str, Any] = {}
    for k, v in value.items():
        if isinstance(k, str):
            out[k] = v
        else:
            key = {None: "null", True: "true", False: "false"}.get(k, show(k))  # as in YAML
            problems.append(f"{where}{'.' if where else ''}{key}: the key {key} is not a name "
                            "(YAML reads 1, null, true, 1.5 as values); write a key name")
    return out


def _parse_quant(q: Any, problems: list[str]) -> QuantSetup | None:
    if q is None or q is False:
        return None
    if not isinstance(q, dict):
        problems.append("quantization: expected a mapping of BitsAndBytesConfig/GPTQConfig keys")
        return None
    q = _keyed(q, "quantization", problems)
    method = _string(q.pop("quant_method", ""), "quantization.quant_method", problems, "").lower()
    names = hf_names()
    if method in ("gptq", "awq"):
        known = names["GPTQConfig"] if method == "gptq" else names["AwqConfig"]
        bits = q.get("bits", 4)
        out = QuantSetup(quant_method=method, bits=4)
        for k, _v in q.items():
            if k not in known:
                problems.append(f"quantization.{k}: not a {method.upper()} key"
                                f"{_did_you_mean(k, known)}")
        if isinstance(bits, bool) or bits != 4:
            problems.append(f"quantization.bits: vramdoc models {method} 4-bit bases, got "
                            f"{show(bits)}")
        gs = q.get("group_size", 128)
        if isinstance(gs, bool) or gs != -1:
            gs = _positive_int(gs, "quantization.group_size", problems)
        return dataclasses.replace(
            out, group_size=int(gs),
            desc_act=_opt_bool(q, "desc_act", False, "quantization.desc_act", problems),
            sym=_opt_bool(q, "sym", True, "quantization.sym", problems))
    if method not in ("", "bitsandbytes"):
        problems.append(f"quantization.quant_method: {method!r} is not supported; "
                        "use bitsandbytes (load_in_4bit / load_in_8bit), gptq or awq")
        return None
    known = names["BitsAndBytesConfig"]
    for k in q:
        if k not in known:
            problems.append(
                f"quantization.{k}: not a BitsAndBytesConfig key{_did_you_mean(k, known)}"
            )
    four = _opt_bool(q, "load_in_4bit", False, "quantization.load_in_4bit", problems)
    eight = _opt_bool(q, "load_in_8bit", False, "quantization.load_in_8bit", problems)
    if four and eight:
        problems.append("quantization: load_in_4bit and load_in_8bit are both true; choose one")
    if not four and not eight:
        if any(not isinstance(q.get(k), bool | None) for k in ("load_in_4bit", "load_in_8bit")):
            return None  # already reported as not true or false
        problems.append("quantization: set load_in_4bit: true or load_in_8bit: true "
                        "(or remove the section for a 16/32-bit base)")
        return None
    qt = _string(q.get("bnb_4bit_quant_type"), "quantization.bnb_4bit_quant_type", problems,
                 "nf4").lower()
    if qt not in ("nf4", "fp4"):
        problems.append(f"quantization.bnb_4bit_quant_type: {show(qt)} must be nf4 or fp4")
    storage = _string(q.get("bnb_4bit_quant_storage"), "quantization.bnb_4bit_quant_storage",
                      problems, "uint8").replace("torch.", "").lower()
    if storage not in ("uint8", "int8", "float16", "bfloat16", "float32"):
        problems.append(f"quantization.bnb_4bit_quant_storage: {show(storage)} is not a "
                        "storage dtype")
    compute = normalize_dtype(q.get("bnb_4bit_compute_dtype", "float32"),
                              "quantization.bnb_4bit_compute_dtype", problems, allow_auto=False)
    return QuantSetup(
        quant_method="bitsandbytes", bits=4 if four else 8, bnb_4bit_quant_type=qt,
        bnb_4bit_use_double_quant=_opt_bool(q, "bnb_4bit_use_double_quant", False,
                                            "quantization.bnb_4bit_use_double_quant", problems),
        bnb_4bit_compute_dtype=compute, bnb_4bit_quant_storage=storage,
        llm_int8_skip_modules=_as_tuple(q.get("llm_int8_skip_modules"),
                                        "quantization.llm_int8_skip_modules", problems),
    )


def _parse_lora(lo: Any, problems: list[str]) -> LoraSetup | None:
    if lo is None or lo is False:
        return None
    if not isinstance(lo, dict):
        problems.append("lora: expected a mapping of LoraConfig keys")
        return None
    lo = _keyed(lo, "lora", problems)
    known = hf_names()["LoraConfig"]
    for k in lo:
        if k not in known:
            problems.append(f"lora.{k}: not a LoraConfig key{_did_you_mean(k, known)}")
    r = _positive_int(lo.get("r", 8), "lora.r", problems, cap=MAX_LORA_R)
    tm = lo.get("target_modules")
    targets = ("all-linear",) if tm == "all-linear" else _as_tuple(
        tm, "lora.target_modules", problems)
    dropout = _number(lo.get("lora_dropout", 0.0), "lora.lora_dropout", problems, high=1.0,
                      high_open=True)
    bias = _string(lo.get("bias"), "lora.bias", problems, "none")
    if bias not in LORA_BIASES:
        problems.append(f"lora.bias: {show(bias)} must be one of {', '.join(LORA_BIASES)}")
    return LoraSetup(
        r=r, lora_alpha=_positive_int(lo.get("lora_alpha", 8), "lora.lora_alpha", problems),
        target_modules=targets,
        modules_to_save=_as_tuple(lo.get("modules_to_save"), "lora.modules_to_save", problems),
        lora_dropout=float(dropout or 0.0), bias=bias,
        use_dora=_opt_bool(lo, "use_dora", False, "lora.use_dora", problems),
        use_rslora=_opt_bool(lo, "use_rslora", False, "lora.use_rslora", problems),
    )


_TRAINING_FIELDS = {f.name for f in dataclasses.fields(TrainingSetup)} - {"extra", "use_reentrant"}


def _engine_json(key: str, value: Any, problems: list[str]) -> str:
    """``training.fsdp_config`` / ``training.deepspeed``: a mapping or the path of a JSON file
    (TrainingArguments accepts both), kept as canonical JSON text."""
    if value is None or value == "" or value == {}:
        return ""
    if isinstance(value, str | Path):
        try:
            text = read_text(value, what=f"training.{key} file", max_bytes=MAX_SETUP_BYTES,
                             hint="")
            value = load_json(text, str(value))
        except UsageError as exc:
            problems.append(f"training.{key}: {exc.message}; give a mapping or the path of a "
                            "JSON file")
            return ""
    if not isinstance(value, dict):
        problems.append(f"training.{key}: expected a mapping or the path of a JSON file")
        return ""
    return json.dumps(value, sort_keys=True)


def _parse_training(t: Any, problems: list[str]) -> TrainingSetup:
    if t is None:
        return TrainingSetup()
    if not isinstance(t, dict):
        problems.append("training: expected a mapping of TrainingArguments keys")
        return TrainingSetup()
    t = _keyed(t, "training", problems)
    known = hf_names()["TrainingArguments"]
    values: dict[str, Any] = {}
    extra: list[tuple[str, Any]] = []
    for k, v in t.items():
        if k in REMOVED_TRAINING_KEYS:
            problems.append(f"training.{k}: removed in transformers 5; use "
                            f"{REMOVED_TRAINING_KEYS[k]}")
        elif k in ("activation_checkpointing", "activation_checkpointing_kwargs"):
            # transformers 5.23 renamed gradient_checkpointing(_kwargs); both names mean one thing
            key = k.replace("activation_", "gradient_")
            if key == "gradient_checkpointing":
                values[key] = v
            else:
                _reentrant(v, f"training.{k}", values, problems)
        elif k == "fsdp":
            if v is None or v is False:
                opts: list[Any] = []
            elif isinstance(v, str):
                opts = v.split()
            elif isinstance(v, list):
                opts = v
            else:
                problems.append(f"training.fsdp: {show(v)} is not a list of FSDP options; write "
                                "e.g. fsdp: full_shard auto_wrap")
                opts = []
            bad = [o for o in opts if not isinstance(o, str) or o not in FSDP_OPTIONS]
            if bad:  # "" (TrainingArguments' old default) means no FSDP, as in transformers
                named = list(dict.fromkeys(show(o) for o in bad))  # each once, at most 5
                problems.append(f"training.fsdp: {', '.join(named[:5])}"
                                f"{' ...' if len(named) > 5 else ''} "
                                f"not an FSDP option; use {', '.join(FSDP_OPTIONS)}")
            kinds = sorted({o for o in opts if isinstance(o, str) and o in FSDP_OPTIONS[:5]})
            if len(kinds) > 1:  # one sharding strategy per run (accelerate's sharding_strategy)
                problems.append(f"training.fsdp: {' and '.join(kinds)} are two sharding "
                                "strategies; choose one")
            values["fsdp"] = " ".join(str(o) for o in opts if o not in bad)
        elif k in ("fsdp_config", "deepspeed"):
            values[k] = _engine_json(k, v, problems)
        elif k == "gradient_checkpointing_kwargs":
            _reentrant(v, "training.gradient_checkpointing_kwargs", values, problems)
        elif k in _TRAINING_FIELDS:
            values[k] = v
        elif k in known:
            not_plain = _not_plain(v)
            if not_plain:
                problems.append(f"training.{k}: {show(v)} {not_plain}")
            else:
                extra.append((k, v))
        else:
            problems.append(f"training.{k}: not a TrainingArguments key{_did_you_mean(k, known)}")
    for k, cap in (("per_device_train_batch_size", MAX_BATCH),
                   ("gradient_accumulation_steps", MAX_EFFECTIVE_BATCH)):
        if k in values:
            values[k] = _positive_int(values[k], f"training.{k}", problems, cap)
    for k in ("gradient_checkpointing", "bf16", "fp16", "logging_nan_inf_filter", "torch_compile",
              "use_liger_kernel"):
        if k in values:
            values[k] = _bool(values[k], f"training.{k}", problems)
    for k in ("learning_rate", "weight_decay", "max_grad_norm", "warmup_steps"):
        if k in values and _number(values[k], f"training.{k}", problems) is None:
            values.pop(k)
    if "lr_scheduler_type" in values:
        values["lr_scheduler_type"] = _string(values["lr_scheduler_type"],
                                              "training.lr_scheduler_type", problems, "linear")
    if "optim" in values:
        opt = _string(values["optim"], "training.optim", problems, DEFAULT_OPTIM)
        if opt not in OPTIMIZERS:
            problems.append(f"training.optim: {show(opt)} is not an optimizer vramdoc models"
                            f"{_did_you_mean(opt, OPTIMIZERS)}; one of: {', '.join(OPTIMIZERS)}")
        values["optim"] = opt
    if values.get("bf16") and values.get("fp16"):
        problems.append("training: bf16 and fp16 are both true; choose one")
    if (values.get("per_device_train_batch_size", 1) * values.get("gradient_accumulation_steps", 1)
            > MAX_EFFECTIVE_BATCH):
        problems.append(f"training: per_device_train_batch_size x gradient_accumulation_steps (the "
                        f"effective batch) is more than vramdoc plans for (at most "
                        f"{MAX_EFFECTIVE_BATCH:,}); check for a typo")
    return TrainingSetup(**values, extra=tuple(extra))


def _placement_budget(mk: dict[str, Any], problems: list[str]) -> int:
    """GPU 0's ``max_memory`` budget when ``device_map`` lets accelerate place layers (0: none).

    A ``max_memory`` without an automatic ``device_map`` does nothing in from_pretrained."""
    mm = mk.get("max_memory")
    if mm is None:
        return 0
    if mk.get("device_map") not in ("auto", "sequential", "balanced", "balanced_low_0"):
        problems.append("model_kwargs.max_memory: only used with device_map auto / sequential / "
                        "balanced; add device_map: auto")
        return 0
    if not isinstance(mm, dict):
        problems.append("model_kwargs.max_memory: expected a mapping such as {0: 6GiB, cpu: 30GiB}")
        return 0
    gpu = mm.get(0, mm.get("0", mm.get("cuda:0")))
    if gpu is None:
        problems.append("model_kwargs.max_memory: give GPU 0's budget, e.g. {0: 6GiB, cpu: 30GiB}")
        return 0
    from vramdoc.units import parse_size

    try:
        return parse_size(gpu, what="model_kwargs.max_memory[0]")
    except UsageError as exc:
        problems.append(exc.message)
        return 0


def _major(data: dict[str, Any]) -> int:
    stack = data.get("stack")
    version = str(stack.get("transformers", "5")) if isinstance(stack, dict) else "5"
    head = version.split(".")[0]
    return int(head) if head.isdigit() else 5


def _not_plain(value: Any, depth: int = 0) -> str:
    """Why an echoed value cannot be written back as JSON/YAML ("" when it can): NaN and
    infinities, YAML dates and timestamps, binary, non-text keys."""
    if value is None or isinstance(value, bool | int | str):
        return ""
    if isinstance(value, float):
        return "" if math.isfinite(value) else "is not a finite number"
    if depth < 8 and isinstance(value, list | tuple):
        return next((w for w in (_not_plain(v, depth + 1) for v in value) if w), "")
    if depth < 8 and isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            return "has a key that is not a name"
        return next((w for w in (_not_plain(v, depth + 1) for v in value.values()) if w), "")
    return (f"is a {type(value).__name__} to YAML, not a number, text or list; quote it"
            if depth < 8 else "nests too deeply")


def _reentrant(v: Any, where: str, values: dict[str, Any], problems: list[str]) -> None:
    """``gradient_checkpointing_kwargs``: a mapping whose ``use_reentrant`` is read."""
    if v is None:
        return
    if not isinstance(v, dict):
        problems.append(f"{where}: {show(v)} is not a mapping; write e.g. "
                        "{use_reentrant: false}")
        return
    v = _keyed(v, where, problems)
    if v.get("use_reentrant") is not None:
        values["use_reentrant"] = _bool(v["use_reentrant"], f"{where}.use_reentrant", problems)


def setup_from_mapping(data: Any, source: str = "config") -> TrainSetup:
    """Build and validate a TrainSetup from a parsed YAML/JSON mapping.

    Raises:
        ConfigError: listing every problem found, not only the first.
    """
    problems: list[str] = []
    if not isinstance(data, dict):
        raise ConfigError(["the file must hold a mapping (key: value pairs) at the top"], source)
    data = {_TOP_ALIASES.get(k, k): v for k, v in _keyed(data, "", problems).items()}
    for k in data:
        if k not in _TOP_KEYS:
            problems.append(f"{k}: unknown key{_did_you_mean(k, _TOP_KEYS)}; "
                            f"known keys: {', '.join(_TOP_KEYS)}")
    model = data.get("model")
    if not isinstance(model, str) or not model.strip():
        what = "missing" if model is None or model == "" else f"{show(model)} is not a name"
        problems.append(f"model: {what}; give a catalog name (vramdoc models), a Hugging Face "
                        "repo id or a path to config.json")
        model = ""
    task = _string(data.get("task"), "task", problems, "auto")
    if task not in TASKS:
        problems.append(f"task: {show(task)} must be one of {', '.join(TASKS)}")
    mk = data.get("model_kwargs") or {}
    if not isinstance(mk, dict):
        problems.append("model_kwargs: expected a mapping of from_pretrained keywords")
        mk = {}
    mk = _keyed(mk, "model_kwargs", problems)
    for k in mk:
        if k in REMOVED_MODEL_KEYS:
            problems.append(f"model_kwargs.{k}: removed in transformers 5; use "
                            f"{REMOVED_MODEL_KEYS[k]}")
        elif k not in _MODEL_KWARGS:
            problems.append(f"model_kwargs.{k}: not a from_pretrained keyword vramdoc reads"
                            f"{_did_you_mean(k, _MODEL_KWARGS)}")
    dtype = normalize_dtype(mk.get("dtype", mk.get("torch_dtype", "auto")),
                            "model_kwargs.dtype", problems)
    attn = _string(mk.get("attn_implementation"), "model_kwargs.attn_implementation", problems,
                   "sdpa")
    if attn not in ATTN_IMPLEMENTATIONS:
        problems.append(f"model_kwargs.attn_implementation: {show(attn)} must be one of "
                        f"{', '.join(ATTN_IMPLEMENTATIONS)}")
    max_gpu = _placement_budget(mk, problems)
    use_cache = None if mk.get("use_cache") is None else _bool(
        mk["use_cache"], "model_kwargs.use_cache", problems)
    quant = _parse_quant(data.get("quantization"), problems)
    lora = _parse_lora(data.get("lora"), problems)
    training = _parse_training(data.get("training"), problems)
    seq = _positive_int(data.get("max_seq_length", 512), "max_seq_length", problems,
                        MAX_SEQ_LENGTH)
    num_labels = _positive_int(data.get("num_labels", 2), "num_labels", problems, MAX_NUM_LABELS)
    num_gpus = _positive_int(data.get("num_gpus", 1), "num_gpus", problems, MAX_NUM_GPUS)
    gpu_raw = data.get("gpu")
    if isinstance(gpu_raw, str) and gpu_raw.strip():
        from vramdoc.parallel import split_gpu_count

        try:
            count, name = split_gpu_count(gpu_raw)
        except ValueError as exc:
            problems.append(f"gpu: {show(gpu_raw)}: {exc}")
            count, name = None, gpu_raw
        if count is not None:
            if "num_gpus" in data and num_gpus != count:
                problems.append(f"gpu: {show(gpu_raw)} says {count} GPUs but num_gpus says "
                                f"{num_gpus}; give the count once")
            num_gpus = count
            data = {**data, "gpu": name}
    if training.fsdp and num_gpus == 1 and "num_gpus" not in " ".join(problems):
        problems.append("training.fsdp: sharding needs num_gpus > 1 (the data-parallel world size)")
    nodes = _positive_int(data.get("nodes", 1), "nodes", problems, MAX_NUM_GPUS)
    if num_gpus % nodes:
        problems.append(f"nodes: {nodes} machines cannot share {num_gpus} GPUs evenly; num_gpus "
                        "counts the GPUs of all nodes together")
    elif num_gpus // nodes > MAX_GPUS_PER_NODE:
        problems.append(f"num_gpus: {num_gpus:,} GPUs on {nodes:,} node(s) is "
                        f"{num_gpus // nodes:,} per node; a machine holds at most "
                        f"{MAX_GPUS_PER_NODE} (8 in HGX/DGX, 16 in DGX-2): set nodes (--nodes) "
                        f"to the machines the run spans, e.g. nodes: "
                        f"{-(-num_gpus // 8):,} for 8 GPUs each")
    if max_gpu and num_gpus > 1:
        problems.append("model_kwargs.max_memory: device_map placement splits one process's "
                        "model over GPU and CPU; it does not combine with num_gpus > 1 (use "
                        "FSDP or DeepSpeed offload instead)")
    if training.fsdp and training.deepspeed:
        problems.append("training: fsdp and deepspeed are both set; choose one engine")
    if training.fsdp or training.deepspeed or training.fsdp_config:
        from vramdoc.parallel import engine_problems

        problems.extend(engine_problems(training, tf_major=_major(data)))
    gpu = data.get("gpu")
    if gpu is not None and (not isinstance(gpu, str) or not gpu.strip()):
        problems.append(f"gpu: {show(gpu)} is not a GPU; write a catalog name or a size as text, "
                        "e.g. gpu: A100-80GB or gpu: 24GB (see `vramdoc gpus`)")
        gpu = None
    if quant is not None and lora is None:
        problems.append("quantization without lora: a quantized base cannot be fine-tuned "
                        "directly (Trainer refuses it); add a lora section, or drop quantization "
                        "for a full fine-tune")
    kbit_prep = _opt_bool(data, "prepare_model_for_kbit_training", True,
                          "prepare_model_for_kbit_training", problems)
    hold_outputs = _opt_bool(data, "hold_outputs", False, "hold_outputs", problems)
    shard_q = _opt_bool(data, "shard_quantized_tensors", False, "shard_quantized_tensors",
                        problems)
    if shard_q and (quant is None or quant.quant_method not in ("gptq", "awq")):
        problems.append("shard_quantized_tensors: only GPTQ / AWQ bases keep packed tensors "
                        "FSDP could shard; add quantization {quant_method: gptq, ...} or drop "
                        "the key (bitsandbytes weights are parameters already: set "
                        "bnb_4bit_quant_storage instead)")
    elif shard_q and not (training.fsdp and num_gpus > 1):
        problems.append("shard_quantized_tensors: the packed tensors are sharded by FSDP only; "
                        "set training.fsdp (full_shard auto_wrap) and num_gpus > 1, or drop "
                        "the key")
    stack = data.get("stack") or {}
    tf_version, torch_version = "5", "2.13"
    peft_version = "0.21"
    if isinstance(stack, dict):
        stack = _keyed(stack, "stack", problems)
        if "peft" in stack:
            stack = dict(stack)
            peft_version = _version(stack.pop("peft"), "stack.peft", problems) or "0.21"
            if not _VERSION_RE.match(peft_version) or int(peft_version.split(".")[0]) > 9:
                problems.append(f"stack.peft: {show(peft_version)} is not a peft release such "
                                "as 0.10")
                peft_version = "0.21"
    if not isinstance(stack, dict) or set(stack) - {"transformers", "torch"}:
        problems.append("stack: expected {transformers: VERSION, torch: VERSION}, "
                        "e.g. {transformers: \"4.48.1\", torch: \"2.4\"}")
    else:
        tf_version = _version(stack.get("transformers", "5"), "stack.transformers", problems)
        torch_version = _version(stack.get("torch", "2.13"), "stack.torch", problems)
        if tf_version and (not _VERSION_RE.match(tf_version)
                           or not 4 <= int(tf_version.split(".")[0]) <= 9):
            problems.append(f"stack.transformers: {show(tf_version)} is not a transformers "
                            "release such as 4.48.1 or 5")
        if torch_version and (not _VERSION_RE.match(torch_version)
                              or not 1 <= int(torch_version.split(".")[0]) <= 9):
            problems.append(f"stack.torch: {show(torch_version)} is not a torch release such as "
                            "2.4")
        tf_version, torch_version = tf_version or "5", torch_version or "2.13"
    if (training.optim == "adamw_hf" and _VERSION_RE.match(tf_version)
            and int(tf_version.split(".")[0]) >= 5):
        problems.append("training.optim: adamw_hf was removed in transformers 5; use "
                        "adamw_torch_fused (or say stack: {transformers: 4.x} for an older run)")
    if problems:
        raise ConfigError(problems, source, "fix the keys above; see README 'Setup files'")
    return TrainSetup(
        model=model, task=task, num_labels=num_labels, torch_dtype=dtype,
        attn_implementation=attn, use_cache=use_cache, quantization=quant, lora=lora,
        prepare_model_for_kbit_training=kbit_prep, hold_outputs=hold_outputs,
        shard_quantized_tensors=shard_q,
        training=training,
        max_seq_length=seq, gpu=str(gpu) if gpu is not None else None, num_gpus=num_gpus,
        nodes=nodes, max_memory_gpu_bytes=max_gpu, transformers_version=tf_version,
        torch_version=torch_version, peft_version=peft_version,
    )


def _setup_from_reader(p: Path) -> TrainSetup:
    """A file in another format (a script, a framework config): read by vramdoc.readers."""
    from vramdoc.readers import read_source

    report = read_source(p)
    if report.setup is None:
        said = [f.message for f in report.findings if f.severity != "info"]
        raise UsageError(f"{p}: no training setup found in this {report.kind} file"
                         + (f" ({said[0]})" if said else ""),
                         f"`vramdoc doctor {p}` lists what was read")
    if not report.setup.get("model"):
        raise UsageError(f"{p}: the model is not named literally in this {report.kind} file",
                         f"`vramdoc doctor {p} --model NAME --emit yaml > setup.yaml`, then "
                         "use setup.yaml")
    return setup_from_mapping(report.setup, source=str(p))


def _version(value: Any, where: str, problems: list[str]) -> str:
    """A release number as text. YAML reads 4.50 as the float 4.5, so floats are refused."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, float) and math.isfinite(value):
        problems.append(f"{where}: {value!r} is a number, and numbers lose trailing zeros "
                        "(4.50 is read as 4.5); write the release in quotes, e.g. "
                        f"{where.split('.')[-1]}: \"{value!r}0\" or \"{value!r}\"")
    else:
        problems.append(f"{where}: {show(value)} is not a release; write it in quotes, "
                        "e.g. \"4.48.1\"")
    return ""


def load_setup_file(path: str | Path) -> TrainSetup:
    """Read a YAML or JSON setup file, or any file a reader of vramdoc.readers recognises
    (a training script, a notebook, an axolotl / LLaMA-Factory / TRL config ...).

    Raises:
        UsageError: the file cannot be read, is not UTF-8, or does not parse (see
            :mod:`vramdoc.safeload` for the limits).
        ConfigError: the setup's keys and values, every problem listed.
    """
    p = Path(path)
    hint = "give the path of a YAML or JSON setup (see README 'Setup files')"
    if p.suffix.lower() not in (".yaml", ".yml", ".json"):
        read_text(path, what="setup file", max_bytes=MAX_SETUP_BYTES, hint=hint)
        return _setup_from_reader(p)
    text = read_text(path, what="setup file", max_bytes=MAX_SETUP_BYTES, hint=hint)
    source = short(str(p))
    data = load_json(text, source) if p.suffix.lower() == ".json" else load_yaml(text, source)
    if isinstance(data, dict) and data and not any(
            isinstance(k, str) and (k in _TOP_KEYS or k in _TOP_ALIASES) for k in data):
        from vramdoc.readers import reader_for

        if reader_for(p, text) is not None:  # a framework's config, not the setup schema
            return _setup_from_reader(p)
    return setup_from_mapping(data, source=source)


def setup_to_mapping(setup: TrainSetup) -> dict[str, Any]:
    """The setup as a mapping in the file format (round-trips through setup_from_mapping)."""
    out: dict[str, Any] = {"model": setup.model, "task": setup.task}
    if setup.task == "sequence-classification":
        out["num_labels"] = setup.num_labels
    if setup.gpu:
        out["gpu"] = setup.gpu
    if setup.num_gpus != 1:
        out["num_gpus"] = setup.num_gpus
    if setup.nodes != 1:
        out["nodes"] = setup.nodes
    out["model_kwargs"] = {"dtype": setup.torch_dtype,
                           "attn_implementation": setup.attn_implementation}
    if setup.use_cache is not None:
        out["model_kwargs"]["use_cache"] = setup.use_cache
    if setup.max_memory_gpu_bytes:
        out["model_kwargs"].update(device_map="auto",
                                   max_memory={0: f"{setup.max_memory_gpu_bytes}B"})
    q = setup.quantization
    if q is not None:
        if q.quant_method == "bitsandbytes":
            qd: dict[str, Any] = {f"load_in_{q.bits}bit": True}
            if q.bits == 4:
                qd.update(bnb_4bit_quant_type=q.bnb_4bit_quant_type,
                          bnb_4bit_use_double_quant=q.bnb_4bit_use_double_quant,
                          bnb_4bit_compute_dtype=q.bnb_4bit_compute_dtype,
                          bnb_4bit_quant_storage=q.bnb_4bit_quant_storage)
            if q.llm_int8_skip_modules:
                qd["llm_int8_skip_modules"] = list(q.llm_int8_skip_modules)
        else:
            qd = {"quant_method": q.quant_method, "bits": q.bits, "group_size": q.group_size}
            if q.quant_method == "gptq":
                qd.update(desc_act=q.desc_act, sym=q.sym)
        out["quantization"] = qd
        out["prepare_model_for_kbit_training"] = setup.prepare_model_for_kbit_training
    lo = setup.lora
    if lo is not None:
        ld: dict[str, Any] = {"r": lo.r, "lora_alpha": lo.lora_alpha}
        if lo.target_modules == ("all-linear",):
            ld["target_modules"] = "all-linear"
        elif lo.target_modules:
            ld["target_modules"] = list(lo.target_modules)
        if lo.modules_to_save:
            ld["modules_to_save"] = list(lo.modules_to_save)
        ld.update(lora_dropout=lo.lora_dropout, bias=lo.bias)
        if lo.use_dora:
            ld["use_dora"] = True
        if lo.use_rslora:
            ld["use_rslora"] = True
        out["lora"] = ld
    t = setup.training
    td: dict[str, Any] = {}
    for f in dataclasses.fields(TrainingSetup):
        if f.name in ("extra", "use_reentrant") or (
                f.name in ("fsdp", "fsdp_config", "deepspeed", "use_liger_kernel")
                and not getattr(t, f.name)):
            continue
        value = getattr(t, f.name)
        td[f.name] = json.loads(value) if f.name in ("fsdp_config", "deepspeed") else value
    if t.use_reentrant is not None:
        td["gradient_checkpointing_kwargs"] = {"use_reentrant": t.use_reentrant}
    td.update(dict(t.extra))
    out["training"] = td
    out["max_seq_length"] = setup.max_seq_length
    if setup.hold_outputs:
        out["hold_outputs"] = True
    if setup.shard_quantized_tensors:
        out["shard_quantized_tensors"] = True
    stack_out = {}
    if setup.transformers_version != "5":
        stack_out["transformers"] = setup.transformers_version
    if setup.torch_version != "2.13":
        stack_out["torch"] = setup.torch_version
    if setup.peft_version != "0.21":
        stack_out["peft"] = setup.peft_version
    if stack_out:
        out["stack"] = stack_out
    return out
