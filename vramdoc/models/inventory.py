"""From a Hugging Face config.json mapping to a ModelSpec and its exact parameter inventory.

``spec_from_config`` reads a config the way transformers 5 does (defaults of each config
class, ``dtype`` vs ``torch_dtype``, ``head_dim`` fallbacks, GQA, MoE fields, sliding windows,
per-type ``tie_word_embeddings`` defaults) and ``param_groups`` lists every parameter tensor of
the model ``AutoModelForCausalLM.from_config`` (or ``AutoModelForSequenceClassification``)
builds. Pure Python: nothing here imports torch or transformers.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Mapping
from functools import cache, lru_cache
from typing import Any

from vramdoc.errors import ConfigError, UnknownModelError, UsageError
from vramdoc.models._block import block_facts
from vramdoc.models._cfg import Builder, Cfg, checkpoint_dtype
from vramdoc.models.spec import ModelSpec, ParamGroup
from vramdoc.safeload import show

CAUSAL_LM = "causal-lm"
SEQUENCE_CLASSIFICATION = "sequence-classification"
TASKS = (CAUSAL_LM, SEQUENCE_CLASSIFICATION)

# model_type -> (builder module, builder factory or function, argument, tasks). The builder
# modules are imported on first use: resolving one model imports one of them.
_LLAMA_LIKE = ("llama", "mistral", "mixtral", "qwen2", "qwen3", "gemma", "gemma2", "olmo2",
               "gemma3_text", "phi3", "qwen2_moe", "qwen3_moe", "phimoe", "gpt_oss")
_REGISTRY: dict[str, tuple[str, str, str | None, tuple[str, ...]]] = {
    **{mt: ("_llama_like", "build_llama_like", mt, TASKS) for mt in _LLAMA_LIKE},
    "gemma3": ("_llama_like", "build_gemma3", None, TASKS),
    # transformers 5.24 has GraniteForCausalLM but no GraniteForSequenceClassification
    "granite": ("_llama_like", "build_llama_like", "granite", (CAUSAL_LM,)),
    "qwen": ("_llama_like", "build_qwen_v1", None, (CAUSAL_LM,)),
    "deepseek_v2": ("_deepseek", "build_deepseek_v2", None, TASKS),
    "gpt2": ("_classic", "build_gpt2", None, TASKS),
    "gpt_bigcode": ("_classic", "build_gpt_bigcode", None, TASKS),
    "gpt_neox": ("_classic", "build_gpt_neox", None, TASKS),
    "falcon": ("_classic", "build_falcon", None, TASKS),
    "opt": ("_classic", "build_opt", None, TASKS),
    "bloom": ("_classic", "build_bloom", None, TASKS),
    "bert": ("_classic", "build_encoder", "bert", (SEQUENCE_CLASSIFICATION,)),
    "roberta": ("_classic", "build_encoder", "roberta", (SEQUENCE_CLASSIFICATION,)),
}


@dataclasses.dataclass(frozen=True)
class _Arch:
    build: Builder
    tasks: tuple[str, ...] = TASKS


@cache
def _load(model_type: str) -> _Arch:
    module, func, arg, tasks = _REGISTRY[model_type]
    factory = getattr(importlib.import_module(f"vramdoc.models.{module}"), func)
    return _Arch(factory(arg) if arg is not None else factory, tasks)


SUPPORTED_MODEL_TYPES: tuple[str, ...] = tuple(sorted(_REGISTRY))
# Architectures read from a config.json only: no catalog entry yet (its numbers need a public
# config.json to cite), but a user's config of this model_type is inventoried and estimated.
CONFIG_ONLY_MODEL_TYPES: frozenset[str] = frozenset({"olmo2", "qwen2_moe", "qwen3_moe",
                                                     "phimoe", "gpt_oss", "deepseek_v2"})

# "yi" is Yi's old remote-code name for the Llama architecture; Yi checkpoints on the Hub now
# say "llama" (see the catalog's yi-34b entry).
_MODEL_TYPE_ALIASES = {"yi": "llama"}


def _arch(model_type: Any) -> tuple[str, _Arch]:
    mt = str(model_type or "")
    mt = _MODEL_TYPE_ALIASES.get(mt, mt)
    if mt not in _REGISTRY:
        shown = f"model_type {show(model_type)}" if model_type else "no model_type"
        raise UnknownModelError(
            f"config has {shown}; vramdoc knows the architectures "
            + ", ".join(SUPPORTED_MODEL_TYPES),
            "use a model of a supported architecture (see `vramdoc models`), "
            "or a config.json whose model_type is one of them",
        )
    return mt, _load(mt)


def is_supported(model_type: Any) -> bool:
    """Whether vramdoc has its own inventory builder for ``model_type``."""
    mt = str(model_type or "")
    return _MODEL_TYPE_ALIASES.get(mt, mt) in _REGISTRY


def default_task(spec: ModelSpec) -> str:
    """The task a model is fine-tuned for when none is given: causal LM, or sequence
    classification for encoders (BERT / RoBERTa have no causal LM head)."""
    return SEQUENCE_CLASSIFICATION if spec.is_encoder else CAUSAL_LM


def _check_task(name: str, mt: str, arch: _Arch, task: str) -> None:
    if task not in TASKS:
        raise UsageError(f"task {task!r} is not one of {', '.join(TASKS)}",
                         "use causal-lm or sequence-classification")
    if task not in arch.tasks:
        raise UsageError(f"{name} ({mt}) does not support task {task!r}",
                         f"use task {' or '.join(arch.tasks)} for this model")



def summary_fields(summary: Any) -> dict[str, Any]:
    """The :class:`ModelSpec` fields read as they are off a config's summary."""
    return {k: getattr(summary, k) for k in (
        "family", "hidden_size", "num_hidden_layers", "num_attention_heads",
        "num_key_value_heads", "head_dim", "intermediate_size", "vocab_size",
        "max_position_embeddings", "tie_word_embeddings", "gated_mlp", "num_local_experts",
        "num_experts_per_tok", "sliding_window", "attn_implementations")}

