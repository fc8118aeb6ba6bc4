"""The rule engine: rule files in, validated rules and findings out.

>>> from vramdoc.engine import load_rules, evaluate
>>> rules = load_rules(scope="plan")                       # doctest: +SKIP
>>> [f.code for f in evaluate(rules, {"bf16": True, "gpu_bf16": False})]  # doctest: +SKIP
['H101']

Rules are data (``rules/<CODE>-<name>.yaml``); conditions are evaluated by simpleeval, never
``eval``; a malformed rule directory raises one ConfigError listing every problem.
"""

from vramdoc.engine.evaluate import (
    RuleEvaluationError,
    evaluate,
    finding,
    format_message,
    holding,
    holds,
)
from vramdoc.engine.loader import (
    RuleCases,
    cases_path,
    clear_cache,
    context_names,
    default_rules_dir,
    load_rule_cases,
    load_rules,
)
from vramdoc.engine.schema import LETTERS, SCOPES, SEVERITIES, Finding, Rule
from vramdoc.engine.selftest import CaseResult, run_rule_tests

__all__ = [
    "LETTERS", "SCOPES", "SEVERITIES", "CaseResult", "Finding", "Rule", "RuleCases",
    "RuleEvaluationError", "cases_path", "clear_cache", "context_names", "default_rules_dir",
    "evaluate", "finding", "format_message", "holding", "holds", "load_rule_cases", "load_rules",
    "run_rule_tests",
]
