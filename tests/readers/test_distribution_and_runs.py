"""accelerate / DeepSpeed files, launch lines and run outputs: the facts they reveal."""

from __future__ import annotations

import json
from pathlib import Path

from vramdoc.readers import accelerate, axolotl, deepspeed, runs, shell
from vramdoc.setup import setup_from_mapping

FIX = Path(__file__).parent / "fixtures"
LF = FIX / "llamafactory" / "examples"


def _read(mod, path: Path):  # type: ignore[no-untyped-def]
    text = path.read_text()
    assert mod.detect(path, text)
    return mod.read(path, text)


def test_deepspeed_json_reveals_stage_and_offload() -> None:
    report = _read(deepspeed, LF / "deepspeed" / "ds_z3_offload_config.json")
    assert report.setup is None
    msg = next(f for f in report.findings if f.code == "R207")
    assert "ZeRO-3" in msg.message and "offloaded to cpu" in msg.message
    assert msg.line is not None
    assert any(f.code == "R202" and "train_micro_batch_size_per_gpu" in f.message
               for f in report.findings)


def test_deepspeed_json_errors_are_findings() -> None:
    report = deepspeed.read(Path("ds.json"), '{"zero_optimization": {"stage": 3,}')
    assert report.setup is None
    assert [f.code for f in report.findings] == ["R200"]


def test_accelerate_fsdp_configs() -> None:
    report = _read(accelerate, LF / "accelerate" / "fsdp_config.yaml")
    assert report.setup is None
    f = next(x for x in report.findings if x.code == "R207")
    assert "2 processes" in f.message and "FSDP1 full_shard auto_wrap" in f.message
    assert "--num-gpus 2" in f.fix
    data = {"distributed_type": "FSDP", "num_processes": 4,
            "fsdp_config": {"fsdp_version": 2, "fsdp_reshard_after_forward": False,
                            "fsdp_offload_params": True}}
    assert accelerate.facts(data)["fsdp"] == "shard_grad_op offload"
    v2 = _read(accelerate, LF / "accelerate" / "fsdp2_config.yaml")
    assert any(x.code == "R201" and "FSDP2" in x.message for x in v2.findings)


def test_accelerate_launch_with_config_file_sets_gpus_and_fsdp(tmp_path: Path) -> None:
    (tmp_path / "fsdp.yaml").write_text((LF / "accelerate" / "fsdp_config.yaml").read_text())
    script = tmp_path / "run.sh"
    script.write_text("#!/bin/bash\nexport MODEL=llama-3.2-1b\n"
                      "accelerate launch --config_file fsdp.yaml \\\n  train.py \\\n"
                      "  --model_name_or_path $MODEL --per_device_train_batch_size 4 \\\n"
                      "  --bf16 --gradient_checkpointing True --max_seq_length 1024\n")
    report = _read(shell, script)
    s = report.setup
    assert s is not None
    assert s["model"] == "llama-3.2-1b" and s["num_gpus"] == 2
    assert s["training"]["fsdp"] == "full_shard auto_wrap"
    assert s["training"]["fsdp_config"]["fsdp_sharding_strategy"] == "FULL_SHARD"
    assert s["training"]["per_device_train_batch_size"] == 4
    assert s["training"]["bf16"] is True and s["training"]["gradient_checkpointing"] is True
    assert s["max_seq_length"] == 1024
    assert report.lines["training.per_device_train_batch_size"] == 5
    assert any(f.code == "R206" and "train.py" in f.message for f in report.findings)
    setup_from_mapping(s)


def test_torchrun_and_deepspeed_launchers(tmp_path: Path) -> None:
    ds = tmp_path / "ds.json"
    ds.write_text(json.dumps({"zero_optimization": {"stage": 2}, "bf16": {"enabled": "auto"}}))
    script = tmp_path / "run.sh"
    script.write_text("torchrun --nproc_per_node 4 --nnodes 2 train.py --model_name_or_path "
                      "gpt2 --fsdp 'full_shard auto_wrap' --evaluation_strategy steps\n"
                      "deepspeed --num_gpus 2 train.py --deepspeed ds.json --model gpt2\n")
    report = shell.read(script, script.read_text())
    s = report.setup
    assert s is not None and s["num_gpus"] == 8 and s["training"]["fsdp"] == "full_shard auto_wrap"
    assert any(f.code == "R205" and "evaluation_strategy" in f.message for f in report.findings)
    assert any(f.code == "R203" and f.line == 2 for f in report.findings)  # the 2nd command
    only_ds = tmp_path / "ds.sh"
    only_ds.write_text("deepspeed --num_gpus=2 train.py --deepspeed ds.json "
                       "--model_name_or_path gpt2 --unknown_flag 3\n")
    r2 = shell.read(only_ds, only_ds.read_text())
    assert r2.setup is not None and r2.setup["num_gpus"] == 2
    assert r2.setup["training"]["deepspeed"]["zero_optimization"]["stage"] == 2
    assert [f.message for f in r2.findings if f.code == "R203"] == [
        "not TrainingArguments flags, so the script's own arguments (not read): --unknown_flag"]