def spec_from_config(config: Mapping[str, Any], *, name: str, hf_id: str = "",
                     source: str = "", aliases: tuple[str, ...] = ()) -> ModelSpec:
    """Build a ModelSpec from a Hugging Face ``config.json`` mapping.

    Args:
        config: the config mapping, with ``model_type``.
        name: the short name to show (catalog name, repo id or path).
        hf_id: the Hugging Face repo id, when known.
        source: where the numbers come from (URL with revision, repo@commit:path, file).
        aliases: other repo ids with the same architecture.

    Raises:
        UnknownModelError: the model_type is not one vramdoc can inventory.
        ConfigError: required fields are missing or not positive integers (all listed).
    """
    mt, arch = _arch(config.get("model_type"))
    c = Cfg(config, f"{name}: config")
    task = arch.tasks[0] if mt not in ("bert", "roberta") else SEQUENCE_CLASSIFICATION
    summary, groups = arch.build(c, task, 2)
    if not c.problems:  # shapes are compared only when every number read is sound
        _check_shapes(mt, summary, config, c.problems)
    dtype = checkpoint_dtype(config)
    c.check()  # before reading text_config below: a text_config that is no mapping is listed
    if mt == "gemma3" and not (config.get("dtype") or config.get("torch_dtype")):
        dtype = checkpoint_dtype(config.get("text_config") or {})
    text_cfg = config.get("text_config") if mt == "gemma3" else None
    try:
        facts = block_facts(mt, text_cfg if isinstance(text_cfg, Mapping) else config,
                            summary.num_hidden_layers, summary.sliding_window)
    except ConfigError as exc:  # name the file, as for the other fields
        raise ConfigError(exc.problems, c.what, exc.hint) from None
    return ModelSpec(
        name=name, hf_id=hf_id, model_type=mt, **summary_fields(summary),
        is_encoder=summary.is_encoder, checkpoint_dtype=dtype, source=source,
        config=dict(config), remote_code=summary.remote_code, aliases=tuple(aliases),
        loss=summary.loss, hidden_act=facts.hidden_act, attention_dropout=facts.attention_dropout,
        hidden_dropout=facts.hidden_dropout, embedding_dropout=facts.embedding_dropout,
        rotary=facts.rotary, qk_norm=facts.qk_norm, shared_block_norm=facts.shared_block_norm,
        use_cache=facts.use_cache, attn_softcap=facts.attn_softcap,
        final_softcap=facts.final_softcap, sandwich_norms=facts.sandwich_norms,
        norm_unit_offset=facts.norm_unit_offset, sliding_layers=facts.sliding_layers,
        always_mask=facts.always_mask, sdpa_repeat_kv=facts.sdpa_repeat_kv,
        post_norms_only=facts.post_norms_only, norm_fp32_product=facts.norm_fp32_product,
        qk_norm_full=facts.qk_norm_full, layer_norm=facts.layer_norm,
        attn_sinks=facts.attn_sinks, moe_act=facts.moe_act, sdpa_out_copy=facts.sdpa_out_copy,
        buffer_bytes=_buffer_bytes(mt, summary_fields(summary)), router=facts.router,
        expert_bias=facts.expert_bias, attn_output_held=facts.attn_output_held,
        act_backward_temps=facts.act_backward_temps,
        returns_attn_weights=facts.returns_attn_weights,
        probs_to_query_dtype=facts.probs_to_query_dtype,
        embeddings_scaled_outside=facts.embeddings_scaled_outside,
        residual_multiplier=facts.residual_multiplier,
        embedding_norm=facts.embedding_norm, alibi=facts.alibi, qkv_copies=facts.qkv_copies,
        returned_attn=facts.returned_attn, mlp_input_freed=facts.mlp_input_freed,
        position_embeds=facts.position_embeds,
        mla=_mla(mt, config),
        n_params=sum(g.numel for g in groups),
        shared_expert_first=facts.shared_expert_first,
    )


