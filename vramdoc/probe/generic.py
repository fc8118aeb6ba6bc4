"""The parameter inventory of an architecture vramdoc has no builder for, read off the module
tree transformers builds on the meta device.

Used only when a user's ``config.json`` names a ``model_type`` outside vramdoc's registry
(``vramdoc.models.generic``); this is the one place that imports transformers for it, lazily.
The model is built with ``AutoModelForCausalLM.from_config`` (or the sequence-classification
class) under ``torch.device("meta")``: no memory, no weights, no remote code. Every parameter
becomes a :class:`~vramdoc.models.spec.ParamGroup`: nn.Linear / GPT-2 Conv1D layers, embeddings,
norm modules, MoE routers (a ``gate`` / ``router`` beside an ``experts`` module), fused 3-D
expert tensors, and any other bare parameter as OTHER; the modules of the repeated decoder
layers (transformers' ``GradientCheckpointingLayer``) are folded into ``{i}`` paths with a
count. The numbers the activation walk needs (heads, head_dim, widths) come from the built
config object, which carries the config class's defaults.
"""

from __future__ import annotations

import copy
import json
import weakref
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from vramdoc.errors import ConfigError, UnknownModelError
from vramdoc.models._cfg import Summary
from vramdoc.models.spec import (
    ATTN_ALL,
    EMBEDDING,
    EXPERTS,
    HEAD,
    LINEAR,
    NORM,
    OTHER,
    ROUTER,
    ParamGroup,
)

SEQ_CLS = "sequence-classification"
_DROP_KEYS = ("model_type", "transformers_version", "architectures", "torch_dtype", "dtype",
              "quantization_config", "auto_map")


def _versions() -> str:
    import transformers

    return f"transformers {transformers.__version__}"


def hf_config(config: dict[str, Any]) -> Any:
    """The transformers config object of ``config`` (its class defaults filled in).

    Raises:
        UnknownModelError: transformers does not know the model_type, or it needs remote code.
        ConfigError: transformers refuses a value of the config.
    """
    from transformers import AutoConfig

    mt = config.get("model_type")
    if config.get("auto_map"):
        raise UnknownModelError(
            f"config has model_type {mt!r} with an auto_map (remote code); vramdoc has no "
            "inventory for it and never runs a repository's own modelling code",
            "use a config.json of an architecture transformers ships, or one vramdoc knows "
            "(`vramdoc models`)")
    kwargs = {k: v for k, v in copy.deepcopy(config).items() if k not in _DROP_KEYS}
    try:
        return AutoConfig.for_model(str(mt), **kwargs)
    except ValueError as exc:
        if "Unrecognized model" in str(exc) or "model_type" in str(exc):
            raise UnknownModelError(
                f"config has model_type {mt!r}: neither vramdoc nor {_versions()} knows this "
                "architecture, so it cannot be built from the config",
                "check the model_type, or use a model of a supported architecture "
                "(`vramdoc models`)") from None
        raise ConfigError([f"transformers refuses the config: {_one_line(exc)}"],
                          f"model_type {mt!r} config", "fix the config.json field named") from None
    except Exception as exc:  # noqa: BLE001 - any refusal of a value is one message
        raise ConfigError([f"transformers refuses the config: {_one_line(exc)}"],
                          f"model_type {mt!r} config", "fix the config.json field named") from None


def _one_line(exc: BaseException) -> str:
    text = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    return (text or type(exc).__name__)[:300]


