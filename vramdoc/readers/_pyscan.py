"""Read a Python training script's syntax tree: the calls that describe a run, and what their
arguments are worth when that can be known without running anything.

The scan is shared by the setup reader (:mod:`vramdoc.readers.python_script`) and the API
checks of ``vramdoc doctor`` (:mod:`vramdoc.doctor.api`), which need exact keyword and import
positions for ``--fix``. Names are resolved in one namespace for the whole file (tutorials put
everything in ``main()``): a name bound to a literal, to one of the known calls, or to another
resolved name; ``args.x`` from a literal ``argparse`` default or a dataclass field default.
"""

from __future__ import annotations

import ast
import functools
from dataclasses import dataclass, field
from typing import Any

from vramdoc.readers._pysource import Parsed, parse_tolerant

TRAINING_CLASSES = ("TrainingArguments", "Seq2SeqTrainingArguments", "SFTConfig", "DPOConfig",
                    "ORPOConfig", "KTOConfig", "CPOConfig", "GRPOConfig", "RewardConfig",
                    "PPOConfig")
TRAINER_CLASSES = ("Trainer", "Seq2SeqTrainer", "SFTTrainer", "DPOTrainer", "ORPOTrainer",
                   "KTOTrainer", "CPOTrainer", "GRPOTrainer", "RewardTrainer", "PPOTrainer")
QUANT_CLASSES = {"BitsAndBytesConfig": "bitsandbytes", "GPTQConfig": "gptq", "AwqConfig": "awq"}
# from_pretrained on these loads something that is not the model being trained
_NOT_MODELS = ("Tokenizer", "Processor", "Config", "FeatureExtractor", "ImageProcessor")
_TORCH_DTYPES = {"bfloat16": "bfloat16", "bf16": "bfloat16", "float16": "float16",
                 "half": "float16", "float32": "float32", "float": "float32"}


@dataclass(frozen=True)
class Unknown:
    """A value that cannot be known without running the script; ``text`` is its source."""

    text: str


@dataclass
class Kwarg:
    """One ``name=value`` keyword of a call; positions are 1-based, columns in characters."""

    name: str
    value: Any
    line: int
    column: int
    end_line: int
    end_column: int
    name_end_column: int  # the keyword name ends here (exclusive)
    editable: bool = True  # False for keys that came from a ``**dict`` literal


@dataclass
class CallSite:
    """A call the doctor knows: ``kind`` is model, quant, lora, kbit, peft, training, trainer,
    gc (gradient_checkpointing_enable), accelerator, peft_load (PeftModel.from_pretrained) or
    aux_load (a tokenizer or config from_pretrained: API checks only)."""

    kind: str
    cls: str  # class (or function) name: TrainingArguments, AutoModelForCausalLM, LoraConfig
    line: int
    column: int
    end_line: int
    end_column: int
    args: list[Any] = field(default_factory=list)
    kwargs: list[Kwarg] = field(default_factory=list)
    target: str | None = None  # the name the call was assigned to

    def get(self, name: str, default: Any = None) -> Any:
        for kw in reversed(self.kwargs):
            if kw.name == name:
                return kw.value
        return default

    def kwarg(self, name: str) -> Kwarg | None:
        for kw in reversed(self.kwargs):
            if kw.name == name:
                return kw
        return None


@dataclass
class ImportSite:
    """``from module import name [as alias]`` (or ``import module``)."""

    module: str
    name: str
    line: int
    column: int
    end_line: int
    end_column: int  # the whole statement
    names: tuple[str, ...]  # every name the statement imports, in order
    alias_columns: tuple[tuple[int, int], ...]  # (start, end) columns of each alias, same line
    single_line: bool


@dataclass
class Scan:
    """Everything the readers and checks need from one Python source."""

    parsed: Parsed
    calls: list[CallSite] = field(default_factory=list)
    imports: list[ImportSite] = field(default_factory=list)
    names: dict[str, Any] = field(default_factory=dict)
    attr_defaults: dict[str, tuple[Any, int]] = field(default_factory=dict)
    seq_hints: list[tuple[int, int, str]] = field(default_factory=list)  # (value, line, how)
    unknowns: list[tuple[str, Unknown, int]] = field(default_factory=list)

    def of_kind(self, kind: str) -> list[CallSite]:
        return [c for c in self.calls if c.kind == kind]


