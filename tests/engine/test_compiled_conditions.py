"""Compiled conditions give what simpleeval gives: every shipped rule, its cases, odd values."""

from __future__ import annotations

import math
import random
from typing import Any

import pytest

from vramdoc.engine import holding, holds, load_rule_cases, load_rules
from vramdoc.engine.conditions import compiled_condition, evaluate_condition, parse_condition

RULES = load_rules()
ODD = [None, 0, 1, -1, 0.5, 3.0, 1e12, -2.5, math.nan, math.inf, -math.inf, True, False, "",
       "bf16", "llama", 2**40, (1, 2), [1], {"a": 1}]


def _outcome(fn: Any, names: dict[str, Any]) -> Any:
    try:
        value = fn(names)
    except Exception as exc:  # noqa: BLE001 - the error type is the outcome compared
        return ("raised", type(exc).__name__)
    if isinstance(value, float) and math.isnan(value):
        return ("nan",)
    return ("value", type(value).__name__, value)


def _same(rule: Any, names: dict[str, Any]) -> None:
    fn = compiled_condition(rule.when, rule.tree)
    if fn is None:
        return  # evaluated by simpleeval itself
    slow = _outcome(lambda n: evaluate_condition(rule.tree, n, rule.when), names)
    assert _outcome(fn, names) == slow, (rule.code, rule.when, names)


def test_every_watch_condition_compiles() -> None:
    # the watch evaluates these on every step; others (H116 reads an attribute) may fall back
    assert [r.code for r in RULES if r.scope == "watch"
            and compiled_condition(r.when, r.tree) is None] == []


@pytest.mark.parametrize("cases", load_rule_cases(RULES), ids=lambda c: c.rule.code)
def test_rule_cases_agree(cases: Any) -> None:
    rule = cases.rule
    for case in (*cases.fire, *cases.silent):
        _same(rule, {n: case.get(n) for n in rule.names})


def test_odd_values_agree() -> None:
    rnd = random.Random(9)
    for rule in RULES:
        for _ in range(150):
            _same(rule, {n: rnd.choice(ODD) for n in rule.names})


@pytest.mark.parametrize("expr", [
    "a < b < c", "a < b > c", "not a", "-a > 1", "a + b > 3", "a * b", "a / b > 1",
    "a if b else c", "a in (1, 2)", "a not in (1, 'x')", "max(a, b) > 2", "a or b and c",
    "abs(a) >= 1", "a is None or a == b", "'x' * a", "a % b",
])
def test_operators_agree(expr: str) -> None:
    tree, names, problems = parse_condition(expr)
    assert not problems and tree is not None
    fn = compiled_condition(expr, tree)
    assert fn is not None
    rnd = random.Random(expr)
    for _ in range(300):
        values = {n: rnd.choice(ODD) for n in names}
        slow = _outcome(lambda v: evaluate_condition(tree, v, expr), values)
        assert _outcome(fn, values) == slow, (expr, values)


def test_uncompilable_falls_back_to_simpleeval() -> None:
    expr = "[x for x in a if x > 1]"
    tree, names, problems = parse_condition(expr)
    assert tree is not None and compiled_condition(expr, tree) is None


def test_holding_matches_holds() -> None:
    rnd = random.Random(3)
    watch = [r for r in RULES if r.scope == "watch"]
    assert watch
    for _ in range(200):
        ctx = {n: rnd.choice(ODD[:14]) for r in watch for n in r.names}
        assert holding(watch, ctx) == [r for r in watch if holds(r, ctx)]
