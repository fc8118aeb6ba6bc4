"""A fake-tensor step counts exactly what a real CPU step of the same setup allocates.

shared/REFERENCE.md section 2: live-storage accounting under FakeTensorMode equals a real CPU
run to the byte. For QLoRA the fake run uses the stand-in 4-bit layer and the CPU run real
bitsandbytes NF4 layers: the resident bytes (packed weights, quantization constants, adapters,
gradients, optimizer state) must agree to the byte. The kernels' temporaries cannot be compared:
bitsandbytes' CPU ops allocate inside one custom op, below the dispatch mode that counts.
"""

from __future__ import annotations

import pytest

from tests.probe.conftest import tiny_setup, tiny_spec
from vramdoc.probe.recipe import run_probe


@pytest.mark.parametrize("method, training", [
    ("full", {}),
    ("full", {"bf16": True, "dtype": "bfloat16", "gradient_checkpointing": True}),
    ("lora", {"fp16": True}),
    ("lora", {"attn": "eager", "gradient_checkpointing": True, "gradient_accumulation_steps": 2}),
    ("lora", {"optim": "paged_adamw_8bit", "bf16": True, "dtype": "bfloat16"}),
])
def test_fake_step_equals_cpu_step_to_the_byte(method, training):
    setup, spec = tiny_setup(method, **training), tiny_spec()
    cpu = run_probe(setup, spec, device="cpu", steps=2)
    fake = run_probe(setup, spec, device="fake", steps=2)
    assert cpu.step_error is None and fake.step_error is None
    assert cpu.measured.phases == fake.measured.phases
    assert cpu.measured.phase_components == fake.measured.phase_components
    assert cpu.saved_activation_bytes_per_layer == fake.saved_activation_bytes_per_layer
    assert cpu.measured.peak_allocated_bytes > cpu.measured.phases["load"]


RESIDENT = ("weights", "quant_state", "adapters", "gradients", "optimizer_states")


@pytest.mark.parametrize("double_quant", [True, False])
def test_qlora_stand_in_holds_what_bitsandbytes_holds(double_quant):
    pytest.importorskip("bitsandbytes")
    from dataclasses import replace

    setup = tiny_setup("qlora", gradient_checkpointing=True)
    q = replace(setup.quantization, bnb_4bit_use_double_quant=double_quant)
    setup = setup.replace(quantization=q)
    spec = tiny_spec()
    cpu = run_probe(setup, spec, device="cpu", steps=2)  # real bitsandbytes NF4 on CPU
    fake = run_probe(setup, spec, device="fake", steps=2)  # same-layout stand-in
    assert cpu.step_error is None and fake.step_error is None
    assert cpu.measured.phases["load"] == fake.measured.phases["load"]
    assert cpu.measured.phase_components["load"]["quant_state"] > 0
    real_opt = cpu.measured.phase_components["optimizer_step"]
    fake_opt = fake.measured.phase_components["optimizer_step"]
    assert {c: real_opt[c] for c in RESIDENT} == {c: fake_opt[c] for c in RESIDENT}


def test_moe_fake_step_equals_cpu_step_to_the_byte():
    """Mixtral-style fused experts (transformers 5 grouped_mm path), bf16 as on a GPU."""
    from vramdoc.models import spec_from_config

    spec = spec_from_config({
        "model_type": "mixtral", "hidden_size": 64, "intermediate_size": 128,
        "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
        "vocab_size": 256, "max_position_embeddings": 128, "num_local_experts": 4,
        "num_experts_per_tok": 2, "torch_dtype": "bfloat16"}, name="tiny-mixtral")
    setup = tiny_setup("lora", dtype="bfloat16", bf16=True)
    cpu = run_probe(setup, spec, device="cpu", steps=2)
    fake = run_probe(setup, spec, device="fake", steps=2)
    assert cpu.step_error is None and fake.step_error is None
    assert cpu.measured.phase_components == fake.measured.phase_components
