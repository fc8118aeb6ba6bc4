"""Parse Python source the way tutorials write it: ``...`` elisions tolerated, lines kept.

Blog posts and notebooks elide arguments: ``TrainingArguments(output_dir="out", ...)`` or a line
that is just ``...`` inside an argument list. ``...`` after a keyword argument is a syntax error
("positional argument follows keyword argument"). The pre-pass rewrites each such ``...`` into
an unpacking (``*_`` in calls, lists and tuples, ``**_`` in dicts) of the same length, adding a
comma when the next token does not start with one, so the tree keeps every line and every
column before the elision. Only when the file does not parse as written. A real syntax error
is reported with its line; that line is blanked and parsing retried, so the rest is still read.
Nothing here imports or runs the user's code.
"""

from __future__ import annotations

import ast
import io
import tokenize
from dataclasses import dataclass, field

MAX_BLANKED = 20  # syntax errors tolerated before giving up on a file


@dataclass(frozen=True)
class Parsed:
    """The tree of a source, how it was obtained, and the problems on the way."""

    tree: ast.Module | None
    source: str  # the text the tree was parsed from (elisions rewritten, bad lines blanked)
    elisions: tuple[int, ...] = ()  # lines where a ``...`` elision was read over
    errors: tuple[tuple[int, str], ...] = field(default=())  # (line, message) of syntax errors


def _rewrite_elisions(source: str) -> tuple[str, list[int]]:
    """Replace ``...`` inside brackets by an unpacking of the same width (see module doc)."""
    lines = source.splitlines(keepends=True)
    stack: list[str] = []  # open brackets
    edits: list[tuple[int, int, str]] = []  # (line index, column, replacement for '...')
    try:
        toks = list(tokenize.generate_tokens(io.StringIO(source).readline))
    except (tokenize.TokenError, SyntaxError, IndentationError):
        toks = []
        try:
            for tok in tokenize.generate_tokens(io.StringIO(source).readline):
                toks.append(tok)
        except (tokenize.TokenError, SyntaxError, IndentationError):
            pass
    significant = [t for t in toks if t.type not in (tokenize.NL, tokenize.COMMENT,
                                                     tokenize.NEWLINE, tokenize.INDENT,
                                                     tokenize.DEDENT)]
    for i, tok in enumerate(significant):
        if tok.type == tokenize.OP and tok.string in "([{":
            stack.append(tok.string)
        elif tok.type == tokenize.OP and tok.string in ")]}":
            if stack:
                stack.pop()
        elif tok.type == tokenize.OP and tok.string == "..." and stack:
            nxt = significant[i + 1].string if i + 1 < len(significant) else ""
            unpack = "**_" if stack[-1] == "{" else "*_ "
            if nxt not in (",", ")", "]", "}"):
                unpack = unpack.rstrip() + ","
            edits.append((tok.start[0] - 1, tok.start[1], unpack))
    for li, col, rep in reversed(edits):
        line = lines[li]
        lines[li] = line[:col] + rep + line[col + 3:]
    return "".join(lines), sorted({li + 1 for li, _c, _r in edits})


def _blank(source: str, lineno: int) -> str:
    lines = source.splitlines(keepends=True)
    if 1 <= lineno <= len(lines):
        line = lines[lineno - 1]
        end = "\n" if line.endswith("\n") else ""
        indent = line[: len(line) - len(line.lstrip())]
        code = line.split("#", 1)[0].rstrip()
        # a block header keeps its block: the indented lines after it still parse
        stmt = "if True:" if code.endswith(":") else "pass"
        lines[lineno - 1] = f"{indent}{stmt}{end}" if line.strip() else line
    return "".join(lines)


def parse_tolerant(source: str) -> Parsed:
    """Parse ``source``; rewrite elisions and blank syntax-error lines as needed."""
    try:
        return Parsed(ast.parse(source), source)
    except (SyntaxError, ValueError):
        pass
    except (RecursionError, MemoryError):  # 100,000 chained `+ 1`: CPython's own limit
        return Parsed(None, source, (), ((1, "the code nests too deeply for Python's parser "
                                             "(CPython itself refuses to compile it)"),))
    text, elided = _rewrite_elisions(source)
    errors: list[tuple[int, str]] = []
    tried: set[int] = set()
    for _ in range(MAX_BLANKED):
        try:
            return Parsed(ast.parse(text), text, tuple(elided), tuple(errors))
        except SyntaxError as exc:
            line = exc.lineno or 1
            errors.append((line, exc.msg))
            if line in tried:
                break
            tried.add(line)
            text = _blank(text, line)
            # an indented block left empty by the blanking still parses: 'pass' keeps it
        except ValueError as exc:  # null bytes
            errors.append((1, str(exc)))
            break
    return Parsed(None, text, tuple(elided), tuple(errors))
