"""Hostile input for the multi-GPU surfaces of ``estimate`` and ``plan``: ``--gpu NxNAME``,
``--num-gpus``, ``--nodes``, ``--host-ram``, ``--deepspeed`` files, ``--fsdp``, ``--out`` run
kits, and setup files whose ``num_gpus`` / ``nodes`` / ``training.fsdp`` /
``training.deepspeed`` have the wrong type.

Each row runs the real command in-process (see tests/hostile/sweep.py for what is checked:
exit code, one message naming the problem, no traceback, nothing the user had replaced).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.hostile.sweep import ANSWER, BAD, DIR, OK, H, Link, row, run_row

ROWS: list[H] = []
add = ROWS.append
EST = ["estimate", "--model", "llama-2-7b"]
PLAN = ["plan", "--model", "llama-2-7b", "--top", "1"]

# --- --gpu NxNAME ------------------------------------------------------------------------
for name, gpu, codes, says in (
    ("0x", "0xA100", BAD, "larger than zero"),
    ("huge-count", "100000xH100", BAD, "a machine holds at most 16"),
    ("giant-count", "99999999999999999999999xH100", BAD, "gpu"),
    ("trailing-x", "8x", BAD, "8x"), ("leading-x", "x8", BAD, "x8"),
    ("x-only", "x", BAD, "gpu"), ("count-blank", "8x ", BAD, "gpu"),
    ("count-unknown", "8xNOPE", BAD, "NOPE"), ("count-size", "2x24GB", ANSWER, ""),
    ("count-nan", "2xnanGB", BAD, "gpu"), ("neg-count", "-2xA100", BAD, "gpu"),
    ("count-float", "2.5xA100", BAD, "gpu"), ("times-sign", "2×A100-80GB", ANSWER, ""),
    ("two-x", "2x2xA100", BAD, "gpu"),
):
    add(row(f"estimate-gpu-{name}", [*EST, "--gpu", gpu], codes=codes, says=says))
    add(row(f"plan-gpu-{name}", [*PLAN, "--gpu", gpu], codes=codes, says=says))
add(row("estimate-gpu-count-disagrees", [*EST, "--gpu", "4xA100", "--num-gpus", "8"],
        codes=BAD, says="--num-gpus"))

# --- --num-gpus / --nodes ----------------------------------------------------------------
for name, argv, says in (
    ("gpus-neg", ["--num-gpus", "-1"], "-1"), ("gpus-nan", ["--num-gpus", "nan"], "int"),
    ("gpus-1e9", ["--num-gpus", "1e9"], "int"),
    ("gpus-huge", ["--num-gpus", "1000000000"], "at most"),
    ("gpus-word", ["--num-gpus", "eight"], "int"),
    ("nodes-zero", ["--num-gpus", "8", "--nodes", "0"], "nodes"),
    ("nodes-neg", ["--num-gpus", "8", "--nodes", "-2"], "nodes"),
    ("nodes-not-dividing", ["--num-gpus", "8", "--nodes", "3"], "evenly"),
    ("nodes-more-than-gpus", ["--num-gpus", "2", "--nodes", "4"], "nodes"),
    ("nodes-huge", ["--num-gpus", "8", "--nodes", "100000000000"], "nodes"),
    ("nodes-word", ["--nodes", "two"], "int"),
):
    add(row(f"estimate-{name}", [*EST, *argv], says=says))
    add(row(f"plan-{name}", [*PLAN, "--gpu", "A100-80GB", *argv], says=says))
for eb, gpus in (("16", "3"), ("16", "32"), ("1", "2")):
    add(row(f"plan-eb-{eb}-over-{gpus}-gpus", [*PLAN, "--gpu", f"{gpus}xA100-80GB",
                                               "--effective-batch", eb], says="split evenly"))
add(row("plan-eb-24-over-3-ok", [*PLAN, "--gpu", "3xA100-80GB", "--effective-batch", "24"],
        codes=ANSWER))
add(row("plan-gpus-many-ok", [*PLAN, "--gpu", "H100", "--num-gpus", "64", "--nodes", "8"],
        codes=ANSWER))

# --- --host-ram ---------------------------------------------------------------------------
for name, value, says in (
    ("empty", "", "host-ram"), ("blank", "  ", "host-ram"), ("word", "lots", "host-ram"),
    ("nan", "nan", "host-ram"), ("nanGB", "nanGB", "host-ram"), ("inf", "infGB", "host-ram"),
    ("1e400", "1e400GB", "host-ram"), ("neg", "-64GB", "host-ram"), ("zero", "0", "host-ram"),
    ("huge", "1e30GB", "host-ram"), ("unit", "64XB", "host-ram"),
):
    add(row(f"estimate-host-ram-{name}", [*EST, "--num-gpus", "2", "--host-ram", value],
            says=says))
    add(row(f"plan-host-ram-{name}", [*PLAN, "--gpu", "2xA100-80GB", "--host-ram", value],
            says=says))
add(row("estimate-host-ram-tiny", [*EST, "--num-gpus", "2", "--host-ram", "1KB"],
        codes=ANSWER))

# --- --deepspeed FILE -------------------------------------------------------------------
DS2 = {"zero_optimization": {"stage": 2}, "train_micro_batch_size_per_gpu": "auto"}
for name, files, ref, says in (
    ("missing", {}, "{d}/nope.json", "nope.json"),
    ("dir", {"ds": DIR}, "{d}/ds", "ds"),
    ("empty-path", {}, "", "deepspeed"),
    ("long-path", {}, "d" * 5000 + ".json", "deepspeed"),
    ("nul-path", {}, "a\x00.json", "deepspeed"),
    ("bad-json", {"ds.json": '{"zero_optimization": {'}, "{d}/ds.json", "JSON"),
    ("empty-file", {"ds.json": ""}, "{d}/ds.json", "JSON"),
    ("top-list", {"ds.json": "[1, 2]"}, "{d}/ds.json", "mapping"),
    ("latin1", {"ds.json": '{"x": "caf\xe9"}'.encode("latin-1")}, "{d}/ds.json", "UTF-8"),
    ("deep", {"ds.json": '{"x": ' + "[" * 100_000 + "]" * 100_000 + "}"}, "{d}/ds.json",
     "deepspeed"),
    ("huge", {"ds.json": json.dumps({**DS2, "pad": "x" * (20 * 2**20)})}, "{d}/ds.json",
     "large"),
    ("dangling-link", {"ds.json": Link("{d}/gone.json")}, "{d}/ds.json", "ds.json"),
    ("stage-7", {"ds.json": json.dumps({"zero_optimization": {"stage": 7}})}, "{d}/ds.json",
     "stage"),
    ("stage-str", {"ds.json": json.dumps({"zero_optimization": {"stage": "3"}})},
     "{d}/ds.json", "stage"),
    ("stage-auto", {"ds.json": json.dumps({"zero_optimization": {"stage": "auto"}})},
     "{d}/ds.json", "stage"),
    ("stage-list", {"ds.json": json.dumps({"zero_optimization": {"stage": [3]}})},
     "{d}/ds.json", "stage"),
    ("stage-float", {"ds.json": json.dumps({"zero_optimization": {"stage": 2.5}})},
     "{d}/ds.json", "stage"),
    ("stage-bool", {"ds.json": json.dumps({"zero_optimization": {"stage": True}})},
     "{d}/ds.json", "stage"),
    ("stage-nan", {"ds.json": '{"zero_optimization": {"stage": NaN}}'}, "{d}/ds.json",
     "stage"),
    ("zero-list", {"ds.json": json.dumps({"zero_optimization": [2]})}, "{d}/ds.json",
     "zero_optimization"),
    ("zero-str", {"ds.json": json.dumps({"zero_optimization": "3"})}, "{d}/ds.json",
     "zero_optimization"),
    ("offload-str", {"ds.json": json.dumps({"zero_optimization": {
        "stage": 3, "offload_optimizer": "cpu"}})}, "{d}/ds.json", "offload_optimizer"),
    ("offload-device-int", {"ds.json": json.dumps({"zero_optimization": {
        "stage": 3, "offload_param": {"device": 5}}})}, "{d}/ds.json", "device"),
    ("offload-device-bogus", {"ds.json": json.dumps({"zero_optimization": {
        "stage": 3, "offload_param": {"device": "tape"}}})}, "{d}/ds.json", "tape"),
    ("bucket-word", {"ds.json": json.dumps({"zero_optimization": {
        "stage": 2, "reduce_bucket_size": "lots"}})}, "{d}/ds.json", "reduce_bucket_size"),
    ("bucket-neg", {"ds.json": json.dumps({"zero_optimization": {
        "stage": 2, "reduce_bucket_size": -5}})}, "{d}/ds.json", "reduce_bucket_size"),
    ("bucket-nan", {"ds.json": '{"zero_optimization": {"stage": 2, '
                               '"reduce_bucket_size": NaN}}'}, "{d}/ds.json",
     "reduce_bucket_size"),
    ("bucket-1e400", {"ds.json": '{"zero_optimization": {"stage": 3, '
                                 '"stage3_prefetch_bucket_size": 1e400}}'}, "{d}/ds.json",
     "stage3_prefetch_bucket_size"),
    ("micro-batch-str", {"ds.json": json.dumps({**DS2, "train_micro_batch_size_per_gpu": "x"})},
     "{d}/ds.json", "train_micro_batch_size_per_gpu"),
    ("micro-batch-nan", {"ds.json": '{"zero_optimization": {"stage": 2}, '
                                    '"train_micro_batch_size_per_gpu": NaN}'}, "{d}/ds.json",
     "train_micro_batch_size_per_gpu"),
    ("bf16-str", {"ds.json": json.dumps({**DS2, "bf16": "yes"})}, "{d}/ds.json", "bf16"),
    ("bf16-enabled-str", {"ds.json": json.dumps({**DS2, "bf16": {"enabled": "false"}})},
     "{d}/ds.json", "bf16"),
    ("fp16-enabled-list", {"ds.json": json.dumps({**DS2, "fp16": {"enabled": [True]}})},
     "{d}/ds.json", "fp16"),
):
    add(row(f"estimate-ds-{name}", [*EST, "--num-gpus", "2", "--deepspeed", ref], files,
            says=says))
for name, body in (("auto-everywhere", {"zero_optimization": {
        "stage": 3, "reduce_bucket_size": "auto", "stage3_prefetch_bucket_size": "auto",
        "stage3_param_persistence_threshold": "auto", "sub_group_size": "auto",
        "offload_optimizer": {"device": "auto"}}, "bf16": {"enabled": "auto"},
        "train_micro_batch_size_per_gpu": "auto", "gradient_accumulation_steps": "auto",
        "gradient_clipping": "auto", "train_batch_size": "auto"}),
                   ("stage-0", {"zero_optimization": {"stage": 0}}),
                   ("no-zero", {"train_micro_batch_size_per_gpu": 2})):
    add(row(f"estimate-ds-{name}", [*EST, "--num-gpus", "2", "--deepspeed", "{d}/ds.json",
                                    "--json"], {"ds.json": json.dumps(body)}, ANSWER + BAD))
add(row("estimate-ds-one-gpu", [*EST, "--deepspeed", "{d}/ds.json"],
        {"ds.json": json.dumps(DS2)}, ANSWER + BAD))
add(row("estimate-ds-and-fsdp", [*EST, "--num-gpus", "2", "--deepspeed", "{d}/ds.json",
                                 "--fsdp", "full_shard"], {"ds.json": json.dumps(DS2)},
        ANSWER + BAD))

# --- --fsdp -----------------------------------------------------------------------------
for name, value, codes, says in (
    ("garbage", "garbage", BAD, "garbage"), ("nul", "full_shard\x00", BAD, "fsdp"),
    ("long", "full_shard " * 5000, ANSWER + BAD, ""),
    ("json", '{"fsdp": 1}', BAD, "fsdp"), ("comma", "full_shard,auto_wrap", BAD, "fsdp"),
    ("case", "FULL_SHARD", BAD, "FULL_SHARD"), ("offload-only", "offload", ANSWER + BAD, ""),
    ("hybrid", "hybrid_shard auto_wrap", BAD, "hybrid_shard"),
):
    add(row(f"estimate-fsdp-{name}", [*EST, "--num-gpus", "4", "--fsdp", value], codes=codes,
            says=says))

# --- --out run kits ----------------------------------------------------------------------
KIT = [*PLAN, "--gpu", "2xA100-80GB", "--out"]
for name, files, out, codes, says in (
    ("onto-file", {"kit": "mine\n"}, "{d}/kit", BAD, "not a directory"),
    ("under-file", {"f": "mine\n"}, "{d}/f/kit", BAD, "kit"),
    ("existing-kit", {"kit/snippet.py": "mine\n", "kit/launch.sh": "mine\n"}, "{d}/kit", BAD,
     "already exist"),
    ("existing-one", {"kit/setup.yaml": "mine\n"}, "{d}/kit", BAD, "setup.yaml"),
    ("dangling-link", {"kit/snippet.py": Link("{d}/nowhere/x.py")}, "{d}/kit", BAD,
     "snippet.py"),
    ("kit-name-is-dir", {"kit/launch.sh": DIR}, "{d}/kit", BAD, "launch.sh"),
    ("proc", {}, "/proc/vramdoc-kit", BAD, "kit"),
    ("empty", {}, "", OK, ""),
    ("nul", {}, "a\x00b", BAD, "out"),
    ("long", {}, "k" * 5000, BAD, "out"),
    ("ok", {}, "{d}/kit", OK, "run kit written"),
    ("ok-existing-empty-dir", {"kit": DIR}, "{d}/kit", OK, "run kit written"),
    ("ok-other-files-kept", {"kit/notes.txt": "mine\n"}, "{d}/kit", OK, "run kit written"),
):
    add(row(f"plan-out-{name}", [*KIT, out], files, codes, says))

# --- setup files with multi-GPU keys of the wrong type ------------------------------------
for name, body, says in (
    ("num_gpus-str", 'num_gpus: "8"\n', "num_gpus"), ("num_gpus-list", "num_gpus: [8]\n",
                                                      "num_gpus"),
    ("num_gpus-nan", "num_gpus: .nan\n", "num_gpus"), ("num_gpus-bool", "num_gpus: true\n",
                                                       "num_gpus"),
    ("nodes-str", 'num_gpus: 8\nnodes: "2"\n', "nodes"), ("nodes-zero", "num_gpus: 8\nnodes: 0\n",
                                                          "nodes"),
    ("nodes-3-of-8", "num_gpus: 8\nnodes: 3\n", "nodes"),
    ("nodes-nan", "num_gpus: 8\nnodes: .nan\n", "nodes"),
    ("fsdp-dict", "num_gpus: 2\ntraining: {fsdp: {full_shard: true}}\n", "fsdp"),
    ("fsdp-nested", "num_gpus: 2\ntraining: {fsdp: [[full_shard]]}\n", "fsdp"),
    ("fsdp-config-int", "num_gpus: 2\ntraining: {fsdp: full_shard, fsdp_config: 5}\n",
     "fsdp_config"),
    ("fsdp-config-list", "num_gpus: 2\ntraining: {fsdp: full_shard, fsdp_config: [1]}\n",
     "fsdp_config"),
    ("fsdp-config-missing", "num_gpus: 2\ntraining: {fsdp: full_shard, fsdp_config: no.json}\n",
     "fsdp_config"),
    ("fsdp-config-bad-values", "num_gpus: 2\ntraining: {fsdp: full_shard, fsdp_config: "
     "{cpu_ram_efficient_loading: maybe, fsdp_version: 9}}\n", "fsdp_config"),
    ("ds-int", "num_gpus: 2\ntraining: {deepspeed: 5}\n", "deepspeed"),
    ("ds-list", "num_gpus: 2\ntraining: {deepspeed: [1]}\n", "deepspeed"),
    ("ds-missing", "num_gpus: 2\ntraining: {deepspeed: nope.json}\n", "deepspeed"),
    ("ds-stage-7", "num_gpus: 2\ntraining: {deepspeed: {zero_optimization: {stage: 7}}}\n",
     "stage"),
    ("ds-stage-str", 'num_gpus: 2\ntraining: {deepspeed: {zero_optimization: {stage: "2"}}}\n',
     "stage"),
    ("ds-zero-list", "num_gpus: 2\ntraining: {deepspeed: {zero_optimization: [1]}}\n",
     "zero_optimization"),
    ("ds-long-path", "num_gpus: 2\ntraining: {deepspeed: " + "p" * 5000 + ".json}\n",
     "deepspeed"),
    ("ds-and-fsdp", "num_gpus: 2\ntraining: {fsdp: full_shard, deepspeed: "
     "{zero_optimization: {stage: 2}}}\n", "choose one"),
    ("host-ram-key", "num_gpus: 2\nhost_ram: 64GB\n", "host_ram"),
):
    add(row(f"setup-{name}", ["estimate", "--config", "{d}/s.yaml"],
            {"s.yaml": "model: llama-2-7b\n" + body}, BAD, says))
    add(row(f"plan-setup-{name}", ["plan", "--config", "{d}/s.yaml", "--gpu", "A100-80GB"],
            {"s.yaml": "model: llama-2-7b\n" + body}, BAD, says))
add(row("setup-ds-relative-file", ["estimate", "--config", "{d}/s.yaml", "--json"],
        {"s.yaml": "model: llama-2-7b\nnum_gpus: 2\ntraining: {deepspeed: ds.json}\n",
         "ds.json": json.dumps(DS2)}, ANSWER + BAD))


def test_at_least_a_hundred_rows() -> None:
    assert len(ROWS) >= 100
    assert len({h.id for h in ROWS}) == len(ROWS)


@pytest.mark.parametrize("h", ROWS, ids=[h.id for h in ROWS])
def test_multigpu_hostile(h: H, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_row(h, tmp_path, capsys) == []
