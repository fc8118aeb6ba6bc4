"""Build the model a setup trains, the way the emitted snippet does, on meta, fake or real tensors.

Order, as in the usual Hugging Face recipe (and vramdoc's emitted snippet):
``from_pretrained(dtype, attn_implementation, quantization_config)`` ->
``prepare_model_for_kbit_training`` -> ``get_peft_model(LoraConfig)`` -> Trainer's
``activation_checkpointing_enable``. Weights are random (memory does not depend on values).

Two routes:
- real (``cpu`` / ``cuda``): ``from_config`` on the device (or ``from_pretrained(--weights)``),
  bitsandbytes quantizes for real through transformers' own quantizer (``replace_with_bnb_linear``
  + ``Params4bit(...).to(device)``, exactly what ``Bnb4bitQuantize`` does while loading).
- fake: the same steps on the ``meta`` device (transformers' quantizer swaps in meta
  ``Linear4bit`` modules whose packed weight gets its real shape and dtype; k-bit preparation
  and PEFT run on meta), then :func:`materialize_fake` swaps fake tensors in by hand, because
  ``Module.to()`` cannot swap fake parameters (shared/REFERENCE.md section 2), and replaces
  bitsandbytes layers with same-layout stand-ins (:mod:`vramdoc.probe.standins`).
"""

from __future__ import annotations

import contextlib
import copy
import functools
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from vramdoc.errors import UsageError
from vramdoc.probe import standins
from vramdoc.setup import TrainSetup

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
# Attention kernels a CPU build of torch cannot run. Their saved tensors (output + fp32
# logsumexp per row) are what SDPA's flash kernel saves, so the trace runs SDPA instead.
_GPU_ONLY_ATTENTION = ("flash_attention_2", "flash_attention_3")


@dataclass
class BuiltModel:
    """What the recipe trains, plus the handles it needs."""

    model: nn.Module  # the trained module (a PeftModel for LoRA)
    hf_model: nn.Module  # the transformers PreTrainedModel inside
    load_dtype: torch.dtype
    attn_implementation: str
    n_params: int
    n_trainable: int
    notes: list[str] = field(default_factory=list)
    quantized_bnb: bool = False

    @property
    def output_module(self) -> nn.Module | None:
        """The module that produces the logits (lm_head / classifier)."""
        get = getattr(self.hf_model, "get_output_embeddings", None)
        head = get() if get is not None else None
        if head is None:
            for name in ("score", "classifier", "cls"):
                if hasattr(self.hf_model, name):
                    return getattr(self.hf_model, name)  # type: ignore[no-any-return]
        return head

    def decoder_layers(self) -> list[nn.Module]:
        """The repeated transformer blocks, in order."""
        from transformers.modeling_layers import GradientCheckpointingLayer

        return [m for m in self.hf_model.modules() if isinstance(m, GradientCheckpointingLayer)]


def hf_config(model_type: str, config: dict[str, Any], setup: TrainSetup) -> Any:
    """The transformers config object for a model spec's config mapping."""
    from transformers import AutoConfig

    kwargs = {k: v for k, v in copy.deepcopy(config).items()
              if k not in ("model_type", "transformers_version", "architectures",
                           "torch_dtype", "dtype", "quantization_config", "auto_map")}
    try:
        cfg = AutoConfig.for_model(model_type, **kwargs)
    except Exception as exc:  # unknown model_type, or a config value transformers rejects
        text = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
        raise UsageError(f"transformers cannot build this {model_type!r} config: "
                         f"{text or type(exc).__name__}",
                         "vramdoc probe needs an architecture transformers ships and a valid "
                         "config") from None
    if setup.task == "sequence-classification":
        cfg.num_labels = setup.num_labels
        if getattr(cfg, "pad_token_id", None) is None:
            cfg.pad_token_id = 0  # batched classification needs it; synthetic ids never pad
    return cfg


def load_dtype(setup: TrainSetup, checkpoint_dtype: str) -> torch.dtype:
    """from_pretrained's dtype: the setup's, or the checkpoint's for ``auto``."""
    name = checkpoint_dtype if setup.torch_dtype == "auto" else setup.torch_dtype
    return DTYPES.get(name, torch.float32)


