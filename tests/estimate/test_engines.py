"""FSDP options, DeepSpeed ZeRO stages and offload, host RAM: per rank and per node."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from vramdoc.cli import main
from vramdoc.errors import ConfigError
from vramdoc.estimate import estimate
from vramdoc.parallel import fsdp_options, zero_options
from vramdoc.setup import setup_from_mapping, setup_to_mapping
from vramdoc.units import GiB

LLAMA7_T = 6_738_415_616  # Llama-2-7B parameters (meta-device build, shared/REFERENCE.md)


def _setup(num_gpus: int = 8, **training: Any) -> Any:
    t = {"per_device_train_batch_size": 1, "gradient_checkpointing": True, "bf16": True,
         "optim": "adamw_torch_fused", **training}
    return setup_from_mapping({"model": "llama-2-7b", "num_gpus": num_gpus, "training": t,
                               "max_seq_length": 1024})


def _ds(stage: int, **zo: Any) -> dict[str, Any]:
    return {"bf16": {"enabled": "auto"}, "train_micro_batch_size_per_gpu": "auto",
            "gradient_accumulation_steps": "auto",
            "zero_optimization": {"stage": stage, **zo}}


def test_auto_values_resolve_as_transformers_does() -> None:
    s = _setup(deepspeed=_ds(3, reduce_bucket_size="auto", stage3_prefetch_bucket_size="auto",
                             stage3_param_persistence_threshold="auto"))
    zo = zero_options(s, hidden_size=4096)
    assert zo is not None
    assert zo.reduce_bucket_size == 4096 * 4096
    assert zo.prefetch_bucket_size == int(0.9 * 4096 * 4096)
    assert zo.param_persistence_threshold == 40960
    assert zo.half == "bfloat16" and zo.overlap_comm  # ZeRO-3 default overlap_comm True


def test_deepspeed_mismatch_and_bad_keys_are_reported_together() -> None:
    ds = _ds(2, overlap_com=True)
    ds["train_micro_batch_size_per_gpu"] = 4
    with pytest.raises(ConfigError) as err:
        _setup(deepspeed=ds)
    text = str(err.value)
    assert "overlap_com: not a DeepSpeed ZeRO key (did you mean 'overlap_comm'?)" in text
    assert "train_micro_batch_size_per_gpu is 4" in text


def test_deepspeed_path_is_read_and_round_trips(tmp_path: Path) -> None:
    f = tmp_path / "ds.json"
    f.write_text(json.dumps(_ds(2)))
    s = _setup(deepspeed=str(f))
    again = setup_from_mapping(setup_to_mapping(s))
    assert again == s and zero_options(again).stage == 2  # type: ignore[union-attr]


def test_fsdp_and_deepspeed_together_is_an_error() -> None:
    with pytest.raises(ConfigError, match="choose one engine"):
        _setup(deepspeed=_ds(3), fsdp="full_shard")


def test_fsdp2_refuses_hybrid_shard_like_transformers() -> None:
    with pytest.raises(ConfigError, match="FSDP1-only"):
        _setup(fsdp="hybrid_shard auto_wrap")
    s = _setup(fsdp="hybrid_shard auto_wrap", fsdp_config={"version": 1})
    o = fsdp_options(s.training)
    assert o is not None and o.strategy == "HYBRID_SHARD" and o.version == 1


def test_fsdp_config_keys_with_accelerate_prefix() -> None:
    s = _setup(fsdp="full_shard", fsdp_config={"fsdp_version": 1,
                                               "fsdp_backward_prefetch": "backward_pre",
                                               "fsdp_offload_params": True})
    o = fsdp_options(s.training)
    assert o is not None and o.backward_prefetch == "BACKWARD_PRE" and o.cpu_offload
    with pytest.raises(ConfigError, match="not an fsdp_config key"):
        _setup(fsdp="full_shard", fsdp_config={"limit_allgathers": True})


def test_zero_stages_shrink_the_per_gpu_peak() -> None:
    peaks = [estimate(_setup(deepspeed=_ds(s))).peak_allocated_bytes for s in range(4)]
    assert peaks[0] > peaks[1] > peaks[2] > peaks[3]


def test_zero2_states_are_master_plus_adam_over_n() -> None:
    est = estimate(_setup(deepspeed=_ds(2)))
    step = est.phase_components["optimizer_step"]
    # fp32 master (4 B) + exp_avg + exp_avg_sq (8 B) per trainable parameter, 1/8 each
    assert step["optimizer_states"] == pytest.approx(12 * LLAMA7_T / 8, rel=1e-3)
    # the module is cast to bf16 and stays whole under ZeRO-2
    assert step["weights"] == pytest.approx(2 * LLAMA7_T, rel=2e-3)


def test_zero3_offload_moves_states_and_params_to_host() -> None:
    ds = _ds(3, offload_optimizer={"device": "cpu"}, offload_param={"device": "cpu"})
    est = estimate(_setup(deepspeed=ds), host_limit=64 * GiB)
    step = est.phase_components["optimizer_step"]
    assert step["optimizer_states"] == 0 and step["weights"] == 0
    host = est.host
    assert host is not None and host.processes == 8
    per_proc = host.per_process
    # master + states (12 B) and fp32 gradients (4 B) of each rank's 1/8
    key = "offloaded optimizer (fp32 master + states + fp32 gradients)"
    assert per_proc[key] == pytest.approx(16 * LLAMA7_T / 8, rel=1e-3)
    assert host.fits is False  # 8 x 13.5 GB + 8 x 1.7 GB do not fit 64 GiB


def test_fsdp_offload_and_efficient_loading_host_view() -> None:
    est = estimate(_setup(fsdp="full_shard offload",
                          fsdp_config={"cpu_ram_efficient_loading": True}))
    assert est.phase_components["optimizer_step"]["optimizer_states"] == 0
    h = est.host
    assert h is not None and "offloaded parameters" in h.per_process
    # one copy of the bf16 checkpoint is loaded on the node (rank 0), not eight
    assert h.loading_bytes == pytest.approx(2 * LLAMA7_T, rel=2e-3)
    plain = estimate(_setup(fsdp="full_shard"))
    assert plain.host is not None and plain.host.loading_bytes == pytest.approx(
        8 * 2 * LLAMA7_T, rel=2e-3)


def test_fsdp_reserved_adds_the_all_gather_pool() -> None:
    est = estimate(_setup(fsdp="full_shard"))
    assert est.peak_reserved_bytes > est.peak_allocated_bytes
    assert est.device_bytes - est.peak_reserved_bytes - est.cuda_context_bytes == 256 * 2**20


def test_nodes_must_divide_the_gpus() -> None:
    with pytest.raises(ConfigError, match="cannot share"):
        setup_from_mapping({"model": "llama-2-7b", "num_gpus": 6, "nodes": 4})


def test_cli_deepspeed_file_and_gpu_count(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                          ) -> None:
    f = tmp_path / "zero3_offload.json"
    f.write_text(json.dumps(_ds(3, offload_optimizer={"device": "cpu"})))
    rc = main(["estimate", "--model", "llama-2-7b", "--method", "full", "--precision", "bf16",
               "--grad-ckpt", "--batch", "1", "--gpu", "4xA100-80GB", "--deepspeed", str(f),
               "--host-ram", "512GB", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0
    assert out["num_gpus"] == 4 and out["strategy"].startswith("DeepSpeed ZeRO-3")
    assert out["host_ram"]["fits"] is True
    rc = main(["estimate", "--model", "llama-2-7b", "--gpu", "4xA100-80GB", "--num-gpus", "2"])
    assert rc == 2


def _placed(max_memory: str | None) -> Any:
    mk: dict[str, Any] = {"dtype": "float16"}
    if max_memory:
        mk.update(device_map="auto", max_memory={0: max_memory, "cpu": "30GiB"})
    return setup_from_mapping({
        "model": "llama-2-7b", "model_kwargs": mk, "quantization": {"load_in_8bit": True},
        "lora": {"r": 16}, "training": {"per_device_train_batch_size": 1, "fp16": True},
        "max_seq_length": 256})


def test_device_map_max_memory_offloads_the_last_layers() -> None:
    from vramdoc.estimate.placement import place
    from vramdoc.models import param_groups, resolve_model

    spec = resolve_model("llama-2-7b")
    s = _placed("4GiB")
    pl = place(s, spec, param_groups(spec, task="causal-lm"))
    assert 0 < pl.gpu_blocks < 32 and pl.gpu_blocks + pl.cpu_blocks == 32
    # the GPU keeps room for one more layer (the offloaded one being run)
    assert pl.gpu_bytes + pl.layer_bytes <= 4 * GiB
    est, whole = estimate(s), estimate(_placed(None))
    load = est.phase_components["load"]
    assert load["weights"] + load["quant_state"] == pytest.approx(pl.gpu_bytes, rel=1e-3)
    assert est.peak_allocated_bytes < whole.peak_allocated_bytes
    assert est.host is not None
    assert est.host.per_process["weights offloaded by device_map"] == pl.cpu_bytes
    assert any("decoder layers on the GPU" in n for n in est.notes)


def test_max_memory_needs_an_automatic_device_map() -> None:
    with pytest.raises(ConfigError, match="add device_map: auto"):
        setup_from_mapping({"model": "llama-2-7b",
                            "model_kwargs": {"max_memory": {0: "6GiB"}}})


def test_setup_file_gpu_count_and_hybrid_shard_within_a_node() -> None:
    s = setup_from_mapping({"model": "llama-2-7b", "gpu": "16xA100-80GB", "nodes": 2,
                            "training": {"fsdp": "hybrid_shard auto_wrap",
                                         "fsdp_config": {"version": 1}}})
    assert s.num_gpus == 16 and s.gpu == "A100-80GB"
    step = estimate(s).phase_components["optimizer_step"]
    full = estimate(s.replace_training(fsdp="full_shard auto_wrap")).phase_components[
        "optimizer_step"]
    # hybrid_shard shards over the 8 GPUs of a node, full_shard over all 16
    assert step["weights"] == pytest.approx(2 * full["weights"], rel=1e-3)
    with pytest.raises(ConfigError, match="give the count once"):
        setup_from_mapping({"model": "llama-2-7b", "gpu": "8xA100-80GB", "num_gpus": 4})


def test_older_peft_gives_adapters_the_base_dtype() -> None:
    def setup(stack: dict[str, str] | None) -> Any:
        m: dict[str, Any] = {"model": "llama-2-7b", "model_kwargs": {"dtype": "bfloat16"},
                             "lora": {"r": 16}}
        if stack:
            m["stack"] = stack
        return setup_from_mapping(m)

    new = estimate(setup(None)).phase_components["load"]["adapters"]
    old_setup = setup({"peft": "0.10"})
    old = estimate(old_setup).phase_components["load"]["adapters"]
    assert old == pytest.approx(new / 2, rel=1e-3)  # bf16 instead of fp32
    assert setup_from_mapping(setup_to_mapping(old_setup)) == old_setup
