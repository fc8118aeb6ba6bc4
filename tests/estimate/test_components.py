"""Components of the estimate against numbers with provenance."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from vramdoc.estimate import COMPONENTS, PHASES, estimate
from vramdoc.models import resolve_model
from vramdoc.setup import setup_from_mapping
from vramdoc.units import GiB, MiB


def _setup(**kw):
    base = {"model": "llama-2-7b", "model_kwargs": {"dtype": "bfloat16"},
            "training": {"per_device_train_batch_size": 1}, "max_seq_length": 256}
    for k, v in kw.items():
        if k == "training":
            base["training"].update(v)
        else:
            base[k] = v
    return setup_from_mapping(base)


def test_full_bf16_weights_grads_states_are_exact() -> None:
    # Llama-2-7B has 6,738,415,616 parameters (meta-device build, shared/REFERENCE.md).
    n = 6_738_415_616
    est = estimate(_setup(training={"optim": "adamw_torch"}))
    step = est.phase_components["optimizer_step"]
    # pure bf16: 2 B/param weights and grads, AdamW states like the param: 4 B/param
    # (shared/REFERENCE.md "pure bf16"); per-tensor 512 B rounding adds < 0.01 %
    assert step["weights"] == pytest.approx(2 * n, rel=1e-4)
    assert step["gradients"] == pytest.approx(2 * n, rel=1e-4)
    assert step["optimizer_states"] == pytest.approx(4 * n, rel=1e-4)
    # foreach AdamW: one state-sized copy (torch/optim/adam.py, _foreach_sqrt of exp_avg_sq)
    assert step["optimizer_temporaries"] == pytest.approx(2 * n, rel=1e-4)
    assert est.peak_phase == "optimizer_step"


def test_fused_adamw_has_no_step_temporaries() -> None:
    est = estimate(_setup(training={"optim": "adamw_torch_fused"}))
    assert est.phase_components["optimizer_step"]["optimizer_temporaries"] == 0


def test_qlora_double_quant_bits_per_param() -> None:
    # QLoRA paper (arXiv 2305.14314, section 3): NF4 with double quantization costs
    # 8/64 + 32/(64*256) = 0.127 bit/param of constants; without it 32/64 = 0.5 bit/param.
    spec = resolve_model("llama-2-7b")
    quantized = sum(g.numel for g in __import__("vramdoc.models", fromlist=["x"])
                    .param_groups(spec) if g.quantizable)
    q = {"load_in_4bit": True, "bnb_4bit_quant_type": "nf4", "bnb_4bit_use_double_quant": True}
    lo = {"r": 8, "target_modules": ["q_proj", "v_proj"]}
    dq = estimate(_setup(quantization=q, lora=lo)).phase_components["load"]["quant_state"]
    q2 = dict(q, bnb_4bit_use_double_quant=False)
    single = estimate(_setup(quantization=q2, lora=lo)).phase_components["load"]["quant_state"]
    assert 8 * dq / quantized == pytest.approx(0.127, abs=0.005)  # 512 B rounding per tensor
    assert 8 * single / quantized == pytest.approx(0.5, abs=0.002)


def test_kbit_preparation_upcasts_unquantized_weights_to_fp32() -> None:
    # prepare_model_for_kbit_training casts embeddings, norms and lm_head to fp32
    # (peft/utils/other.py); Llama-2-7B's embed_tokens and lm_head are 32000 x 4096 each.
    q = {"load_in_4bit": True, "bnb_4bit_quant_type": "nf4"}
    lo = {"r": 8, "target_modules": ["q_proj", "v_proj"]}
    with_prep = estimate(_setup(quantization=q, lora=lo))
    without = estimate(_setup(quantization=q, lora=lo, prepare_model_for_kbit_training=False))
    load_with, load_without = with_prep.phase_components["load"], without.phase_components["load"]
    diff = load_with["weights"] - load_without["weights"]
    assert diff >= 2 * 32000 * 4096 * 2  # embeddings + lm_head: 4 B instead of 2 B


def test_lora_adapters_are_fp32_and_sized_by_shapes() -> None:
    # LoRA on q_proj and v_proj of Llama-2-7B: r * (in + out) per module, 32 layers, fp32
    # (peft autocast_adapter_dtype=True): 2 * 32 * 8 * (4096 + 4096) * 4 bytes.
    est = estimate(_setup(lora={"r": 8, "target_modules": ["q_proj", "v_proj"]}))
    assert est.trainable_params == 2 * 32 * 8 * (4096 + 4096)
    assert est.phase_components["load"]["adapters"] == 2 * 32 * 8 * (4096 + 4096) * 4


def test_paged_optimizer_states_are_outside_allocated_but_in_device_view() -> None:
    # bitsandbytes get_state_buffer pages only tensors of >= 1e5 elements
    # (bitsandbytes/optim/optimizer.py): a full fine-tune's matrices are paged, its norm
    # vectors (4096) are not; LoRA q/v matrices of 16 x 4096 = 65,536 are not paged at all.
    full = estimate(_setup(training={"optim": "paged_adamw_32bit"}))
    n = 6_738_415_616
    assert full.paged_bytes == pytest.approx(8 * n, rel=1e-3)
    on_device = full.phase_components["optimizer_step"]["optimizer_states"]
    assert 0 < on_device < 8 * 4096 * 65 * 2  # the 65 norm vectors' two fp32 states, rounded
    assert full.device_bytes > full.peak_reserved_bytes + full.cuda_context_bytes
    lora = estimate(_setup(lora={"r": 16, "target_modules": ["q_proj", "v_proj"]},
                           training={"optim": "paged_adamw_32bit"}))
    assert lora.paged_bytes == 0


def test_bnb_8bit_states_are_quarter_of_fp32() -> None:
    lo = {"r": 16, "target_modules": "all-linear"}
    eight = estimate(_setup(lora=lo, training={"optim": "adamw_bnb_8bit"}))
    full = estimate(_setup(lora=lo, training={"optim": "adamw_torch_fused"}))
    ratio = (eight.phase_components["optimizer_step"]["optimizer_states"]
             / full.phase_components["optimizer_step"]["optimizer_states"])
    assert ratio == pytest.approx((1 + 4 / 256) / 4, rel=0.02)


def test_gradient_checkpointing_keeps_one_block_input_per_layer() -> None:
    s = _setup(lora={"r": 8}, max_seq_length=2048, training={"gradient_checkpointing": True})
    est = estimate(s)
    # block inputs, bf16: L * b * s * h * 2 bytes (HF non-reentrant checkpointing)
    assert est.details["checkpoint_bytes"] == 32 * 1 * 2048 * 4096 * 2
    off = estimate(s.replace_training(gradient_checkpointing=False))
    assert (off.phase_components["forward"]["activations"]
            > 4 * est.phase_components["forward"]["activations"])


def test_gradient_accumulation_does_not_change_activations() -> None:
    a = estimate(_setup(lora={"r": 8}))
    b = estimate(_setup(lora={"r": 8}, training={"gradient_accumulation_steps": 8}))
    fwd_a, fwd_b = a.phase_components["forward"], b.phase_components["forward"]
    assert fwd_a["activations"] == fwd_b["activations"]
    assert b.phase_components["forward"]["gradients"] > 0  # grads live across micro-batches


def test_logits_chain_transformers5() -> None:
    # ForCausalLMLoss upcasts logits to fp32 (transformers/loss/loss_utils.py): at the end of
    # forward bf16 logits + fp32 copy + fp32 log_softmax = 10 bytes per logit.
    s = _setup(lora={"r": 8}, max_seq_length=1024)
    est = estimate(s)
    logits = 1 * 1024 * 32000
    assert est.phase_components["forward"]["logits"] == 10 * logits
    assert est.phase_components["backward"]["logits"] in (0, 12 * logits)


def test_json_contract_components_sum_to_peak() -> None:
    est = estimate(_setup(lora={"r": 8}, gpu="RTX-3060-12GB"))
    out = est.to_json()
    for key in ("peak_allocated_bytes", "peak_reserved_bytes", "device_bytes", "peak_phase",
                "components", "phases", "setup", "gpu", "fits"):
        assert key in out
    assert sum(out["components"].values()) == out["peak_allocated_bytes"]
    assert set(out["components"]) == set(COMPONENTS)
    assert set(out["phases"]) == set(PHASES)
    assert out["peak_allocated_bytes"] <= out["peak_reserved_bytes"] <= out["device_bytes"]
    assert out["setup"]["model"] == "llama-2-7b"
    json.dumps(out)


@pytest.mark.parametrize(("case_id", "mapping", "measured_gib"), [
    # fms-acceleration a100_80gb.csv (foundation-model-stack/fms-acceleration@24bdadb2):
    # Mistral-7B QLoRA, bs 4 and 8, seq 4096, FA2, ckpt, peak allocated
    # (tests/benchmarks/data/calibration).
    ("FMS-15", "FMS-15", 19.250),
    ("FMS-17", "FMS-17", 34.461),
])
def test_measured_qlora_peaks(case_id: str, mapping: str, measured_gib: float) -> None:
    from tests.benchmarks.calibration_cases import CASES

    est = estimate(setup_from_mapping(dict(CASES[mapping])))
    assert est.peak_allocated_bytes / GiB == pytest.approx(measured_gib, rel=0.05)


def test_estimate_path_imports_no_heavy_package() -> None:
    code = ("import sys; from vramdoc.cli import main; "
            "main(['estimate', '--model', 'llama-2-7b', '--method', 'qlora', '--json']); "
            "heavy = [m for m in ('torch', 'transformers', 'peft', 'bitsandbytes', 'textual', "
            "'pynvml', 'accelerate') if m in sys.modules]; "
            "sys.stderr.write(repr(heavy))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert r.stderr.strip().endswith("[]"), r.stderr


def test_cuda_context_by_generation() -> None:
    a100 = estimate(_setup(lora={"r": 8}, gpu="A100-80GB"))
    t4 = estimate(_setup(lora={"r": 8}, gpu="T4"))
    assert 300 * MiB <= t4.cuda_context_bytes <= a100.cuda_context_bytes <= 1400 * MiB


def test_activation_checkpointing_is_transformers_5_name_for_checkpointing() -> None:
    # transformers 5.23 TrainingArguments: activation_checkpointing, gradient_checkpointing
    # kept as a deprecated alias; both must mean checkpointing to the estimator
    a = _setup(lora={"r": 8}, training={"activation_checkpointing": True})
    b = _setup(lora={"r": 8}, training={"gradient_checkpointing": True})
    assert estimate(a).peak_allocated_bytes == estimate(b).peak_allocated_bytes
    assert a.training.gradient_checkpointing and not a.training.extra


def test_all_linear_lora_on_mixtral_wraps_experts_and_materialises_them() -> None:
    # peft 0.21 on transformers 5: all-linear also wraps the fused experts; each forward
    # materialises W + B@A per layer (traced in tests/estimate/test_trace_match.py)
    attn_only = estimate(_setup(model="mixtral-8x7b",
                                lora={"r": 8, "target_modules": ["q_proj", "v_proj"]}))
    all_lin = estimate(_setup(model="mixtral-8x7b", lora={"r": 8, "target_modules": "all-linear"}))
    assert all_lin.trainable_params > 10 * attn_only.trainable_params
    fwd_all = all_lin.phase_components["forward"]["activations"]
    assert fwd_all > attn_only.phase_components["forward"]["activations"] + 32 * 2**30
