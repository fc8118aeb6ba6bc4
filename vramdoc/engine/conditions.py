"""Rule conditions: parsed with the stdlib ``ast`` (to check them), evaluated by simpleeval.

Conditions are never passed to ``eval``. simpleeval (a maintained safe-expression library)
walks the parsed tree with a whitelist of node types and operators; the names a condition
reads are collected from the same tree at load time, so a rule that reads a name its scope
does not declare is rejected before it can silently never fire.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Mapping
from typing import Any

from simpleeval import MAX_STRING_LENGTH, EvalWithCompoundTypes

# Functions a condition may call. Everything else (rand, randint ...) is left out.
FUNCTIONS: dict[str, Any] = {
    "min": min, "max": max, "abs": abs, "round": round, "int": int, "float": float,
    "str": str, "len": len, "bool": bool,
}


class ConditionEvaluator(EvalWithCompoundTypes):  # type: ignore[misc]
    """simpleeval with our function whitelist; names are set per evaluation."""

    def __init__(self) -> None:
        super().__init__(functions=dict(FUNCTIONS), names={})
        # EvalWithCompoundTypes adds list/tuple/dict/set constructors; keep them (harmless).


_VALIDATOR = ConditionEvaluator()


def parse_condition(expr: Any) -> tuple[ast.expr | None, tuple[str, ...], list[str]]:
    """Parse a condition; return (tree, names it reads, problems).

    Problems: not a string, a syntax error, a node or operator simpleeval does not evaluate,
    a call to a function outside :data:`FUNCTIONS`.
    """
    if not isinstance(expr, str) or not expr.strip():
        return None, (), ["`when` must be a non-empty expression string"]
    try:
        tree = ast.parse(expr.strip(), mode="eval").body
    except SyntaxError as exc:
        return None, (), [f"`when` is not a valid expression: {exc.msg} "
                          f"(column {exc.offset}) in {expr!r}"]
    problems: list[str] = []
    names: list[str] = []
    bound: set[str] = set()  # comprehension targets
    called: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.comprehension):
            for t in ast.walk(node.target):
                if isinstance(t, ast.Name):
                    bound.add(t.id)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            called.add(id(node.func))
            if node.func.id not in FUNCTIONS:
                problems.append(f"`when` calls {node.func.id}(), which is not available; "
                                f"use one of {', '.join(FUNCTIONS)}")
    for node in ast.walk(tree):
        if isinstance(node, ast.expr) and type(node) not in _VALIDATOR.nodes:
            problems.append(f"`when` uses {type(node).__name__}, which conditions cannot use")
        op = getattr(node, "op", None)
        if isinstance(op, ast.operator | ast.unaryop) and type(op) not in _VALIDATOR.operators:
            problems.append(f"`when` uses operator {type(op).__name__}, which is not allowed")
        if isinstance(node, ast.Compare):
            for op in node.ops:
                if type(op) not in _VALIDATOR.operators:
                    problems.append(f"`when` uses comparison {type(op).__name__}, "
                                    "which is not allowed")
        if isinstance(node, ast.Attribute) and node.attr.startswith("_"):
            problems.append(f"`when` reads the private attribute {node.attr!r}")
        if (isinstance(node, ast.Name) and id(node) not in called and node.id not in bound
                and node.id not in names):
            names.append(node.id)
    return tree, tuple(sorted(names)), problems


def evaluate_condition(tree: ast.expr, names: dict[str, Any], expr: str = "") -> Any:
    """Evaluate a parsed condition with the given name values (simpleeval; never ``eval``)."""
    ev = _EVALUATOR
    ev.names = names
    return ev.eval(expr, previously_parsed=tree)


_EVALUATOR = ConditionEvaluator()


# --- compiled conditions ------------------------------------------------------------------
# The watch evaluates every W rule on every step of a log (millions of evaluations on a long
# run), where walking the tree through simpleeval's dispatch costs most of the time. A
# condition built only from the node types below is turned, once, into a tree of closures
# that applies simpleeval's own operator table (``_EVALUATOR.operators``: the same functions,
# so ``+`` stays ``safe_add``), with simpleeval's order of evaluation and short-circuits.
# Still no ``eval``/``exec``: the closures only look names up and call whitelisted operators
# and functions. A condition using anything else is evaluated by simpleeval as before.

Compiled = Callable[[Mapping[str, Any]], Any]
_PRIMITIVE = frozenset({int, float, str, bool, type(None), bytes, complex})
_COMPILED: dict[str, Compiled | None] = {}


class _NotCompilable(Exception):
    pass


def _checked(value: Any) -> Any:
    """simpleeval's check on every node's result (no modules or forbidden functions)."""
    if type(value) not in _PRIMITIVE:
        _EVALUATOR._check_disallowed_items(value)
    return value


def _compile(node: ast.expr) -> Compiled:  # noqa: C901 - one branch per node type
    ops = _EVALUATOR.operators
    if isinstance(node, ast.Constant):
        value = node.value
        if isinstance(value, str | bytes) and len(value) > MAX_STRING_LENGTH:
            raise _NotCompilable  # simpleeval raises IterableTooLong: let it
        return lambda _names: value
    if isinstance(node, ast.Name):
        key = node.id

        def name(names: Mapping[str, Any]) -> Any:
            value = names.get(key)
            return value if type(value) in _PRIMITIVE else _checked(value)
        return name
    if isinstance(node, ast.BoolOp):
        parts = tuple(_compile(v) for v in node.values)
        if isinstance(node.op, ast.And):
            def and_(names: Mapping[str, Any]) -> Any:
                result: Any = False
                for part in parts:
                    result = part(names)
                    if not result:
                        break
                return result
            return and_

        def or_(names: Mapping[str, Any]) -> Any:
            result: Any = False
            for part in parts:
                result = part(names)
                if result:
                    break
            return result
        return or_
    if isinstance(node, ast.Compare):
        if any(type(o) not in ops for o in node.ops):
            raise _NotCompilable
        if (len(node.ops) == 1 and isinstance(node.left, ast.Name)
                and isinstance(node.comparators[0], ast.Constant)
                and not hasattr(node.comparators[0].value, "__len__")):
            # `name OP constant`, most of every condition: one closure, not three
            key, value, cmp0 = node.left.id, node.comparators[0].value, ops[type(node.ops[0])]

            def compare_name(names: Mapping[str, Any]) -> Any:
                left = names.get(key)
                if type(left) not in _PRIMITIVE:
                    _checked(left)
                result = cmp0(left, value)
                return result if type(result) in _PRIMITIVE else _checked(result)
            return compare_name
        first = _compile(node.left)
        if len(node.ops) == 1:
            cmp, right_fn = ops[type(node.ops[0])], _compile(node.comparators[0])

            def compare1(names: Mapping[str, Any]) -> Any:
                result = cmp(first(names), right_fn(names))
                return result if type(result) in _PRIMITIVE else _checked(result)
            return compare1
        chain = tuple((ops[type(o)], _compile(c)) for o, c in zip(node.ops, node.comparators,
                                                                   strict=True))

        def compare(names: Mapping[str, Any]) -> Any:
            right = first(names)
            result: Any = True
            for cmp_, comp in chain:
                if not result:
                    break
                left, right = right, comp(names)
                result = cmp_(left, right)
            return _checked(result)
        return compare
    if isinstance(node, ast.UnaryOp):
        if type(node.op) not in ops:
            raise _NotCompilable
        unary, operand = ops[type(node.op)], _compile(node.operand)

        def unary_(names: Mapping[str, Any]) -> Any:
            result = unary(operand(names))
            return result if type(result) in _PRIMITIVE else _checked(result)
        return unary_
    if isinstance(node, ast.BinOp):
        if type(node.op) not in ops:
            raise _NotCompilable
        binary, left_fn, right_fn = ops[type(node.op)], _compile(node.left), _compile(node.right)
        return lambda names: _checked(binary(left_fn(names), right_fn(names)))
    if isinstance(node, ast.IfExp):
        test, body, orelse = _compile(node.test), _compile(node.body), _compile(node.orelse)
        return lambda names: body(names) if test(names) else orelse(names)
    if isinstance(node, ast.Tuple):
        items = tuple(_compile(e) for e in node.elts)
        return lambda names: _checked(tuple(i(names) for i in items))
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.keywords
            and node.func.id in _EVALUATOR.functions
            and not any(isinstance(a, ast.Starred) for a in node.args)):
        func = _EVALUATOR.functions[node.func.id]
        args = tuple(_compile(a) for a in node.args)
        return lambda names: _checked(func(*(a(names) for a in args)))
    raise _NotCompilable


def compiled_condition(expr: str, tree: ast.expr) -> Compiled | None:
    """A fast evaluator of a parsed condition, or None when it uses a node simpleeval must do.

    ``fn(context)`` gives what :func:`evaluate_condition` gives on the same values (names the
    context lacks read as None) and raises where it raises. Built once per condition text.
    """
    try:
        return _COMPILED[expr]
    except KeyError:
        pass
    try:
        fn: Compiled | None = _compile(tree)
    except _NotCompilable:
        fn = None
    if len(_COMPILED) < 10_000:
        _COMPILED[expr] = fn
    return fn