def build_meta(config: dict[str, Any], task: str, num_labels: int) -> tuple[Any, Any]:
    """(config object, model on the meta device) for ``task``.

    Raises:
        UnknownModelError: transformers has no class of this model_type for the task.
        ConfigError: building the model failed on a config value.
    """
    import torch
    import transformers

    cfg = hf_config(config)
    mt = config.get("model_type")
    auto: Any
    if task == SEQ_CLS:
        auto, what = transformers.AutoModelForSequenceClassification, "sequence-classification"
        cfg.num_labels = num_labels
        if getattr(cfg, "pad_token_id", None) is None:
            cfg.pad_token_id = 0
    else:
        auto, what = transformers.AutoModelForCausalLM, "causal-LM"
    if type(cfg) not in auto._model_mapping:
        raise UnknownModelError(
            f"config has model_type {mt!r}, which vramdoc has no inventory for, and "
            f"{_versions()} has no {what} class for it ({type(cfg).__name__}), so it cannot "
            "be built from the config",
            "vramdoc estimates decoder LLMs (and BERT-like classifiers); use a model of a "
            "supported architecture (`vramdoc models`)")
    try:
        with torch.device("meta"):
            model = auto.from_config(cfg)
    except Exception as exc:  # noqa: BLE001 - the modelling code refused the config
        raise ConfigError([f"transformers cannot build it: {_one_line(exc)}"],
                          f"model_type {mt!r} config", "fix the config.json fields it names"
                          ) from None
    return cfg, model


def _layer_prefixes(model: Any) -> dict[str, int]:
    """module path -> layer index, for each repeated decoder layer."""
    from transformers.modeling_layers import GradientCheckpointingLayer

    found = {n: m for n, m in model.named_modules() if isinstance(m, GradientCheckpointingLayer)}
    if not found:  # an older model without the marker class: the longest ModuleList
        import torch.nn as nn

        lists = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.ModuleList)]
        if not lists:
            return {}
        name, ml = max(lists, key=lambda nm: len(nm[1]))
        return {f"{name}.{i}": i for i in range(len(ml))}
    out = {}
    for n in found:
        head, _, idx = n.rpartition(".")
        if idx.isdigit():
            out[n] = int(idx)
    return out


def _template(name: str, layers: dict[str, int]) -> tuple[str, bool]:
    """``model.layers.3.mlp.up_proj`` -> (``model.layers.{i}.mlp.up_proj``, True)."""
    parts = name.split(".")
    for k in range(len(parts), 0, -1):
        prefix = ".".join(parts[:k])
        if prefix in layers:
            head = prefix.rpartition(".")[0]
            rest = ".".join(parts[k:])
            return f"{head}.{{i}}" + (f".{rest}" if rest else ""), True
    return name, False


def _is_norm(module: Any) -> bool:
    own = dict(module.named_parameters(recurse=False))
    return "norm" in type(module).__name__.lower() and set(own) <= {"weight", "bias"} and all(
        p.dim() == 1 for p in own.values())


def inventory(config: dict[str, Any], task: str,
              num_labels: int) -> tuple[Summary, list[ParamGroup], dict[str, Any]]:
    """(ModelSpec numbers, parameter groups, the config with its class defaults)."""
    key = json.dumps(config, sort_keys=True, default=str)
    return _inventory(key, task, num_labels)


