"""What the framework-config, command-line and run-output readers share.

Finding codes of these readers (one table, also in README ``section:readers``):

====  ========  ==========================================================================
code  severity  meaning
====  ========  ==========================================================================
R200  error     the file cannot be read as this format (bad YAML/JSON, not a mapping)
R201  warning   a feature the setup schema cannot express; the finding says how the
                estimate treats it (sample packing, Liger, Unsloth, freeze tuning ...)
R202  info      a framework default the reader relied on, citing the file where it lives
R203  info      a key the reader does not know; ignored
R204  warning   a value vramdoc cannot use; dropped, the estimate uses the default named
R205  warning   a key transformers 5 (or TRL, or the framework) removed or renamed, with its
                replacement (the reader applies it)
R206  info      a file the source refers to (DeepSpeed JSON, accelerate config, script):
                read, or not found next to the source
R207  info      distribution facts read (DeepSpeed ZeRO stage, FSDP, number of processes)
R208  info      a file vramdoc never loads (pickled ``training_args.bin``)
R209  error     no model named: the file gives no setup to estimate (info for a launch line,
                whose script names the model, and for run files that reveal only facts)
====  ========  ==========================================================================
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from vramdoc.errors import ConfigError
from vramdoc.readers.findings import Finding, Severity, SourceReport
from vramdoc.safeload import show
from vramdoc.setup import REMOVED_TRAINING_KEYS, hf_names, setup_from_mapping

CODES: dict[str, str] = {
    "R200": "the file cannot be read as this format",
    "R201": "a feature the setup schema cannot express; how the estimate treats it",
    "R202": "a framework default the reader relied on (with its source file)",
    "R203": "a key the reader does not know; ignored",
    "R204": "a value vramdoc cannot use; dropped, the estimate uses the default",
    "R205": "a key removed or renamed (transformers 5, TRL); the reader applies the new name",
    "R206": "a file the source refers to: read, or not found",
    "R207": "distribution facts read (DeepSpeed ZeRO, FSDP, number of processes)",
    "R208": "a file vramdoc never loads (pickled training_args.bin)",
    "R209": "no model named: no setup to estimate",
}


class Collector:
    """Builds one SourceReport: the setup mapping, the lines that set it, the findings."""

    def __init__(self, path: Path, kind: str) -> None:
        self.path = str(path)
        self.kind = kind
        self.setup: dict[str, Any] = {}
        self.lines: dict[str, int] = {}
        self.findings: list[Finding] = []
        self.source_keys: dict[int, str] = {}  # line -> the file's own top-level key

    def add(self, code: str, severity: Severity, message: str, fix: str = "",
            line: int | None = None) -> None:
        self.findings.append(Finding(self.path, line, code, severity, message, fix))

    def set(self, key: str, value: Any, line: int | None = None) -> None:
        """Set ``key`` (a dotted setup path such as ``training.optim``) to ``value``; None (a
        value the reader could not convert) leaves the default, with an R204 finding."""
        if value is None:
            self.add("R204", "warning", f"{key}: the value given is not usable; vramdoc's "
                     "default is used", "fix the value in the source", line)
            return
        parts = key.split(".")
        node = self.setup
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
        if line is not None:
            self.lines[key] = line

    def get(self, key: str, default: Any = None) -> Any:
        node: Any = self.setup
        for p in key.split("."):
            if not isinstance(node, dict) or p not in node:
                return default
            node = node[p]
        return node

    def drop(self, key: str) -> None:
        parts = key.split(".")
        node: Any = self.setup
        for p in parts[:-1]:
            if not isinstance(node, dict) or p not in node:
                return
            node = node[p]
        if isinstance(node, dict):
            node.pop(parts[-1], None)
            if not node and len(parts) > 1:
                self.drop(".".join(parts[:-1]))
        self.lines.pop(key, None)

    def training(self, name: str, value: Any, line: int | None, source_key: str = "") -> None:
        """Route a TrainingArguments-named key: removed names are renamed with a finding,
        unknown ones become an R203 finding."""
        shown = source_key or name
        if name == "warmup_ratio":
            self.add("R205", "warning", f"{shown}: warmup_ratio was removed in transformers 5; "
                     "read as warmup_steps (a float in [0, 1) is a ratio of the total steps)",
                     f"write warmup_steps: {value}", line)
            self.set("training.warmup_steps", value, line)
        elif name in REMOVED_TRAINING_KEYS:
            repl = REMOVED_TRAINING_KEYS[name]
            if repl.startswith("nothing "):
                fix = f"delete it: {repl[len('nothing '):].strip('()')}"
            else:
                fix = f"use {repl}"
            self.add("R205", "warning", f"{shown}: removed in transformers 5; ignored", fix, line)
        elif name in hf_names()["TrainingArguments"]:
            if value is not None:
                self.set(f"training.{name}", value, line)
        else:
            self.add("R203", "info", f"{shown}: not a key this reader knows; ignored", "", line)

    def report(self) -> SourceReport:
        """Validate the setup; a value setup_from_mapping refuses is dropped with an R204
        finding (never a traceback), so what comes back always validates."""
        setup: dict[str, Any] | None = self.setup if self.setup.get("model") else None
        if setup is not None:
            for _ in range(20):
                try:
                    setup_from_mapping(setup, source=self.path)
                    break
                except (TypeError, ValueError) as exc:  # a value setup.py cannot convert
                    self.add("R204", "warning", f"the setup read cannot be validated ({exc}); "
                             "not estimated", "fix the values in the source")
                    setup = None
                    break
                except ConfigError as exc:
                    if not self._drop_problems(exc.problems):
                        for p in exc.problems:
                            self.add("R204", "warning", p, "fix the value in the source")
                        setup = None
                        break
        elif not any(f.code in ("R200", "R209") for f in self.findings) and self.setup:
            self.add("R209", "error", "no model named, so there is no setup to estimate",
                     "name the base model in the file")
        findings = tuple(sorted(self.findings, key=lambda f: (f.line or 0)))
        return SourceReport(self.path, self.kind, setup, findings,
                            dict(self.lines) if setup is not None else {})

    def _drop_problems(self, problems: list[str]) -> bool:
        dropped = False
        for p in problems:
            m = re.match(r"^([a-z_0-9]+(?:\.[a-z_0-9]+)*):", p)
            if m is None:
                continue
            parts = m.group(1).split(".")
            while parts and self.get(".".join(parts)) is None:
                parts.pop()
            if not parts or parts == ["model"]:
                continue
            key = ".".join(parts)
            line = self.lines.get(key)
            mine = self.source_keys.get(line) if line is not None else None
            named = f"{mine} ({p})" if mine and not p.startswith(f"{mine}:") else p
            self.add("R204", "warning", f"{named}; dropped, the estimate uses vramdoc's default",
                     "fix the value in the source", line)
            self.drop(key)
            dropped = True
        return dropped


def load_yaml(text: str) -> tuple[Any, dict[str, int], str]:
    """Parse YAML as setup files are parsed (vramdoc.safeload: YAML 1.2 floats such as 2e-4,
    limits on aliases and nesting); return (data, {dotted key: 1-based line}, error or "")."""
    import yaml

    from vramdoc.safeload import MAX_DEPTH, YamlTooLarge, bracket_depth, yaml_loader

    if bracket_depth(text) > 4 * MAX_DEPTH:
        return None, {}, f"the YAML nests deeper than {MAX_DEPTH} levels"
    # one parse gives both the values and the key positions
    loader = yaml_loader()(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except YamlTooLarge as exc:
        return None, {}, f"the YAML {exc}"
    except RecursionError:
        return None, {}, "the YAML nests too deeply"
    except ValueError as exc:  # an int of more than 4,300 digits (CPython's limit)
        return None, {}, f"the YAML holds a value Python refuses to read: {str(exc)[:80]}"
    except yaml.YAMLError as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        return None, {}, f"not valid YAML{where}: {first}"
    finally:
        loader.dispose()
    lines: dict[str, int] = {}
    _walk(node, "", lines)
    return data, lines, ""


def open_mapping(path: Path, text: str, kind: str, what: str
                 ) -> tuple[Collector, dict[str, Any] | None, dict[str, int]]:
    """Start reading a framework's YAML: the collector, the top-level mapping with its text
    keys (None, with an R200 finding, when the file holds none) and the key lines."""
    col = Collector(path, kind)
    data, lines, error = load_yaml(text)
    if error or not isinstance(data, dict):
        col.add("R200", "error", error or f"{what} holds a mapping at the top", "fix the YAML",
                None)
        return col, None, lines
    col.source_keys = {n: k for k, n in lines.items() if "." not in k}
    cfg = {k: v for k, v in data.items() if isinstance(k, str)}
    for key in [k for k in cfg if k in _TYPED_KEYS]:
        expected, example = _TYPED_KEYS[key]
        if cfg[key] is not None and not _TYPE_CHECKS[expected](cfg[key]):
            col.add("R204", "warning", f"{key}: {show(cfg.pop(key))} is not {expected}; "
                    "ignored, the reader's default is used", f"write e.g. {key}: {example}",
                    lines.get(key))
    return col, cfg, lines


# Framework keys of one type (axolotl, LLaMA-Factory, TRL, accelerate share these names),
# checked before a reader converts them: a value of another type is dropped with an R204
# finding naming the key and the value, never silently replaced by a default (issue 9).
# Strings are read as the frameworks' own validators read them (pydantic / HfArgumentParser
# take "8" for 8 and "false" for False), so only values no framework accepts are refused.
_TYPED_KEYS: dict[str, tuple[str, str]] = {
    **{k: ("a whole number above zero", "8") for k in (
        "micro_batch_size", "per_device_train_batch_size", "gradient_accumulation_steps",
        "sequence_len", "cutoff_len", "max_length", "max_seq_length", "lora_r", "lora_rank",
        "lora_alpha", "quantization_bit", "num_processes", "num_machines", "eval_batch_size")},
    **{k: ("true or false", "true") for k in (
        "load_in_4bit", "load_in_8bit", "use_peft", "pure_bf16",
        "lora_target_linear", "flash_attention", "peft_use_dora", "peft_use_rslora",
        "use_dora", "use_rslora", "disable_gradient_checkpointing", "gptq", "sample_packing",
        "use_bnb_nested_quant", "double_quantization", "use_unsloth", "packing")},
    **{k: ("true, false or auto", "true") for k in ("bf16", "fp16", "tf32", "bfloat16",
                                                    "float16")},
    # axolotl's schema: Literal["offload", "offload_disk"] | bool | None
    "gradient_checkpointing": ("true, false, offload or offload_disk", "true"),
    **{k: ("a finite number", "2e-4") for k in (
        "learning_rate", "lora_dropout", "weight_decay", "max_grad_norm", "warmup_ratio",
        "num_epochs", "num_train_epochs")},
    **{k: ("a module name or a list of names", "[q_proj, v_proj]") for k in (
        "lora_target_modules", "lora_target", "lora_modules_to_save")},
    **{k: ("a mapping", "{}") for k in ("model_init_kwargs", "bnb_config_kwargs")},
    **{k: ("a file path or a mapping", "ds_config.json") for k in ("deepspeed",)},
}
_TYPE_CHECKS: dict[str, Any] = {
    "a whole number above zero": lambda v: (as_int(v) or 0) > 0,
    "true or false": lambda v: as_bool(v) is not None and not isinstance(v, list | dict),
    "true, false or auto": lambda v: v == "auto" or (as_bool(v) is not None
                                                     and not isinstance(v, list | dict)),
    "true, false, offload or offload_disk": lambda v: v in ("offload", "offload_disk") or (
        as_bool(v) is not None and not isinstance(v, list | dict)),
    "a finite number": lambda v: as_float(v) is not None,
    "a module name or a list of names": lambda v: isinstance(v, str) and v.strip() != "" or (
        isinstance(v, list) and all(isinstance(x, str) for x in v)),
    "a mapping": lambda v: isinstance(v, dict),
    "a file path or a mapping": lambda v: isinstance(v, dict) or (isinstance(v, str)
                                                                  and v.strip() != ""),
}


def load_json_object(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``, or None when it is unreadable or not an object."""
    import json

    text, _error = read_reference(path)
    try:
        data = json.loads(text) if text is not None else None
    except (ValueError, RecursionError):  # bad JSON, 5,000-digit numbers, 100,000 brackets
        return None
    return data if isinstance(data, dict) else None