def _dotted(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return f"{base}.{node.attr}" if base else node.attr
    if isinstance(node, ast.Call):
        return _dotted(node.func)
    return ""


def classify(func: ast.expr) -> tuple[str, str] | None:
    """(kind, class name) of a call the doctor reads, or None."""
    dotted = _dotted(func)
    parts = dotted.split(".")
    last = parts[-1]
    if last == "from_pretrained" and len(parts) >= 2:
        cls = parts[-2]
        if any(s in cls for s in _NOT_MODELS):
            return "aux_load", cls  # a tokenizer or config: API checks only, no setup
        if cls in ("PeftModel", "AutoPeftModelForCausalLM", "PeftModelForCausalLM"):
            return "peft_load", cls
        if "Model" in cls or cls.startswith("Auto") or cls.endswith("LM"):
            return "model", cls
        return None
    if last in QUANT_CLASSES:
        return "quant", last
    if last == "LoraConfig":
        return "lora", last
    if last == "prepare_model_for_kbit_training":
        return "kbit", last
    if last == "get_peft_model":
        return "peft", last
    if last in TRAINING_CLASSES:
        return "training", last
    if last in TRAINER_CLASSES:
        return "trainer", last
    if last == "gradient_checkpointing_enable":
        return "gc", last
    if last == "Accelerator":
        return "accelerator", last
    return None


class _Columns:
    """ast columns are UTF-8 byte offsets; edits count characters."""

    def __init__(self, source: str) -> None:
        self.lines = source.splitlines()

    def char(self, line: int, byte_col: int) -> int:
        text = self.lines[line - 1] if 0 < line <= len(self.lines) else ""
        if text.isascii():
            return byte_col + 1
        return len(text.encode("utf-8")[:byte_col].decode("utf-8", "replace")) + 1


def _number(node: ast.expr) -> Any:
    return ast.literal_eval(node)


class _Scanner:
    def __init__(self, parsed: Parsed) -> None:
        self.parsed = parsed
        self.src = parsed.source
        self.cols = _Columns(self.src)
        self.scan = Scan(parsed)
        self.sites: dict[int, CallSite] = {}

    # -- values ----------------------------------------------------------------------------
    def text(self, node: ast.AST) -> str:
        """The source of ``node`` on one line (ast.get_source_segment re-splits the whole
        file on every call; this reuses the split lines)."""
        lines = self.cols.lines
        try:
            first, last = node.lineno, node.end_lineno  # type: ignore[attr-defined]
            start, end = node.col_offset, node.end_col_offset  # type: ignore[attr-defined]
        except AttributeError:
            return "?"
        if last is None or end is None or not 0 < first <= last <= len(lines):
            return "?"
        chunk = [ln.encode("utf-8") for ln in lines[first - 1:last]]
        if len(chunk) == 1:
            chunk[0] = chunk[0][start:end]
        else:
            chunk[0], chunk[-1] = chunk[0][start:], chunk[-1][:end]
        seg = b"\n".join(chunk).decode("utf-8", "replace")
        return " ".join(seg.split())

    def value(self, node: ast.expr | None) -> Any:
        if node is None:
            return None
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name):
            if node.id in self.scan.names:
                return self.scan.names[node.id]
            return Unknown(node.id)
        if isinstance(node, ast.Attribute):
            base = node.value
            if isinstance(base, ast.Name) and base.id == "torch" and node.attr in _TORCH_DTYPES:
                return _TORCH_DTYPES[node.attr]
            if isinstance(base, ast.Name):
                bound = self.scan.names.get(base.id)
                if isinstance(bound, CallSite):
                    return bound.get(node.attr, Unknown(self.text(node)))
                if node.attr in self.scan.attr_defaults:
                    return self.scan.attr_defaults[node.attr][0]
            return Unknown(self.text(node))
        if isinstance(node, ast.List | ast.Tuple | ast.Set):
            items = [self.value(e) for e in node.elts]
            if any(isinstance(i, Unknown | CallSite) for i in items):
                return Unknown(self.text(node))
            return items
        if isinstance(node, ast.Dict):
            out: dict[Any, Any] = {}
            for k, v in zip(node.keys, node.values, strict=True):
                if k is None:
                    return Unknown(self.text(node))
                key = self.value(k)
                if isinstance(key, Unknown | CallSite | list | dict | set):
                    return Unknown(self.text(node))  # not known, or not a usable key
                out[key] = self.value(v)
            return out
        if isinstance(node, ast.UnaryOp | ast.BinOp):
            try:
                return _number(node)
            except (ValueError, TypeError, SyntaxError, MemoryError):
                pass
            if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult | ast.Add | ast.Sub
                                                          | ast.FloorDiv | ast.Div | ast.Pow):
                a, b = self.value(node.left), self.value(node.right)
                if isinstance(a, int | float) and isinstance(b, int | float) and \
                        not isinstance(a, bool) and not isinstance(b, bool):
                    try:
                        return _binop(node.op, a, b)
                    except (ArithmeticError, OverflowError):
                        pass
            return Unknown(self.text(node))
        if isinstance(node, ast.Call):
            site = self.sites.get(id(node))
            if site is not None:
                return site
            fname = _dotted(node.func)
            if fname in ("int", "float", "str", "bool") and len(node.args) == 1:
                v = self.value(node.args[0])
                if not isinstance(v, Unknown | CallSite):
                    try:
                        return {"int": int, "float": float, "str": str, "bool": bool}[fname](v)
                    except (TypeError, ValueError):
                        pass
            if fname in ("dict",) and not node.args:
                return {kw.arg: self.value(kw.value) for kw in node.keywords if kw.arg}
            if fname.endswith(("environ.get", "getenv")) and len(node.args) >= 2:
                return self.value(node.args[1])
            return Unknown(self.text(node))
        return Unknown(self.text(node))

    # -- sites -----------------------------------------------------------------------------
    def site(self, node: ast.Call, kind: str, cls: str) -> CallSite:
        c = self.cols
        s = CallSite(kind=kind, cls=cls, line=node.lineno, column=c.char(node.lineno,
                     node.col_offset), end_line=node.end_lineno or node.lineno,
                     end_column=c.char(node.end_lineno or node.lineno, node.end_col_offset or 0))
        self.sites[id(node)] = s
        self.scan.calls.append(s)
        return s

    def fill(self, node: ast.Call, s: CallSite) -> None:
        """Arguments are resolved when the call is reached in statement order."""
        c = self.cols
        s.args = [self.value(a) for a in node.args]
        s.kwargs = []
        for kw in node.keywords:
            if kw.arg is None:
                d = kw.value
                if isinstance(d, ast.Name) and isinstance(self.scan.names.get(d.id), dict):
                    for k, v in self.scan.names[d.id].items():
                        s.kwargs.append(Kwarg(str(k), v, kw.lineno, c.char(kw.lineno,
                                        kw.col_offset), kw.lineno, c.char(kw.lineno,
                                        kw.col_offset), c.char(kw.lineno, kw.col_offset),
                                        editable=False))
                elif isinstance(d, ast.Dict):
                    for k, v in zip(d.keys, d.values, strict=True):
                        if isinstance(k, ast.Constant) and isinstance(k.value, str):
                            s.kwargs.append(Kwarg(k.value, self.value(v), k.lineno,
                                            c.char(k.lineno, k.col_offset), k.end_lineno or
                                            k.lineno, c.char(k.end_lineno or k.lineno,
                                            k.end_col_offset or 0), c.char(k.lineno,
                                            k.end_col_offset or 0), editable=False))
                continue
            end_line = kw.end_lineno or kw.lineno
            s.kwargs.append(Kwarg(
                name=kw.arg, value=self.value(kw.value), line=kw.lineno,
                column=c.char(kw.lineno, kw.col_offset), end_line=end_line,
                end_column=c.char(end_line, kw.end_col_offset or 0),
                name_end_column=c.char(kw.lineno, kw.col_offset) + len(kw.arg)))

    # -- statements ------------------------------------------------------------------------
    def run(self) -> Scan:
        tree = self.parsed.tree
        if tree is None:
            return self.scan
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                k = classify(node.func)
                if k is not None:
                    self.site(node, *k)
        self.scan.calls.sort(key=lambda s: (s.line, s.column))
        self.block(tree.body, in_class=False)
        return self.scan

    def block(self, body: list[ast.stmt], in_class: bool) -> None:
        for stmt in body:
            self.statement(stmt, in_class)

    def calls_in(self, node: ast.AST) -> None:
        """Fill the known calls inside ``node``, innermost first (arguments before callers)."""
        inner = [n for n in ast.walk(node) if isinstance(n, ast.Call) and id(n) in self.sites]
        for n in reversed(inner):
            self.fill(n, self.sites[id(n)])
            self.argparse(n)
        for other in ast.walk(node):
            if isinstance(other, ast.Call) and id(other) not in self.sites:
                self.argparse(other)
                self.tokenize_hint(other)

    def argparse(self, node: ast.Call) -> None:
        if not (isinstance(node.func, ast.Attribute) and node.func.attr == "add_argument"):
            return
        flags = [a.value for a in node.args if isinstance(a, ast.Constant)
                 and isinstance(a.value, str)]
        dest = next((kw.value for kw in node.keywords if kw.arg == "dest"), None)
        name = None
        if isinstance(dest, ast.Constant) and isinstance(dest.value, str):
            name = dest.value
        else:
            longs = [f for f in flags if f.startswith("--")] or flags
            if longs:
                name = longs[0].lstrip("-").replace("-", "_")
        default = next((kw.value for kw in node.keywords if kw.arg == "default"), None)
        if name and default is not None:
            v = self.value(default)
            if not isinstance(v, Unknown | CallSite):
                self.scan.attr_defaults[name] = (v, node.lineno)

    def tokenize_hint(self, node: ast.Call) -> None:
        for kw in node.keywords:
            if kw.arg == "max_length":
                v = self.value(kw.value)
                if isinstance(v, int) and not isinstance(v, bool) and v > 0:
                    self.scan.seq_hints.append((v, kw.lineno, f"{_dotted(node.func)}(max_length)"))

    def bind(self, target: ast.expr, value: Any, node: ast.stmt, in_class: bool) -> None:
        if isinstance(target, ast.Name):
            self.scan.names[target.id] = value
            if isinstance(value, CallSite) and value.target is None:
                value.target = target.id
            if in_class:
                self.scan.attr_defaults[target.id] = (value, node.lineno)
            low = target.id.lower()
            if low in ("max_seq_length", "max_seq_len", "max_length", "seq_len",
                       "sequence_length", "cutoff_len", "max_len", "block_size") and \
                    isinstance(value, int) and not isinstance(value, bool) and value > 0:
                self.scan.seq_hints.append((value, node.lineno, target.id))
        elif isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name):
            bound = self.scan.names.get(target.value.id)
            if isinstance(bound, CallSite):
                c = self.cols
                bound.kwargs.append(Kwarg(target.attr, value, node.lineno, c.char(
                    target.lineno, target.col_offset), node.lineno, c.char(
                    target.lineno, target.col_offset), c.char(target.lineno,
                    target.end_col_offset or 0), editable=False))

    def statement(self, stmt: ast.stmt, in_class: bool) -> None:
        if isinstance(stmt, ast.Import | ast.ImportFrom):
            self.imports(stmt)
            return
        if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef):
            self.block(stmt.body, in_class=False)
            return
        if isinstance(stmt, ast.ClassDef):
            self.block(stmt.body, in_class=True)
            return
        if isinstance(stmt, ast.Assign):
            self.calls_in(stmt.value)
            value = self.value(stmt.value)
            for t in stmt.targets:
                self.bind(t, value, stmt, in_class)
            return
        if isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
            self.calls_in(stmt.value)
            value = self.value(stmt.value)
            if isinstance(stmt.value, ast.Call) and _dotted(stmt.value.func) in (
                    "field", "dataclasses.field"):
                d = next((kw.value for kw in stmt.value.keywords if kw.arg == "default"), None)
                value = self.value(d) if d is not None else Unknown(self.text(stmt.value))
            self.bind(stmt.target, value, stmt, in_class)
            return
        # compound statements: their bodies in order; other statements: their calls
        bodies = [getattr(stmt, name) for name in ("body", "orelse", "finalbody")
                  if isinstance(getattr(stmt, name, None), list)]
        for h in getattr(stmt, "handlers", []) or []:
            bodies.append(h.body)
        for case in getattr(stmt, "cases", []) or []:
            bodies.append(case.body)
        if bodies:
            for name in ("test", "iter", "subject"):
                sub = getattr(stmt, name, None)
                if isinstance(sub, ast.AST):
                    self.calls_in(sub)
            for item in getattr(stmt, "items", []) or []:
                self.calls_in(item.context_expr)
                if item.optional_vars is not None and isinstance(item.context_expr, ast.Call):
                    self.bind(item.optional_vars, self.value(item.context_expr), stmt, in_class)
            for b in bodies:
                self.block(b, in_class)
            return
        self.calls_in(stmt)

    def imports(self, stmt: ast.Import | ast.ImportFrom) -> None:
        c = self.cols
        line, end_line = stmt.lineno, stmt.end_lineno or stmt.lineno
        names = tuple(a.name for a in stmt.names)
        spans = tuple((c.char(a.lineno, a.col_offset), c.char(a.end_lineno or a.lineno,
                      a.end_col_offset or 0)) for a in stmt.names)
        for a in stmt.names:
            module = (stmt.module or "") if isinstance(stmt, ast.ImportFrom) else a.name
            name = a.name if isinstance(stmt, ast.ImportFrom) else ""
            self.scan.imports.append(ImportSite(
                module=module, name=name, line=line, column=c.char(line, stmt.col_offset),
                end_line=end_line, end_column=c.char(end_line, stmt.end_col_offset or 0),
                names=names, alias_columns=spans, single_line=line == end_line))


def _binop(op: ast.operator, a: float, b: float) -> float:
    if isinstance(op, ast.Mult):
        return a * b
    if isinstance(op, ast.Add):
        return a + b
    if isinstance(op, ast.Sub):
        return a - b
    if isinstance(op, ast.FloorDiv):
        return a // b
    if isinstance(op, ast.Div):
        return a / b
    if abs(b) > 64:
        raise OverflowError
    return float(a**b)


@functools.lru_cache(maxsize=16)
def scan_source(source: str) -> Scan:
    """Parse (tolerantly) and scan ``source``; nothing is imported or executed. Cached: the
    reader and the API checks scan the same text; callers must not change the result."""
    return _Scanner(parse_tolerant(source)).run()
