"""The Hugging Face snippet for a plan: what people paste into their training script.

Targets transformers 5 / peft: ``dtype=`` (not the deprecated ``torch_dtype=``),
``attn_implementation=``, ``BitsAndBytesConfig`` (or a GPTQ/AWQ checkpoint, whose
quantization config travels with it), ``prepare_model_for_kbit_training``, ``LoraConfig`` +
``get_peft_model``, and ``TrainingArguments`` with only arguments transformers 5 has
(``activation_checkpointing`` replaced ``gradient_checkpointing``; ``warmup_steps`` takes a
ratio as a float since ``warmup_ratio`` was removed). Each memory-relevant line carries a
comment, with the code of the rule behind it.
"""

from __future__ import annotations

from typing import Any

from vramdoc.units import format_bytes

TORCH_DTYPE = {"float32": "torch.float32", "bfloat16": "torch.bfloat16",
               "float16": "torch.float16"}


def _fmt(v: Any) -> str:
    return repr(v)


def _codes(plan: Any) -> set[str]:
    return {f.code for f in plan.findings}


def _cite(codes: set[str], *wanted: str) -> str:
    got = [c for c in wanted if c in codes]
    return f" ({', '.join(got)})" if got else ""


def lora_target_names(setup: Any, spec: Any) -> list[str] | str | None:
    """Explicit target module names for the snippet: ``"all-linear"``, the setup's names, or
    PEFT's per-architecture default (None when the architecture has none listed)."""
    lo = setup.lora
    if lo is None:
        return None
    if lo.target_modules == ("all-linear",):
        return "all-linear"
    if lo.target_modules:
        return list(lo.target_modules)
    import json
    from importlib import resources

    try:
        data = json.loads(resources.files("vramdoc.data").joinpath("peft_defaults.json")
                          .read_text())
        names = data.get("default_lora_targets", {}).get(spec.model_type)
    except (OSError, ValueError):
        names = None
    return list(names) if names else None


def training_kwargs(plan: Any) -> list[tuple[str, Any, str]]:
    """(TrainingArguments name, value, comment) in emission order."""
    s = plan.setup
    t = s.training
    codes = _codes(plan)
    applied = {key.split(".", 1)[1]: code for code, key, _old, _new in plan.applied}
    out: list[tuple[str, Any, str]] = [("output_dir", "out", "")]
    mb, ga = t.per_device_train_batch_size, t.gradient_accumulation_steps
    out.append(("per_device_train_batch_size", mb,
                f"micro-batch: activation memory scales with it{_cite(codes, 'M214')}"))
    out.append(("gradient_accumulation_steps", ga,
                f"{mb} x {ga} = effective batch {mb * ga}"))
    if t.gradient_checkpointing:
        out.append(("activation_checkpointing", True,
                    f"keep one input per layer, recompute in backward{_cite(codes, 'M205')}"))
    if t.bf16:
        out.append(("bf16", True, "bf16 autocast: 16-bit activations, no loss scaling"
                    + _cite(codes, "M201", "T309")))
    if t.fp16:
        out.append(("fp16", True, "fp16 autocast with dynamic loss scaling"
                    + _cite(codes, "M202", "T310")))
    if t.use_liger_kernel:
        out.append(("use_liger_kernel", True, "Liger's fused linear cross-entropy: no b x s x "
                    f"vocab logits (pip install liger-kernel){_cite(codes, 'M216')}"))
    optim_note = {32: "32-bit states", 16: "16-bit states (like the bf16 params)",
                  8: "8-bit states, ~2 B/param", 4: "4-bit states, ~1 B/param"}
    from vramdoc.planner.space import OPTIM_INFO, optim_state_bits

    bits = OPTIM_INFO.get(t.optim, (32, False, False, False))
    pdtype = s.torch_dtype if s.lora is None else "float32"
    note = optim_note.get(optim_state_bits(t.optim, pdtype) or 0, "factored states")
    if bits[1]:
        note += ", paged to CPU under pressure"
    out.append(("optim", t.optim, note + _cite(codes, "M207", "M208", "M209", "T313")))
    for name in ("learning_rate", "lr_scheduler_type", "warmup_steps", "max_grad_norm",
                 "weight_decay"):
        value = getattr(t, name)
        code = applied.get(name)
        out.append((name, value, f"rule {code}" if code else ""))
    out += engine_kwargs(s)
    for k, v in t.extra:
        if k not in {n for n, _v, _c in out}:
            out.append((k, v, ""))
    out.append(("logging_steps", 10, "watch loss and grad_norm"))
    return out


