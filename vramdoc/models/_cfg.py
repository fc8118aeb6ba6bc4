"""Reading Hugging Face ``config.json`` mappings the way transformers 5 does, without transformers.

Each architecture module reads its numbers through :class:`Cfg`, which applies the defaults and
legacy aliases of the matching ``transformers`` config class (checked against
``AutoConfig.for_model(model_type)`` by ``tests/models/test_config_defaults.py``), and builds
:class:`~vramdoc.models.spec.ParamGroup` rows with the small helpers below.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from vramdoc.errors import ConfigError
from vramdoc.models.spec import ATTN_ALL, EMBEDDING, HEAD, LINEAR, NORM, OTHER, ParamGroup
from vramdoc.safeload import show

# The largest size a config.json dimension may have: no released model has a width, depth,
# vocabulary or position count near 2**31 (vocabularies are ~2**18, widths ~2**16).
MAX_DIM = 2**31

# config.json "torch_dtype" (transformers < 5) or "dtype" (transformers >= 5) -> canonical name.
_DTYPES = {
    "float32": "float32", "float": "float32", "fp32": "float32", "torch.float32": "float32",
    "bfloat16": "bfloat16", "bf16": "bfloat16", "torch.bfloat16": "bfloat16",
    "float16": "float16", "half": "float16", "fp16": "float16", "torch.float16": "float16",
}


def checkpoint_dtype(config: Mapping[str, Any]) -> str:
    """The dtype the checkpoint is stored in, from ``dtype`` or ``torch_dtype``.

    transformers 5 writes ``dtype``; older configs say ``torch_dtype``. A config without either
    loads in float32 under ``from_pretrained`` defaults, so float32 is the answer then.
    """
    raw = config.get("dtype") or config.get("torch_dtype")
    if raw is None:
        return "float32"
    name = _DTYPES.get(raw.lower()) if isinstance(raw, str) else None
    if name is None:
        raise ConfigError([f"dtype {raw!r} is not float32, bfloat16 or float16"], "model config")
    return name


class Cfg:
    """Read-only view of a config mapping with transformers' defaults and name aliases.

    A key that is absent or null takes the default, as the transformers config classes do
    for the fields read here (``head_dim: null`` -> ``hidden_size // num_attention_heads``).
    """

    def __init__(self, config: Mapping[str, Any], what: str = "model config") -> None:
        self.raw = config
        self.what = what
        self.problems: list[str] = []

    def get(self, *names: str, default: Any = None) -> Any:
        """First non-null value among ``names`` (aliases, in priority order), else ``default``."""
        for n in names:
            v = self.raw.get(n)
            if v is not None:
                return v
        return default

    def int(self, *names: str, default: int | None = None) -> int:
        """A positive int under one of ``names``; a problem is recorded when missing or bad."""
        v = self.get(*names, default=default)
        whole = (not isinstance(v, bool) and isinstance(v, int | float)
                 and (isinstance(v, int) or (math.isfinite(v) and v == int(v))))
        if not whole or v <= 0 or v > MAX_DIM:
            self.problems.append(
                f"{names[0]} must be a positive integer up to 2**31, got {show(v)}"
                if v is not None else f"{names[0]} is missing"
            )
            return 1
        return int(v)

    def flag(self, *names: str, default: bool) -> bool:
        """A boolean under one of ``names`` (``default`` when absent or null).

        A quoted ``"false"`` is recorded as a problem, never read as true."""
        v = self.get(*names, default=default)
        if not isinstance(v, bool):
            self.problems.append(f"{names[0]} must be true or false, got {show(v)}")
            return default
        return v

    def sub(self, key: str, what: str) -> Cfg:
        """The nested config under ``key`` (``text_config``, ``vision_config``), maybe empty."""
        v = self.raw.get(key) or {}
        if not isinstance(v, Mapping):
            self.problems.append(f"{key} must be a mapping")
            v = {}
        child = Cfg(v, what)
        child.problems = self.problems  # one list: every problem is reported at once
        return child

    def check(self) -> None:
        """Raise :class:`ConfigError` listing every problem found so far."""
        if self.problems:
            raise ConfigError(list(dict.fromkeys(self.problems)), self.what,
                              "fix the config.json fields named above")


@dataclass(frozen=True)
class Summary:
    """The ModelSpec numbers of one architecture (see vramdoc/models/spec.py for meanings)."""

    family: str
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    intermediate_size: int
    vocab_size: int
    max_position_embeddings: int
    tie_word_embeddings: bool
    gated_mlp: bool
    num_local_experts: int = 0
    num_experts_per_tok: int = 0
    is_encoder: bool = False
    sliding_window: int | None = None
    remote_code: bool = False
    loss: str = "transformers"
    attn_implementations: tuple[str, ...] = ATTN_ALL


# (config, task, num_labels) -> (ModelSpec numbers, parameter groups) of one model_type.
Builder = Callable[["Cfg", str, int], "tuple[Summary, list[ParamGroup]]"]


# --- ParamGroup builders -------------------------------------------------------------------


def linear(path: str, in_f: int, out_f: int, *, bias: bool, count: int = 1,
           in_block: bool = True, quantizable: bool = True, kind: str = LINEAR) -> ParamGroup:
    """An nn.Linear (or GPT-2 Conv1D, given as the equivalent Linear) at module ``path``."""
    return ParamGroup(path=path, leaf=path.rsplit(".", 1)[-1], kind=kind, in_features=in_f,
                      out_features=out_f, weight_numel=in_f * out_f,
                      bias_numel=out_f if bias else 0, count=count, in_block=in_block,
                      quantizable=quantizable)


def norm(path: str, dim: int, *, bias: bool, count: int = 1, in_block: bool = True) -> ParamGroup:
    """A LayerNorm (weight + bias) or RMSNorm (weight) at module ``path``."""
    return ParamGroup(path=path, leaf=path.rsplit(".", 1)[-1], kind=NORM, weight_numel=dim,
                      bias_numel=dim if bias else 0, count=count, in_block=in_block)


def embedding(path: str, rows: int, dim: int) -> ParamGroup:
    """An nn.Embedding table (rows x dim) at module ``path``."""
    return ParamGroup(path=path, leaf=path.rsplit(".", 1)[-1], kind=EMBEDDING, in_features=rows,
                      out_features=dim, weight_numel=rows * dim)


def param(path: str, numel: int, *, count: int = 1, in_block: bool = False,
          in_f: int = 0, out_f: int = 0) -> ParamGroup:
    """A bare nn.Parameter; ``path`` names the parameter itself (kind OTHER)."""
    return ParamGroup(path=path, leaf=path.rsplit(".", 1)[-1], kind=OTHER, in_features=in_f,
                      out_features=out_f, weight_numel=numel, count=count, in_block=in_block)


def lm_head(path: str, hidden: int, vocab: int, *, tied_to: str | None) -> ParamGroup:
    """The output projection. bitsandbytes never quantizes it: transformers keeps the output
    embedding and every tied weight out of the conversion (quantizers/base.py,
    ``get_keys_to_not_convert``)."""
    return ParamGroup(path=path, leaf=path.rsplit(".", 1)[-1], kind=HEAD, in_features=hidden,
                      out_features=vocab, weight_numel=hidden * vocab, tied_to=tied_to)


def score_head(path: str, hidden: int, num_labels: int) -> ParamGroup:
    """``*ForSequenceClassification.score`` of decoder LLMs: Linear(hidden, num_labels, bias=False).

    It is the model's last parameter, which ``get_keys_to_not_convert`` keeps unquantized."""
    return linear(path, hidden, num_labels, bias=False, in_block=False, quantizable=False,
                  kind=HEAD)
