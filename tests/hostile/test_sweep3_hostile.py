"""The third hostile sweep: the newer surfaces (MoE / MLA config.json of phimoe, gpt_oss and
deepseek_v2, the generic builder for an unknown model_type, the sharded fake probe's flags,
``estimate --deepspeed`` JSON, the doctor on hostile scripts and notebooks, framework YAMLs)
and every CLI flag given '', NaN, -1, 1e400 or 10,000 characters.

Each row runs the real command in-process (see tests/hostile/sweep.py for what is checked:
exit code, no traceback, one message, strict JSON, the user's files unchanged).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.hostile.sweep import ANSWER, BAD, H, row, run_row

ROWS: list[H] = []
add = ROWS.append
ANY = (0, 1, 2)
EST = ["estimate", "--seq-len", "64", "--model"]


def cfg_rows(family: str, base: dict[str, object],
             variants: list[tuple[str, dict[str, object], tuple[int, ...], str]]) -> None:
    for name, change, codes, says in variants:
        cfg = {**base, **change}
        cfg = {k: v for k, v in cfg.items() if v is not ...}
        text = json.dumps(cfg, allow_nan=True)
        add(row(f"{family}-{name}", [*EST, "{d}/m/config.json"],
                {"m/config.json": text}, codes, says))


# --- DeepSeek-V2 (MLA) -------------------------------------------------------------------
DSV2 = {"model_type": "deepseek_v2", "hidden_size": 256, "intermediate_size": 512,
        "moe_intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
        "num_key_value_heads": 4, "vocab_size": 1000, "kv_lora_rank": 64, "q_lora_rank": 96,
        "qk_rope_head_dim": 16, "qk_nope_head_dim": 32, "v_head_dim": 32,
        "n_routed_experts": 8, "num_experts_per_tok": 2, "n_shared_experts": 1,
        "first_k_dense_replace": 1, "max_position_embeddings": 512}
cfg_rows("dsv2", DSV2, [
    ("ok", {}, ANSWER, ""),
    ("kv-lora-0", {"kv_lora_rank": 0}, BAD, "kv_lora_rank"),
    ("kv-lora-neg", {"kv_lora_rank": -8}, BAD, "kv_lora_rank"),
    ("kv-lora-nan", {"kv_lora_rank": float("nan")}, BAD, "kv_lora_rank"),
    ("kv-lora-str", {"kv_lora_rank": "64"}, BAD, "kv_lora_rank"),
    ("kv-lora-float", {"kv_lora_rank": 64.5}, BAD, "kv_lora_rank"),
    ("kv-lora-huge", {"kv_lora_rank": 10**12}, BAD, "kv_lora_rank"),
    ("q-lora-null", {"q_lora_rank": None}, ANSWER, ""),
    ("q-lora-0", {"q_lora_rank": 0}, ANY, ""),
    ("q-lora-neg", {"q_lora_rank": -1}, BAD, "q_lora_rank"),
    ("rope-dim-0", {"qk_rope_head_dim": 0}, ANY, ""),
    ("rope-dim-neg", {"qk_rope_head_dim": -16}, BAD, "qk_rope_head_dim"),
    ("nope-dim-nan", {"qk_nope_head_dim": float("inf")}, BAD, "qk_nope_head_dim"),
    ("v-dim-list", {"v_head_dim": [32]}, BAD, "v_head_dim"),
    ("v-dim-0", {"v_head_dim": 0}, BAD, "v_head_dim"),
    ("topk-over-experts", {"num_experts_per_tok": 9}, BAD, "experts"),
    ("topk-0", {"num_experts_per_tok": 0}, BAD, "num_experts_per_tok"),
    ("experts-0", {"n_routed_experts": 0}, BAD, ""),
    ("experts-null", {"n_routed_experts": None}, ANY, ""),
    ("experts-str", {"n_routed_experts": "8"}, BAD, "n_routed_experts"),
    ("experts-huge", {"n_routed_experts": 10**9}, ANSWER, ""),
    ("shared-neg", {"n_shared_experts": -1}, BAD, "n_shared_experts"),
    ("first-k-over-layers", {"first_k_dense_replace": 99}, ANY, ""),
    ("first-k-neg", {"first_k_dense_replace": -1}, BAD, "first_k_dense_replace"),
    ("first-k-nan", {"first_k_dense_replace": float("nan")}, BAD, "first_k_dense_replace"),
    ("first-k-bool", {"first_k_dense_replace": True}, BAD, "first_k_dense_replace"),
    ("moe-inter-0", {"moe_intermediate_size": 0}, BAD, "moe_intermediate_size"),
    ("moe-inter-1e400", {"moe_intermediate_size": 1e400}, BAD, "moe_intermediate_size"),
    ("layers-huge", {"num_hidden_layers": 10**7}, ANY, ""),
])

# --- gpt_oss ------------------------------------------------------------------------------
OSS = {"model_type": "gpt_oss", "hidden_size": 256, "intermediate_size": 256,
       "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
       "head_dim": 64, "vocab_size": 1000, "num_local_experts": 4, "num_experts_per_tok": 2,
       "sliding_window": 128, "layer_types": ["sliding_attention", "full_attention"],
       "max_position_embeddings": 512}
cfg_rows("gptoss", OSS, [
    ("ok", {}, ANSWER, ""),
    ("experts-0", {"num_local_experts": 0}, BAD, ""),
    ("topk-over", {"num_experts_per_tok": 5}, BAD, "experts"),
    ("topk-nan", {"num_experts_per_tok": float("nan")}, BAD, "num_experts_per_tok"),
    ("head-dim-0", {"head_dim": 0}, BAD, "head_dim"),
    ("head-dim-str", {"head_dim": "64"}, BAD, "head_dim"),
    ("kv-3", {"num_key_value_heads": 3}, BAD, "num_key_value_heads"),
    ("window-neg", {"sliding_window": -1}, BAD, "sliding_window"),
    ("window-nan", {"sliding_window": float("nan")}, BAD, "sliding_window"),
    ("layer-types-short", {"layer_types": ["full_attention"]}, BAD, "num_hidden_layers"),
    ("layer-types-str", {"layer_types": "full_attention"}, BAD, "layer_types"),
    ("layer-types-bad", {"layer_types": ["sliding_attention", 5]}, BAD, "layer_types"),
    ("vocab-1e400", {"vocab_size": 1e400}, BAD, "vocab_size"),
    ("inter-neg", {"intermediate_size": -256}, BAD, "intermediate_size"),
])

# --- phimoe -------------------------------------------------------------------------------
PHIMOE = {"model_type": "phimoe", "hidden_size": 256, "intermediate_size": 512,
          "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
          "vocab_size": 1000, "num_local_experts": 4, "num_experts_per_tok": 2,
          "max_position_embeddings": 512}
cfg_rows("phimoe", PHIMOE, [
    ("ok", {}, ANSWER, ""),
    ("experts-neg", {"num_local_experts": -4}, BAD, "num_local_experts"),
    ("topk-over", {"num_experts_per_tok": 8}, BAD, "experts"),
    ("topk-str", {"num_experts_per_tok": "2"}, BAD, "num_experts_per_tok"),
    ("hidden-66", {"hidden_size": 66}, BAD, "hidden"),
    ("heads-0", {"num_attention_heads": 0}, BAD, "num_attention_heads"),
    ("heads-nan", {"num_attention_heads": float("nan")}, BAD, "num_attention_heads"),
    ("experts-list", {"num_local_experts": [4]}, BAD, "num_local_experts"),
    ("positions-0", {"max_position_embeddings": 0}, ANY, ""),
])

# --- unknown model_type (the generic builder) --------------------------------------------
GEN = {"model_type": "my_new_arch", "hidden_size": 256, "intermediate_size": 512,
       "num_hidden_layers": 2, "num_attention_heads": 4, "vocab_size": 1000,
       "architectures": ["MyNewArchForCausalLM"]}
cfg_rows("generic", GEN, [
    ("plain", {}, ANY, ""),
    ("auto-map", {"auto_map": {"AutoModelForCausalLM": "modeling_x.MyModel"}}, ANY, ""),
    ("auto-map-str", {"auto_map": "modeling_x.MyModel"}, ANY, ""),
    ("auto-map-list", {"auto_map": [1, 2]}, ANY, ""),
    ("no-hidden", {"hidden_size": ...}, BAD, ""),
    ("no-layers", {"num_hidden_layers": ...}, BAD, ""),
    ("no-vocab", {"vocab_size": ...}, ANY, ""),
    ("only-type", {"hidden_size": ..., "intermediate_size": ..., "num_hidden_layers": ...,
                   "num_attention_heads": ..., "vocab_size": ...}, BAD, ""),
    ("hidden-huge", {"hidden_size": 2**40}, BAD, ""),
    ("layers-huge", {"num_hidden_layers": 2**40}, BAD, ""),
    ("vocab-huge", {"vocab_size": 2**50}, BAD, ""),
    ("hidden-nan", {"hidden_size": float("nan")}, BAD, ""),
    ("hidden-str", {"hidden_size": "256"}, BAD, ""),
    ("hidden-bool", {"hidden_size": True}, BAD, ""),
    ("arch-not-list", {"architectures": "MyNewArchForCausalLM"}, ANY, ""),
    ("arch-list-of-ints", {"architectures": [1, 2]}, ANY, ""),
    ("type-int", {"model_type": 5}, BAD, "model_type"),
    ("type-list", {"model_type": ["llama"]}, BAD, "model_type"),
    ("type-empty", {"model_type": ""}, BAD, ""),
    ("type-long", {"model_type": "x" * 10_000}, ANY, ""),
    ("type-dotdot", {"model_type": "../../etc"}, ANY, ""),
    ("text-config", {"text_config": {"hidden_size": "x"}}, ANY, ""),
    ("text-config-list", {"text_config": [1]}, ANY, ""),
])
add(row("generic-config-not-object", [*EST, "{d}/m/config.json"], {"m/config.json": "[1, 2]"},
        BAD, "config"))
add(row("generic-config-latin1", [*EST, "{d}/m/config.json"],
        {"m/config.json": '{"model_type": "caf\xe9"}'.encode("latin-1")}, BAD, "UTF-8"))
add(row("generic-config-dup-keys", [*EST, "{d}/m/config.json"],
        {"m/config.json": '{"model_type": "llama", "model_type": 5}'}, ANY))

# --- probe --num-gpus / --fsdp / --rank (checked before anything is built) ----------------
PROBE = ["probe", "--model", "qwen2.5-0.5b", "--device", "fake", "--seq-len", "16",
         "--steps", "1"]
for name, extra, codes, says in (
    ("rank-eq-n", ["--num-gpus", "2", "--fsdp", "full_shard", "--rank", "2"], BAD, "rank"),
    ("rank-huge", ["--num-gpus", "2", "--fsdp", "full_shard", "--rank", "999999999999"], BAD,
     "rank"),
    ("rank-neg", ["--num-gpus", "2", "--fsdp", "full_shard", "--rank", "-1"], BAD, "rank"),
    ("rank-nan", ["--num-gpus", "2", "--fsdp", "full_shard", "--rank", "nan"], BAD, "rank"),
    ("rank-empty", ["--num-gpus", "2", "--fsdp", "full_shard", "--rank", ""], BAD, "rank"),
    ("rank-without-fsdp", ["--rank", "3"], BAD, "rank"),
    ("rank-zero-without-fsdp", ["--rank", "0"], BAD, "--num-gpus"),
    ("rank-ddp", ["--num-gpus", "2", "--rank", "1"], BAD, "rank"),
    ("n-huge", ["--num-gpus", "100000", "--fsdp", "full_shard"], BAD, "num_gpus"),
    ("n-1e400", ["--num-gpus", "1e400", "--fsdp", "full_shard"], BAD, "num-gpus"),
    ("n-zero", ["--num-gpus", "0", "--fsdp", "full_shard"], BAD, "num"),
    ("n-neg", ["--num-gpus", "-2", "--fsdp", "full_shard"], BAD, "num"),
    ("fsdp-empty", ["--num-gpus", "2", "--fsdp", ""], BAD, "fsdp"),
    ("fsdp-junk", ["--num-gpus", "2", "--fsdp", "everything"], BAD, "fsdp"),
    ("fsdp-both", ["--num-gpus", "2", "--fsdp", "full_shard shard_grad_op"], BAD, "fsdp"),
    ("fsdp-long", ["--num-gpus", "2", "--fsdp", "x " * 5000], BAD, "fsdp"),
    ("fsdp-long-mixed", ["--num-gpus", "2", "--fsdp", "full_shard no_shard " * 2000], BAD,
     "two sharding strategies"),
    ("fsdp-nul", ["--num-gpus", "2", "--fsdp", "full_shard\x00"], BAD, "fsdp"),
    ("fsdp-one-gpu", ["--fsdp", "full_shard"], BAD, "num_gpus"),
    ("steps-zero", ["--steps", "0"], BAD, "steps"),
    ("steps-neg", ["--steps", "-5"], BAD, "steps"),
    ("steps-nan", ["--steps", "nan"], BAD, "steps"),
    ("lr-inf", ["--lr", "inf"], BAD, "lr"),
    ("lr-1e400", ["--lr", "1e400"], BAD, "lr"),
    ("seed-1e400", ["--seed", "1e400"], BAD, "seed"),
    ("seed-neg", ["--seed", "-1"], BAD, "seed"),
):
    add(row(f"probe-{name}", [*PROBE, *extra], codes=codes, says=says))

# --- estimate --deepspeed JSON --------------------------------------------------------
DSE = ["estimate", "--model", "llama-2-7b", "--gpu", "2xA100-80GB", "--deepspeed",
       "{d}/ds.json"]
for name, text, codes, says in (
    ("ok", '{"zero_optimization": {"stage": 3}}', ANSWER, ""),
    ("stage-nan", '{"zero_optimization": {"stage": NaN}}', BAD, "stage"),
    ("stage-str", '{"zero_optimization": {"stage": "3"}}', ANY, ""),
    ("stage-4", '{"zero_optimization": {"stage": 4}}', BAD, "stage"),
    ("stage-neg", '{"zero_optimization": {"stage": -1}}', BAD, "stage"),
    ("stage-float", '{"zero_optimization": {"stage": 2.5}}', BAD, "stage"),
    ("stage-bool", '{"zero_optimization": {"stage": true}}', BAD, "stage"),
    ("zero-list", '{"zero_optimization": [3]}', BAD, "zero_optimization"),
    ("zero-null", '{"zero_optimization": null}', ANY, ""),
    ("top-list", '[{"zero_optimization": {"stage": 3}}]', BAD, ""),
    ("top-number", "3", BAD, ""),
    ("empty", "", BAD, ""),
    ("offload-str", '{"zero_optimization": {"stage": 3, "offload_param": "cpu"}}', BAD,
     "offload_param"),
    ("offload-device-int", '{"zero_optimization": {"stage": 3, "offload_param": '
                           '{"device": 5}}}', BAD, "device"),
    ("offload-device-gpu", '{"zero_optimization": {"stage": 3, "offload_param": '
                           '{"device": "gpu"}}}', BAD, "device"),
    ("bucket-1e400", '{"zero_optimization": {"stage": 2, "reduce_bucket_size": 1e400}}', BAD,
     "reduce_bucket_size"),
    ("bucket-neg", '{"zero_optimization": {"stage": 2, "reduce_bucket_size": -1}}', ANY, ""),
    ("bucket-auto", '{"zero_optimization": {"stage": 2, "reduce_bucket_size": "auto"}}',
     ANSWER, ""),
    ("bf16-str", '{"bf16": {"enabled": "yes"}, "zero_optimization": {"stage": 2}}', ANY, ""),
    ("bf16-list", '{"bf16": [1], "zero_optimization": {"stage": 2}}', ANY, ""),
    ("batch-nan", '{"train_micro_batch_size_per_gpu": NaN, "zero_optimization": {"stage": 2}}',
     ANY, ""),
    ("batch-huge", '{"train_micro_batch_size_per_gpu": 1e30, "zero_optimization": '
                   '{"stage": 2}}', ANY, ""),
    ("deep", '{"a": ' * 5000 + "1" + "}" * 5000, BAD, ""),
    ("latin1", '{"x": "caf\xe9"}'.encode("latin-1"), BAD, "UTF-8"),
    ("dup-keys", '{"zero_optimization": {"stage": 3}, "zero_optimization": {"stage": 9}}', ANY,
     ""),
):
    add(row(f"ds-{name}", DSE, {"ds.json": text}, codes, says))
add(row("ds-missing", ["estimate", "--model", "llama-2-7b", "--gpu", "2xA100-80GB",
                       "--deepspeed", "{d}/none.json"], codes=BAD, says="none.json"))
add(row("ds-dir", ["estimate", "--model", "llama-2-7b", "--gpu", "2xA100-80GB",
                   "--deepspeed", "{d}"], codes=BAD))
add(row("ds-inline-json", ["estimate", "--model", "llama-2-7b", "--gpu", "2xA100-80GB",
                           "--deepspeed", '{"zero_optimization": {"stage": 3}}'], codes=ANY))

# --- doctor on hostile scripts and notebooks ---------------------------------------------
NB_CELL = {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None,
           "source": ["from transformers import TrainingArguments\n",
                      "a = TrainingArguments(output_dir='o', evaluation_strategy='steps')\n"]}


def nb(cells: object, **top: object) -> str:
    return json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5,
                       **top})


for name, fname, content, codes in (
    ("binary", "train.py", bytes(range(256)) * 4, ANY),
    ("elf", "train.py", b"\x7fELF\x02\x01\x01" + b"\x00" * 500, ANY),
    ("one-line-10mb", "train.py", "x = 1 + " + "1 + " * 2_500_000 + "1\n", ANY),
    ("long-string-10mb", "train.py", "x = '" + "a" * 10_000_000 + "'\n", ANY),
    ("nested-parens", "train.py", "x = " + "(" * 5000 + "1" + ")" * 5000 + "\n", ANY),
    ("nested-lists", "train.py", "x = " + "[" * 3000 + "]" * 3000 + "\n", ANY),
    ("nested-calls", "train.py", "x = " + "f(" * 3000 + ")" * 3000 + "\n", ANY),
    ("nested-lambda", "train.py", "x = " + "lambda: " * 3000 + "1\n", ANY),
    ("nested-attr", "train.py", "x = a" + ".b" * 100_000 + "\n", ANY),
    ("nested-if", "train.py", "".join(" " * i + "if x:\n" for i in range(200)) + " " * 200
     + "pass\n", ANY),
    ("deep-dict-args", "train.py", "from transformers import TrainingArguments\n"
     "a = TrainingArguments(output_dir='o', fsdp_config=" + "{'a': " * 2000 + "1"
     + "}" * 2000 + ")\n", ANY),
    ("null-bytes", "train.py", "x = 1\x00\n", ANY),
    ("latin1", "train.py", "# caf\xe9\nx = 1\n".encode("latin-1"), ANY),
    ("utf16", "train.py", "x = 1\n".encode("utf-16"), ANY),
    ("empty", "train.py", "", ANY),
    ("kwargs-star", "train.py", "from transformers import TrainingArguments\n"
     "a = TrainingArguments(**{'bf16': 'yes'}, **x)\n", ANY),
    ("args-nan", "train.py", "from transformers import TrainingArguments\n"
     "a = TrainingArguments(output_dir='o', learning_rate=float('nan'), "
     "per_device_train_batch_size=1e400)\n", ANY),
    ("nb-ok", "t.ipynb", nb([NB_CELL]), ANSWER),
    ("nb-cells-dict", "t.ipynb", nb({"a": NB_CELL}), ANY),
    ("nb-cells-null", "t.ipynb", nb(None), ANY),
    ("nb-cells-str", "t.ipynb", nb("cells"), ANY),
    ("nb-source-int", "t.ipynb", nb([{**NB_CELL, "source": 5}]), ANY),
    ("nb-source-list-ints", "t.ipynb", nb([{**NB_CELL, "source": [1, 2, None]}]), ANY),
    ("nb-source-dict", "t.ipynb", nb([{**NB_CELL, "source": {"a": 1}}]), ANY),
    ("nb-cell-type-int", "t.ipynb", nb([{**NB_CELL, "cell_type": 3}]), ANY),
    ("nb-cell-str", "t.ipynb", nb(["code"]), ANY),
    ("nb-cell-null", "t.ipynb", nb([None]), ANY),
    ("nb-top-list", "t.ipynb", "[1, 2]", ANY),
    ("nb-top-nan", "t.ipynb", "NaN", ANY),
    ("nb-not-json", "t.ipynb", "{cells", ANY),
    ("nb-nbformat-str", "t.ipynb", nb([NB_CELL], nbformat="four"), ANY),
    ("nb-deep", "t.ipynb", '{"cells": ' + "[" * 50_000 + "]" * 50_000 + "}", ANY),
    ("nb-many-cells", "t.ipynb", nb([NB_CELL] * 20_000), ANY),
    ("nb-magics", "t.ipynb", nb([{**NB_CELL, "source": ["!pip install x\n", "%%time\n",
                                                         "x = 1\n"]}]), ANY),
    ("nb-latin1", "t.ipynb", nb([NB_CELL]).replace("o'", "caf\xe9'").encode("latin-1"), ANY),
):
    add(row(f"doctor-{name}", ["doctor", "{d}/" + fname], {fname: content}, codes))
    if name in ("nested-parens", "nb-cells-dict", "nb-source-int", "binary"):
        add(row(f"doctor-{name}-json", ["doctor", "{d}/" + fname, "--format", "json"],
                {fname: content}, codes))

# --- framework YAMLs (doctor) ----------------------------------------------------------
AXO = "base_model: NousResearch/Llama-2-7b-hf\nadapter: lora\nlora_r: 8\nsequence_len: 512\n"
LMF = ("model_name_or_path: meta-llama/Llama-2-7b-hf\nstage: sft\nfinetuning_type: lora\n"
       "per_device_train_batch_size: 1\ncutoff_len: 512\n")
ACC = "compute_environment: LOCAL_MACHINE\ndistributed_type: MULTI_GPU\nnum_processes: 2\n"
TRL = "model_name_or_path: meta-llama/Llama-2-7b-hf\nmax_length: 512\nuse_peft: true\n"
for fw, base, extras in (
    ("axolotl", AXO, {"lora-r-nan": "lora_r: .nan\n", "seq-list": "sequence_len: [1]\n",
                      "adapter-int": "adapter: 5\n", "micro-str": "micro_batch_size: lots\n",
                      "gradacc-1e400": "gradient_accumulation_steps: 1e400\n",
                      "targets-dict": "lora_target_modules: {a: 1}\n",
                      "key-int": "1: 2\n", "key-null": "null: 3\n",
                      "bf16-quoted": "bf16: 'true'\n", "alias-bomb":
                      "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
                          f"{k}: &{k} [{', '.join(['*' + p] * 9)}]\n"
                          for p, k in zip("abcdefgh", "bcdefghi", strict=True))}),
    ("llamafactory", LMF, {"cutoff-nan": "cutoff_len: .nan\n", "stage-list": "stage: [sft]\n",
                           "lora-rank-str": "lora_rank: eight\n",
                           "quant-bit-3": "quantization_bit: 3\n",
                           "quant-bit-str": "quantization_bit: four\n",
                           "batch-neg": "per_device_train_batch_size: -1\n",
                           "deepspeed-int": "deepspeed: 3\n"}),
    ("accelerate", ACC, {"procs-nan": "num_processes: .nan\n",
                         "procs-huge": "num_processes: 100000000\n",
                         "machines-0": "num_machines: 0\n",
                         "fsdp-config-list": "fsdp_config: [1]\n",
                         "type-int": "distributed_type: 5\n",
                         "mixed-list": "mixed_precision: [bf16]\n"}),
    ("trl", TRL, {"max-length-nan": "max_length: .nan\n", "peft-quoted": "use_peft: 'false'\n",
                  "lora-r-list": "lora_r: [8]\n", "bits-str": "load_in_4bit: lots\n"}),
):
    for name, extra in extras.items():
        text = base + extra if not name.startswith("alias") else extra + base
        fname = {"axolotl": "axolotl.yaml", "llamafactory": "llama_factory_sft.yaml",
                 "accelerate": "accelerate_config.yaml", "trl": "trl_sft.yaml"}[fw]
        add(row(f"doctor-{fw}-{name}", ["doctor", "{d}/" + fname], {fname: text}, ANY))

# --- every flag: '', NaN, -1, 1e400, 10,000 characters -----------------------------------
LONG = "9" * 10_000
FLAGS = {
    "estimate": (["estimate", "--model", "llama-2-7b"],
                 ["--seq-len", "--batch", "--grad-accum", "--lora-r", "--lora-alpha",
                  "--num-gpus", "--nodes", "--gpu", "--host-ram", "--dtype", "--optim",
                  "--attn", "--method", "--precision", "--lora-targets"]),
    "plan": (["plan", "--model", "llama-2-7b", "--gpu", "T4"],
             ["--effective-batch", "--top", "--seq-len", "--num-gpus"]),
    "watch": (["watch", "{d}"], ["--interval"]),
}
for cmd, (base, flags) in FLAGS.items():
    for flag in flags:
        for tag, value in (("empty", ""), ("nan", "nan"), ("neg", "-1"), ("1e400", "1e400"),
                           ("long", LONG)):
            add(row(f"flag-{cmd}{flag}-{tag}", [*base, flag, value], codes=BAD))
add(row("flag-models-long", ["models", "x" * 10_000], codes=BAD))
add(row("flag-gpus-long", ["gpus", "x" * 10_000], codes=ANY))
add(row("flag-rules-long", ["rules", "x" * 10_000], codes=BAD))


def test_sweep3_has_enough_rows() -> None:
    assert len(ROWS) >= 150
    assert len({h.id for h in ROWS}) == len(ROWS)


@pytest.mark.parametrize("h", ROWS, ids=[h.id for h in ROWS])
def test_sweep3_hostile(h: H, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_row(h, tmp_path, capsys) == []