@lru_cache(maxsize=32)
def _inventory(key: str, task: str,
               num_labels: int) -> tuple[Summary, list[ParamGroup], dict[str, Any]]:
    import torch.nn as nn
    from transformers.pytorch_utils import Conv1D

    from vramdoc.probe.devices import quiet

    config = json.loads(key)
    with quiet():  # transformers' config warnings are not the user's business here
        cfg, model = build_meta(config, task, num_labels)
    layers = _layer_prefixes(model)
    n_layers = len(layers) or 1
    out_emb = model.get_output_embeddings()
    in_emb = model.get_input_embeddings()
    modules = dict(model.named_modules())
    seen: dict[int, str] = {}  # id(parameter) -> path of the module that owns it first
    rows: Counter[tuple[Any, ...]] = Counter()
    experts = False
    last_param = next(reversed([n for n, _ in model.named_parameters()]), "")
    for name, m in modules.items():
        own = dict(m.named_parameters(recurse=False))
        if not own:
            continue
        path, in_block = _template(name, layers)
        leaf = name.rpartition(".")[2]
        parent = modules.get(name.rpartition(".")[0])
        if isinstance(m, nn.Linear | Conv1D) and "weight" in own:
            w, b = own["weight"], own.get("bias")
            in_f, out_f = (w.shape[1], w.shape[0]) if isinstance(m, nn.Linear) else tuple(w.shape)
            tied = seen.get(id(w))
            router = leaf in ("gate", "router") and parent is not None and hasattr(
                parent, "experts")
            if m is out_emb or (not in_block and task == SEQ_CLS and leaf in ("score",
                                                                               "classifier")):
                kind = HEAD
            else:
                kind = ROUTER if router else LINEAR
            quant = (type(m) is nn.Linear or isinstance(m, Conv1D)) and kind != HEAD and \
                tied is None and not last_param.startswith(name + ".")
            rows[(path, leaf, kind, in_f, out_f, w.numel(), b.numel() if b is not None else 0,
                  1, in_block, quant, tied, True)] += 1
            for p in own.values():
                seen.setdefault(id(p), path)
            continue
        if isinstance(m, nn.Embedding) and set(own) == {"weight"}:
            w = own["weight"]
            rows[(path, leaf, EMBEDDING, w.shape[0], w.shape[1], w.numel(), 0, 1, in_block,
                  False, None, True)] += 1
            seen.setdefault(id(w), path)
            continue
        if _is_norm(m):
            w, b = own.get("weight"), own.get("bias")
            wn = w.numel() if w is not None else 0
            rows[(path, leaf, NORM, 0, 0, wn, b.numel() if b is not None else 0, 1, in_block,
                  False, None, True)] += 1
            for p in own.values():
                seen.setdefault(id(p), path)
            continue
        router = leaf in ("gate", "router") and parent is not None and hasattr(parent, "experts")
        if router and "weight" in own and own["weight"].dim() == 2:
            w, b = own["weight"], own.get("bias")
            rows[(path, leaf, ROUTER, w.shape[1], w.shape[0], w.numel(),
                  b.numel() if b is not None else 0, 1, in_block, False, None, False)] += 1
            for p in own.values():
                seen.setdefault(id(p), path)
            continue
        for pname, p in own.items():
            if id(p) in seen:
                continue
            seen[id(p)] = path
            ppath = f"{path}.{pname}"
            if p.dim() == 3 and "expert" in name:
                experts = True
                e_n, d1, d2 = p.shape
                h = int(getattr(cfg, "hidden_size", 0) or 0)
                # transformers 5 stores (E, out, in) (Mixtral) or (E, in, out) (gpt-oss)
                in_f, out_f = (d2, d1) if d2 == h or d1 != h else (d1, d2)
                rows[(ppath, pname, EXPERTS, in_f, out_f, p.numel(), 0, e_n, in_block, False,
                      None, False)] += 1
            else:
                shape = tuple(p.shape) + (0, 0)
                rows[(ppath, pname, OTHER, shape[1], shape[0], p.numel(), 0, 1, in_block, False,
                      None, True)] += 1
    groups = [
        ParamGroup(path=path, leaf=leaf, kind=kind, in_features=int(i), out_features=int(o),
                   weight_numel=int(wn), bias_numel=int(bn), count=count, n_experts=int(ne),
                   in_block=blk, quantizable=q, tied_to=tied, all_linear=al)
        for (path, leaf, kind, i, o, wn, bn, ne, blk, q, tied, al), count in rows.items()]
    total = sum(p.numel() for p in model.parameters())
    ours = sum(g.numel for g in groups)
    if ours != total:  # pragma: no cover - a module layout this walk does not know
        raise ConfigError([f"the module walk counts {ours:,} parameters where transformers "
                           f"builds {total:,}"], f"model_type {config.get('model_type')!r}",
                          "report this config to vramdoc")
    full = cfg.to_dict()
    h = int(_first(cfg, ("hidden_size", "n_embd", "d_model"), in_emb.weight.shape[1]))
    a = int(_first(cfg, ("num_attention_heads", "n_head", "num_heads"), 1))
    kv = int(_first(cfg, ("num_key_value_heads", "num_kv_heads"), a) or a)
    hd = int(_first(cfg, ("head_dim",), h // max(a, 1)) or h // max(a, 1))
    mlp_widths = [g.out_features for g in groups if g.kind == LINEAR and g.in_block
                  and g.in_features == h and not any(k in g.path for k in ("attn", "attention"))]
    ffn = int(_first(cfg, ("moe_intermediate_size",), 0) if experts else 0) or int(
        _first(cfg, ("intermediate_size", "n_inner", "ffn_dim"), 0) or 0) or (
        min(mlp_widths) if mlp_widths else 4 * h)
    leaves = {g.leaf for g in groups if g.in_block}
    gated = bool({"gate_proj", "w1", "gate_up_proj", "w3"} & leaves) or experts
    norms_bias = any(g.kind == NORM and g.in_block and g.bias_numel for g in groups)
    tie = out_emb is not None and out_emb.weight is in_emb.weight
    cls = type(model)
    attns = tuple(x for x in ATTN_ALL if x == "eager"
                  or (x == "sdpa" and getattr(cls, "_supports_sdpa", False))
                  or (x.startswith("flash") and getattr(cls, "_supports_flash_attn", False))
                  or (x == "flex_attention" and getattr(cls, "_supports_flex_attn", False)))
    sw = full.get("sliding_window")
    summary = Summary(
        family="moe" if experts else ("gpt" if norms_bias else "llama"),
        hidden_size=h, num_hidden_layers=n_layers, num_attention_heads=a, num_key_value_heads=kv,
        head_dim=hd, intermediate_size=ffn, vocab_size=int(in_emb.weight.shape[0]),
        max_position_embeddings=int(_first(cfg, ("max_position_embeddings", "n_positions"),
                                           2048) or 2048),
        tie_word_embeddings=tie, gated_mlp=gated,
        num_local_experts=int(_first(cfg, ("num_local_experts", "num_experts",
                                           "n_routed_experts"), 0) or 0) if experts else 0,
        num_experts_per_tok=int(_first(cfg, ("num_experts_per_tok", "moe_topk"), 0) or 0)
        if experts else 0,
        sliding_window=int(sw) if isinstance(sw, int) and not isinstance(sw, bool) and sw > 0
        else None,
        attn_implementations=attns)
    return summary, groups, full


def _first(cfg: Any, names: tuple[str, ...], default: Any) -> Any:
    for n in names:
        v = getattr(cfg, n, None)
        if v is not None and not isinstance(v, bool):
            return v
    return default


@dataclass(frozen=True)
class BlockStructure:
    """How one decoder layer of the built model is wired, read off a forward on the meta
    device (hooks on the first layer's children, the autograd graph of their tensors).

    Attributes:
        parallel: the MLP's input does not depend on the attention's output: the layer adds
            ``attn(norm(x)) + mlp(norm'(x))`` to its input (GPT-NeoX, Falcon, Cohere), instead
            of running its MLP on ``x + attn(...)``.
        shared_norm: attention and MLP read the very same tensor (one norm for both: Falcon-7B,
            Cohere's ``CohereDecoderLayer``).
        norm_fp32_copies: how many distinct fp32 tensors of the input's size the layer's first
            norm keeps for its input's gradient when it is an op chain, not ``nn.LayerNorm``
            (LlamaRMSNorm: 1, ``x.float()``; CohereLayerNorm: 2, the two ``x - mean`` it
            computes, one kept by ``pow``, one by the product with ``rsqrt``); 0 for
            ``nn.LayerNorm`` or where it was not measured.
        sdpa_out_copy: the query reaches scaled_dot_product_attention contiguous in
            (b, heads, s, d) (a rotary ending in ``torch.cat``: StableLM's partial rotary,
            GPT-NeoX): the kernel's output follows that layout, so the caller's
            ``transpose(1, 2).contiguous()`` is a copy (ModelSpec.sdpa_out_copy).
        mlp_holds: of a sequential layer, what its frame still holds while its MLP runs:
            ``attn_in`` (the first norm's output, StableLmDecoderLayer's ``hidden_states``,
            never rebound) and ``attn_out`` (the attention's output, its
            ``self_attn_output``); a layer that rebinds its locals (Llama) holds neither.
    """

    parallel: bool = False
    shared_norm: bool = False
    norm_fp32_copies: int = 0
    sdpa_out_copy: bool = False
    mlp_holds: tuple[str, ...] = ()


SEQUENTIAL = BlockStructure()


def block_structure(config: dict[str, Any]) -> BlockStructure:
    """The wiring of ``config``'s decoder layer (SEQUENTIAL where it cannot be read)."""
    return _block_structure(json.dumps(config, sort_keys=True, default=str))


def _reaches(fn: Any, target: Any) -> bool:
    """Whether autograd node ``target`` is among ``fn``'s inputs, recursively."""
    stack, seen = [fn], set()
    while stack:
        f = stack.pop()
        if f is None or id(f) in seen:
            continue
        if f is target:
            return True
        seen.add(id(f))
        stack.extend(n for n, _ in f.next_functions)
    return False


def _first_tensor(obj: Any) -> Any:
    import torch

    if isinstance(obj, torch.Tensor):
        return obj
    if isinstance(obj, tuple | list) and obj:
        return _first_tensor(obj[0])
    return None


@lru_cache(maxsize=32)
def _block_structure(key: str) -> BlockStructure:
    import torch
    import torch.nn as nn
    import transformers
    from transformers.modeling_layers import GradientCheckpointingLayer

    from vramdoc.probe.devices import quiet

    config = json.loads(key)
    try:
        with quiet():
            cfg = hf_config(config)
            sdpa = bool(getattr(transformers.AutoModelForCausalLM._model_mapping.get(
                type(cfg), None), "_supports_sdpa", False))
            cfg._attn_implementation = "sdpa" if sdpa else "eager"
            with torch.device("meta"):
                # in a 16-bit dtype, as trained: an fp32 model's ``x.float()`` would be x
                # itself, and a norm would seem to keep (and hold) its input
                model = transformers.AutoModelForCausalLM.from_config(cfg,
                                                                      dtype=torch.bfloat16)
    except Exception:  # noqa: BLE001 - the inventory reports a build failure; here: unknown
        return SEQUENTIAL
    layer = next((m for m in model.modules() if isinstance(m, GradientCheckpointingLayer)),
                 None)
    if layer is None:
        return SEQUENTIAL
    kids = dict(layer.named_children())
    attn = next((m for n, m in kids.items() if ("attn" in n or "attention" in n)
                 and "norm" not in n and "dropout" not in n), None)
    mlp = next((m for n, m in kids.items() if n in ("mlp", "feed_forward", "ffn")), None)
    norm = next((m for m in kids.values() if "norm" in type(m).__name__.lower()), None)
    if attn is None or mlp is None:
        return SEQUENTIAL
    got: dict[str, Any] = {}

    def layer_in(_m: Any, args: Any, kwargs: Any) -> None:
        got.setdefault("layer_in", weakref.ref(args[0] if args else kwargs["hidden_states"]))

    def attn_out(_m: Any, args: Any, kwargs: Any, out: Any) -> None:
        if "attn_in" in got:
            return
        a_in, a_out = args[0] if args else kwargs.get("hidden_states"), _first_tensor(out)
        if a_in is None or a_out is None:
            return
        # weak references: whether the layer's frame still holds them when its MLP starts
        got["attn_in"], got["attn_out"] = weakref.ref(a_in), weakref.ref(a_out)
        got["attn_fn"] = a_out.grad_fn

    def mlp_in(_m: Any, args: Any, kwargs: Any) -> None:
        if "mlp_in" in got or "attn_in" not in got:
            return
        m_in = args[0] if args else next(iter(kwargs.values()), None)
        if m_in is None:
            return
        got["mlp_in"] = m_in.grad_fn
        a_in, a_out = got["attn_in"](), got["attn_out"]()
        got["shared"] = a_in is m_in
        # the layer's input is held by the decoder's loop, not the layer (OLMo 2's
        # attention reads it directly)
        x = got["layer_in"]() if "layer_in" in got else None
        got["holds"] = tuple(n for n, t in (("attn_in", a_in), ("attn_out", a_out))
                             if t is not None and t is not m_in and t is not x)

    hooks = [layer.register_forward_pre_hook(layer_in, with_kwargs=True),
             attn.register_forward_hook(attn_out, with_kwargs=True),
             mlp.register_forward_pre_hook(mlp_in, with_kwargs=True)]
    # frozen weights and an input that needs a gradient: autograd keeps only what the
    # input's gradient needs, so a tensor alive when the MLP starts is held by the layer's
    # frame (a tensor kept for backward would be alive too: none of these is, with frozen
    # Linears and norms)
    for p in model.parameters():
        p.requires_grad_(False)
    model.train()
    h = int(getattr(cfg, "hidden_size", 0) or 0)
    try:
        emb = torch.empty(1, 4, h, device="meta", dtype=torch.bfloat16, requires_grad=True)
        with quiet(), _QueryLayout() as layout:
            model(inputs_embeds=emb)
    except Exception:  # noqa: BLE001 - a model whose forward refuses the meta device
        return SEQUENTIAL
    finally:
        for hook in hooks:
            hook.remove()
    a_fn, m_fn = got.get("attn_fn"), got.get("mlp_in")
    if a_fn is None or m_fn is None:
        return SEQUENTIAL
    parallel = not _reaches(m_fn, a_fn)
    copies = 0
    if norm is not None and not isinstance(norm, nn.LayerNorm):
        copies = _norm_fp32_copies(norm, int(getattr(cfg, "hidden_size", 0) or 0))
    return BlockStructure(parallel=parallel, shared_norm=parallel and got["shared"],
                          norm_fp32_copies=copies, sdpa_out_copy=bool(layout.contiguous),
                          mlp_holds=() if parallel else got["holds"])


def _norm_fp32_copies(norm: Any, h: int) -> int:
    """Distinct fp32 tensors of the input's size ``norm`` keeps for backward (its weight
    frozen, its 16-bit input needing a gradient), counted by saved_tensors_hooks."""
    import torch

    if h <= 0:
        return 0
    kept: dict[int, Any] = {}

    def pack(t: Any) -> Any:
        kept[id(t)] = t
        return t

    flags = [(p, p.requires_grad) for p in norm.parameters()]
    try:
        for p, _ in flags:
            p.requires_grad_(False)
        x = torch.empty(1, 4, h, dtype=torch.bfloat16, device="meta", requires_grad=True)
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            norm(x)
    except Exception:  # noqa: BLE001 - not measurable: the family's default norm
        return 0
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
    return sum(1 for t in kept.values()
               if t.dtype == torch.float32 and t.numel() == x.numel())


def _query_layout_mode() -> Any:
    # a function mode: on the meta device SDPA is decomposed into bmm before any dispatch
    # mode sees it; F.scaled_dot_product_attention itself is seen here
    import torch
    from torch.overrides import TorchFunctionMode

    class QueryLayout(TorchFunctionMode):
        """Records whether the first SDPA call's query is contiguous as (b, heads, s, d)."""

        contiguous: bool | None = None

        def __torch_function__(self, func: Any, types: Any, args: Any = (),
                               kwargs: Any = None) -> Any:
            if self.contiguous is None and \
                    func is torch.nn.functional.scaled_dot_product_attention and args:
                q = args[0]
                # a single head or position is contiguous either way: no evidence
                if q.dim() == 4 and q.shape[1] > 1 and q.shape[2] > 1:
                    self.contiguous = q.is_contiguous()
            return func(*args, **(kwargs or {}))

    return QueryLayout()


class _QueryLayout:
    """Context manager around the dispatch mode (built lazily: torch imports on use)."""

    def __enter__(self) -> Any:
        self.mode = _query_layout_mode()
        return self.mode.__enter__()

    def __exit__(self, *exc: Any) -> Any:
        return self.mode.__exit__(*exc)
