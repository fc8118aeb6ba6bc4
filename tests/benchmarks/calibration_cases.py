"""The runs of tests/benchmarks/data/calibration/measured.csv that vramdoc's setup can express.

Each case translates one CSV row's stated configuration into a setup mapping, field by field
from the row (model, method, dtype, quantization, LoRA rank/targets/dropout, optimizer, batch,
sequence length, checkpointing, attention). Nothing here is tuned to the measured value; where
the row leaves something unstated, the choice made is the documented default of the stack the
source used, written in ``why``.

Rows left out, and why:
- torchtune rows (TT*): torchtune's own training loop (no k-bit fp32 upcast, chunked
  cross-entropy, compile, activation offloading, optimizer-in-backward), not the Hugging Face
  stack this estimator models.
- Multi-GPU rows other than fms-acceleration's FSDP runs (DeepSpeed ZeRO, FSDP with CPU
  offload of other frameworks, 4- and 8-GPU runs of unstated configuration). fms' GPTQ FSDP
  runs (FMS-25/29/31/33) are in: its accelerated-peft-autogptq plugin makes GPTQ's packed
  tensors parameters that FSDP shards (``shard_quantized_tensors``, set by ``_fms``).
- PEFTMC-*: whole-process reserved peak includes periodic generation eval (batch 50, 800
  tokens), which is not a training step.
- PEFTR-*, GALORE-*, QWEN full-parameter and Q-LoRA (GPTQ Int4) rows: DeepSpeed (ZeRO-2/3
  engines with their fp16 module cast, fp32 master copies and communication buckets; CPU
  offload) and GaLore optimizers are not modelled.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

# HF Trainer's AdamW at the time of the source (transformers <= 4.5x): torch AdamW, foreach.
ADAMW_FOREACH = "adamw_torch"


def _fms(model: str, method: str, batch: int, **kw: Any) -> dict[str, Any]:
    """fms-acceleration reference runs: alpaca packed to 4096, FA2, gradient checkpointing,
    LoRA r=16 alpha=16 dropout 0.1 on q,k,v,o, HF Trainer default AdamW (adamw_torch).
    2-GPU rows: accelerate FSDP FULL_SHARD (BACKWARD_PRE prefetch), per-device batch as given,
    figures per GPU."""
    setup: dict[str, Any] = {
        "model": model,
        "stack": {"transformers": "4.48.1"},  # the benchmark's pinned refs/requirements.txt
        "model_kwargs": {"dtype": kw.get("dtype", "bfloat16"),
                         "attn_implementation": "flash_attention_2"},
        "training": {"per_device_train_batch_size": batch, "gradient_checkpointing": True,
                     "optim": ADAMW_FOREACH, "bf16": kw.get("bf16", False),
                     "fp16": kw.get("fp16", False)},
        # benchmark.py packs to max_seq_len 4096, but fms-hf-tuning 2.5.0 (the pinned
        # release) caps it: ``max_seq_length = min(train_args.max_seq_length,
        # tokenizer.model_max_length)`` (tuning/data/setup_dataprocessor.py, process_dataargs).
        # santacoder's tokenizer stops at 2048, its n_positions: a longer packed row would index
        # past the 2048 rows of its learned position embedding (wpe), which no run survives
        "max_seq_length": kw.get("max_len", 4096),
    }
    if kw.get("gpus", 1) > 1:
        setup["num_gpus"] = kw["gpus"]
        setup["training"]["fsdp"] = "full_shard auto_wrap"

    if method != "full":
        setup["lora"] = {"r": 16, "lora_alpha": 16, "lora_dropout": 0.1,
                         "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"]}
    if method == "qlora":
        # framework_config baseline-peft-bnb is fms' bnb plugin with no_peft_model: true
        # (sample-configurations/baseline-peft-bnb-nf4-sample-configuration.yaml); its
        # model_loader builds BitsAndBytesConfig(load_in_4bit, bnb_4bit_use_double_quant=True,
        # nf4, compute dtype = torch_dtype, and quant_storage = torch_dtype under FSDP)
        # (plugins/accelerated-peft/src/fms_acceleration_peft/framework_plugin_bnb.py, same
        # commit); the CSV does not record it, the loader fixes it
        setup["quantization"] = {"load_in_4bit": True, "bnb_4bit_quant_type": "nf4",
                                 "bnb_4bit_compute_dtype": "bfloat16",
                                 "bnb_4bit_use_double_quant": True}
        if kw.get("gpus", 1) > 1:
            setup["quantization"]["bnb_4bit_quant_storage"] = "bfloat16"
            # no_peft_model leaves LoRA to TRL's SFTTrainer (0.13.0 pinned), which skips
            # prepare_model_for_kbit_training when the Params4bit data sit on the CPU or meta
            # device ("is_sharded_qlora": "one should never call ... prepare_model_for_kbit_
            # training when doing QLoRA + FSDP"); under FSDP transformers 4.48 quantizes each
            # weight on the GPU and moves it to "cpu" on local rank 0, "meta" elsewhere
            # (modeling_utils._load_state_dict_into_meta_model)
            setup["prepare_model_for_kbit_training"] = False
    if method == "gptq":
        setup["quantization"] = {"quant_method": "gptq", "bits": 4, "group_size": 128}
        if kw.get("gpus", 1) > 1:
            # framework_config accelerated-peft-autogptq under FSDP views QuantLinear's int32
            # tensors as torch_dtype parameters so that FSDP shards them
            # (plugins/accelerated-peft/src/fms_acceleration_peft/framework_plugin_autogptq.py:
            # register_tensors_as_parameters_patch_rule, "if FSDP distributed need to convert
            # the AutoGPTQ model's parameters (in tensors) to parameters")
            setup["shard_quantized_tensors"] = True
    return setup


def _hfd(batch: int, *, ga: int = 1, ckpt: bool = False, fp16: bool = False,
         optim: str = "adamw_hf") -> dict[str, Any]:
    """HF docs 'Efficient training on a single GPU': bert-large-uncased classifier, random
    512-token inputs, V100, fp32 weights, eager attention; transformers v4.21 (the doc's
    commit) whose Trainer default optim was adamw_hf, with the torch of that time (1.12)."""
    return {
        "model": "bert-large-uncased", "task": "sequence-classification", "num_labels": 2,
        "stack": {"transformers": "4.21", "torch": "1.12"},
        "model_kwargs": {"dtype": "float32", "attn_implementation": "eager"},
        "training": {"per_device_train_batch_size": batch, "gradient_accumulation_steps": ga,
                     "gradient_checkpointing": ckpt, "fp16": fp16, "optim": optim},
        "max_seq_length": 512, "gpu": "V100-16GB",
    }


def _fsdpq(model: str, method: str, batch: int, seq: int, *, ddp: bool = False) -> dict[str, Any]:
    """Answer.AI fsdp_qlora benchmarks (2 GPUs, FSDP FULL_SHARD, or DDP): pure bf16 (model in
    bf16, no autocast), LoRA r=64 alpha 16 dropout 0.1 on k,q,v,up,down,gate, AdamW, gradient
    checkpointing, fixed-length dummy data; QLoRA = bnb NF4 with quant_storage bf16 and no
    prepare_model_for_kbit_training (train.py quantizes and wraps the layers itself)."""
    setup: dict[str, Any] = {
        "model": model,
        "num_gpus": 2,
        # March 2024 (train.py pins no versions; the releases of the benchmark's month):
        # transformers 4.39, whose LlamaForCausalLM loss (train.py passes labels=) shifts a
        # contiguous fp32 copy of the logits; peft 0.10, whose adapters take the base weight's
        # dtype (bf16 here, "bf16 params/states" in shared/calibration/NOTES.md)
        "stack": {"transformers": "4.39", "peft": "0.10"},
        "model_kwargs": {"dtype": "bfloat16", "attn_implementation": "sdpa"},
        "lora": {"r": 64, "lora_alpha": 16, "lora_dropout": 0.1,
                 "target_modules": ["k_proj", "q_proj", "v_proj", "up_proj", "down_proj",
                                    "gate_proj"]},
        # train.py's default reentrant_checkpointing=False wraps each decoder layer with
        # torch's checkpoint_wrapper(CheckpointImpl.NO_REENTRANT)
        "training": {"per_device_train_batch_size": batch, "gradient_checkpointing": True,
                     "gradient_checkpointing_kwargs": {"use_reentrant": False},
                     "optim": ADAMW_FOREACH},
        "max_seq_length": seq,
        # train.py's loop keeps ``output = model(...)`` (its fp32 logits under transformers
        # 4.39) until ``output = None`` after ``optimizer.step()``
        "hold_outputs": True,
    }
    # train.py wraps with torch's FullyShardedDataParallel (FSDP1): BACKWARD_PRE prefetch,
    # limit_all_gathers=True, use_orig_params=False; its "ddp" sharding strategy is FSDP's
    # NO_SHARD (benchmarks_03_2024.md: "This is still using FSDP, but in distributed data
    # parallel mode. Not DistributedDataParallel.")
    setup["training"]["fsdp"] = ("no_shard" if ddp else "full_shard") + " auto_wrap"
    setup["training"]["fsdp_config"] = {"version": 1, "backward_prefetch": "BACKWARD_PRE",
                                        "limit_all_gathers": True, "use_orig_params": False}
    if method == "qlora":
        # train.py's replace_linear builds bnb.nn.Linear4bit(compute_dtype, quant_type="nf4",
        # quant_storage) and leaves compress_statistics at Linear4bit's default, True: nested
        # (double) quantization of the absmax constants
        setup["quantization"] = {"load_in_4bit": True, "bnb_4bit_quant_type": "nf4",
                                 "bnb_4bit_compute_dtype": "bfloat16",
                                 "bnb_4bit_quant_storage": "bfloat16",
                                 "bnb_4bit_use_double_quant": True}
        setup["prepare_model_for_kbit_training"] = False
    return setup


_QWEN_TARGETS = ["c_attn", "c_proj", "w1", "w2"]


def _qwen(model: str, seq: int, *, emb: bool = False, gptq: bool = False) -> dict[str, Any]:
    """Qwen (v1) README profiling: A100-80G, batch 1, FlashAttention-2, gradient checkpointing,
    LoRA r=64 alpha 16 dropout 0.05 on c_attn,c_proj,w1,w2. LoRA rows: HF Trainer with
    --bf16 (torch autocast). Q-LoRA rows: GPTQ Int4 base under DeepSpeed ZeRO-2 with --fp16 on
    one GPU: DeepSpeed's fp16 engine runs the half model without torch autocast (its own loss
    scaler) and steps with its fused Adam (no temporaries)."""
    lora: dict[str, Any] = {"r": 64, "lora_alpha": 16, "lora_dropout": 0.05,
                            "target_modules": _QWEN_TARGETS}
    if emb:
        lora["modules_to_save"] = ["wte", "lm_head"]
    setup: dict[str, Any] = {
        "model": model,
        # README: PyTorch 2.0, CUDA 11.8; Qwen's requirements of the time: transformers 4.32
        "stack": {"transformers": "4.32", "torch": "2.0"},
        "model_kwargs": {"dtype": "float16" if gptq else "bfloat16",
                         "attn_implementation": "flash_attention_2"},
        "lora": lora,
        "training": {"per_device_train_batch_size": 1, "gradient_accumulation_steps": 8,
                     "gradient_checkpointing": True,
                     "bf16": not gptq, "fp16": False,
                     "optim": "adamw_torch_fused" if gptq else ADAMW_FOREACH},
        "max_seq_length": seq, "gpu": "A100-80GB",
    }
    if gptq:
        setup["quantization"] = {"quant_method": "gptq", "bits": 4, "group_size": 128}
    return setup


CASES: dict[str, dict[str, Any]] = {
    # --- fms-acceleration, single A100 80GB, peak allocated -----------------------------------
    "FMS-01": _fms("santacoder", "full", 4, max_len=2048),
    "FMS-03": _fms("santacoder", "full", 8, max_len=2048),
    "FMS-11": _fms("mistral-7b", "lora", 8),
    "FMS-15": _fms("mistral-7b", "qlora", 4, bf16=True),
    "FMS-17": _fms("mistral-7b", "qlora", 8, bf16=True),
    "FMS-19": _fms("mixtral-8x7b", "qlora", 4, bf16=True),
    "FMS-21": _fms("mixtral-8x7b", "qlora", 8, bf16=True),
    "FMS-24": _fms("TheBloke/Mistral-7B-v0.1-GPTQ", "gptq", 4, dtype="float16", fp16=True),
    # --- the same, 2x A100 80GB with FSDP FULL_SHARD, per GPU ----------------------------------
    "FMS-02": _fms("santacoder", "full", 2, gpus=2, max_len=2048),
    "FMS-04": _fms("santacoder", "full", 4, gpus=2, max_len=2048),
    "FMS-08": _fms("mistral-7b", "full", 4, gpus=2),
    "FMS-13": _fms("mixtral-8x7b", "lora", 2, gpus=2),
    "FMS-14": _fms("mixtral-8x7b", "lora", 4, gpus=2),
    "FMS-16": _fms("mistral-7b", "qlora", 2, bf16=True, gpus=2),
    "FMS-18": _fms("mistral-7b", "qlora", 4, bf16=True, gpus=2),
    "FMS-23": _fms("NousResearch/Llama-2-70b-hf", "qlora", 2, bf16=True, gpus=2),
    # framework_config accelerated-peft-autogptq, fp16 AMP on float16 weights
    "FMS-25": _fms("TheBloke/Mistral-7B-v0.1-GPTQ", "gptq", 2, dtype="float16", fp16=True,
                   gpus=2),
    "FMS-29": _fms("TheBloke/Mixtral-8x7B-Instruct-v0.1-GPTQ", "gptq", 2, dtype="float16",
                   fp16=True, gpus=2),
    "FMS-31": _fms("TheBloke/Mixtral-8x7B-Instruct-v0.1-GPTQ", "gptq", 4, dtype="float16",
                   fp16=True, gpus=2),
    "FMS-33": _fms("TheBloke/Llama-2-70B-GPTQ", "gptq", 2, dtype="float16", fp16=True, gpus=2),
    # --- HF docs, V100 16GB, nvidia-smi --------------------------------------------------------
    "HFD-01": _hfd(4),
    "HFD-02": _hfd(1, ga=4),
    "HFD-03": _hfd(1, ga=4, ckpt=True),
    "HFD-04": _hfd(4, fp16=True),
    "HFD-07": _hfd(1, ga=4, ckpt=True, fp16=True, optim="adafactor"),
    "HFD-08": _hfd(4, optim="adamw_bnb_8bit"),
    "HFD-09": _hfd(1, ga=4, ckpt=True, fp16=True, optim="adamw_bnb_8bit"),
    # --- fsdp_qlora (AnswerDotAI/fsdp_qlora@05ed9f2a benchmarks_03_2024.md), per GPU ----------
    "FSDPQ-03": _fsdpq("llama-2-7b", "lora", 1, 512),
    "FSDPQ-04": _fsdpq("llama-2-7b", "lora", 1, 2048),
    "FSDPQ-05": _fsdpq("llama-2-7b", "qlora", 4, 2048),
    "FSDPQ-06": _fsdpq("llama-2-7b", "qlora", 10, 2048),
    "FSDPQ-07": _fsdpq("llama-2-7b", "lora", 4, 2048),
    "FSDPQ-09": _fsdpq("llama-2-7b", "qlora", 8, 2048, ddp=True),
    "FSDPQ-11": _fsdpq("yi-34b", "qlora", 2, 2048),
}
for _id, _m, _s in [
    ("QWEN-01", "qwen-1.8b", 256), ("QWEN-02", "qwen-1.8b", 512), ("QWEN-04", "qwen-1.8b", 2048),
    ("QWEN-06", "qwen-1.8b", 8192), ("QWEN-25", "qwen-7b", 256), ("QWEN-26", "qwen-7b", 512),
    ("QWEN-28", "qwen-7b", 2048), ("QWEN-29", "qwen-7b", 4096), ("QWEN-44", "qwen-14b", 512),
    ("QWEN-45", "qwen-14b", 1024), ("QWEN-46", "qwen-14b", 2048),
]:
    CASES[_id] = _qwen(_m, _s)
for _id, _m, _s in [
    ("QWEN-07", "qwen-1.8b", 256), ("QWEN-08", "qwen-1.8b", 512), ("QWEN-10", "qwen-1.8b", 2048),
    ("QWEN-11", "qwen-1.8b", 4096), ("QWEN-12", "qwen-1.8b", 8192), ("QWEN-31", "qwen-7b", 256),
    ("QWEN-32", "qwen-7b", 512), ("QWEN-33", "qwen-7b", 1024), ("QWEN-35", "qwen-7b", 4096),
    ("QWEN-49", "qwen-14b", 256), ("QWEN-50", "qwen-14b", 512), ("QWEN-52", "qwen-14b", 2048),
    ("QWEN-54", "qwen-14b", 8192),
]:
    CASES[_id] = _qwen(_m, _s, emb=True)


# --- fms-acceleration's public rows beyond the shared calibration ----------------------------
# The same benchmark CSV (foundation-model-stack/fms-acceleration@24bdadb2
# scripts/benchmarks/refs/a100_80gb.csv, unchanged at 876e2ed) holds more measured rows than the
# shared calibration: data/fms_public/a100_80gb_rows.csv copies them (source_line: the line in
# that CSV), without the fused-kernel ("foak") configurations. They are checked, not fitted.
FMS_PUBLIC_CSV = Path(__file__).resolve().parent / "data" / "fms_public" / "a100_80gb_rows.csv"

_FMS_MODELS = {"bigcode/gpt_bigcode-santacoder": "santacoder",
               "mistralai/Mistral-7B-v0.1": "mistral-7b",
               "mistralai/Mixtral-8x7B-Instruct-v0.1": "mixtral-8x7b"}


def fms_public_case(row: dict[str, str]) -> dict[str, Any]:
    """The setup of one fms-acceleration CSV row (scenarios.yaml at the same commit)."""
    model = _FMS_MODELS.get(row["model_name_or_path"], row["model_name_or_path"])
    batch, gpus = int(row["per_device_train_batch_size"]), int(row["num_gpus"])
    kw: dict[str, Any] = {"gpus": gpus}
    if model == "santacoder":
        kw["max_len"] = 2048
    fw = row["framework_config"]
    if fw == "accelerated-peft-autogptq":
        return _fms(model, "gptq", batch, dtype="float16", fp16=True, **kw)
    if fw == "none":
        return _fms(model, "lora" if row["peft_method"] == "lora" else "full", batch, **kw)
    setup = _fms(model, "qlora", batch, bf16=True, **kw)
    if fw == "accelerated-peft-bnb":
        # the plugin's augmentation: its own _prepare_model_for_kbit_training (freezes the base
        # and enables checkpointing, without peft's fp32 upcast), then get_peft_model;
        # scenarios.yaml adds c_attn to the targets for santacoder
        # (plugins/accelerated-peft/src/fms_acceleration_peft/framework_plugin_bnb.py)
        setup["prepare_model_for_kbit_training"] = False
        setup["lora"]["target_modules"] = ["q_proj", "k_proj", "v_proj", "o_proj", "c_attn"]
    return setup


def fms_public_rows() -> list[tuple[str, dict[str, Any], float]]:
    """(id, setup, measured peak allocated GiB) of every row in FMS_PUBLIC_CSV."""
    with FMS_PUBLIC_CSV.open(newline="", encoding="utf-8") as fh:
        return [(r["id"], fms_public_case(r), int(r["mem_peak_torch_mem_alloc_in_bytes"]) / 2**30)
                for r in csv.DictReader(fh)]
