"""Reading what users hand in (setup files, CSVs, config.json) without trusting it.

Every failure is a :class:`~vramdoc.errors.UsageError` naming the file and the fix: a path
the OS refuses (too long, a NUL byte, a folder), a file larger than its kind ever is, bytes
that are not UTF-8, YAML or JSON that does not parse, nests too deeply, or (YAML) whose
aliases expand to a flood of values (the "billion laughs").

YAML is read by :class:`Loader`: PyYAML's safe loader with one correction. YAML 1.1 resolves
a float only with a dot and a signed exponent, so ``2e-4`` and ``1e-5`` (how Hugging Face
configs and papers write learning rates) load as *strings*; YAML 1.2's core schema reads them
as numbers, and so does :class:`Loader`.

>>> load_yaml("learning_rate: 2e-4\\nwarmup: 1E5\\nbeta: 0.9\\nname: 1e-x\\n", "s.yaml")
{'learning_rate': 0.0002, 'warmup': 100000.0, 'beta': 0.9, 'name': '1e-x'}
>>> load_yaml("a: &a [1, 2]\\nb: *a\\n", "s.yaml")
{'a': [1, 2], 'b': [1, 2]}
>>> short("x" * 100)
'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx...(100 characters)...xxxxxxxxxxxxxxxxxxxx'
"""

from __future__ import annotations

import json
import re
import reprlib
from pathlib import Path
from typing import Any

from vramdoc.errors import UsageError

# A setup file is a few hundred bytes; 1 MiB leaves room for long echoed keys and comments.
MAX_SETUP_BYTES = 2**20
# config.json of classifiers can carry id2label maps of 100k+ labels (a few MiB); CSVs of
# measured runs have one short row per run. 16 MiB is far above both.
MAX_DATA_BYTES = 16 * 2**20
# Values a YAML document may expand to through aliases. A real setup file has well under a
# thousand; the 448-byte "billion laughs" expands to 9**9 = 387 million.
MAX_YAML_VALUES = 100_000
# Nesting depth of a YAML/JSON document; setup files nest 3 levels, config.json about 4.
MAX_DEPTH = 64

_repr = reprlib.Repr()
_repr.maxstring = 60
_repr.maxother = 60
_repr.maxlist = _repr.maxtuple = _repr.maxdict = _repr.maxset = 4
_repr.maxlevel = 2


def show(value: Any) -> str:
    """A short ``repr`` for error messages, whatever the value's size."""
    return _repr.repr(value)


def short(text: str, keep: int = 60) -> str:
    """``text`` itself, or its two ends when longer than ``keep`` characters."""
    if len(text) <= keep:
        return text
    head, tail = 2 * keep // 3, keep // 3
    return f"{text[:head]}...({len(text)} characters)...{text[-tail:]}"


def read_text(path: str | Path, *, what: str, max_bytes: int, hint: str) -> str:
    """The UTF-8 text of a file (a leading BOM is dropped).

    Raises:
        UsageError: the path cannot be opened (missing, a folder, too long, NUL byte,
            permission), the file is larger than ``max_bytes``, or it is not UTF-8.
    """
    name = short(str(path))
    try:
        with Path(path).open("rb") as fh:
            data = fh.read(max_bytes + 1)
    except FileNotFoundError:
        raise UsageError(f"{what} {name!r} does not exist", hint) from None
    except IsADirectoryError:
        raise UsageError(f"{what} {name!r} is a folder, not a file", hint) from None
    except (OSError, ValueError) as exc:  # ENAMETOOLONG, EACCES, ELOOP; ValueError: NUL byte
        reason = getattr(exc, "strerror", None) or str(exc)
        raise UsageError(f"cannot open {what} {name!r}: {reason}", hint) from None
    if len(data) > max_bytes:
        raise UsageError(f"{what} {name!r} is too large (over {max_bytes // 2**20} MiB); "
                         f"a {what} is a small text file", hint)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UsageError(f"{what} {name!r} is not UTF-8 text (byte 0x{data[exc.start]:02x} at "
                         f"offset {exc.start})",
                         "save it as UTF-8 (most editors: 'Save with encoding')") from None
    if "\x00" in text:  # UTF-16 without a BOM decodes as "UTF-8" with a NUL every other byte
        raise UsageError(f"{what} {name!r} is not UTF-8 text (a NUL byte at offset "
                         f"{data.index(0)}: UTF-16, or not a text file)",
                         "save it as UTF-8 (most editors: 'Save with encoding')")
    return text


# YAML 1.2 core-schema floats (https://yaml.org/spec/1.2.2/#10214-floating-point), plus the
# YAML 1.1 forms PyYAML reads (underscores, base 60), so nothing that loaded before changes.
_FLOAT = r"""^(?:
    [-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
  | [-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
  | [-+]?\.[0-9_]+(?:[eE][-+]?[0-9]+)?
  | [-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*
  | [-+]?\.(?:inf|Inf|INF)
  | \.(?:nan|NaN|NAN)
)$"""  # compiled with re.X on first YAML load: `vramdoc plan` alone never needs it