def engine_kwargs(s: Any) -> list[tuple[str, Any, str]]:
    """TrainingArguments' fsdp / fsdp_config / deepspeed for a multi-GPU setup, in the form
    transformers 5 prefers (``fsdp=True`` + ``fsdp_config``; the DeepSpeed file of the kit)."""
    import json

    t = s.training
    if t.deepspeed:
        from vramdoc.parallel import zero_options

        zo = zero_options(s)
        stage = zo.stage if zo is not None else 0
        return [("deepspeed", "ds_config.json",
                 f"DeepSpeed ZeRO-{stage} (vramdoc plan --out writes the file)")]
    if not t.fsdp:
        return []
    from vramdoc.parallel import fsdp_options

    o = fsdp_options(t)
    assert o is not None
    cfg: dict[str, Any] = {} if o.version == 2 else {"version": 1}
    if o.version == 2:
        cfg["reshard_after_forward"] = o.reshard_after_forward
    else:
        cfg["reshard_after_forward"] = o.strategy.lower().lstrip("_")
    if o.cpu_offload:
        cfg["cpu_offload"] = True
    given = json.loads(t.fsdp_config) if t.fsdp_config else {}
    cfg.update({(k[5:] if k.startswith("fsdp_") else k): v for k, v in given.items()
                if k not in ("version", "fsdp_version")})
    return [("fsdp", True, f"FSDP{o.version} over {s.num_gpus} GPUs"),
            ("fsdp_config", cfg, "")]


