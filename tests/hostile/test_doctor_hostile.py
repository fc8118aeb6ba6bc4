"""Hostile input for ``vramdoc doctor``: files that are not what their name says, scripts and
notebooks built to break a parser, framework configs (axolotl, LLaMA-Factory, TRL,
accelerate, DeepSpeed) and run files (config.json, adapter_config.json, trainer_state.json)
with wrong types everywhere, and ``--fix`` where writing would replace something.

Each row runs the real command in-process (see tests/hostile/sweep.py for what is checked).
A framework config's unusable value is a finding naming its key (the doctor reads what the
user has and says what it cannot use; exit 0/1), a file that cannot be read at all is exit 2.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.hostile.sweep import ANSWER, BAD, DIR, H, Link, row, run_row

ROWS: list[H] = []
add = ROWS.append
DOC = ["doctor", "--no-plan"]

# --- files that are not what their name says ----------------------------------------------
SCRIPT = ("from transformers import TrainingArguments\n"
          "args = TrainingArguments(output_dir='o', per_device_train_batch_size=2, bf16=True)\n")
for name, content, says in (
    ("binary-py", bytes(range(256)) * 8, "UTF-8"),
    ("latin1-py", "# caf\xe9\nimport os\n".encode("latin-1"), "UTF-8"),
    ("utf16-py", SCRIPT.encode("utf-16"), "UTF-8"),
):
    add(row(f"file-{name}", [*DOC, "{d}/train.py"], {"train.py": content}, BAD, says))
add(row("file-nul-py", [*DOC, "{d}/train.py"], {"train.py": b"import os\x00\n"}, ANSWER,
        "null bytes"))
add(row("file-py-is-dir", [*DOC, "{d}/train.py"], {"train.py": DIR}, BAD, "not a file"))
add(row("file-missing", [*DOC, "{d}/nope.py"], {}, BAD, "no such file"))
add(row("file-dangling-link", [*DOC, "{d}/train.py"], {"train.py": Link("{d}/gone.py")}, BAD,
        "train.py"))
add(row("file-long-path", [*DOC, "p" * 5000 + ".py"], {}, BAD, ""))
add(row("file-nul-path", [*DOC, "a\x00.py"], {}, BAD, ""))
add(row("file-empty-path", [*DOC, ""], {}, BAD, ""))
add(row("file-huge-py", [*DOC, "{d}/train.py"],
        {"train.py": "x = 1\n" + "# " + "y" * (40 * 2**20) + "\n"}, BAD, "large"))
add(row("file-huge-yaml", [*DOC, "{d}/a.yaml"],
        {"a.yaml": "base_model: llama-2-7b\n# " + "z" * (40 * 2**20) + "\n"}, BAD, "large"))
add(row("file-unknown-kind", [*DOC, "{d}/notes.md"], {"notes.md": "# hi\n"}, BAD,
        "not a file vramdoc can read"))
add(row("file-empty-py", [*DOC, "{d}/train.py"], {"train.py": ""}, ANSWER))
add(row("file-py-only-bom", [*DOC, "{d}/train.py"], {"train.py": b"\xef\xbb\xbf"}, ANSWER))
add(row("file-py-crlf", [*DOC, "{d}/train.py"], {"train.py": SCRIPT.replace("\n", "\r\n")},
        ANSWER))
add(row("file-py-bom", [*DOC, "{d}/train.py"], {"train.py": ("\ufeff" + SCRIPT).encode()},
        ANSWER))

# --- Python built to break a parser ------------------------------------------------------
for name, src in (
    ("deep-parens", "x = " + "(" * 5000 + "1" + ")" * 5000 + "\n"),
    ("deep-lists", "x = " + "[" * 3000 + "]" * 3000 + "\n"),
    ("deep-binop", "x = 1" + " + 1" * 100_000 + "\n"),
    ("deep-calls", "x = " + "f(" * 3000 + ")" * 3000 + "\n"),
    ("deep-attr", "x = a" + ".b" * 100_000 + "\n"),
    ("deep-indent", "".join("    " * i + "if x:\n" for i in range(150)) + "    " * 150 + "y\n"),
    ("syntax-error", "def (:\n"),
    ("kw-in-deep-call", "TrainingArguments(" * 300 + "bf16=True" + ")" * 300 + "\n"),
    ("long-line", "x = '" + "a" * 2_000_000 + "'\n"),
    ("many-calls", "TrainingArguments(output_dir='o')\n" * 20_000),
    ("nul-in-string", "x = 'a\x00b'\n"),
    ("lone-surrogate-escape", "x = '\\ud800'\n"),
):
    add(row(f"py-{name}", [*DOC, "{d}/train.py"], {"train.py": src}, ANSWER + BAD))
for name, kw in (("batch-str", "per_device_train_batch_size='8'"),
                 ("batch-nan", "per_device_train_batch_size=float('nan')"),
                 ("batch-huge", "per_device_train_batch_size=10**400"),
                 ("batch-neg", "per_device_train_batch_size=-4"),
                 ("lr-huge", "learning_rate=1e400"),
                 ("bf16-str", "bf16='false'"),
                 ("optim-int", "optim=5"),
                 ("fsdp-int", "fsdp=5"),
                 ("deepspeed-missing", "deepspeed='nope.json'"),
                 ("deepspeed-dict-bad", "deepspeed={'zero_optimization': {'stage': 7}}"),
                 ("seq-huge", "max_seq_length=10**12")):
    src = ("from transformers import AutoModelForCausalLM, TrainingArguments\n"
           "m = AutoModelForCausalLM.from_pretrained('meta-llama/Llama-2-7b-hf')\n"
           f"a = TrainingArguments(output_dir='o', {kw})\n")
    for fmt in ("text", "json", "sarif"):
        add(row(f"py-kw-{name}-{fmt}", [*DOC, "{d}/train.py", "--format", fmt],
                {"train.py": src}, ANSWER, kw.split("=")[0]))
    add(row(f"py-kw-{name}-emit", [*DOC, "{d}/train.py", "--emit", "yaml"],
            {"train.py": src}, ANSWER + BAD, kw.split("=")[0]))

# --- notebooks ---------------------------------------------------------------------------
CELL = {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None,
        "source": ["from transformers import TrainingArguments\n",
                   "a = TrainingArguments(output_dir='o', evaluation_strategy='steps')\n"]}


def nb(*cells: object, top: dict | None = None) -> str:
    return json.dumps({"cells": list(cells), "metadata": {}, "nbformat": 4,
                       "nbformat_minor": 5, **(top or {})})


for name, text, codes, says in (
    ("bad-json", "{cells: [", BAD, "notebook"),
    ("empty", "", BAD, "notebook"),
    ("list", "[1, 2]", BAD, "notebook"),
    ("cells-str", json.dumps({"cells": "x"}), BAD, "cells"),
    ("cells-null", json.dumps({"cells": None}), BAD, "cells"),
    ("cell-int", nb(5), ANSWER + BAD, ""),
    ("cell-type-int", nb({**CELL, "cell_type": 5}), ANSWER + BAD, ""),
    ("cell-type-list", nb({**CELL, "cell_type": ["code"]}), ANSWER + BAD, ""),
    ("source-int", nb({**CELL, "source": 5}), ANSWER + BAD, ""),
    ("source-list-of-ints", nb({**CELL, "source": [1, 2]}), ANSWER + BAD, ""),
    ("source-dict", nb({**CELL, "source": {"a": 1}}), ANSWER + BAD, ""),
    ("source-nested", nb({**CELL, "source": [["x"]]}), ANSWER + BAD, ""),
    ("raw-and-markdown", nb({**CELL, "cell_type": "raw"}, {**CELL, "cell_type": "markdown"}),
     ANSWER, ""),
    ("huge-outputs", nb({**CELL, "outputs": [{"output_type": "stream", "name": "stdout",
                                             "text": ["x" * 1000 + "\n"] * 5000}]}), ANSWER, ""),
    ("magic-lines", nb({**CELL, "source": ["!pip install x\n", "%%time\n", "a = 1\n"]}),
     ANSWER, ""),
    ("deep-json", '{"cells": ' + "[" * 100_000 + "]" * 100_000 + "}", BAD, ""),
    ("nan-json", '{"cells": [], "metadata": {"x": NaN}}', ANSWER, ""),
    ("source-syntax-error", nb({**CELL, "source": ["def (:\n"]}), ANSWER, ""),
):
    add(row(f"nb-{name}", [*DOC, "{d}/n.ipynb"], {"n.ipynb": text}, codes, says))
    add(row(f"nb-{name}-json", [*DOC, "{d}/n.ipynb", "--json"], {"n.ipynb": text}, codes, says))
add(row("nb-fix-refused", ["doctor", "{d}/n.ipynb", "--fix"], {"n.ipynb": nb(CELL)}, ANSWER,
        "not rewritten"))
add(row("nb-latin1", [*DOC, "{d}/n.ipynb"],
        {"n.ipynb": nb(CELL).replace("o'", "caf\xe9'").encode("latin-1")}, BAD, "UTF-8"))

# --- framework YAML with wrong types -----------------------------------------------------
WRONG = {  # YAML text of a wrong value -> id
    "list": "[1, 2]", "dict": "{a: 1}", "nan": ".nan", "inf": ".inf", "1e400": "1e400",
    "neg": "-8", "quoted-bool": '"false"', "word": "lots", "null": "null", "zero": "0",
}
FRAMEWORKS = {
    "axolotl": ("base_model: llama-2-7b\nadapter: lora\n",
                ("micro_batch_size", "sequence_len", "lora_r", "lora_alpha", "lora_dropout",
                 "gradient_accumulation_steps", "learning_rate", "load_in_4bit", "bf16",
                 "gradient_checkpointing", "optimizer", "lora_target_modules", "deepspeed",
                 "fsdp", "flash_attention")),
    "llamafactory": ("model_name_or_path: llama-2-7b\nstage: sft\nfinetuning_type: lora\n",
                     ("lora_rank", "cutoff_len", "per_device_train_batch_size",
                      "quantization_bit", "lora_target", "bf16", "learning_rate",
                      "gradient_accumulation_steps", "deepspeed", "flash_attn")),
    "trl": ("model_name_or_path: llama-2-7b\nuse_peft: true\n",
            ("lora_r", "max_length", "per_device_train_batch_size", "load_in_4bit",
             "lora_target_modules", "learning_rate", "gradient_checkpointing", "torch_dtype",
             "model_init_kwargs")),
}
BOOLS = {"load_in_4bit", "bf16", "gradient_checkpointing", "flash_attention", "flash_attn"}
NAMES = {"lora_target_modules", "lora_target", "optimizer", "torch_dtype", "fsdp"}
# values a framework's own validator takes (pydantic reads "false" as False; a module or
# optimizer name is any string): read, or refused by the estimate with a message naming them
LEGIT = {(k, "quoted-bool") for k in BOOLS | NAMES} | {(k, "word") for k in NAMES} | {
    ("model_init_kwargs", "dict"), ("deepspeed", "word"), ("deepspeed", "quoted-bool"),
    ("deepspeed", "dict")}
for fw, (base, keys) in FRAMEWORKS.items():
    for key in keys:
        for wname in ("list", "dict", "nan", "1e400", "neg", "quoted-bool", "word"):
            legit = (key, wname) in LEGIT
            add(row(f"{fw}-{key}-{wname}", [*DOC, "{d}/c.yaml", "--json"],
                    {"c.yaml": f"{base}{key}: {WRONG[wname]}\n"},
                    ANSWER + BAD if legit else ANSWER, () if legit else key))
    add(row(f"{fw}-int-keys", [*DOC, "{d}/c.yaml"], {"c.yaml": base + "1: 2\nnull: 3\ntrue: 4\n"},
            ANSWER))
    add(row(f"{fw}-alias-bomb", [*DOC, "{d}/c.yaml"],
            {"c.yaml": base + "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
                f"{k}: &{k} [{', '.join(['*' + p] * 9)}]\n"
                for p, k in zip("abcdefgh", "bcdefghi", strict=True))}, ANSWER + BAD, "alias"))
    add(row(f"{fw}-emit-yaml", ["doctor", "{d}/c.yaml", "--emit", "yaml"],
            {"c.yaml": base + "per_device_train_batch_size: [1]\nmicro_batch_size: .nan\n"},
            ANSWER + BAD))
    add(row(f"{fw}-sarif-gpu", ["doctor", "{d}/c.yaml", "--format", "sarif", "--gpu", "T4"],
            {"c.yaml": base + "learning_rate: .nan\nsequence_len: 1e400\ncutoff_len: .inf\n"},
            ANSWER))
add(row("axolotl-deep", [*DOC, "{d}/c.yaml"],
        {"c.yaml": "base_model: x\nmicro_batch_size: 1\nd: " + "[" * 5000 + "]" * 5000 + "\n"},
        ANSWER + BAD))
add(row("axolotl-tab", [*DOC, "{d}/c.yaml"],
        {"c.yaml": "base_model: x\nmicro_batch_size:\n\t1\n"}, ANSWER + BAD))

# --- accelerate configs ------------------------------------------------------------------
ACC = "compute_environment: LOCAL_MACHINE\ndistributed_type: FSDP\n"
for key, val in (("num_processes", "[2]"), ("num_processes", ".nan"), ("num_processes", "-2"),
                 ("num_processes", "1e400"), ("num_processes", "auto"),
                 ("num_machines", "0"), ("num_machines", "lots"),
                 ("mixed_precision", "[bf16]"), ("mixed_precision", "5"),
                 ("fsdp_config", "5"), ("fsdp_config", "[1]"),
                 ("fsdp_config", "{fsdp_sharding_strategy: 99}"),
                 ("fsdp_config", "{fsdp_offload_params: maybe}"),
                 ("deepspeed_config", "7"),
                 ("deepspeed_config", "{zero_stage: [3]}"),
                 ("deepspeed_config", "{zero_stage: 7, offload_optimizer_device: 5}"),
                 ("deepspeed_config", "{deepspeed_config_file: 5}"),
                 ("deepspeed_config", "{deepspeed_config_file: /nonexistent/ds.json}"),
                 ("distributed_type", "[FSDP]")):
    add(row(f"accelerate-{key}-{val}", [*DOC, "{d}/acc.yaml", "--json"],
            {"acc.yaml": f"{ACC}{key}: {val}\n"}, ANSWER))

# --- DeepSpeed JSON ----------------------------------------------------------------------
for name, zo in (
    ("stage-7", {"stage": 7}), ("stage-str", {"stage": "3"}), ("stage-auto", {"stage": "auto"}),
    ("stage-list", {"stage": [3]}), ("stage-float", {"stage": 2.5}),
    ("stage-neg", {"stage": -1}), ("stage-bool", {"stage": True}),
    ("offload-str", {"stage": 3, "offload_optimizer": "cpu"}),
    ("offload-device-int", {"stage": 3, "offload_param": {"device": 5}}),
    ("offload-device-bogus", {"stage": 3, "offload_param": {"device": "tape"}}),
    ("bucket-auto-ok", {"stage": 3, "reduce_bucket_size": "auto"}),
    ("bucket-str", {"stage": 3, "reduce_bucket_size": "lots"}),
    ("bucket-neg", {"stage": 3, "reduce_bucket_size": -5}),
    ("bucket-list", {"stage": 2, "allgather_bucket_size": [1]}),
    ("zero-list", None),
):
    body = {"train_micro_batch_size_per_gpu": "auto",
            "zero_optimization": zo if zo is not None else [1, 2]}
    add(row(f"ds-{name}", [*DOC, "{d}/ds.json", "--json"], {"ds.json": json.dumps(body)},
            ANSWER))
for name, text in (("nan-batch", '{"zero_optimization": {"stage": 2}, '
                                 '"train_micro_batch_size_per_gpu": NaN}'),
                   ("inf-clip", '{"zero_optimization": {"stage": 2}, "gradient_clipping": '
                                'Infinity}'),
                   ("1e400-batch", '{"train_micro_batch_size_per_gpu": 1e400}'),
                   ("bf16-str", '{"zero_optimization": {"stage": 2}, "bf16": "yes"}'),
                   ("bf16-enabled-str", '{"zero_optimization": {"stage": 2}, '
                                        '"bf16": {"enabled": "false"}}'),
                   ("top-list", '["zero_optimization"]'),
                   ("bad-json", '{"zero_optimization": {'),
                   ("trailing-comma", '{"zero_optimization": {"stage": 2},}'),
                   ("deep", '{"zero_optimization": ' + "[" * 100_000 + "]" * 100_000 + "}"),
                   ("bigint", '{"zero_optimization": {"stage": 1' + "0" * 5000 + "}}")):
    add(row(f"ds-{name}", [*DOC, "{d}/ds.json", "--format", "sarif"], {"ds.json": text},
            ANSWER))

# --- run files: config.json, adapter_config.json, trainer_state.json ----------------------
LLAMA = {"model_type": "llama", "hidden_size": 256, "num_hidden_layers": 2,
         "num_attention_heads": 4, "num_key_value_heads": 4, "intermediate_size": 512,
         "vocab_size": 1000, "max_position_embeddings": 2048}
for name, cfg in (("hidden-str", {**LLAMA, "hidden_size": "256"}),
                  ("hidden-nan", None), ("layers-list", {**LLAMA, "num_hidden_layers": [2]}),
                  ("heads-66", {**LLAMA, "hidden_size": 66}),
                  ("quant-str", {**LLAMA, "quantization_config": "nf4"}),
                  ("quant-bits-str", {**LLAMA, "quantization_config": {"quant_method": "gptq",
                                                                       "bits": "4"}}),
                  ("arch-int", {**LLAMA, "architectures": 5}),
                  ("dtype-list", {**LLAMA, "torch_dtype": ["bfloat16"]})):
    text = json.dumps(cfg) if cfg is not None else json.dumps(LLAMA)[:-1] + ', "hidden_size": NaN}'
    add(row(f"run-config-{name}", [*DOC, "{d}/config.json", "--json"], {"config.json": text},
            ANSWER + BAD))
for name, text in (("deep", '{"model_type": "llama", "x": ' + "[" * 100_000 + "]" * 100_000
                    + "}"), ("bigint", '{"model_type": "llama", "hidden_size": 1' + "0" * 5000
                             + "}"), ("nb-bigint", None)):
    if text is None:
        add(row("nb-bigint", [*DOC, "{d}/n.ipynb"], {"n.ipynb": '{"cells": [], "x": 1'
                                                    + "0" * 5000 + "}"}, BAD, "notebook"))
        continue
    add(row(f"run-config-{name}", [*DOC, "{d}/config.json", "--json"], {"config.json": text},
            ANSWER + BAD))
ADAPTER = {"peft_type": "LORA", "base_model_name_or_path": "llama-2-7b", "r": 8,
           "lora_alpha": 16, "target_modules": ["q_proj", "v_proj"]}
for name, bad in (("r-str", {"r": "8"}), ("r-nan", {"r": float("nan")}), ("r-neg", {"r": -8}),
                  ("r-list", {"r": [8]}), ("alpha-dict", {"lora_alpha": {"a": 1}}),
                  ("targets-int", {"target_modules": 5}),
                  ("targets-nested", {"target_modules": [["q_proj"]]}),
                  ("dora-str", {"use_dora": "false"}), ("peft-type-int", {"peft_type": 5}),
                  ("base-int", {"base_model_name_or_path": 5}),
                  ("base-list", {"base_model_name_or_path": ["llama-2-7b"]}),
                  ("dropout-str", {"lora_dropout": "high"})):
    text = json.dumps({**ADAPTER, **bad}).replace("NaN", "NaN")
    add(row(f"run-adapter-{name}", [*DOC, "{d}/adapter_config.json", "--json"],
            {"adapter_config.json": text}, ANSWER))
for name, state in (("log-str", {"log_history": "x", "global_step": 1}),
                    ("log-ints", {"log_history": [1, 2], "global_step": 1}),
                    ("step-str", {"log_history": [{"step": "x", "loss": 1}], "global_step": 1}),
                    ("loss-nan", None),
                    ("max-steps-neg", {"log_history": [], "global_step": 1, "max_steps": -5}),
                    ("batch-str", {"log_history": [], "global_step": 1,
                                   "train_batch_size": "8"}),
                    ("global-step-list", {"log_history": [], "global_step": [1]}),
                    ("huge-log", {"log_history": [{"step": i, "loss": 1.0}
                                                  for i in range(200_000)], "global_step": 1})):
    text = json.dumps(state) if state is not None else (
        '{"global_step": 1, "log_history": [{"step": 1, "loss": NaN, "grad_norm": Infinity}]}')
    add(row(f"run-state-{name}", [*DOC, "{d}/trainer_state.json", "--json"],
            {"trainer_state.json": text}, ANSWER))

# --- shell launch lines and the files they name -----------------------------------------
LAUNCH = ("accelerate launch --config_file acc.yaml train.py --model_name_or_path llama-2-7b "
          "--deepspeed ds.json --per_device_train_batch_size 2\n")
for name, files in (
    ("refs-latin1", {"acc.yaml": "distributed_type: FSDP # caf\xe9\n".encode("latin-1"),
                     "ds.json": '{"x": "caf\xe9"}'.encode("latin-1")}),
    ("refs-utf16", {"acc.yaml": "distributed_type: FSDP\n".encode("utf-16"),
                    "ds.json": json.dumps({"zero_optimization": {"stage": 2}}).encode("utf-16")}),
    ("refs-deep", {"acc.yaml": "x: " + "[" * 5000 + "]" * 5000 + "\n",
                   "ds.json": '{"x": ' + "[" * 100_000 + "]" * 100_000 + "}"}),
    ("refs-bigint", {"acc.yaml": "num_processes: 1" + "0" * 5000 + "\n",
                     "ds.json": '{"zero_optimization": {"stage": 1' + "0" * 5000 + "}}"}),
    ("refs-dirs", {"acc.yaml": DIR, "ds.json": DIR}),
    ("refs-huge", {"acc.yaml": "distributed_type: FSDP\n# " + "x" * (20 * 2**20) + "\n",
                   "ds.json": json.dumps({"pad": "x" * (20 * 2**20)})}),
    ("refs-alias-bomb", {"acc.yaml": "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{k}: &{k} [{', '.join(['*' + p] * 9)}]\n"
        for p, k in zip("abcdefgh", "bcdefghi", strict=True)), "ds.json": "{}"}),
):
    add(row(f"shell-{name}", [*DOC, "{d}/run.sh", "--json"], {"run.sh": LAUNCH, **files},
            ANSWER))
for name, text in (
    ("binary", bytes(range(1, 256)) * 4), ("unclosed-quote", "python train.py --x 'abc\n"),
    ("long-line", "python train.py " + "--a b " * 200_000 + "\n"),
    ("many-lines", "python train.py --bf16 \\\n" * 50_000 + "\n"),
    ("ref-long-name", "python train.py --deepspeed " + "d" * 5000 + ".json\n"),
    ("ref-nul", "python train.py --deepspeed 'a\x00.json'\n"),
    ("axolotl-ref-latin1", "accelerate launch -m axolotl.cli.train cfg.yml\n"),
):
    files = {"run.sh": text}
    if name == "axolotl-ref-latin1":
        files["cfg.yml"] = "base_model: llama-2-7b # caf\xe9\n".encode("latin-1")
    add(row(f"shell-{name}", [*DOC, "{d}/run.sh"], files, ANSWER + BAD))

# --- --fix where writing would replace something ------------------------------------------
BROKEN = ("from transformers import TrainingArguments\n"
          "a = TrainingArguments(output_dir='o', evaluation_strategy='steps')\n")
add(row("fix-exists", ["doctor", "{d}/train.py", "--fix"],
        {"train.py": BROKEN, "train.fixed.py": "mine\n"}, BAD, "already exists"))
add(row("fix-exists-dir", ["doctor", "{d}/train.py", "--fix"],
        {"train.py": BROKEN, "train.fixed.py": DIR}, BAD, "already exists"))
add(row("fix-dangling-link", ["doctor", "{d}/train.py", "--fix"],
        {"train.py": BROKEN, "train.fixed.py": Link("{d}/nowhere/x.py")}, BAD, "train.fixed.py"))
add(row("fix-link-to-dir", ["doctor", "{d}/train.py", "--fix"],
        {"train.py": BROKEN, "elsewhere": DIR, "train.fixed.py": Link("{d}/elsewhere")}, BAD,
        "train.fixed.py"))
add(row("fix-twice-one-run", ["doctor", "{d}/train.py", "{d}/train.py", "--fix"],
        {"train.py": BROKEN}, BAD, "already exists"))
add(row("fix-ok", ["doctor", "{d}/train.py", "--fix"], {"train.py": BROKEN}, ANSWER, "wrote"))
add(row("fix-nothing", ["doctor", "{d}/train.py", "--fix"], {"train.py": "x = 1\n"}, ANSWER,
        "nothing to fix"))
add(row("diff-yaml", ["doctor", "{d}/c.yaml", "--diff"],
        {"c.yaml": FRAMEWORKS["axolotl"][0]}, ANSWER))

# --- doctor flags ------------------------------------------------------------------------
for name, argv, says in (
    ("seq-zero", ["--seq-len", "0"], "seq-len"), ("seq-neg", ["--seq-len", "-1"], "seq-len"),
    ("seq-huge", ["--seq-len", "1000000000000"], "seq-len"),
    ("gpu-empty", ["--gpu", ""], "gpu"), ("gpu-nan", ["--gpu", "nanGB"], "gpu"),
    ("gpu-0x", ["--gpu", "0xA100"], "gpu"), ("gpu-huge-count", ["--gpu", "100000xH100"], "gpu"),
    ("model-empty", ["--model", ""], "model"), ("model-blank", ["--model", "  "], "model"),
    ("tf-version-bogus", ["--transformers", "banana"], "transformers"),
    ("tf-version-empty", ["--transformers", ""], "transformers"),
    ("peft-version-long", ["--peft", "9" * 5000], "peft"),
):
    add(row(f"flag-{name}", ["doctor", "{d}/train.py", *argv], {"train.py": SCRIPT}, BAD, says))
add(row("flag-emit-two-files", ["doctor", "{d}/a.py", "{d}/b.py", "--emit", "yaml"],
        {"a.py": SCRIPT, "b.py": SCRIPT}, BAD, "one file"))
add(row("flag-model-long", ["doctor", "{d}/train.py", "--model", "m" * 10000],
        {"train.py": SCRIPT}, ANSWER + BAD, "model"))


def test_at_least_a_hundred_rows() -> None:
    assert len(ROWS) >= 100
    assert len({h.id for h in ROWS}) == len(ROWS)


@pytest.mark.parametrize("h", ROWS, ids=[h.id for h in ROWS])
def test_doctor_hostile(h: H, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_row(h, tmp_path, capsys) == []
