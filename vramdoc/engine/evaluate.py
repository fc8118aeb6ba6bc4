"""Evaluate rules on a context: which rules hold, with their messages formatted."""

from __future__ import annotations

import string
from collections.abc import Iterable, Mapping
from typing import Any

from vramdoc.engine.conditions import compiled_condition, evaluate_condition
from vramdoc.engine.schema import Finding, Rule
from vramdoc.errors import VramdocError

# Memo of condition results per rule, keyed by the values of the names the rule reads. The
# planner evaluates the same rules on thousands of candidates that share few distinct value
# combinations (bf16 x gpu_bf16 ...), so this turns most evaluations into a dict lookup.
# Keyed by the condition text: the same text on the same values gives the same answer.
_MEMO: dict[str, dict[tuple[Any, ...], bool]] = {}
_MEMO_MAX = 4096  # per rule; cleared when full (watch contexts carry ever-new floats)


class RuleEvaluationError(VramdocError):
    """A rule's condition raised while being evaluated (strict mode only)."""


class _Fields(dict[str, Any]):
    """format_map mapping: names the context lacks read as None."""

    def __missing__(self, key: str) -> Any:
        return None


class _LenientFormatter(string.Formatter):
    """Formats what it can; a field whose spec does not fit its value prints as str(value)."""

    def format_field(self, value: Any, format_spec: str) -> str:
        try:
            return str(super().format_field(value, format_spec))
        except (TypeError, ValueError):
            return str(value)

    def get_field(self, field_name: str, args: Any, kwargs: Any) -> Any:
        try:
            return super().get_field(field_name, args, kwargs)
        except (AttributeError, KeyError, IndexError, TypeError):
            return None, field_name


_FORMATTER = _LenientFormatter()


def format_message(template: str, context: Mapping[str, Any]) -> str:
    """``template.format`` over ``context``; missing names print as None, never raise."""
    fields = _Fields(context)
    try:
        return template.format_map(fields)
    except (TypeError, ValueError, AttributeError, KeyError, IndexError):
        return _FORMATTER.vformat(template, (), fields)


def holds(rule: Rule, context: Mapping[str, Any], *, strict: bool = False) -> bool:
    """Whether ``rule``'s condition is true on ``context`` (missing names are None).

    Args:
        strict: raise :class:`RuleEvaluationError` when the condition fails to evaluate
            (e.g. ``None > 4``); otherwise such a rule simply does not fire.
    """
    get = context.get
    key: tuple[Any, ...] | None = tuple([get(n) for n in rule.names])
    try:
        memo = _MEMO.setdefault(rule.when, {})
        if key in memo:  # raises TypeError for unhashable values (lists)
            return memo[key]
    except TypeError:
        key, memo = None, {}
    values = dict(zip(rule.names, key if key is not None else
                      [get(n) for n in rule.names], strict=True))
    assert rule.tree is not None
    fn = compiled_condition(rule.when, rule.tree)
    try:
        result = bool(fn(values) if fn is not None
                      else evaluate_condition(rule.tree, values, rule.when))
    except Exception as exc:
        if strict:
            raise RuleEvaluationError(
                f"{rule.code} {rule.name}: `{rule.when}` failed on {values}: "
                f"{type(exc).__name__}: {exc}",
                "guard the condition against missing (None) values, e.g. `x is not None and x > 4`",
            ) from None
        return False  # not memoized: a strict call must see the error again
    if key is not None:
        if len(memo) >= _MEMO_MAX:
            memo.clear()
        memo[key] = result
    return result


def holding(rules: Iterable[Rule], context: Mapping[str, Any]) -> list[Rule]:
    """The rules whose condition holds on ``context``, in order: :func:`holds` without its memo.

    For contexts that rarely repeat (the watch's, one per logged step, full of new floats),
    where keying the memo costs more than it saves. Same answers as ``holds(rule, context)``:
    missing names are None, a condition that raises does not hold.
    """
    out: list[Rule] = []
    for rule in rules:
        assert rule.tree is not None
        fn = compiled_condition(rule.when, rule.tree)
        try:
            if fn is not None:
                if fn(context):
                    out.append(rule)
            elif evaluate_condition(rule.tree, {n: context.get(n) for n in rule.names},
                                    rule.when):
                out.append(rule)
        except Exception:  # noqa: BLE001, S112 - a condition that raises does not fire
            continue
    return out


def finding(rule: Rule, context: Mapping[str, Any]) -> Finding:
    """The finding ``rule`` yields on ``context`` (without checking its condition)."""
    return Finding(
        code=rule.code, name=rule.name, kind=rule.kind, severity=rule.severity,
        message=format_message(rule.message, context), fix=rule.fix,
        propose=dict(rule.propose), why=rule.why, rule=rule,
    )


def evaluate(rules: Iterable[Rule], context: Mapping[str, Any], *,
             strict: bool = False) -> list[Finding]:
    """Findings for the rules whose condition holds on ``context``, in the rules' order.

    Names a rule reads that ``context`` lacks are None. With ``strict=False`` (the default) a
    condition that raises (``None > 4``) does not fire; ``strict=True`` raises instead.
    """
    return [finding(r, context) for r in rules if holds(r, context, strict=strict)]