def render_python(plan: Any, spec: Any, gpu: Any) -> str:
    """The snippet for one plan (a complete, importable Python module)."""
    s = plan.setup
    est = plan.estimate
    codes = _codes(plan)
    classif = s.task == "sequence-classification"
    auto = "AutoModelForSequenceClassification" if classif else "AutoModelForCausalLM"
    q = s.quantization
    bnb = q is not None and q.quant_method == "bitsandbytes"
    lines = [
        f"# vramdoc plan: {plan.label}",
        f"# GPU: {gpu.name}, {format_bytes(gpu.memory_bytes)}. Predicted: "
        f"{format_bytes(est.peak_allocated_bytes)} peak allocated ({est.peak_phase}), "
        f"{format_bytes(est.device_bytes)} device view, {format_bytes(plan.headroom_bytes)} "
        f"free after a {format_bytes(plan.margin_bytes)} margin.",
        "# Rules behind it: " + (", ".join(sorted(codes)) or "none")
        + " (vramdoc rules show CODE).",
        "import torch",
    ]
    imports = [auto, "TrainingArguments"]
    if bnb:
        imports.insert(1, "BitsAndBytesConfig")
    lines.append(f"from transformers import {', '.join(imports)}")
    if s.lora is not None:
        peft_names = ["LoraConfig", "get_peft_model"]
        if q is not None and s.prepare_model_for_kbit_training:
            peft_names.append("prepare_model_for_kbit_training")
        lines.append(f"from peft import {', '.join(peft_names)}")
    lines.append("")
    if q is not None and not bnb:
        lines.append(f"# a {q.quant_method.upper()} 4-bit checkpoint of {spec.hf_id or spec.name}"
                     " (its quantization_config travels with it)")
        lines.append(f"model_id = {(spec.hf_id or spec.name) + '-' + q.quant_method.upper()!r}"
                     "  # replace with the quantized repo you use")
    else:
        lines.append(f"model_id = {spec.hf_id or spec.name!r}")
    lines.append(f"max_seq_length = {s.max_seq_length}  # tokenize/pack to this length: "
                 "activation memory assumes it")
    lines.append("")
    if bnb:
        assert q is not None
        lines.append("bnb_config = BitsAndBytesConfig(")
        if q.bits == 4:
            lines.append("    load_in_4bit=True,")
            lines.append(f"    bnb_4bit_quant_type={q.bnb_4bit_quant_type!r},  # NF4: 4-bit "
                         f"NormalFloat{_cite(codes, 'M211', 'M213')}")
            lines.append(f"    bnb_4bit_use_double_quant={q.bnb_4bit_use_double_quant},  "
                         f"# 8-bit absmax constants: 0.127 instead of 0.5 bit/param"
                         f"{_cite(codes, 'M211', 'M212')}")
            lines.append(f"    bnb_4bit_compute_dtype={TORCH_DTYPE[q.bnb_4bit_compute_dtype]},"
                         f"  # matmuls after dequantization{_cite(codes, 'H113', 'H114')}")
        else:
            lines.append("    load_in_8bit=True,  # LLM.int8 base, ~1 byte per weight")
        lines.append(")")
    lines.append(f"model = {auto}.from_pretrained(")
    lines.append("    model_id,")
    if classif:
        lines.append(f"    num_labels={s.num_labels},")
    if bnb:
        lines.append("    quantization_config=bnb_config,")
    dtype = s.torch_dtype if s.torch_dtype != "auto" else spec.checkpoint_dtype
    weight_note = {"float32": "fp32 weights (master copy for mixed precision)",
                   "bfloat16": "bf16 weights", "float16": "fp16 weights"}[dtype]
    if q is not None:
        weight_note = "dtype of the unquantized parts"
    lines.append(f"    dtype={TORCH_DTYPE[dtype]},  # {weight_note}"
                 f"{_cite(codes, 'M217', 'H102', 'H107')}")
    attn_note = {"flash_attention_2": "FlashAttention-2: O(s) memory, fastest on sm80+",
                 "sdpa": "fused SDPA kernel: no s x s score matrix",
                 "eager": "materializes a x s^2 scores per layer"}.get(
        s.attn_implementation, "")
    lines.append(f"    attn_implementation={s.attn_implementation!r},  # {attn_note}"
                 f"{_cite(codes, 'M203', 'M204', 'H103')}")
    if q is not None:
        lines.append('    device_map={"": 0},  # quantized weights load straight onto GPU 0')
    lines.append(")")
    if s.lora is not None:
        if q is not None and s.prepare_model_for_kbit_training:
            lines.append("# upcasts norms, embeddings and head to fp32; turns on gradient "
                         f"checkpointing{_cite(codes, 'M219', 'M205')}")
            # peft's default (True) is what the estimate assumes for bitsandbytes/GPTQ bases
            lines.append("model = prepare_model_for_kbit_training(model, "
                         "use_gradient_checkpointing=True)")
        elif q is not None:
            lines.append("# prepare_model_for_kbit_training skipped: embeddings, norms and head "
                         f"stay {dtype}{_cite(codes, 'M222')}")
            lines.append("model.enable_input_require_grads()  # checkpointed blocks of a frozen "
                         "base need inputs that require grad")
        lo = s.lora
        targets = lora_target_names(s, spec)
        lines.append("lora_config = LoraConfig(")
        lines.append(f"    r={lo.r},  # adapter rank: r x (in + out) parameters per module"
                     f"{_cite(codes, 'M210', 'T312')}")
        lines.append(f"    lora_alpha={lo.lora_alpha},  # update scaled by alpha/r = "
                     f"{lo.lora_alpha / lo.r:g}{_cite(codes, 'T311')}")
        lines.append(f"    lora_dropout={lo.lora_dropout},")
        if targets is not None:
            lines.append(f"    target_modules={targets!r},{_comment_targets(targets, codes)}")
        if lo.modules_to_save:
            lines.append(f"    modules_to_save={list(lo.modules_to_save)!r},")
        if lo.use_rslora:
            lines.append("    use_rslora=True,")
        if lo.use_dora:
            lines.append("    use_dora=True,  # DoRA: a magnitude vector per module and the "
                         "weight norm in every step")
        lines.append(f"    task_type={'SEQ_CLS' if classif else 'CAUSAL_LM'!r},")
        lines.append(")")
        lines.append("model = get_peft_model(model, lora_config)")
        lines.append("model.print_trainable_parameters()")
    lines.append("")
    lines.append("args = TrainingArguments(")
    for name, value, comment in training_kwargs(plan):
        tail = f"  # {comment}" if comment else ""
        lines.append(f"    {name}={_fmt(value)},{tail}")
    lines.append(")")
    lines.append("# trainer = Trainer(model=model, args=args, train_dataset=...); trainer.train()")
    return "\n".join(lines) + "\n"


def _comment_targets(targets: Any, codes: set[str]) -> str:
    if targets == "all-linear":
        return f"  # every linear layer of the blocks{_cite(codes, 'M221')}"
    return "  # PEFT's default targets for this architecture"
