"""Hostile files for ``validate`` (CSV of measured runs) and ``estimate`` / ``plan`` / ``probe``
setup files: encodings (BOM, CRLF, UTF-16, Latin-1), empty files, odd CSV layouts, setup
references that point at folders or at the CSV itself, and probe flags that must be refused
before any model is built.

Each row runs the real command in-process (see tests/hostile/sweep.py for what is checked).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.hostile.sweep import BAD, DIR, OK, H, Link, row, run_row

ROWS: list[H] = []
add = ROWS.append
SETUP = "model: llama-2-7b\ntraining: {per_device_train_batch_size: 1}\nmax_seq_length: 64\n"
HEAD = "id,setup,metric,measured\n"
LINE = "r1,s.yaml,allocated,10GiB\n"


def csv(id: str, body: str | bytes, codes: tuple[int, ...] = BAD, says: str = "",
        extra: dict[str, object] | None = None, json_out: bool = False) -> None:
    files: dict[str, object] = {"runs.csv": body, "s.yaml": SETUP, **(extra or {})}
    add(row(f"validate-{id}", ["validate", "{d}/runs.csv", *(["--json"] if json_out else [])],
            files, codes, says))


csv("bom-ok", ("\ufeff" + HEAD + LINE).encode(), OK)
csv("crlf-ok", (HEAD + LINE).replace("\n", "\r\n"), OK)
csv("cr-only-ok", (HEAD + LINE).replace("\n", "\r"), OK)
csv("mixed-endings-ok", HEAD + LINE.replace("\n", "\r\n") + "r2,s.yaml,reserved,11GiB\n", OK)
csv("bom-crlf-json-ok", ("\ufeff" + HEAD + LINE).replace("\n", "\r\n").encode(), OK,
    json_out=True)
csv("no-final-newline-ok", HEAD + LINE.rstrip("\n"), OK)
csv("blank-lines-ok", HEAD + "\n\n" + LINE + "\n", OK)
csv("extra-column-ok", "id,setup,metric,measured,gpu\nr1,s.yaml,allocated,10GiB,T4\n", OK)
csv("quoted-ok", 'id,setup,metric,measured\n"r,1","s.yaml","allocated","10GiB"\n', OK)
csv("spaced-measured-ok", HEAD + "r1,s.yaml,allocated,10 GiB\n", OK)
csv("utf16-bom", ("\ufeff" + HEAD + LINE).encode("utf-16"), says="UTF-8")
csv("utf16-le", (HEAD + LINE).encode("utf-16-le"), says="UTF-8")
csv("latin1-id", (HEAD + "caf\xe9,s.yaml,allocated,10GiB\n").encode("latin-1"), says="UTF-8")
csv("cp1252-quotes", (HEAD + "\u201cr1\u201d,s.yaml,allocated,10GiB\n").encode("cp1252"),
    says="UTF-8")
csv("empty", "", says="column")
csv("only-bom", "\ufeff".encode(), says="column")
csv("only-newlines", "\n\n\n", says="column")
csv("semicolons", "id;setup;metric;measured\nr1;s.yaml;allocated;10GiB\n", says="column")
csv("tabs", "id\tsetup\tmetric\tmeasured\nr1\ts.yaml\tallocated\t10GiB\n", says="column")
csv("header-spaces", "id, setup, metric, measured\nr1,s.yaml,allocated,10GiB\n", says="column")
csv("header-upper", "ID,SETUP,METRIC,MEASURED\nr1,s.yaml,allocated,10GiB\n", says="column")
csv("unclosed-quote", HEAD + 'r1,"s.yaml,allocated,10GiB\n', says="")
csv("measured-comma-decimal", HEAD + 'r1,s.yaml,allocated,"10,5GiB"\n', says="measured")
csv("measured-units-only", HEAD + "r1,s.yaml,allocated,GiB\n", says="measured")
csv("measured-hex", HEAD + "r1,s.yaml,allocated,0x10GiB\n", says="measured")
csv("measured-percent", HEAD + "r1,s.yaml,allocated,95%\n", says="measured")
csv("metric-case", HEAD + "r1,s.yaml,Allocated,10GiB\n", says="metric")
csv("metric-spaces", HEAD + "r1,s.yaml, allocated ,10GiB\n", says="metric")
csv("setup-is-dir", HEAD + "r1,sub,allocated,10GiB\n", says="sub", extra={"sub": DIR})
csv("setup-is-csv", HEAD + "r1,runs.csv,allocated,10GiB\n", says="runs.csv")
csv("setup-dangling-link", HEAD + "r1,l.yaml,allocated,10GiB\n", says="l.yaml",
    extra={"l.yaml": Link("{d}/gone.yaml")})
csv("setup-nul", HEAD + "r1,s\x00.yaml,allocated,10GiB\n", says="")
csv("setup-crlf-bom-ok", HEAD + LINE, OK,
    extra={"s.yaml": ("\ufeff" + SETUP).replace("\n", "\r\n").encode()})
csv("setup-json-bom-ok", HEAD + "r1,s.json,allocated,10GiB\n", OK,
    extra={"s.json": ("\ufeff" + json.dumps({"model": "llama-2-7b", "max_seq_length": 64}))
           .encode()})
csv("setup-empty-file", HEAD + "r1,e.yaml,allocated,10GiB\n", says="mapping",
    extra={"e.yaml": ""})
csv("setup-utf16", HEAD + LINE, says="UTF-8", extra={"s.yaml": SETUP.encode("utf-16")})
csv("setup-txt", HEAD + "r1,s.txt,allocated,10GiB\n", says="s.txt", extra={"s.txt": SETUP})
csv("many-problems", HEAD + "r1,,bogus,nan\nr2,s.yaml,allocated,-1\n", says="problem")
csv("duplicate-ids-ok", HEAD + LINE + LINE, OK)

# --- estimate / plan --config encodings and empty files -----------------------------------
for name, fname, content, codes, says in (
    ("yaml-crlf-ok", "s.yaml", SETUP.replace("\n", "\r\n"), OK, ""),
    ("yaml-cr-only", "s.yaml", SETUP.replace("\n", "\r"), OK + BAD, ""),
    ("yaml-bom-crlf-ok", "s.yaml", ("\ufeff" + SETUP).replace("\n", "\r\n").encode(), OK, ""),
    ("yaml-utf16-bom", "s.yaml", ("\ufeff" + SETUP).encode("utf-16"), BAD, "UTF-8"),
    ("yaml-cp1252", "s.yaml", (SETUP + "# \u201cquoted\u201d\n").encode("cp1252"), BAD,
     "UTF-8"),
    ("yaml-empty", "s.yaml", "", BAD, "mapping"),
    ("yaml-whitespace", "s.yaml", "   \n\t\n", BAD, ""),
    ("json-bom-ok", "s.json", ("\ufeff" + json.dumps({"model": "llama-2-7b"})).encode(), OK, ""),
    ("json-crlf-ok", "s.json", json.dumps({"model": "llama-2-7b"}, indent=1)
     .replace("\n", "\r\n"), OK, ""),
    ("json-empty", "s.json", "", BAD, "JSON"),
    ("json-null", "s.json", "null", BAD, "mapping"),
    ("json-utf16", "s.json", json.dumps({"model": "llama-2-7b"}).encode("utf-16"), BAD,
     "UTF-8"),
    ("json-trailing-comma", "s.json", '{"model": "llama-2-7b",}', BAD, "JSON"),
    ("json-comments", "s.json", '{"model": "llama-2-7b"} // mine', BAD, "JSON"),
    ("json-duplicate-keys", "s.json", '{"model": "x", "model": "llama-2-7b"}', OK + BAD, ""),
    ("json-bigint", "s.json", '{"model": "llama-2-7b", "max_seq_length": 1' + "0" * 5000 + "}",
     BAD, ""),
    ("yaml-bigint", "s.yaml", "model: llama-2-7b\nmax_seq_length: 1" + "0" * 5000 + "\n", BAD,
     "digits"),
    ("yaml-bigint-key", "s.yaml", "model: llama-2-7b\n1" + "0" * 5000 + ": 1\n", BAD,
     "YAML"),
    ("toml", "s.toml", 'model = "llama-2-7b"\n', BAD, "s.toml"),
    ("no-suffix", "setup", SETUP, OK + BAD, ""),
):
    add(row(f"estimate-config-{name}", ["estimate", "--config", "{d}/" + fname, "--json"],
            {fname: content}, codes, says))
    add(row(f"plan-config-{name}", ["plan", "--config", "{d}/" + fname, "--gpu", "24GB",
                                    "--json"], {fname: content}, OK + (1,) if codes == OK
            else codes + (1,) if 0 in codes else codes, says))

# --- probe: flags refused before any model is built ---------------------------------------
PROBE = ["probe", "--model", "llama-2-7b", "--device", "fake"]
for name, argv, says in (
    ("steps-zero", ["--steps", "0"], "steps"), ("steps-neg", ["--steps", "-1"], "steps"),
    ("steps-word", ["--steps", "x"], "int"), ("steps-nan", ["--steps", "nan"], "int"),
    ("lr-nan", ["--lr", "nan"], "lr"), ("lr-inf", ["--lr", "inf"], "lr"),
    ("lr-neg", ["--lr", "-1"], "lr"), ("lr-word", ["--lr", "fast"], "float"),
    ("clip-nan", ["--max-grad-norm", "nan"], "max-grad-norm"),
    ("clip-neg", ["--max-grad-norm", "-1"], "max-grad-norm"),
    ("seed-neg", ["--seed", "-1"], "seed"), ("seed-huge", ["--seed", str(2**70)], "seed"),
    ("device-bogus", ["--device", "tpu"], "device"),
    ("weights-empty", ["--weights", ""], "weights"),
    ("weights-missing", ["--weights", "/nonexistent/ckpt"], "weights"),
    ("weights-file", ["--weights", "{d}/w.txt"], "weights"),
    ("config-utf16", ["--config", "{d}/s.yaml"], "UTF-8"),
    ("gpu-empty", ["--gpu", ""], "gpu"),
    ("gpu-0x", ["--gpu", "0xT4"], "gpu"),
    ("host-ram-empty", ["--host-ram", ""], ""),
):
    files: dict[str, object] = {"w.txt": "not weights\n", "s.yaml": SETUP.encode("utf-16")}
    add(row(f"probe-{name}", [*PROBE, *argv], files, BAD, says))


def test_at_least_eighty_rows() -> None:
    assert len(ROWS) >= 80
    assert len({h.id for h in ROWS}) == len(ROWS)


@pytest.mark.parametrize("h", ROWS, ids=[h.id for h in ROWS])
def test_inputs_hostile(h: H, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_row(h, tmp_path, capsys) == []