def _yaml_module() -> Any:
    import yaml  # lazy: `vramdoc plan` without --config never reads YAML setup files

    return yaml


class YamlTooLarge(Exception):
    """A YAML document that expands or nests beyond the limits above."""


_LOADER: Any = None


def yaml_loader() -> Any:
    """The Loader class (built on first use so that importing this module stays cheap)."""
    global _LOADER
    if _LOADER is not None:
        return _LOADER
    yaml = _yaml_module()
    float_tag = "tag:yaml.org,2002:float"

    class Loader(yaml.SafeLoader):  # type: ignore[misc,name-defined]
        """Safe loader: YAML 1.2 floats; refuses documents that expand or nest too much."""

        def compose_document(self) -> Any:
            node = super().compose_document()
            _check_expansion(node)
            return node

    Loader.yaml_implicit_resolvers = {
        ch: [(tag, rx) for tag, rx in rs if tag != float_tag]
        for ch, rs in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    Loader.add_implicit_resolver(float_tag, re.compile(_FLOAT, re.X), list("-+0123456789."))
    _LOADER = Loader
    return Loader


def _check_expansion(root: Any) -> None:
    """Count the values the node graph expands to (aliases counted each time they are used)."""
    yaml = _yaml_module()
    sizes: dict[int, int] = {}
    active: set[int] = set()

    def size(node: Any, depth: int) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if depth > MAX_DEPTH:
            raise YamlTooLarge(f"nests deeper than {MAX_DEPTH} levels")
        if key in active:
            raise YamlTooLarge("has an alias inside its own anchor (a recursive structure)")
        total = 1
        if isinstance(node, yaml.SequenceNode | yaml.MappingNode):
            active.add(key)
            items = node.value if isinstance(node, yaml.SequenceNode) else [
                n for pair in node.value for n in pair]
            for child in items:
                total += size(child, depth + 1)
                if total > MAX_YAML_VALUES:
                    raise YamlTooLarge(f"expands to more than {MAX_YAML_VALUES:,} values through "
                                   "its aliases (an alias bomb?)")
            active.discard(key)
        sizes[key] = total
        return total

    if root is not None:
        size(root, 0)


def bracket_depth(text: str) -> int:
    """The deepest ``[``/``{`` nesting, counting brackets inside quotes too (an over-count
    is harmless at 4x the limit). PyYAML's scanner is quadratic in flow nesting: 20,000
    brackets take seconds before its composer would fail, so they are refused first."""
    depth = peak = 0
    for ch in _NOT_BRACKET.sub("", text):
        depth = depth + 1 if ch in "[{" else max(0, depth - 1)
        peak = max(peak, depth)
    return peak


_NOT_BRACKET = re.compile(r"[^\[\]{}]+")


def load_yaml(text: str, source: str) -> Any:
    """Parse one YAML document safely (see the module docstring).

    Raises:
        UsageError: not valid YAML, more than one document, or a document that nests or
            expands (through aliases) beyond the limits above.
    """
    yaml = _yaml_module()
    if bracket_depth(text) > 4 * MAX_DEPTH:
        raise UsageError(f"{short(source)}: the YAML nests deeper than {MAX_DEPTH} levels",
                         "a setup file nests a few levels; check the brackets")
    try:
        return yaml.load(text, Loader=yaml_loader())  # noqa: S506 - a SafeLoader subclass
    except YamlTooLarge as exc:
        raise UsageError(f"{short(source)}: the YAML {exc}",
                         "write the values out, with fewer aliases and less nesting") from None
    except RecursionError:
        raise UsageError(f"{short(source)}: the YAML nests too deeply",
                         "a setup file nests a few levels; check the brackets") from None
    except ValueError as exc:  # an int of more than 4,300 digits (CPython's limit)
        raise UsageError(f"{short(source)}: the YAML holds a value Python refuses to read: "
                         f"{str(exc).split(';')[0]}", "write the number with fewer digits"
                         ) from None
    except yaml.YAMLError as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise UsageError(f"{short(source)}: not valid YAML: {first}{where}",
                         "fix the syntax at the position named above") from None


def load_json(text: str, source: str) -> Any:
    """Parse JSON; NaN / Infinity load as floats (the field checks refuse them where read).

    Raises:
        UsageError: not valid JSON, or nested too deeply for the parser.
    """
    try:
        return json.loads(text)
    except RecursionError:
        raise UsageError(f"{short(source)}: the JSON nests too deeply",
                         "check the brackets") from None
    except json.JSONDecodeError as exc:
        raise UsageError(f"{short(source)}: not valid JSON: {exc}",
                         "fix the syntax at the position named above") from None
    except ValueError as exc:  # a number of more than 4,300 digits (CPython's int limit)
        raise UsageError(f"{short(source)}: not valid JSON here: {str(exc).split(';')[0]}",
                         "write the number with fewer digits") from None


def dumps_strict(obj: Any, **kwargs: Any) -> str:
    """JSON text that any JSON parser reads: NaN and infinities are refused, never printed."""
    return json.dumps(obj, allow_nan=False, **kwargs)
