"""GPTBigCode across transformers releases, the KV cache a forward keeps, and the residual
stream a k-bit block widens (vramdoc.estimate.stack, activations.account_activations).

- up to 4.52 GPTBigCode keeps ``use_cache`` on under checkpointing: each layer's present, a
  view of its whole fused ``c_attn`` output, is held in the returned output to the loss
  (reproduced on CPU with transformers 4.48.1: three layers' presents, each a view of a
  b*s*(h + 2d) bf16 storage; see the issue note);
- 4.54-4.57 GPTBigCode ignores ``gradient_checkpointing_enable()`` (checked with 4.55.4: the
  blocks' forward runs once per layer, no recomputation in backward);
- the KV cache copies keys and values from 4.56 (``DynamicLayer.update``'s torch.cat), not
  before;
- an un-upcast QLoRA base under autocast after an nn.LayerNorm hands on an fp32 residual.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from vramdoc.errors import ConfigError
from vramdoc.estimate import estimate
from vramdoc.estimate.stack import (
    cache_copies,
    checkpointing_ignored,
    checkpointing_keeps_presents,
)
from vramdoc.setup import setup_from_mapping, setup_to_mapping

# santacoder (bigcode/gpt_bigcode-santacoder config): 24 layers, n_embd 2048, 16 heads of 128,
# multi-query: c_attn is 2048 + 2 * 128 wide
L, H, D, V = 24, 2048, 128, 49280


def _santa(tf: str = "4.48.1", b: int = 4, s: int = 2048, **kw: Any) -> dict[str, Any]:
    m: dict[str, Any] = {
        "model": "santacoder", "stack": {"transformers": tf},
        "model_kwargs": {"dtype": "bfloat16", "attn_implementation": "flash_attention_2"},
        "training": {"per_device_train_batch_size": b, "gradient_checkpointing": True,
                     "optim": "adamw_torch"},
        "max_seq_length": s,
    }
    m.update(kw)
    return m


def _est(m: dict[str, Any]) -> Any:
    return estimate(setup_from_mapping(copy.deepcopy(m), source="test"))


def _phase(e: Any, name: str) -> int:
    return sum(e.phase_components[name].values())


def test_release_thresholds_read_from_the_wheels() -> None:
    # modeling_gpt_bigcode.py: no ``use_cache = False`` under checkpointing in 4.28.1 .. 4.52.4;
    # 4.53.3 sets it; 4.54.0 .. 4.57.6 call no checkpoint function; 5.0.0 GradientCheckpointingLayer
    assert checkpointing_keeps_presents("gpt_bigcode", "4.28.1")
    assert checkpointing_keeps_presents("gpt_bigcode", "4.48.1")
    assert checkpointing_keeps_presents("gpt_bigcode", "4.52.4")
    assert not checkpointing_keeps_presents("gpt_bigcode", "4.53.3")
    assert not checkpointing_keeps_presents("llama", "4.48.1")
    assert checkpointing_ignored("gpt_bigcode", "4.54.0")
    assert checkpointing_ignored("gpt_bigcode", "4.57.6")
    assert not checkpointing_ignored("gpt_bigcode", "4.53.3")
    assert not checkpointing_ignored("gpt_bigcode", "5.0.0")
    assert not checkpointing_ignored("gpt2", "4.55.4")
    # cache_utils.py: DynamicLayer.lazy_initialization + torch.cat from 4.56.0; 4.55.4 keeps
    # the tensors (``self.keys = key_states``)
    assert cache_copies("4.56.0") and cache_copies("5")
    assert not cache_copies("4.55.4") and not cache_copies("4.36")


def test_presents_held_to_the_loss_under_checkpointing() -> None:
    kept = _est(_santa())
    off = _est(_santa(model_kwargs={"dtype": "bfloat16", "use_cache": False,
                                    "attn_implementation": "flash_attention_2"}))
    presents = L * 4 * 2048 * (H + 2 * D) * 2  # bf16 c_attn outputs, every layer
    assert _phase(kept, "forward") - _phase(off, "forward") == presents
    # the output is dropped before backward: nothing else moves
    for phase in ("load", "backward", "optimizer_step"):
        assert _phase(kept, phase) == _phase(off, phase)
    assert any("KV cache under gradient checkpointing" in n for n in kept.notes)
    assert not any("KV cache" in n for n in off.notes)
    # 4.53 turns the cache off itself
    assert _phase(_est(_santa(tf="4.53.3")), "forward") == _phase(_est(_santa(
        tf="4.53.3", model_kwargs={"dtype": "bfloat16", "use_cache": False,
                                   "attn_implementation": "flash_attention_2"})), "forward")


def test_presents_held_through_backward_when_the_loop_keeps_the_output() -> None:
    plain, held = _est(_santa()), _est(_santa(hold_outputs=True))
    presents = L * 4 * 2048 * (H + 2 * D) * 2
    logits = 4 * 2048 * V * 2  # the model's own bf16 logits (4.48 GPTBigCode loss)
    assert _phase(held, "optimizer_step") - _phase(plain, "optimizer_step") == presents + logits


def test_checkpointing_ignored_for_gpt_bigcode_from_4_54_to_4_57() -> None:
    asked = _est(_santa(tf="4.55.4", b=2, s=1024))
    plain = _est(_santa(tf="4.55.4", b=2, s=1024,
                        training={"per_device_train_batch_size": 2,
                                  "gradient_checkpointing": False, "optim": "adamw_torch"}))
    for phase in ("forward", "backward", "optimizer_step"):
        assert _phase(asked, phase) == _phase(plain, phase)
    assert any("ignores gradient checkpointing" in n for n in asked.notes)
    # transformers 5 checkpoints: only the block inputs are saved in forward
    five = _est(_santa(tf="5", b=2, s=1024))
    acts = [e.phase_components["forward"]["activations"] for e in (five, asked)]
    assert acts[0] < acts[1] / 4
    assert not any("ignores" in n for n in five.notes)


def _gpt2_plain(tf: str, use_cache: bool | None = None) -> int:
    mk: dict[str, Any] = {"dtype": "bfloat16", "attn_implementation": "sdpa"}
    if use_cache is not None:
        mk["use_cache"] = use_cache
    return _phase(_est({"model": "gpt2", "stack": {"transformers": tf}, "model_kwargs": mk,
                        "training": {"per_device_train_batch_size": 1},
                        "max_seq_length": 256}), "forward")


def test_cache_copies_only_from_4_56() -> None:
    # GPT-2's k and v are views of c_attn's output, which SDPA keeps through q: a cache that
    # keeps the very views adds nothing; from 4.56 it holds copies of both (12 layers, 768)
    assert _gpt2_plain("4.55.4") == _gpt2_plain("4.55.4", use_cache=False)
    copies = 12 * 2 * 256 * 768 * 2
    assert _gpt2_plain("4.56.0") - _gpt2_plain("4.56.0", use_cache=False) == copies


def test_kbit_block_widens_the_residual_stream() -> None:
    # fms-acceleration's accelerated-peft-bnb santacoder: NF4 base, no fp32 upcast, bf16
    # autocast: ln_2 returns fp32, the 4-bit c_fc / c_proj cast their outputs back to it,
    # so from layer 0's MLP on the residual is fp32: checkpointed inputs bf16 once, fp32 after
    def qlora(b: int) -> dict[str, Any]:
        return _santa(b=b, prepare_model_for_kbit_training=False,
                      model_kwargs={"dtype": "bfloat16", "use_cache": False,
                                    "attn_implementation": "flash_attention_2"},
                      quantization={"load_in_4bit": True, "bnb_4bit_quant_type": "nf4",
                                    "bnb_4bit_compute_dtype": "bfloat16"},
                      lora={"r": 16, "lora_alpha": 16, "target_modules": ["c_attn"]},
                      training={"per_device_train_batch_size": b, "bf16": True,
                                "gradient_checkpointing": True, "optim": "adamw_torch"})
    a, b = _est(qlora(1)), _est(qlora(2))
    ckpt = 2048 * H * (2 + 4 * (L - 1))  # one sequence's checkpointed block inputs
    per_seq = b.phase_components["forward"]["activations"] - a.phase_components[
        "forward"]["activations"]
    # one sequence's forward activations: its checkpointed inputs and the final norm/head's
    # few (b, s, h) tensors and ids, well under one more fp32 layer input
    assert ckpt <= per_seq < ckpt + 8 * 2048 * H


def test_use_cache_setup_key() -> None:
    s = setup_from_mapping(_santa(model_kwargs={"dtype": "bfloat16", "use_cache": False}))
    assert s.use_cache is False
    assert setup_to_mapping(s)["model_kwargs"]["use_cache"] is False
    assert setup_from_mapping(_santa()).use_cache is None
    with pytest.raises(ConfigError, match="model_kwargs.use_cache"):
        setup_from_mapping(_santa(model_kwargs={"use_cache": "no"}))


def _gptq(gpus: int = 2, **kw: Any) -> dict[str, Any]:
    m: dict[str, Any] = {
        "model": "TheBloke/Mistral-7B-v0.1-GPTQ", "num_gpus": gpus,
        "model_kwargs": {"dtype": "float16", "attn_implementation": "flash_attention_2"},
        "quantization": {"quant_method": "gptq", "bits": 4, "group_size": 128},
        "lora": {"r": 16, "lora_alpha": 16, "target_modules": ["q_proj", "v_proj"]},
        "training": {"per_device_train_batch_size": 2, "gradient_checkpointing": True,
                     "fp16": True, "fsdp": "full_shard auto_wrap"},
        "max_seq_length": 1024,
    }
    if gpus == 1:
        del m["training"]["fsdp"]
    m.update(kw)
    return m


def test_shard_quantized_tensors_shards_the_packed_gptq_tensors() -> None:
    whole, sharded = _est(_gptq()), _est(_gptq(shard_quantized_tensors=True))
    w0, w1 = (e.phase_components["load"]["weights"] for e in (whole, sharded))
    # the packed tensors (~3.9 GB of Mistral-7B's 4-bit layers) drop to half a copy per rank
    assert 1.6e9 < w0 - w1 < 2.1e9
    assert setup_to_mapping(setup_from_mapping(_gptq(shard_quantized_tensors=True)))[
        "shard_quantized_tensors"] is True


@pytest.mark.parametrize("bad, what", [
    ({"quantization": {"load_in_4bit": True}}, "only GPTQ / AWQ"),
    ({"num_gpus": 1, "training": {"per_device_train_batch_size": 2}}, "sharded by FSDP only"),
    ({"shard_quantized_tensors": "yes"}, "is text, not true or false"),
])
def test_shard_quantized_tensors_refused_where_it_means_nothing(bad: dict[str, Any],
                                                                 what: str) -> None:
    m = _gptq(shard_quantized_tensors=True)
    m.update(bad)
    with pytest.raises(ConfigError, match=what):
        setup_from_mapping(m)


def test_falcon_linear_quantized_before_5_5() -> None:
    # integrations/bitsandbytes.py: ``isinstance(module, (nn.Linear, Conv1D))`` up to 5.4.0,
    # ``type(module) is nn.Linear`` from 5.5.0: FalconLinear (a subclass) stays 16-bit then
    from vramdoc.estimate.stack import bnb_skips_linear_subclasses

    assert not bnb_skips_linear_subclasses("4.48.1")
    assert not bnb_skips_linear_subclasses("5.4.0")
    assert bnb_skips_linear_subclasses("5.5.0") and bnb_skips_linear_subclasses("5")

    def weights(tf: str) -> int:
        return int(_est({"model": "falcon-7b", "stack": {"transformers": tf},
                         "model_kwargs": {"dtype": "bfloat16"},
                         "quantization": {"load_in_4bit": True},
                         "prepare_model_for_kbit_training": False,
                         "lora": {"r": 8, "lora_alpha": 16,
                                  "target_modules": ["query_key_value"]},
                         "training": {"per_device_train_batch_size": 1},
                         "max_seq_length": 128}).phase_components["load"]["weights"])

    # Falcon-7B's blocks hold ~6.5 B of its 6.9 B parameters: 2 bytes each, or half a byte
    assert weights("5.24") - weights("4.48.1") > 9e9