def _walk(node: Any, prefix: str, lines: dict[str, int]) -> None:
    import yaml

    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if isinstance(k, yaml.ScalarNode):
                key = f"{prefix}{k.value}"
                lines.setdefault(key, k.start_mark.line + 1)
                _walk(v, key + ".", lines)


def json_lines(text: str) -> dict[str, int]:
    """Lines of the keys of a JSON object, dotted by nesting (a light scan, not a parser)."""
    lines: dict[str, int] = {}
    stack: list[str] = []
    last = ""
    for n, raw in enumerate(text.splitlines(), 1):
        for m in re.finditer(r'"([^"\\]+)"\s*:|[{}]', raw):
            tok = m.group(0)
            if tok == "{":
                stack.append(last)
            elif tok == "}":
                if stack:
                    stack.pop()
            else:
                last = m.group(1)
                prefix = ".".join(s for s in stack if s)
                lines.setdefault(f"{prefix}.{last}" if prefix else last, n)
    return lines


def as_float(value: Any) -> float | None:
    """A number written as a number or a string ("2e-5", which YAML 1.1 reads as text)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        value = float(value)
        return value if value == value and abs(value) != float("inf") else None
    try:
        f = float(str(value))
    except ValueError:
        return None
    return f if f == f and f not in (float("inf"), float("-inf")) else None


def as_bool(value: Any) -> bool | None:
    """true/false as YAML or a command line writes them; None when it is neither."""
    if isinstance(value, bool):
        return value
    s = str(value).strip().lower()
    if s in ("true", "1", "yes", "on"):
        return True
    if s in ("false", "0", "no", "off", "none", "null", ""):
        return False
    return None


def as_list(value: Any) -> list[str]:
    """A list of names written as a list, or as one string (comma-separated when ``sep``)."""
    if value is None or isinstance(value, bool | dict):
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list | tuple):
        return [str(v) for v in value if v is not None and not isinstance(v, dict | list)]
    return [str(value)]


def as_targets(value: Any) -> str | list[str] | None:
    """LoRA target modules: "all-linear", a list of names, or None when none usable."""
    if value == "all-linear":
        return "all-linear"
    names = as_list(value)
    return names or None


def as_int(value: Any) -> int | None:
    f = as_float(value)
    import math

    return int(f) if f is not None and math.isfinite(f) and f == int(f) else None


def resolve_reference(source: Path, ref: str) -> Path | None:
    """A file a config names, looked up next to the config, then its parents (frameworks
    resolve paths against the directory the run starts in, usually the repository root)."""
    ref_path = Path(ref)
    try:
        if ref_path.is_absolute():
            return ref_path if ref_path.is_file() else None
        base = source.resolve().parent
        for d in (base, *base.parents[:3]):
            cand = d / ref_path
            if cand.is_file():
                return cand
    except (OSError, ValueError):  # a name too long for the OS, a NUL byte: not found
        return None
    return None


def read_reference(path: Path) -> tuple[str | None, str]:
    """The text of a file a config refers to, or (None, why not): read as setup files are
    (UTF-8, at most 16 MiB, no NUL bytes), so a referenced file never crashes a reader."""
    from vramdoc.errors import UsageError
    from vramdoc.safeload import MAX_DATA_BYTES, read_text

    try:
        return read_text(path, what="file", max_bytes=MAX_DATA_BYTES, hint=""), ""
    except UsageError as exc:
        return None, exc.message
