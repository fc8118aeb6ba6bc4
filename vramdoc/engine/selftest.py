"""Run every rule's fire and silent cases (``vramdoc rules test`` and tests/rules/)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vramdoc.engine.evaluate import RuleEvaluationError, format_message, holds
from vramdoc.engine.loader import load_rule_cases, load_rules


@dataclass(frozen=True)
class CaseResult:
    """The outcome of one case: ``expected`` fire (True) or silent (False)."""

    code: str
    expected: bool
    index: int
    case: dict[str, Any]
    passed: bool
    detail: str = ""

    @property
    def label(self) -> str:
        return f"{self.code} {'fire' if self.expected else 'silent'}[{self.index}]"


def run_case(rule: Any, case: dict[str, Any], expected: bool, index: int) -> CaseResult:
    """Evaluate one case strictly (a condition that raises is a failure)."""
    try:
        got = holds(rule, case, strict=True)
    except RuleEvaluationError as exc:
        return CaseResult(rule.code, expected, index, case, False, exc.message)
    if got == expected:
        if got:  # the message must format on a firing case
            format_message(rule.message, case)
        return CaseResult(rule.code, expected, index, case, True)
    verb = "did not fire" if expected else "fired"
    return CaseResult(rule.code, expected, index, case, False,
                      f"`{rule.when}` {verb} on {case}")


def run_rule_tests(scope: str | None = None,
                   rules_dir: str | Path | None = None) -> list[CaseResult]:
    """Every case of every rule (of ``scope``), in code order."""
    rules = load_rules(scope, rules_dir)
    results: list[CaseResult] = []
    for rc in load_rule_cases(rules, rules_dir):
        results.extend(run_case(rc.rule, c, True, i) for i, c in enumerate(rc.fire))
        results.extend(run_case(rc.rule, c, False, i) for i, c in enumerate(rc.silent))
    return results