def _auto_class(setup: TrainSetup, cfg: Any) -> Any:
    import transformers

    if setup.task == "sequence-classification":
        return transformers.AutoModelForSequenceClassification
    try:
        transformers.AutoModelForCausalLM._model_mapping[type(cfg)]
        return transformers.AutoModelForCausalLM
    except KeyError:
        return transformers.AutoModelForMaskedLM  # encoders (BERT): the LM head they have


def _attn(setup: TrainSetup, device: str, notes: list[str]) -> str:
    attn = setup.attn_implementation
    if device != "cuda" and attn in _GPU_ONLY_ATTENTION:
        notes.append(f"{attn} needs a CUDA GPU: traced with sdpa, whose saved tensors are the "
                     "same (output + fp32 logsumexp), so activation bytes are modelled")
        return "sdpa"
    if attn == "flex_attention":
        notes.append("flex_attention traced with sdpa (same saved tensors for causal masks)")
        return "sdpa"
    return attn


def _bnb_config(setup: TrainSetup, dtype: torch.dtype) -> Any:
    from transformers import BitsAndBytesConfig

    q = setup.quantization
    assert q is not None
    if q.bits == 8:
        return BitsAndBytesConfig(load_in_8bit=True,
                                  llm_int8_skip_modules=list(q.llm_int8_skip_modules) or None)
    return BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_quant_type=q.bnb_4bit_quant_type,
        bnb_4bit_use_double_quant=q.bnb_4bit_use_double_quant,
        bnb_4bit_compute_dtype=DTYPES[q.bnb_4bit_compute_dtype],
        bnb_4bit_quant_storage=getattr(torch, q.bnb_4bit_quant_storage),
        llm_int8_skip_modules=list(q.llm_int8_skip_modules) or None)


def _linear_shape(module: nn.Module) -> tuple[int, int]:
    from transformers.pytorch_utils import Conv1D

    if isinstance(module, Conv1D):
        i, o = module.weight.shape
        return int(i), int(o)
    return int(module.in_features), int(module.out_features)