def test_trl_cli_and_axolotl_launch(tmp_path: Path) -> None:
    script = tmp_path / "sft.sh"
    script.write_text("trl sft --model_name_or_path llama-3.2-1b --use_peft --lora_r 8 "
                      "--load_in_4bit --dtype bfloat16 --num_processes 1\n")
    s = shell.read(script, script.read_text()).setup
    assert s is not None and s["quantization"]["load_in_4bit"] is True
    assert s["lora"]["r"] == 8 and s["training"]["gradient_checkpointing"] is True
    ax = FIX / "axolotl" / "examples" / "llama-3" / "qlora-fsdp-70b.yaml"
    line = tmp_path / "ax.sh"
    line.write_text(f"accelerate launch --num_processes 8 -m axolotl.cli.train {ax}\n")
    report = shell.read(line, line.read_text())
    assert report.setup is not None
    assert report.setup["num_gpus"] == 8
    assert report.setup["model"] == "casperhansen/llama-3-70b-fp16"


def test_axolotl_deepspeed_and_fsdp_references_are_read() -> None:
    big = _read(axolotl, FIX / "axolotl" / "examples" / "mistral" / "bigstral" /
                "bigstral-ds-zero3.yaml")
    assert big.setup is not None
    assert big.setup["training"]["deepspeed"]["zero_optimization"]["stage"] == 3
    assert any(f.code == "R207" and "parameters offloaded to cpu" in f.message
               for f in big.findings)
    assert any(f.code == "R201" and "unfrozen_parameters" in f.message for f in big.findings)
    fsdp = _read(axolotl, FIX / "axolotl" / "examples" / "llama-3" / "qlora-fsdp-70b.yaml")
    assert fsdp.setup is not None and "fsdp" not in fsdp.setup["training"]
    assert any(f.code == "R207" and "full_shard auto_wrap offload" in f.message
               for f in fsdp.findings)
    setup_from_mapping(fsdp.setup)


def test_run_outputs(tmp_path: Path) -> None:
    ckpt = tmp_path / "checkpoint-500"
    ckpt.mkdir()
    (ckpt / "adapter_config.json").write_text(json.dumps({
        "peft_type": "LORA", "base_model_name_or_path": "meta-llama/Llama-3.2-1B", "r": 16,
        "lora_alpha": 32, "lora_dropout": 0.05, "use_dora": True,
        "target_modules": ["q_proj", "v_proj"], "bias": "none", "task_type": "CAUSAL_LM"}))
    (ckpt / "trainer_state.json").write_text(json.dumps({
        "global_step": 500, "max_steps": 1000, "train_batch_size": 4, "logging_steps": 10,
        "num_train_epochs": 2, "log_history": [{"loss": 1.0, "step": 10}]}))
    (ckpt / "training_args.bin").write_bytes(b"\x80\x04\x95 not to be unpickled")
    rep = _read(runs, ckpt / "adapter_config.json")
    s = rep.setup
    assert s is not None and s["model"] == "meta-llama/Llama-3.2-1B"
    assert s["lora"] == {"r": 16, "lora_alpha": 32, "lora_dropout": 0.05, "use_dora": True,
                         "target_modules": ["q_proj", "v_proj"]}
    assert s["training"]["per_device_train_batch_size"] == 4  # from trainer_state.json beside
    assert rep.lines["lora.r"] == 1
    from vramdoc.readers import read_source

    for name in ("adapter_config.json", "trainer_state.json"):  # not taken for DeepSpeed files
        report = read_source(ckpt / name)
        assert report.kind == "run"
    state = _read(runs, ckpt / "trainer_state.json")
    assert state.setup is not None and state.setup["lora"]["r"] == 16
    assert runs.detect(ckpt / "training_args.bin", "")
    pickled = runs.read(ckpt / "training_args.bin", "")
    assert any(f.code == "R208" and "never unpickles" in f.message for f in pickled.findings)
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    cfg = {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_size": 64,
           "intermediate_size": 128, "num_attention_heads": 4, "num_key_value_heads": 2,
           "num_hidden_layers": 2, "vocab_size": 1000, "max_position_embeddings": 512,
           "torch_dtype": "bfloat16"}
    (model_dir / "config.json").write_text(json.dumps(cfg))
    mrep = _read(runs, model_dir / "config.json")
    assert mrep.setup is not None and mrep.setup["model"] == str(model_dir / "config.json")
    from vramdoc.estimate import estimate

    assert estimate(setup_from_mapping(mrep.setup)).peak_allocated_bytes > 0


def test_accelerate_deepspeed_flags(tmp_path: Path) -> None:
    script = tmp_path / "z3.sh"
    script.write_text("accelerate launch --use_deepspeed --zero_stage 3 "
                      "--offload_optimizer_device cpu --num_processes=4 train.py "
                      "--model_name_or_path gpt2 --per_device_train_batch_size 2\n")
    report = shell.read(script, script.read_text())
    s = report.setup
    assert s is not None and s["num_gpus"] == 4
    assert s["training"]["deepspeed"] == {"zero_optimization": {
        "stage": 3, "offload_optimizer": {"device": "cpu"}}}
    assert any(f.code == "R207" and "ZeRO-3, offload_optimizer cpu" in f.message
               for f in report.findings)
    setup_from_mapping(s)
