"""A ModelSpec for a config.json whose model_type vramdoc has no builder for, built from the
module tree transformers makes of it (``vramdoc.probe.generic``, which imports transformers
lazily, on this path only).

The parameter inventory is exact (every tensor of the built model); the activation walk runs on
the generic block the inventory describes (attention projections by path, an MLP, norms by their
biases), so estimates of such models are flagged ``generic (approximate activations)``: block
details vramdoc models per architecture (partial rotary, parallel blocks, qk-norms, attention
sinks ...) are not known here.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from typing import Any

from vramdoc.errors import ConfigError, UnknownModelError
from vramdoc.models._block import block_facts
from vramdoc.models._cfg import checkpoint_dtype
from vramdoc.models.inventory import summary_fields
from vramdoc.models.spec import EMBEDDING, ModelSpec, ParamGroup
from vramdoc.safeload import show


def _builder() -> Any:
    if importlib.util.find_spec("transformers") is None or \
            importlib.util.find_spec("torch") is None:
        return None
    from vramdoc.probe import generic

    return generic


def generic_spec(config: Mapping[str, Any], *, name: str, hf_id: str = "",
                 source: str = "") -> ModelSpec:
    """The spec of ``config`` (a model_type outside the registry) built by transformers.

    Raises:
        UnknownModelError: transformers is not installed, does not know the model_type, or has
            no causal-LM class for it (the message names the model_type).
        ConfigError: transformers refuses the config's values.
    """
    mt = config.get("model_type")
    if not isinstance(mt, str) or not mt:
        raise UnknownModelError(f"config has model_type {show(mt)}",
                                "give config.json its model_type")
    from vramdoc.models.inventory import CAUSAL_LM, SUPPORTED_MODEL_TYPES

    build = _builder()
    if build is None:
        raise UnknownModelError(
            f"config has model_type {mt!r}, which vramdoc has no inventory for; building it "
            "from the config needs transformers and torch, which are not installed",
            "pip install 'vramdoc[probe]', or use a model of an architecture vramdoc knows: "
            + ", ".join(SUPPORTED_MODEL_TYPES))
    summary, _groups, full = build.inventory(dict(config), CAUSAL_LM, 2)
    # the block's wiring, read off the built module: a parallel block (attention and MLP
    # both on the layer's input, GPT-NeoX / Falcon / Cohere style), whether they share one
    # norm output, and what an op-chain norm keeps (vramdoc.probe.generic.block_structure)
    wiring = build.block_structure(dict(config))
    fields = summary_fields(summary)
    if wiring.parallel:
        fields["family"] = "parallel"
    try:
        facts = block_facts(mt, full, summary.num_hidden_layers, summary.sliding_window)
    except ConfigError as exc:
        raise ConfigError(exc.problems, f"{name}: config", exc.hint) from None
    # LayerNorm (norms with biases) made the summary say "gpt"; but a block whose input is
    # the input embedding's own output (no learned positions added, no embedding norm:
    # rotary models such as StableLM, Starcoder2) is a pre-norm decoder of the llama kind
    # with nn.LayerNorm (ModelSpec.layer_norm), not GPT-2's embedding sum
    layer_norm = False
    if fields["family"] == "gpt" and facts.rotary and not facts.embedding_dropout and sum(
            1 for g in _groups if g.kind == EMBEDDING and not g.in_block) == 1:
        fields["family"], layer_norm = "llama", True
    return ModelSpec(
        name=name, hf_id=hf_id, model_type=mt, **fields,
        checkpoint_dtype=checkpoint_dtype(config), source=source, config=dict(config),
        hidden_act=facts.hidden_act, attention_dropout=facts.attention_dropout,
        hidden_dropout=facts.hidden_dropout, embedding_dropout=facts.embedding_dropout,
        rotary=facts.rotary, use_cache=facts.use_cache, sliding_layers=facts.sliding_layers,
        shared_block_norm=wiring.shared_norm, norm_fp32_copies=wiring.norm_fp32_copies,
        sdpa_out_copy=wiring.sdpa_out_copy, mlp_frame_holds=wiring.mlp_holds,
        layer_norm=layer_norm,
        n_params=sum(g.numel for g in _groups), generic=True,
    )


def generic_groups(spec: ModelSpec, task: str, num_labels: int) -> tuple[ParamGroup, ...]:
    """The inventory of a generic spec for ``task`` (built again for another task)."""
    build = _builder()
    if build is None:  # the spec was made where transformers was installed
        raise UnknownModelError(f"{spec.name} (model_type {spec.model_type!r}) needs "
                                "transformers to be inventoried", "pip install 'vramdoc[probe]'")
    _summary, groups, _full = build.inventory(dict(spec.config), task, num_labels)
    return tuple(groups)
