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


@pytest.mark.parametrize("name", ["adamw_torch", "adamw_torch_fused", "adafactor", "sgd",
                                  "adagrad", "rmsprop", "adamw_8bit", "paged_adamw_8bit",
                                  "paged_lion_32bit", "adamw_torch_4bit", "not_an_optim"])
def test_optimizer_choice_is_trainers_without_importing_trainer(name):
    """optim.optimizer_cls_and_kwargs runs Trainer.get_optimizer_cls_and_kwargs's body: the same
    class and keywords (or the same refusal) for every optim name."""
    from transformers import Trainer

    extra = {"optim_args": "momentum=0.5"} if name == "sgd" else {}
    setup = tiny_setup("lora", learning_rate=3e-4, adam_beta2=0.95, **extra)
    setup = setup.replace_training(optim=name)
    built = _meta(setup)

    def outcome(fn):
        try:
            return fn(optim._training_args(setup), built.model)
        except Exception as exc:  # noqa: BLE001 - the refusal is part of the contract
            return type(exc), str(exc)

    ours = outcome(optim.optimizer_cls_and_kwargs)
    assert ours == outcome(Trainer.get_optimizer_cls_and_kwargs)
    if name == "adamw_torch":
        assert ours[0] is torch.optim.AdamW and ours[1]["betas"] == (0.9, 0.95)


@pytest.mark.parametrize("method", ["full", "lora", "qlora"])
def test_decay_names_are_trainers_without_importing_trainer(method):
    from transformers import Trainer

    if method == "qlora":
        pytest.importorskip("bitsandbytes")
    built = _meta(tiny_setup(method))
    head = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.LayerNorm(4))
    built.model.add_module("extra_head", head)  # an nn.LayerNorm: excluded by type
    ours = optim.decay_parameter_names(built.model)
    assert ours == Trainer.get_decay_parameter_names(None, built.model)
    assert "extra_head.0.weight" in ours and "extra_head.1.weight" not in ours
    assert not any("norm" in n for n in ours)


def test_fake_probe_does_not_import_trainer():
    """transformers.trainer (datasets, pandas) is no part of a probe: a fresh process that
    probes a tiny model never imports it."""
    import subprocess
    import sys

    from tests.conftest import ROOT

    code = ("import sys; from tests.probe.conftest import tiny_setup, tiny_spec; "
            "from vramdoc.probe.recipe import run_probe; "
            "r = run_probe(tiny_setup('lora'), tiny_spec(), device='fake', steps=1); "
            "assert r.measured is not None, r.step_error; "
            "print(sorted(m for m in ('transformers.trainer', 'datasets', 'pandas') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"
