"""Facts about one transformer block that decide what it keeps for backward: the MLP
activation, dropout probabilities, rotary position embedding, q/k norms, a shared norm in
parallel blocks. Each value is read from config.json, else from the config class's default in
transformers 5.23 (``configuration_<model>.py``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from vramdoc.errors import ConfigError
from vramdoc.safeload import show

# activation of each config class when config.json leaves it out
_ACT_DEFAULTS = {
    "gpt2": "gelu_new", "gpt_bigcode": "gelu_pytorch_tanh", "opt": "relu", "bloom": "gelu",
    "gpt_neox": "gelu", "falcon": "gelu", "bert": "gelu", "roberta": "gelu",
    "gemma": "gelu_pytorch_tanh", "gemma2": "gelu_pytorch_tanh",
    "gemma3_text": "gelu_pytorch_tanh", "gemma3": "gelu_pytorch_tanh",
}
# (attention probs, hidden/residual, embedding) dropout defaults; others default to 0
_DROPOUT_DEFAULTS = {
    "bert": (0.1, 0.1, 0.1), "roberta": (0.1, 0.1, 0.1), "gpt2": (0.1, 0.1, 0.1),
    "gpt_bigcode": (0.1, 0.1, 0.1), "opt": (0.0, 0.1, 0.1),
}
# absolute (learned) or ALiBi positions: no rotary q/k copies
_NO_ROTARY = {"gpt2", "gpt_bigcode", "opt", "bloom", "bert", "roberta"}
# per-head RMSNorm on q and k before rotary
_QK_NORM = {"qwen3", "qwen3_moe", "gemma3_text", "gemma3", "olmo2"}


@dataclass(frozen=True)
class BlockFacts:
    hidden_act: str
    attention_dropout: float
    hidden_dropout: float
    embedding_dropout: float
    rotary: bool
    qk_norm: bool
    shared_block_norm: bool  # parallel block whose attention and MLP read one norm (Falcon-7B)


def _first_float(cfg: Mapping[str, Any], keys: tuple[str, ...], default: float) -> float:
    for k in keys:
        v = cfg.get(k)
        if v is not None:
            if isinstance(v, bool) or not isinstance(v, int | float) or not 0 <= v <= 1:
                raise ConfigError([f"{k} must be a probability between 0 and 1, got {show(v)}"],
                                  "model config", "fix the config.json fields named above")
            return float(v)
    return default


def block_facts(model_type: str, config: Mapping[str, Any]) -> BlockFacts:
    act = config.get("hidden_act", config.get("activation_function"))
    d_attn, d_resid, d_emb = _DROPOUT_DEFAULTS.get(model_type, (0.0, 0.0, 0.0))
    return BlockFacts(
        hidden_act=str(act) if act is not None else _ACT_DEFAULTS.get(model_type, "silu"),
        attention_dropout=_first_float(
            config, ("attention_dropout", "attn_pdrop", "attention_probs_dropout_prob"), d_attn),
        hidden_dropout=_first_float(
            config, ("resid_pdrop", "hidden_dropout_prob", "hidden_dropout", "dropout"), d_resid),
        embedding_dropout=_first_float(
            config, ("embd_pdrop", "hidden_dropout_prob", "dropout"), d_emb),
        rotary=model_type not in _NO_ROTARY,
        qk_norm=bool(config.get("use_qk_norm")) or model_type in _QK_NORM,
        shared_block_norm=model_type == "falcon"
        and not config.get("new_decoder_architecture", False),
    )
