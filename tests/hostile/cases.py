"""The hostile-input corpus: what a careless or hostile user can hand to vramdoc's commands.

Each case is ``Case(id, argv, files, codes, says)``: ``argv`` may name ``{d}`` (a fresh folder
holding ``files``, a mapping of relative path -> text or bytes); the command must exit with one
of ``codes`` (2 = bad input, 0/1 where the input is legitimate), print no traceback, and say
``says`` (case-insensitive) on stderr. Setup-file, CSV and config.json cases write their files
into the folder. Run by tests/hostile/test_hostile.py in-process (``vramdoc.cli.main``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

BAD = 2
OK = (0,)
FITS_OR_NOT = (0, 1)


@dataclass(frozen=True)
class Case:
    id: str
    argv: tuple[str, ...]
    files: dict[str, str | bytes] = field(default_factory=dict)
    codes: tuple[int, ...] = (BAD,)
    says: str = ""
    env: tuple[tuple[str, str], ...] = ()


CASES: list[Case] = []


def case(id: str, argv: list[str], files: dict[str, str | bytes] | tuple[int, ...] | None = None,
         codes: tuple[int, ...] | int = BAD, says: str = "",
         env: tuple[tuple[str, str], ...] = ()) -> None:
    if isinstance(files, tuple):  # case(id, argv, codes, says): a case without files
        codes, says, files = files, codes if isinstance(codes, str) else says, None
    codes = (codes,) if isinstance(codes, int) else codes
    assert all(c.id != id for c in CASES), id
    CASES.append(Case(id, tuple(argv), files or {}, codes, says, env))


# --- setup files (YAML) ------------------------------------------------------------------------

def setup_yaml(id: str, body: str, codes: tuple[int, ...] | int = BAD, says: str = "",
               base: str = "model: llama-2-7b\n") -> None:
    case(f"setup-{id}", ["estimate", "--config", "{d}/s.yaml"], {"s.yaml": base + body},
         codes, says)


LORA = "lora: {r: 8, lora_alpha: 16}\n"
QLORA = "quantization: {load_in_4bit: true}\nlora: {r: 8}\n"
BAD_NUMBERS = {  # YAML text -> what the message must show
    "nan": ".nan", "inf": ".inf", "neginf": "-.inf", "1e400": "1e400", "zero": "0",
    "neg": "-5", "frac": "1.5", "word": "lots", "list": "[1]", "dict": "{a: 1}",
    "bool": "true", "quoted": '"512"',
}
for key, where in (("max_seq_length", ""), ("num_gpus", ""), ("num_labels", ""),
                   ("per_device_train_batch_size", "training"),
                   ("gradient_accumulation_steps", "training")):
    for name, text in BAD_NUMBERS.items():
        body = f"{key}: {text}\n" if not where else f"{where}: {{{key}: {text}}}\n"
        setup_yaml(f"{key}-{name}", body, says=key)
for key, limit in (("max_seq_length", 10**9), ("num_gpus", 10**8)):
    setup_yaml(f"{key}-huge", f"{key}: {limit}\n", says="at most")
setup_yaml("batch-huge", "training: {per_device_train_batch_size: 1000000000}\n", says="at most")
setup_yaml("accum-huge", "training: {gradient_accumulation_steps: 100000000000}\n",
           says="at most")

for key in ("learning_rate", "weight_decay", "max_grad_norm", "warmup_steps"):
    for name, text in (("nan", ".nan"), ("inf", ".inf"), ("neg", "-1"), ("word", "lots"),
                       ("list", "[1]"), ("bool", "true"), ("1e400", "1e400")):
        setup_yaml(f"{key}-{name}", f"training: {{{key}: {text}}}\n", says=key)
for name, text in (("2e-4", "2e-4"), ("1e-5", "1e-5"), ("2E-4", "2E-4"), ("5.0e-5", "5.0e-5"),
                   ("1e-3", "1.e-3"), ("plain", "0.0002")):
    setup_yaml(f"learning_rate-ok-{name}", f"training: {{learning_rate: {text}}}\n", OK)
setup_yaml("learning_rate-quoted", 'training: {learning_rate: "2e-4"}\n', says="learning_rate")
setup_yaml("warmup-ok-2e-2", "training: {warmup_steps: 3e-2}\n", OK)
setup_yaml("weight_decay-ok-1e-2", "training: {weight_decay: 1e-2}\n", OK)

for name, text in (("nan", ".nan"), ("inf", ".inf"), ("neg", "-0.1"), ("one", "1.0"),
                   ("big", "1.5"), ("word", "lots"), ("list", "[0.1]")):
    setup_yaml(f"lora_dropout-{name}", f"lora: {{r: 8, lora_dropout: {text}}}\n",
               says="lora_dropout")
setup_yaml("lora_dropout-ok", "lora: {r: 8, lora_dropout: 5e-2}\n", OK)
for name, text in (("word", "lots"), ("nan", ".nan"), ("list", "[1]"), ("dict", "{a: 1}"),
                   ("zero", "0"), ("neg", "-16"), ("frac", "1.5"), ("bool", "true")):
    setup_yaml(f"lora_alpha-{name}", f"lora: {{r: 8, lora_alpha: {text}}}\n", says="lora_alpha")
for name, text in (("word", "x"), ("nan", ".nan"), ("zero", "0"), ("neg", "-1"), ("list", "[8]"),
                   ("frac", "8.5"), ("huge", "100000000")):
    setup_yaml(f"lora_r-{name}", f"lora: {{r: {text}}}\n", says="lora.r")
for name, text in (("int", "5"), ("dict", "{a: 1}"), ("ints", "[1, 2]"), ("nested", "[[q_proj]]"),
                   ("bool", "true"), ("empty", '""'), ("float", "1.5")):
    setup_yaml(f"target_modules-{name}", f"lora: {{r: 8, target_modules: {text}}}\n",
               says="target_modules")
setup_yaml("target_modules-ok", "lora: {r: 8, target_modules: [q_proj, v_proj]}\n", OK)
setup_yaml("target_modules-all-linear", "lora: {r: 8, target_modules: all-linear}\n", OK)
for name, text in (("int", "5"), ("dict", "{a: 1}")):
    setup_yaml(f"modules_to_save-{name}", f"lora: {{r: 8, modules_to_save: {text}}}\n",
               says="modules_to_save")
for name, text in (("int", "5"), ("list", "[none]"), ("word", "sometimes")):
    setup_yaml(f"lora_bias-{name}", f"lora: {{r: 8, bias: {text}}}\n", says="bias")
for key in ("use_dora", "use_rslora"):
    for name, text in (("false-str", '"false"'), ("true-str", '"true"'), ("int", "1"),
                       ("list", "[true]")):
        setup_yaml(f"{key}-{name}", f"lora: {{r: 8, {key}: {text}}}\n", says=key)
for name, text in (("false-str", '"false"'), ("no-str", '"no"'), ("int", "0"), ("list", "[true]")):
    setup_yaml(f"kbit_prep-{name}", f"{QLORA}prepare_model_for_kbit_training: {text}\n",
               says="prepare_model_for_kbit_training")
setup_yaml("kbit_prep-ok", f"{QLORA}prepare_model_for_kbit_training: false\n", OK)
for key, text in (("load_in_4bit", '"true"'), ("load_in_4bit", "1"),
                  ("bnb_4bit_use_double_quant", '"false"'), ("bnb_4bit_quant_type", "5"),
                  ("bnb_4bit_quant_type", "[nf4]"), ("bnb_4bit_compute_dtype", "{a: 1}"),
                  ("bnb_4bit_compute_dtype", "int8"), ("llm_int8_skip_modules", "5"),
                  ("bnb_4bit_quant_storage", "[uint8]")):
    extra = "" if key == "load_in_4bit" else "load_in_4bit: true, "
    setup_yaml(f"quant-{key}-{text.strip(chr(34))}",
               f"quantization: {{{extra}{key}: {text}}}\nlora: {{r: 8}}\n", says=key)
for key, text in (("bits", '"4"'), ("bits", ".nan"), ("group_size", ".nan"), ("group_size", "x"),
                  ("group_size", "0"), ("desc_act", '"false"'), ("sym", '"false"')):
    setup_yaml(f"gptq-{key}-{text.strip(chr(34))}",
               f"quantization: {{quant_method: gptq, {key}: {text}}}\nlora: {{r: 8}}\n", says=key)
for name, text in (("int", "5"), ("dict", "{a: 1}"), ("ints", "[5]"), ("bool", "true"),
                   ("bogus", "bogus_sharding")):
    setup_yaml(f"fsdp-{name}", f"num_gpus: 2\ntraining: {{fsdp: {text}}}\n", says="fsdp")
setup_yaml("fsdp-ok", "num_gpus: 2\ntraining: {fsdp: full_shard auto_wrap}\n", OK)
for name, text in (("int", "5"), ("list", "[adamw_torch]"), ("dict", "{a: 1}"),
                   ("typo", "adamw_torh")):
    setup_yaml(f"optim-{name}", f"training: {{optim: {text}}}\n", says="optim")
for key in ("gradient_checkpointing", "bf16", "fp16", "torch_compile"):
    for name, text in (("false-str", '"false"'), ("yes-str", '"yes"'), ("int", "1")):
        setup_yaml(f"{key}-{name}", f"training: {{{key}: {text}}}\n", says=key)
setup_yaml("ckpt_kwargs-int", "training: {gradient_checkpointing_kwargs: 5}\n",
           says="gradient_checkpointing_kwargs")
setup_yaml("ckpt_kwargs-reentrant-str",
           'training: {gradient_checkpointing_kwargs: {use_reentrant: "false"}}\n',
           says="use_reentrant")
for name, text in (("int", "5"), ("list", "[linear]")):
    setup_yaml(f"scheduler-{name}", f"training: {{lr_scheduler_type: {text}}}\n",
               says="lr_scheduler_type")
for key, text in (("training", "5"), ("training", "[1]"), ("lora", "5"), ("lora", "[r]"),
                  ("quantization", "yes"), ("model_kwargs", "[1]"), ("stack", "5")):
    setup_yaml(f"section-{key}-{text}", f"{key}: {text}\n", says=key)
for key, text in (("dtype", "5"), ("dtype", "[bf16]"), ("dtype", "{a: 1}"), ("dtype", "int8"),
                  ("attn_implementation", "5"), ("attn_implementation", "[sdpa]"),
                  ("attn_implementation", "bogus")):
    setup_yaml(f"model_kwargs-{key}-{text}", f"model_kwargs: {{{key}: {text}}}\n", says=key)
for name, text in (("int", "5"), ("list", "[llama-2-7b]"), ("dict", "{a: 1}"), ("empty", '""'),
                   ("null", "null")):
    setup_yaml(f"model-{name}", f"model: {text}\n", says="model", base="")
for name, text in (("int", "5"), ("list", "[x]"), ("bogus", "bogus")):
    setup_yaml(f"task-{name}", f"task: {text}\n", says="task")
for name, text in (("list", "[A100]"), ("dict", "{a: 1}"), ("empty", '""'), ("1e400", "1e400GB"),
                   ("zero", "0GB"), ("nan", "nanGB"), ("bool", "true")):
    setup_yaml(f"gpu-{name}", f"gpu: {text}\n", says="gpu")
setup_yaml("stack-tf-4.50", "stack: {transformers: 4.50}\n", says="quote")
setup_yaml("stack-tf-4.5", "stack: {transformers: 4.5}\n", says="quote")
setup_yaml("stack-torch-2.10", "stack: {torch: 2.10}\n", says="quote")
setup_yaml("stack-tf-list", "stack: {transformers: [4]}\n", says="stack.transformers")
setup_yaml("stack-tf-nan", "stack: {transformers: .nan}\n", says="stack.transformers")
setup_yaml("stack-tf-quoted-ok", 'stack: {transformers: "4.50", torch: "2.10"}\n', OK)
setup_yaml("stack-tf-int-ok", "stack: {transformers: 5}\n", OK)
for name, text in (("int-key", "1: 2\n"), ("null-key", "null: 3\n"), ("true-key", "true: 4\n"),
                   ("float-key", "1.5: 4\n"), ("training-int-key", "training: {1: 2}\n"),
                   ("lora-null-key", "lora: {r: 8, null: 1}\n"),
                   ("quant-true-key",
                    "quantization: {load_in_4bit: true, true: 1}\nlora: {r: 8}\n"),
                   ("model_kwargs-int-key", "model_kwargs: {1: 2}\n"),
                   ("stack-int-key", "stack: {1: 2}\n"),
                   ("ckpt-kwargs-int-key", "training: {gradient_checkpointing_kwargs: {1: 2}}\n")):
    setup_yaml(f"keys-{name}", text, says="key")
setup_yaml("keys-list-key", "? [a, b]\n: 1\n", says="")
for name, body, says in (
    ("top-list", "- a\n- b\n", "mapping"), ("top-scalar", "hello\n", "mapping"),
    ("top-empty", "", "mapping"), ("top-comment", "# nothing\n", "mapping"),
    ("two-docs", "model: a\n---\nmodel: b\n", "YAML"), ("bad-syntax", "model: [\n", "YAML"),
    ("tab-indent", "training:\n\tbf16: true\n", "YAML"),
    ("deep-nesting", "x: " + "[" * 20000 + "]" * 20000 + "\n", ""),
    ("unknown-tag", "model: !!python/object:os.system ls\n", "YAML"),
    ("removed-key", "training: {evaluation_strategy: steps}\n", "eval_strategy"),
):
    setup_yaml(f"doc-{name}", body, says=says, base="")

BOMB = "\n".join(["a: &a [x, x, x, x, x, x, x, x, x]"]
                 + [f"{b}: &{b} [*{a}, *{a}, *{a}, *{a}, *{a}, *{a}, *{a}, *{a}, *{a}]"
                    for a, b in zip("abcdefgh", "bcdefghi", strict=True)]) + "\n"
setup_yaml("alias-bomb-top", BOMB, says="alias", base="")
setup_yaml("alias-bomb-training", BOMB + "model: llama-2-7b\ntraining: {output_dir: *i}\n",
           says="alias", base="")
setup_yaml("alias-bomb-targets", BOMB + "model: llama-2-7b\nlora: {r: 8, target_modules: *i}\n",
           says="alias", base="")
for name, text in (("nan", "logging_steps: .nan"), ("date", "run_name: 2024-01-01"),
                   ("nested-inf", "output_dir: [1, {a: .inf}]"),
                   ("binary", "run_name: !!binary aGk=")):
    setup_yaml(f"echoed-{name}", f"training: {{{text}}}\n", says="training.")
    case(f"setup-echoed-json-{name}", ["estimate", "--config", "{d}/s.yaml", "--json"],
         {"s.yaml": f"model: llama-2-7b\ntraining: {{{text}}}\n"}, says="training.")
setup_yaml("echoed-ok", "training: {output_dir: out, logging_steps: 10, report_to: [none]}\n", OK)
setup_yaml("alias-few-ok", "x_defaults: &d {bf16: true}\n", says="x_defaults")
setup_yaml("huge-file", "# " + "x" * (3 * 2**20) + "\n", says="large")

case("setup-latin1", ["estimate", "--config", "{d}/s.yaml"],
     {"s.yaml": "model: llama-2-7b\n# caf\xe9\n".encode("latin-1")}, says="UTF-8")
case("setup-utf16", ["estimate", "--config", "{d}/s.yaml"],
     {"s.yaml": "model: llama-2-7b\n".encode("utf-16")}, says="UTF-8")
case("setup-binary", ["estimate", "--config", "{d}/s.yaml"],
     {"s.yaml": bytes(range(256)) * 4}, says="UTF-8")
case("setup-utf8-bom-ok", ["estimate", "--config", "{d}/s.yaml"],
     {"s.yaml": "\ufeffmodel: llama-2-7b\n".encode()}, OK)
case("setup-nul", ["estimate", "--config", "{d}/s.yaml"],
     {"s.yaml": "model: llama-2-7b\x00\n"}, says="")
case("setup-json-nan", ["estimate", "--config", "{d}/s.json"],
     {"s.json": '{"model": "llama-2-7b", "max_seq_length": NaN}'}, says="max_seq_length")
case("setup-json-inf", ["estimate", "--config", "{d}/s.json"],
     {"s.json": '{"model": "llama-2-7b", "training": {"learning_rate": Infinity}}'},
     says="learning_rate")
case("setup-json-1e400", ["estimate", "--config", "{d}/s.json"],
     {"s.json": '{"model": "llama-2-7b", "num_gpus": 1e400}'}, says="num_gpus")
case("setup-json-list", ["estimate", "--config", "{d}/s.json"], {"s.json": "[1, 2]"},
     says="mapping")
case("setup-json-bad", ["estimate", "--config", "{d}/s.json"], {"s.json": "{model: x}"},
     says="JSON")
case("setup-json-deep", ["estimate", "--config", "{d}/s.json"],
     {"s.json": '{"x": ' + "[" * 100000 + "]" * 100000 + "}"}, says="")
case("setup-json-latin1", ["estimate", "--config", "{d}/s.json"],
     {"s.json": '{"model": "caf\xe9"}'.encode("latin-1")}, says="UTF-8")
case("setup-json-dora-str", ["estimate", "--config", "{d}/s.json"],
     {"s.json": '{"model": "llama-2-7b", "lora": {"r": 8, "use_dora": "false"}}'},
     says="use_dora")
case("setup-missing", ["estimate", "--config", "{d}/nope.yaml"], says="does not exist")
case("setup-dir", ["estimate", "--config", "{d}"], says="")
case("setup-longpath", ["estimate", "--config", "a" * 10000], says="")
case("setup-longpath-nested", ["estimate", "--config", "/".join(["b" * 200] * 60)], says="")
case("setup-nul-path", ["estimate", "--config", "a\x00b.yaml"], says="")
case("plan-setup-latin1", ["plan", "--config", "{d}/s.yaml", "--gpu", "24GB"],
     {"s.yaml": "model: llama-2-7b\n# caf\xe9\n".encode("latin-1")}, says="UTF-8")
case("plan-setup-seq-nan", ["plan", "--config", "{d}/s.yaml", "--gpu", "24GB"],
     {"s.yaml": "model: llama-2-7b\nmax_seq_length: .nan\n"}, says="max_seq_length")
case("plan-setup-eb-huge", ["plan", "--config", "{d}/s.yaml", "--gpu", "24GB"],
     {"s.yaml": "model: llama-2-7b\ntraining: {per_device_train_batch_size: 100000, "
                "gradient_accumulation_steps: 100000}\n"}, says="effective")

# --- flags: estimate ---------------------------------------------------------------------------

EST = ["estimate", "--model", "llama-2-7b"]
for name, argv, says in (
    ("gpu-empty", ["--gpu", ""], "gpu"), ("gpu-blank", ["--gpu", "   "], "gpu"),
    ("gpu-1e400", ["--gpu", "1e400"], "gpu"), ("gpu-1e400GB", ["--gpu", "1e400GB"], "gpu"),
    ("gpu-nan", ["--gpu", "nan"], "gpu"), ("gpu-inf", ["--gpu", "inf"], "gpu"),
    ("gpu-neg", ["--gpu", "-6GB"], "gpu"), ("gpu-zero", ["--gpu", "0GB"], "gpu"),
    ("gpu-sm999", ["--gpu", "6GB,sm999"], ""), ("gpu-unit", ["--gpu", "6XB"], "gpu"),
    ("gpu-long", ["--gpu", "x" * 10000], "gpu"), ("gpu-huge", ["--gpu", "1e20GB"], "gpu"),
    ("batch-zero", ["--batch", "0"], "batch"), ("batch-neg", ["--batch", "-1"], "batch"),
    ("batch-huge", ["--batch", "100000000"], "at most"), ("batch-word", ["--batch", "x"], "int"),
    ("batch-nan", ["--batch", "nan"], "int"), ("seq-zero", ["--seq-len", "0"], "max_seq_length"),
    ("seq-huge", ["--seq-len", "1000000000"], "at most"),
    ("seq-neg", ["--seq-len", "-5"], "max_seq_length"),
    ("accum-zero", ["--grad-accum", "0"], "gradient_accumulation_steps"),
    ("accum-huge", ["--grad-accum", "100000000000"], "at most"),
    ("gpus-zero", ["--num-gpus", "0"], "num_gpus"), ("gpus-neg", ["--num-gpus", "-2"], "num_gpus"),
    ("gpus-huge", ["--num-gpus", "100000000"], "at most"),
    ("lora-r-zero", ["--method", "lora", "--lora-r", "0"], "lora.r"),
    ("lora-r-neg", ["--method", "lora", "--lora-r", "-4"], "lora.r"),
    ("lora-alpha-zero", ["--method", "lora", "--lora-alpha", "0"], "lora_alpha"),
    ("lora-targets-empty", ["--method", "lora", "--lora-targets", ""], "target"),
    ("lora-targets-commas", ["--method", "lora", "--lora-targets", ",,,"], "target"),
    ("lora-flags-full", ["--lora-r", "8"], "full fine-tune"),
    ("fsdp-bogus", ["--num-gpus", "2", "--fsdp", "bogus"], "fsdp"),
    ("fsdp-one-gpu", ["--fsdp", "full_shard"], "num_gpus"),
    ("method-bogus", ["--method", "bogus"], "method"),
    ("optim-bogus", ["--optim", "adam"], "optim"),
):
    case(f"estimate-{name}", EST + argv, says=says)
for name, model, says in (
    ("empty", "", "model"), ("blank", "   ", "model"), ("long", "x" * 10000, "model"),
    ("long-nested", "/".join(["c" * 250] * 50), "model"), ("nul", "llama\x00", "model"),
    ("unknown", "not-a-model-xyz", "unknown model"), ("typo", "llama-2-7", "did you mean"),
    ("missing-path", "./missing/config.json", "model"),
):
    case(f"estimate-model-{name}", ["estimate", "--model", model], says=says)
case("estimate-model-hub-offline", ["estimate", "--model", "some-org/some-model-xyz"],
     says="HF_HUB_OFFLINE", env=(("HF_HUB_OFFLINE", "1"),))
case("estimate-no-model", ["estimate"], says="model")
# a blank --fsdp is refused like the other empty flags (sweep 3: it used to be ignored)
case("estimate-fsdp-blank-refused", EST + ["--num-gpus", "2", "--fsdp", "  "],
     says="names no FSDP option")
case("estimate-json-ok", EST + ["--json"], OK)
case("estimate-json-gpu-ok", EST + ["--json", "--gpu", "T4"], FITS_OR_NOT)
case("estimate-json-qlora-ok", EST + ["--json", "--method", "qlora", "--seq-len", "1"], OK)
case("estimate-ok-seq-1", EST + ["--seq-len", "1", "--batch", "1"], OK)
case("estimate-ok-big-seq", EST + ["--seq-len", "131072", "--attn", "sdpa"], OK)

# --- flags: plan -------------------------------------------------------------------------------

PLAN = ["plan", "--model", "llama-2-7b", "--gpu", "24GB"]
for name, argv, codes, says in (
    ("eb-prime", ["--effective-batch", "1000000007"], FITS_OR_NOT, ""),
    ("eb-large-ok", ["--effective-batch", "720720"], FITS_OR_NOT, ""),
    ("eb-zero", ["--effective-batch", "0"], BAD, "effective-batch"),
    ("eb-neg", ["--effective-batch", "-1"], BAD, "effective-batch"),
    ("eb-huge", ["--effective-batch", "1000000000000"], BAD, "at most"),
    ("eb-word", ["--effective-batch", "x"], BAD, "int"),
    ("seq-zero", ["--seq-len", "0"], BAD, "seq-len"),
    ("seq-huge", ["--seq-len", "1000000000"], BAD, "at most"),
    ("top-zero", ["--top", "0"], BAD, "top"), ("top-neg", ["--top", "-1"], BAD, "top"),
    ("top-huge", ["--top", "1000000000"], FITS_OR_NOT, ""),
    ("margin-nan", ["--margin", "nan"], BAD, "margin"),
    ("margin-1e400", ["--margin", "1e400"], BAD, "margin"),
    ("margin-neg", ["--margin", "-1GB"], BAD, "margin"),
    ("margin-zero", ["--margin", "0"], BAD, "margin"),
    ("margin-word", ["--margin", "lots"], BAD, "margin"),
    ("margin-empty", ["--margin", ""], BAD, "margin"),
    ("margin-all", ["--margin", "24GB"], (1,), ""),
    ("method-bogus", ["--method", "bogus"], BAD, "method"),
    ("method-empty", ["--method", ""], BAD, "method"),
    ("method-commas", ["--method", ",,"], BAD, "method"),
    ("json-ok", ["--json"], FITS_OR_NOT, ""),
    ("json-nothing-fits", ["--json", "--seq-len", "1000000"], FITS_OR_NOT, ""),
):
    case(f"plan-{name}", PLAN + argv, codes=codes, says=says)
for name, argv, says in (
    ("gpu-empty", ["--gpu", ""], "gpu"), ("gpu-blank", ["--gpu", " "], "gpu"),
    ("gpu-nan", ["--gpu", "nanGB"], "gpu"), ("gpu-1e400", ["--gpu", "1e400"], "gpu"),
    ("gpu-long", ["--gpu", "y" * 10000], "gpu"), ("no-gpu", [], "gpu"),
    ("model-empty", ["--model", "", "--gpu", "24GB"], "model"),
    ("model-long", ["--model", "z" * 10000, "--gpu", "24GB"], "model"),
    ("config-long", ["--config", "q" * 10000, "--gpu", "24GB"], ""),
    ("config-missing", ["--config", "/nonexistent/x.yaml", "--gpu", "24GB"], "does not exist"),
):
    case(f"plan-{name}", ["plan", "--model", "llama-2-7b", *argv] if "model" not in name
         and "config" not in name else ["plan", *argv], says=says)

# --- config.json (models MODEL and estimate --model PATH) --------------------------------------

LLAMA = {"model_type": "llama", "hidden_size": 256, "num_hidden_layers": 2,
         "num_attention_heads": 4, "num_key_value_heads": 4, "intermediate_size": 512,
         "vocab_size": 1000, "max_position_embeddings": 2048}


def cfg_case(id: str, config: dict | str | bytes, says: str = "",
             codes: tuple[int, ...] | int = BAD, cmd: str = "models") -> None:
    text = config if isinstance(config, str | bytes) else json.dumps(config)
    argv = ["models", "{d}/config.json"] if cmd == "models" else [
        "estimate", "--model", "{d}/config.json", "--seq-len", "64"]
    case(f"cfg-{cmd}-{id}", argv, {"config.json": text}, codes, says)


for cmd in ("models", "estimate"):
    for key in ("hidden_size", "num_hidden_layers", "vocab_size", "num_attention_heads",
                "intermediate_size"):
        for name, val in (("nan", "NaN"), ("inf", "Infinity"), ("1e400", "1e400"), ("neg", "-1"),
                          ("zero", "0"), ("str", '"4096"'), ("frac", "256.5"), ("list", "[256]"),
                          ("bool", "true")):
            if cmd == "estimate" and name not in ("nan", "inf", "1e400", "str", "frac"):
                continue
            body = json.dumps({k: v for k, v in LLAMA.items() if k != key})
            cfg_case(f"{key}-{name}", body[:-1] + f', "{key}": {val}}}', key, cmd=cmd)
    cfg_case("llama-hidden-66-heads-4", {**LLAMA, "hidden_size": 66}, "hidden_size", cmd=cmd)
    cfg_case("heads-4-kv-3", {**LLAMA, "num_key_value_heads": 3}, "num_key_value_heads", cmd=cmd)
    cfg_case("mixtral-top8-of-2", {**LLAMA, "model_type": "mixtral", "num_local_experts": 2,
                                   "num_experts_per_tok": 8}, "num_experts_per_tok", cmd=cmd)
    cfg_case("gpt2-no-n_head", {"model_type": "gpt2", "n_embd": 100, "n_layer": 2,
                                "vocab_size": 1000, "n_positions": 1024}, "n_head", cmd=cmd)
    cfg_case("ok", LLAMA, "", OK, cmd=cmd)
cfg_case("kv-zero", {**LLAMA, "num_key_value_heads": 0}, "num_key_value_heads")
cfg_case("kv-more-than-heads", {**LLAMA, "num_key_value_heads": 8}, "num_key_value_heads")
cfg_case("experts-zero-topk", {**LLAMA, "model_type": "mixtral", "num_local_experts": 4,
                               "num_experts_per_tok": 0}, "num_experts_per_tok")
cfg_case("head_dim-str", {**LLAMA, "head_dim": "x"}, "head_dim")
cfg_case("head_dim-nan", json.dumps(LLAMA)[:-1] + ', "head_dim": NaN}', "head_dim")
cfg_case("tie-str", {**LLAMA, "tie_word_embeddings": "false"}, "tie_word_embeddings")
cfg_case("tie-int", {**LLAMA, "tie_word_embeddings": 5}, "tie_word_embeddings")
cfg_case("gpt2-n_embd-not-divisible", {"model_type": "gpt2", "n_embd": 100, "n_head": 12,
                                       "n_layer": 2, "vocab_size": 1000}, "n_head")
cfg_case("qwen3-head_dim-ok", {**LLAMA, "model_type": "qwen3", "hidden_size": 200,
                               "head_dim": 64}, "", OK)
for key, val in (("attention_dropout", '"x"'), ("attention_dropout", "NaN"),
                 ("attention_dropout", "[0.1]"), ("attention_dropout", "1.5"),
                 ("sliding_window", '"x"'), ("sliding_window", "NaN"),
                 ("sliding_window", "1e400"), ("sliding_window", "[4096]")):
    body = json.dumps({**LLAMA, "model_type": "mistral"})[:-1] + f', "{key}": {val}}}'
    cfg_case(f"{key}-{val.strip(chr(34))}", body, key)
    cfg_case(f"{key}-{val.strip(chr(34))}", body, key, cmd="estimate")
cfg_case("sliding_window-null-ok", {**LLAMA, "model_type": "mistral", "sliding_window": None},
         "", OK)
cfg_case("top-list", "[1, 2]", "object")
cfg_case("top-str", '"llama"', "object")
cfg_case("invalid", "{model_type: llama}", "JSON")
cfg_case("empty-file", "", "JSON")
cfg_case("empty-object", "{}", "model_type")
cfg_case("model_type-int", {**LLAMA, "model_type": 5}, "model_type")
cfg_case("model_type-list", {**LLAMA, "model_type": ["llama"]}, "model_type")
cfg_case("model_type-bogus", {**LLAMA, "model_type": "bogus"}, "model_type")
cfg_case("latin1", '{"model_type": "llama", "x": "caf\xe9"}'.encode("latin-1"), "UTF-8")
cfg_case("utf16", json.dumps(LLAMA).encode("utf-16"), "UTF-8")
cfg_case("deep", '{"x": ' + "[" * 100000 + "]" * 100000 + "}", "")
cfg_case("huge", json.dumps({**LLAMA, "pad": "x" * (20 * 2**20)}), "large")
cfg_case("dtype-int", {**LLAMA, "torch_dtype": 5}, "dtype")
cfg_case("text_config-int", {**LLAMA, "model_type": "gemma3", "text_config": 5}, "text_config")
case("models-dir-without-config", ["models", "{d}"], {"x.txt": "hi"}, says="config.json")
case("models-long", ["models", "m" * 10000], says="model")
case("models-nul", ["models", "a\x00b"], says="model")
case("models-empty", ["models", ""], (0,), "")
case("models-family-empty", ["models", "--family", ""], (0,), "")
case("models-family-bogus", ["models", "--family", "bogus"], says="family")
case("models-num-labels-zero", ["models", "bert-base-uncased", "--num-labels", "0"],
     says="num_labels")
case("models-num-labels-huge", ["models", "bert-base-uncased", "--num-labels", "10000000000000"],
     says="at most")
case("models-task-mismatch", ["models", "bert-base-uncased", "--task", "causal-lm"], says="")
case("models-json-ok", ["models", "--json"], OK)
case("models-one-json-ok", ["models", "llama-2-7b", "--json"], OK)

# --- gpus --------------------------------------------------------------------------------------

for name, argv, says in (
    ("blank", ["  "], "gpu"), ("long", ["g" * 10000], "gpu"),
    ("nan", ["nan"], "gpu"), ("inf", ["inf"], "gpu"), ("1e400", ["1e400"], "gpu"),
    ("1e400GB", ["1e400GB"], "gpu"), ("neg", ["-1GB"], "-1GB"), ("zero", ["0"], "gpu"),
    ("sm-empty", ["6GB,sm"], "sm"), ("sm-word", ["6GB,smXX"], "sm"),
    ("sm-huge", ["6GB,sm99999"], ""),
    ("nul", ["a\x00"], "gpu"), ("auto-word", ["auto:x"], ""),
    ("min-nan", ["--min-memory", "nan"], "min-memory"),
    ("min-1e400", ["--min-memory", "1e400"], "min-memory"),
    ("min-neg", ["--min-memory", "-1GB"], "min-memory"),
    ("min-zero", ["--min-memory", "0"], "min-memory"),
    ("min-word", ["--min-memory", "lots"], "min-memory"),
    ("min-empty", ["--min-memory", ""], "min-memory"),
    ("arch-empty", ["--arch", ""], "architecture"), ("arch-bogus", ["--arch", "bogus"], "arch"),
):
    case(f"gpus-{name}", ["gpus", *argv], says=says)
case("gpus-json-ok", ["gpus", "--json"], OK)
case("gpus-one-json-ok", ["gpus", "24GB,sm89", "--json"], OK)
case("gpus-empty-lists", ["gpus", ""], (0,), "")

# --- rules -------------------------------------------------------------------------------------

for name, argv, says in (
    ("show-empty", ["show", ""], "rule"), ("show-long", ["show", "r" * 10000], "rule"),
    ("show-bogus", ["show", "H999"], "rule"), ("show-nul", ["show", "H1\x00"], "rule"),
    ("list-scope-bogus", ["list", "--scope", "bogus"], "scope"),
    ("test-scope-bogus", ["test", "--scope", "bogus"], "scope"),
    ("no-action", [], "list"), ("bogus-action", ["bogus"], ""),
):
    case(f"rules-{name}", ["rules", *argv], says=says)
case("rules-list-ok", ["rules", "list"], OK)

# --- validate (CSV) ----------------------------------------------------------------------------

GOOD_SETUP = "model: llama-2-7b\ntraining: {per_device_train_batch_size: 1}\nmax_seq_length: 64\n"
HEADER = "id,setup,metric,measured\n"


def csv_case(id: str, body: str | bytes, says: str = "", codes: tuple[int, ...] | int = BAD,
             setup: str | bytes = GOOD_SETUP, json_out: bool = False) -> None:
    argv = ["validate", "{d}/runs.csv"] + (["--json"] if json_out else [])
    case(f"validate-{id}", argv, {"runs.csv": body, "s.yaml": setup}, codes, says)


for name, measured, says in (("nan", "nan", "measured"), ("inf", "inf", "measured"),
                             ("1e400", "1e400", "measured"), ("1e400GiB", "1e400GiB", "measured"),
                             ("neg", "-1GiB", "measured"), ("zero", "0", "measured"),
                             ("word", "lots", "measured"), ("empty", "", "measured"),
                             ("huge", "1e9TiB", "1 PiB")):
    csv_case(f"measured-{name}", HEADER + f"r1,s.yaml,allocated,{measured}\n", says)
csv_case("metric-bogus", HEADER + "r1,s.yaml,bogus,10GiB\n", "metric")
csv_case("metric-empty", HEADER + "r1,s.yaml,,10GiB\n", "metric")
csv_case("short-row", HEADER + "r1,s.yaml\n", "line 2")
csv_case("missing-columns", "id,setup\nr1,s.yaml\n", "column")
csv_case("empty-file", "", "column")
csv_case("header-only", HEADER, "", (0,))
csv_case("latin1", (HEADER + "caf\xe9,s.yaml,allocated,10GiB\n").encode("latin-1"), "UTF-8")
csv_case("utf16", (HEADER + "r1,s.yaml,allocated,10GiB\n").encode("utf-16"), "UTF-8")
csv_case("nul-byte", HEADER + "r1,s.yaml,allocated,10\x00GiB\n", "")
csv_case("huge-field", HEADER + "r1,s.yaml,allocated," + "9" * 200000 + "\n", "")
csv_case("setup-missing", HEADER + "r1,nope.yaml,allocated,10GiB\n", "nope.yaml")
csv_case("setup-empty", HEADER + "r1,,allocated,10GiB\n", "setup")
csv_case("setup-long", HEADER + "r1," + "s" * 10000 + ",allocated,10GiB\n", "")
csv_case("setup-bad", HEADER + "r1,s.yaml,allocated,10GiB\n", "max_seq_length",
         setup="model: llama-2-7b\nmax_seq_length: .nan\n")
csv_case("setup-latin1", HEADER + "r1,s.yaml,allocated,10GiB\n", "UTF-8",
         setup="model: llama-2-7b\n# caf\xe9\n".encode("latin-1"))
csv_case("too-many-rows", HEADER + "r,s.yaml,allocated,10GiB\n" * 10_001, "10,000")
csv_case("ok", HEADER + "r1,s.yaml,allocated,10GiB\n", "", (0,))
csv_case("json-ok", HEADER + "r1,s.yaml,allocated,10GiB\n", "", (0,), json_out=True)
case("validate-missing", ["validate", "{d}/nope.csv"], says="does not exist")
case("validate-dir", ["validate", "{d}"], says="")
case("validate-long", ["validate", "v" * 10000], says="")
case("validate-nul", ["validate", "a\x00.csv"], says="")
