"""Rule conditions: parsed with the stdlib ``ast`` (to check them), evaluated by simpleeval.

Conditions are never passed to ``eval``. simpleeval (a maintained safe-expression library)
walks the parsed tree with a whitelist of node types and operators; the names a condition
reads are collected from the same tree at load time, so a rule that reads a name its scope
does not declare is rejected before it can silently never fire.
"""

from __future__ import annotations

import ast
from typing import Any

from simpleeval import EvalWithCompoundTypes

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