def _quantize_bnb(model: nn.Module, setup: TrainSetup, dtype: torch.dtype, real: bool) -> Any:
    """Swap nn.Linear for bitsandbytes layers with transformers' own quantizer.

    On real tensors the weights are quantized the way ``Bnb4bitQuantize`` does at load time;
    on meta the packed weight gets its real shape and dtype so that k-bit preparation and
    PEFT see what they would see on a GPU.
    """
    import bitsandbytes as bnb
    from transformers.quantizers import AutoHfQuantizer

    q = setup.quantization
    assert q is not None
    originals = {n: (m.weight, m.bias) for n, m in model.named_modules()
                 if isinstance(m, nn.Linear) or type(m).__name__ == "Conv1D"}
    quantizer = AutoHfQuantizer.from_config(_bnb_config(setup, dtype), pre_quantized=False)
    quantizer.preprocess_model(model, device_map={"": "cpu"}, dtype=dtype)
    for name, mod in model.named_modules():
        if not isinstance(mod, bnb.nn.Linear4bit | bnb.nn.Linear8bitLt):
            continue
        w, b = originals[name]
        if getattr(mod, "source_cls", None) is not None and mod.source_cls.__name__ == "Conv1D":
            w = w.t()
        if b is not None:
            mod._parameters["bias"] = nn.Parameter(b.data, requires_grad=False)
        if isinstance(mod, bnb.nn.Linear4bit):
            attrs = dict(mod.weight.__dict__)
            if real:
                attrs.pop("module", None)
                new = bnb.nn.Params4bit(w.data.contiguous(), requires_grad=False, module=mod,
                                        **attrs).to(w.device)
            else:
                storage = attrs.get("quant_storage", torch.uint8)
                n = w.numel()
                item = torch.empty((), dtype=storage, device="meta").element_size()
                packed = torch.empty((((n + 1) // 2) // item, 1), dtype=storage, device="meta")
                attrs.update(bnb_quantized=True, module=mod)
                new = bnb.nn.Params4bit(packed, requires_grad=False, **attrs)
                mod.vramdoc_weight_dtype = w.dtype
            mod._parameters["weight"] = new
        else:
            if real:
                new = bnb.nn.Int8Params(w.data.to("cpu"), requires_grad=False,
                                        has_fp16_weights=False).to(w.device)
            else:
                new = bnb.nn.Int8Params(torch.empty(w.shape, dtype=torch.int8, device="meta"),
                                        requires_grad=False, has_fp16_weights=False)
            mod._parameters["weight"] = new
    quantizer.postprocess_model(model)
    model.hf_quantizer = quantizer
    return quantizer


def _quantize_group(model: nn.Module, setup: TrainSetup, device: str | torch.device) -> None:
    """GPTQ / AWQ base: the same Linears bitsandbytes would replace get a stand-in."""
    from transformers.pytorch_utils import Conv1D
    from transformers.quantizers.base import get_keys_to_not_convert

    q = setup.quantization
    assert q is not None
    skip = set(get_keys_to_not_convert(model))
    for name, mod in list(model.named_modules()):
        if name in skip or not (type(mod) is nn.Linear or isinstance(mod, Conv1D)):
            continue
        i, o = _linear_shape(mod)
        new = standins.GroupQuantLinear(i, o, mod.bias, method=q.quant_method,
                                        group_size=q.group_size, desc_act=q.desc_act,
                                        device=device)
        model.set_submodule(name, new)
    model.quantization_method = q.quant_method  # what peft's prepare_model_for_kbit_training reads
    model.is_quantized = True


def _lora_config(setup: TrainSetup) -> Any:
    from peft import LoraConfig, TaskType

    lo = setup.lora
    assert lo is not None
    targets: Any = None
    if lo.target_modules == ("all-linear",):
        targets = "all-linear"
    elif lo.target_modules:
        targets = list(lo.target_modules)
    task = TaskType.SEQ_CLS if setup.task == "sequence-classification" else TaskType.CAUSAL_LM
    return LoraConfig(r=lo.r, lora_alpha=lo.lora_alpha, target_modules=targets,
                      modules_to_save=list(lo.modules_to_save) or None,
                      lora_dropout=lo.lora_dropout, bias=lo.bias, use_dora=lo.use_dora,
                      use_rslora=lo.use_rslora, task_type=task)


def _finish(model: nn.Module, setup: TrainSetup, notes: list[str]) -> nn.Module:
    """k-bit preparation, LoRA and checkpointing, in the snippet's order."""
    t = setup.training
    gc_kwargs = {} if t.use_reentrant is None else {"use_reentrant": t.use_reentrant}
    if setup.quantization is not None and setup.prepare_model_for_kbit_training:
        from peft import prepare_model_for_kbit_training

        # Called as the usual QLoRA recipe calls it, with peft's default
        # use_gradient_checkpointing=True: k-bit preparation turns checkpointing on whatever
        # TrainingArguments says (the estimator assumes the same).
        model = prepare_model_for_kbit_training(model, gradient_checkpointing_kwargs=gc_kwargs)
        if not t.gradient_checkpointing and getattr(model, "is_activation_checkpointing", False):
            notes.append("prepare_model_for_kbit_training turned gradient checkpointing on "
                         "(peft's default use_gradient_checkpointing=True)")
    if setup.lora is not None:
        from peft import get_peft_model

        model = get_peft_model(model, _lora_config(setup))
    if t.gradient_checkpointing:
        # Trainer: model.activation_checkpointing_enable(activation_checkpointing_kwargs=...)
        enable = getattr(model, "activation_checkpointing_enable", None)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            if enable is not None:
                enable(activation_checkpointing_kwargs=gc_kwargs or None)
            else:
                model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=gc_kwargs or None)
    model.train()
    return model


def _hf_inner(model: nn.Module) -> nn.Module:
    get_base = getattr(model, "get_base_model", None)
    return get_base() if get_base is not None else model


def _counts(model: nn.Module) -> tuple[int, int]:
    seen: set[int] = set()
    total = trainable = 0
    for p in model.parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        n = p.numel()
        if p.dtype == torch.uint8 and type(p).__name__ == "Params4bit":
            n *= 2  # two 4-bit weights per byte
        total += n
        trainable += n if p.requires_grad else 0
    return total, trainable


def preload(setup: TrainSetup, model_type: str, config: dict[str, Any]) -> None:
    """Import everything the build touches before the tracker starts.

    Some modules create tensors at import time (bitsandbytes' 4-bit tables, peft's default
    arguments); imported under the tracker they would count as resident memory.
    """
    with _compile_on_first_call():
        import accelerate.utils  # noqa: F401
        import peft  # noqa: F401
        import peft.tuners.loha.layer  # noqa: F401
        import transformers.optimization  # noqa: F401 - the optimizer and its schedule
        import transformers.trainer_optimizer  # noqa: F401
        from transformers.modeling_layers import GradientCheckpointingLayer  # noqa: F401

        if setup.quantization is not None:
            import bitsandbytes  # noqa: F401
            import bitsandbytes.backends.utils  # noqa: F401
            import bitsandbytes.optim  # noqa: F401
    cfg = hf_config(model_type, config, setup)
    auto = _auto_class(setup, cfg)
    auto._model_mapping[type(cfg)]  # imports the modeling module


@contextlib.contextmanager
def _compile_on_first_call() -> Iterator[None]:
    """While the libraries import, ``torch.compile`` compiles on the first call.

    bitsandbytes wraps its CPU fallback kernels in ``torch.compile`` when it is imported
    (bitsandbytes/backends/default/ops.py, ``_try_torch_compile``), which imports
    torch._inductor: about 2 s of CPU in every probe, though a fake-tensor probe never runs
    those kernels (stand-ins replace them). The wrapper returned here calls the real
    ``torch.compile`` the first time the function runs, with the same arguments, so a run
    that uses a kernel gets the same compiled function, later.
    """
    original = torch.compile

    def compile_later(model: Any = None, **kwargs: Any) -> Any:
        if model is None:  # used as @torch.compile(...)
            return lambda fn: compile_later(fn, **kwargs)
        compiled: Any = None

        @functools.wraps(model)
        def call(*args: Any, **kw: Any) -> Any:
            nonlocal compiled
            if compiled is None:
                compiled = original(model, **kwargs)
            return compiled(*args, **kw)

        return call

    torch.compile = compile_later  # type: ignore[assignment]
    try:
        yield
    finally:
        torch.compile = original


def build_meta(setup: TrainSetup, model_type: str, config: dict[str, Any],
               checkpoint_dtype: str) -> BuiltModel:
    """The whole setup on the ``meta`` device (nothing allocated), ready for materialize_fake."""
    notes: list[str] = []
    dtype = load_dtype(setup, checkpoint_dtype)
    cfg = hf_config(model_type, config, setup)
    attn = _attn(setup, "fake", notes)
    with torch.device("meta"):
        model = _auto_class(setup, cfg).from_config(cfg, dtype=dtype, attn_implementation=attn)
    q = setup.quantization
    if q is not None and q.quant_method == "bitsandbytes":
        _quantize_bnb(model, setup, dtype, real=False)
    elif q is not None:
        _quantize_group(model, setup, "meta")
    # PEFT creates its adapters on the CPU and initialises them there before moving them
    # to the base layer's device: on meta they are created there (same shapes and dtypes)
    # and their random initialisation costs nothing
    with torch.device("meta"):
        model = _finish(model, setup, notes)
    total, trainable = _counts(model)
    return BuiltModel(model, _hf_inner(model), dtype, attn, total, trainable, notes,
                      quantized_bnb=q is not None and q.quant_method == "bitsandbytes")


def materialize_fake(built: BuiltModel) -> None:
    """Swap every meta tensor for a fake cpu tensor (call under FakeTensorMode + tracker).

    bitsandbytes layers become same-layout stand-ins; tied parameters stay tied.
    """
    import bitsandbytes as bnb

    model = built.model
    swaps: list[tuple[nn.Module, str, nn.Module]] = []
    for parent in model.modules():
        for name, child in parent.named_children():
            if isinstance(child, bnb.nn.Linear4bit):
                w = child.weight
                stand: nn.Module = standins.PackedLinear4bit(
                    child.in_features, child.out_features, child.bias,
                    weight_dtype=getattr(child, "vramdoc_weight_dtype", built.load_dtype),
                    compute_dtype=child.compute_dtype, double_quant=bool(w.compress_statistics),
                    quant_storage=w.quant_storage, quant_type=w.quant_type)
                swaps.append((parent, name, stand))
            elif isinstance(child, bnb.nn.Linear8bitLt):
                stand = standins.Int8Linear(child.in_features, child.out_features, child.bias)
                swaps.append((parent, name, stand))
    for parent, name, stand in swaps:
        setattr(parent, name, stand)
    if any(isinstance(s, standins.PackedLinear4bit) and s.double_quant for _, _, s in swaps):
        # bitsandbytes keeps one device copy of its dynamic map for all layers
        # (functional.quantize_blockwise: name2qmap["dynamic"]).
        model.vramdoc_dynamic_map = torch.empty(256, dtype=torch.float32)
    memo: dict[int, Any] = {}
    for mod in model.modules():
        for name, p in list(mod._parameters.items()):
            if p is None or p.device.type != "meta":
                continue
            if id(p) not in memo:
                memo[id(p)] = nn.Parameter(torch.empty(p.shape, dtype=p.dtype),
                                           requires_grad=p.requires_grad)
            mod._parameters[name] = memo[id(p)]
        for name, b in list(mod._buffers.items()):
            if b is None or b.device.type != "meta":
                continue
            if id(b) not in memo:
                memo[id(b)] = torch.zeros(b.shape, dtype=b.dtype)
            mod._buffers[name] = memo[id(b)]


def build_real(setup: TrainSetup, model_type: str, config: dict[str, Any], checkpoint_dtype: str,
               device: str, weights: str | None = None) -> BuiltModel:
    """The setup on real tensors on ``device`` (call under the tracker to count the load)."""
    notes: list[str] = []
    dtype = load_dtype(setup, checkpoint_dtype)
    cfg = hf_config(model_type, config, setup)
    attn = _attn(setup, device, notes)
    cls = _auto_class(setup, cfg)
    if weights:
        # local only: never a Hub look-up with retries (the CLI checked it is a folder)
        model = cls.from_pretrained(weights, dtype=dtype, attn_implementation=attn,
                                    device_map={"": device}, config=cfg,
                                    local_files_only=True)
    else:
        with torch.device(device):
            model = cls.from_config(cfg, dtype=dtype, attn_implementation=attn)
    q = setup.quantization
    if q is not None and q.quant_method == "bitsandbytes":
        _quantize_bnb(model, setup, dtype, real=True)
    elif q is not None:
        _quantize_group(model, setup, device)
        notes.append(f"{q.quant_method} layers are same-layout stand-ins (no {q.quant_method} "
                     "kernels here): memory is real, their outputs are not")
    model = _finish(model, setup, notes)
    total, trainable = _counts(model)
    return BuiltModel(model, _hf_inner(model), dtype, attn, total, trainable, notes,
                      quantized_bnb=q is not None and q.quant_method == "bitsandbytes")


def tag_model(built: BuiltModel, tag: Any) -> None:
    """Tell the tracker which resident storages are weights, quant_state and adapters."""
    seen: set[int] = set()
    for name, p in built.model.named_parameters(remove_duplicate=False):
        if id(p) in seen:
            continue
        seen.add(id(p))
        role = "adapters" if ("lora_" in name or "modules_to_save" in name) else "weights"
        tag(p, role)
        qs = getattr(p, "quant_state", None)  # real bitsandbytes Params4bit
        if qs is not None:
            for t in (qs.absmax, qs.code, getattr(qs, "offset", None)):
                tag(t, "quant_state")
            if qs.state2 is not None:
                tag(qs.state2.absmax, "quant_state")
                tag(qs.state2.code, "quant_state")
        scb = getattr(p, "SCB", None)
        if isinstance(scb, torch.Tensor):
            tag(scb, "quant_state")
    for b in built.model.buffers():
        tag(b, "weights")
    shared = getattr(built.model, "vramdoc_dynamic_map", None)
    if shared is None and built.quantized_bnb:
        from bitsandbytes.functional import name2qmap

        shared = name2qmap.get("dynamic")
    tag(shared, "quant_state")
    for m in built.model.modules():
        if isinstance(m, standins.QuantStandIn):
            for t in m.quant_tensors():
                tag(t, "quant_state")
        scb = getattr(getattr(m, "state", None), "SCB", None)
        if isinstance(scb, torch.Tensor):
            tag(scb, "quant_state")
