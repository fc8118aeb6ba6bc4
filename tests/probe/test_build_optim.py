"""Model build (meta / fake / real) and Trainer's optimizer, as the snippet would set them up."""

from __future__ import annotations

import pytest
import torch

from tests.probe.conftest import tiny_setup, tiny_spec
from vramdoc.errors import UsageError
from vramdoc.probe import build, optim


def _meta(setup):
    spec = tiny_spec()
    return build.build_meta(setup, spec.model_type, spec.config, spec.checkpoint_dtype)


def test_qlora_meta_build_is_what_peft_and_bitsandbytes_make():
    bnb = pytest.importorskip("bitsandbytes")
    built = _meta(tiny_setup("qlora", dtype="bfloat16"))
    quantized = [m for m in built.model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    # 7 Linears per block x 2 blocks; lm_head stays unquantized (get_keys_to_not_convert)
    assert len(quantized) == 14
    w = quantized[0].weight
    assert w.dtype == torch.uint8 and w.numel() == 64 * 64 // 2
    named = dict(built.model.named_parameters())
    # prepare_model_for_kbit_training upcast every non-quantized bf16 parameter to fp32
    assert named["base_model.model.model.embed_tokens.weight"].dtype == torch.float32
    assert named["base_model.model.model.norm.weight"].dtype == torch.float32
    assert named["base_model.model.lm_head.weight"].dtype == torch.float32
    lora = [p for n, p in named.items() if "lora_" in n]
    assert lora and all(p.dtype == torch.float32 and p.requires_grad for p in lora)
    # r=4 on q (64->64), v (64->32), down (172->64), 2 layers
    assert built.n_trainable == 2 * 4 * ((64 + 64) + (64 + 32) + (172 + 64))


def test_flash_attention_is_traced_as_sdpa_with_a_note():
    built = _meta(tiny_setup("full", attn="flash_attention_2", dtype="bfloat16"))
    assert built.attn_implementation == "sdpa"
    assert any("flash_attention_2" in n for n in built.notes)


def test_gradient_checkpointing_is_enabled_the_trainer_way():
    built = _meta(tiny_setup("lora", gradient_checkpointing=True))
    assert built.hf_model.is_activation_checkpointing
    assert all(layer.gradient_checkpointing for layer in built.decoder_layers())


def test_bad_config_value_is_a_usage_error():
    spec = tiny_spec()
    with pytest.raises(UsageError, match="initializer_range"):
        build.hf_config("llama", {**spec.config, "initializer_range": 2.0}, tiny_setup())


def _optim(name: str, emulate_cuda: bool = True, method: str = "full", **training):
    built = _meta(tiny_setup(method, optim=name, **training))
    built.model.to_empty(device="cpu")
    return built, optim.build_optimizer(built.model, tiny_setup(method, optim=name, **training),
                                        emulate_cuda=emulate_cuda, probe_steps=4)


def test_adamw_torch_runs_foreach_as_on_cuda_and_keeps_step_on_host():
    built, run = _optim("adamw_torch")
    assert run.optimizer.defaults["foreach"] is True and not run.device_step
    _, plain = _optim("adamw_torch", emulate_cuda=False)
    assert plain.optimizer.defaults["foreach"] is None


def test_fused_adamw_keeps_step_on_device():
    _, run = _optim("adamw_torch_fused")
    assert run.optimizer.defaults["fused"] is True and run.device_step


def test_trainer_param_groups_exclude_norms_and_biases_from_decay():
    built, run = _optim("adamw_torch", weight_decay=0.1)
    decay, no_decay = run.optimizer.param_groups
    names = {id(p): n for n, p in built.model.named_parameters()}
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert all("norm" in names[id(p)] for p in no_decay["params"])
    assert not any("norm" in names[id(p)] for p in decay["params"])


def test_paged_state_is_reported_apart():
    pytest.importorskip("bitsandbytes")
    built, run = _optim("paged_adamw_8bit", method="lora")
    p = next(p for p in built.model.parameters() if p.requires_grad)
    p.grad = torch.zeros_like(p)
    # a 1e5-element tensor is paged by bitsandbytes, a small one is not
    big = torch.nn.Parameter(torch.zeros(400, 256))
    big.grad = torch.zeros_like(big)
    run.optimizer.add_param_group({"params": [big]})
    run.optimizer.step()
    roles = {id(t): r for t, r in run.state_roles()}
    big_roles = {roles[id(v)] for k, v in run.optimizer.state[big].items()
                 if isinstance(v, torch.Tensor) and k in ("state1", "state2")}
    small_roles = {roles[id(v)] for k, v in run.optimizer.state[p].items()
                   if isinstance(v, torch.Tensor) and k in ("state1", "state2")}
    assert big_roles == {"paged"} and small_roles == {"optimizer_states"}


def test_optimizer_needing_torchao_is_a_usage_error():
    with pytest.raises(UsageError, match="torchao"):
        _optim("adamw_torch_4bit")


def test_warmup_ratio_becomes_steps():
    _, run = _optim("adamw_torch", warmup_steps=0.5)
    # 0.5 of 4 probe steps = 2 warmup steps: the first LR is 0
    assert run.optimizer.param_groups[0]["lr"] == 0.0