def _mla(mt: str, config: Mapping[str, Any]) -> tuple[int, ...]:
    if mt != "deepseek_v2":
        return ()
    from vramdoc.models._deepseek import mla_dims

    return mla_dims(dict(config))


def _check_shapes(mt: str, s: Any, config: Mapping[str, Any], problems: list[str]) -> None:
    """What transformers refuses when it builds the config or the model (transformers 5.24:
    ``LlamaConfig.validate_architecture``, ``GPT2Attention.__init__``, the GQA ``repeat_kv``
    and the router's ``topk``), so that vramdoc does not estimate a model that cannot run."""
    a, kv, h = s.num_attention_heads, s.num_key_value_heads, s.hidden_size

    def absent(*keys: str) -> str:
        return "" if any(config.get(k) is not None for k in keys) else (
            " (absent from config.json, so transformers' default)")

    if h % a and (config.get("head_dim") is None or mt == "llama"):
        problems.append(
            f"hidden_size / n_embd = {h} is not a multiple of num_attention_heads / n_head = "
            f"{a}{absent('num_attention_heads', 'n_head', 'num_heads', 'n_heads')}; transformers "
            "refuses this shape: give heads that divide the hidden size")
    if kv > a or a % kv:
        problems.append(
            f"num_key_value_heads = {kv} must divide num_attention_heads = {a} (each key/value "
            "head serves a whole group of query heads)")
    types = config.get("layer_types")
    if types is not None and (not isinstance(types, list)
                              or not all(isinstance(t, str) for t in types)):
        problems.append(f"layer_types = {show(types)} must be a list of attention kinds, one "
                        "per layer (e.g. [\"sliding_attention\", \"full_attention\"])")
    elif types is not None and len(types) != s.num_hidden_layers:
        # transformers 5.24 configuration_utils.layer_type_validation refuses the mismatch
        problems.append(f"layer_types lists {len(types)} layer(s) but num_hidden_layers = "
                        f"{s.num_hidden_layers}; give one kind per layer")
    e, k = s.num_local_experts, s.num_experts_per_tok
    if e and not 1 <= k <= e:
        problems.append(f"num_experts_per_tok = {k} must be between 1 and the number of experts "
                        f"({e}); the router picks top-k of the experts")


def param_groups(spec: ModelSpec, task: str | None = None,
                 num_labels: int = 2) -> tuple[ParamGroup, ...]:
    """The exact parameter inventory of ``spec`` for ``task`` (see vramdoc/models/spec.py).

    Args:
        spec: the model.
        task: "causal-lm" or "sequence-classification"; None means :func:`default_task`.
        num_labels: classifier outputs for sequence classification (transformers' default 2).

    Raises:
        UsageError: the model has no class for ``task`` (BERT as a causal LM, Qwen v1 for
            classification), or ``num_labels`` is not positive.
    """
    task = default_task(spec) if task is None else task
    if isinstance(num_labels, bool) or not isinstance(num_labels, int) or num_labels < 1:
        raise UsageError(f"num_labels must be a positive integer, got {num_labels!r}",
                         "give the number of classes, e.g. 2")
    return _groups(spec, task, num_labels, id(spec.config))


@lru_cache(maxsize=512)
def _groups(spec: ModelSpec, task: str, num_labels: int,
            config_id: int) -> tuple[ParamGroup, ...]:
    # config_id keys the cache on the config object (ModelSpec equality ignores config);
    # the cached spec keeps that object alive, so the id cannot be reused meanwhile.
    if spec.generic:
        from vramdoc.models.generic import generic_groups

        if task not in TASKS:
            raise UsageError(f"task {task!r} is not one of {', '.join(TASKS)}",
                             "use causal-lm or sequence-classification")
        return generic_groups(spec, task, num_labels)
    mt, arch = _arch(spec.model_type)
    _check_task(spec.name, mt, arch, task)
    c = Cfg(spec.config, f"{spec.name}: config")
    _, groups = arch.build(c, task, num_labels)
    c.check()
    return tuple(groups)


def _buffer_bytes(model_type: str, fields: dict[str, Any]) -> int:
    """Device bytes of the model's non-persistent buffers (ModelSpec.buffer_bytes)."""
    if model_type == "gpt_bigcode":
        n = int(fields.get("max_position_embeddings") or 0)
        return n * n  # torch.bool
    return 0
