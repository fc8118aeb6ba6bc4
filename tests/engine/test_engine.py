"""Engine: loading, validation (every problem at once), evaluation, caching, speed."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from vramdoc.engine import (
    clear_cache,
    evaluate,
    format_message,
    holds,
    load_rule_cases,
    load_rules,
    run_rule_tests,
)
from vramdoc.engine.conditions import parse_condition
from vramdoc.engine.evaluate import RuleEvaluationError
from vramdoc.errors import ConfigError, UsageError

GOOD_RULE = """\
code: H901
name: test-rule
status: stable
scope: plan
kind: constraint
severity: error
when: "bf16 and not gpu_bf16"
propose:
  training.bf16: false
message: "bf16 on {gpu_name} (sm{gpu_cc})"
why: because
tradeoff: costs
fix: do this
references: ["https://example.org"]
"""
GOOD_TEST = "fire:\n  - {bf16: true, gpu_bf16: false}\nsilent:\n  - {bf16: false}\n"
CONTEXT = "bf16: a\ngpu_bf16: b\ngpu_name: c\ngpu_cc: d\nseq_len: e\n"


def make_dir(tmp_path: Path, rules: dict[str, str], contexts: dict[str, str] | None = None,
             ) -> Path:
    d = tmp_path / "rules"
    (d / "_contexts").mkdir(parents=True)
    for scope, text in (contexts if contexts is not None else {"plan": CONTEXT}).items():
        (d / "_contexts" / f"{scope}.yaml").write_text(text)
    for name, text in rules.items():
        (d / name).write_text(text)
    clear_cache()
    return d


@pytest.fixture(autouse=True)
def _fresh():
    clear_cache()
    yield
    clear_cache()


def test_good_rule_loads_and_evaluates(tmp_path):
    d = make_dir(tmp_path, {"H901-test-rule.yaml": GOOD_RULE,
                            "H901-test-rule.test.yaml": GOOD_TEST})
    (rule,) = load_rules("plan", d)
    assert rule.code == "H901" and rule.names == ("bf16", "gpu_bf16")
    assert rule.message_names == ("gpu_name", "gpu_cc")
    assert rule.propose == {"training.bf16": False}
    found = evaluate([rule], {"bf16": True, "gpu_bf16": False, "gpu_name": "T4", "gpu_cc": 75})
    assert [f.code for f in found] == ["H901"]
    assert found[0].message == "bf16 on T4 (sm75)"
    assert found[0].propose == {"training.bf16": False} and found[0].fix == "do this"
    assert evaluate([rule], {"bf16": True, "gpu_bf16": True}) == []
    # missing names are None: `None and ...` is falsy, the message prints None
    assert evaluate([rule], {}) == []
    assert format_message(rule.message, {"gpu_name": "T4"}) == "bf16 on T4 (smNone)"
    assert load_rules("doctor", d) == ()


def test_every_problem_is_reported_at_once(tmp_path):
    bad_yaml = "code: H902\nname: [unclosed\n"
    missing = "code: H903\nname: missing-keys\nstatus: stable\nscope: plan\n"
    wrong = (GOOD_RULE.replace("H901", "H904").replace("scope: plan", "scope: planner")
             .replace("severity: error", "severity: fatal"))
    bad_when = GOOD_RULE.replace("H901", "H905").replace('"bf16 and not gpu_bf16"',
                                                         '"bf16 and and gpu"')
    undeclared = GOOD_RULE.replace("H901", "H906").replace("not gpu_bf16", "not gpu_bfloat16")
    placeholder = GOOD_RULE.replace("H901", "H907").replace("{gpu_name}", "{gpuname}")
    mismatch = GOOD_RULE.replace("H901", "H999")
    bad_code = GOOD_RULE.replace("H901", "h9")
    no_test = GOOD_RULE.replace("H901", "H910")
    bad_propose = GOOD_RULE.replace("H901", "H911").replace(
        "training.bf16: false", "training.warmup_ratio: 0.03\n  trainer.x: 1")
    func = GOOD_RULE.replace("H901", "H912").replace('"bf16 and not gpu_bf16"',
                                                     '"__import__(bf16)"')
    files = {
        "H902-bad-yaml.yaml": bad_yaml,
        "H903-missing-keys.yaml": missing,
        "H904-test-rule.yaml": wrong,
        "H905-test-rule.yaml": bad_when,
        "H906-test-rule.yaml": undeclared,
        "H907-test-rule.yaml": placeholder,
        "H908-test-rule.yaml": mismatch,
        "H909-test-rule.yaml": bad_code,
        "H910-test-rule.yaml": no_test,
        "H911-test-rule.yaml": bad_propose,
        "H912-test-rule.yaml": func,
        "H913-dup.yaml": GOOD_RULE.replace("H901", "H913").replace("test-rule", "dup"),
        "H913-dup2.yaml": GOOD_RULE.replace("H901", "H913").replace("test-rule", "dup2"),
        "X100-bad-letter.yaml": GOOD_RULE,
        "H914-orphan.test.yaml": GOOD_TEST,
    }
    for name in list(files):
        if not name.endswith(".test.yaml") and not name.startswith("H910"):
            files[name.replace(".yaml", ".test.yaml")] = GOOD_TEST
    d = make_dir(tmp_path, files)
    with pytest.raises(ConfigError) as info:
        load_rules(None, d)
    text = info.value.message
    expected = [
        r"H902-bad-yaml.yaml: not valid YAML",
        r"H903-missing-keys.yaml: missing key\(s\) kind, severity, when",
        r"H904-test-rule.yaml: unknown scope 'planner'.*did you mean 'plan'",
        r"H904-test-rule.yaml: unknown severity 'fatal'",
        r"H905-test-rule.yaml: `when` is not a valid expression",
        r"H906-test-rule.yaml: `when` reads 'gpu_bfloat16'.*did you mean 'gpu_bf16'",
        r"H907-test-rule.yaml: message placeholder \{gpuname\} is not declared",
        r"H908-test-rule.yaml: code 'H999' differs from the file-name prefix 'H908'",
        r"H909-test-rule.yaml: code 'h9' must be a capital letter and 3 digits",
        r"H910-test-rule.yaml: missing its test file H910-test-rule.test.yaml",
        r"H911-test-rule.yaml: propose key 'training.warmup_ratio' was removed in transformers 5",
        r"H911-test-rule.yaml: propose key 'trainer.x': 'trainer' is not a setup-file section",
        r"H912-test-rule.yaml: `when` calls __import__\(\), which is not available",
        r"H913-dup2.yaml: duplicate code H913",
        r"X100-bad-letter.yaml: a rule file is named <CODE>-<name>.yaml",
        r"H914-orphan.test.yaml: test file without a rule file",
    ]
    import re

    for pattern in expected:
        assert re.search(pattern, text), f"{pattern!r} not in:\n{text}"
    assert len(info.value.problems) >= len(expected)


def test_kind_must_match_letter_and_context_must_exist(tmp_path):
    lever = GOOD_RULE.replace("kind: constraint", "kind: lever")
    doctor = (GOOD_RULE.replace("H901", "D901").replace("scope: plan", "scope: doctor")
              .replace("kind: constraint", "kind: nan"))
    d = make_dir(tmp_path, {"H901-test-rule.yaml": lever, "H901-test-rule.test.yaml": GOOD_TEST,
                            "D901-test-rule.yaml": doctor,
                            "D901-test-rule.test.yaml": GOOD_TEST})
    with pytest.raises(ConfigError, match=r"a H rule is a constraint, not a lever"):
        load_rules("plan", d)
    with pytest.raises(ConfigError, match=r"no _contexts/doctor.yaml declares"):
        load_rules("doctor", d)


def test_bad_test_files_are_reported(tmp_path):
    d = make_dir(tmp_path, {"H901-test-rule.yaml": GOOD_RULE,
                            "H901-test-rule.test.yaml": "fire:\n  - {bf16: true, bogus: 1}\n"})
    rules = load_rules("plan", d)
    with pytest.raises(ConfigError) as info:
        load_rule_cases(rules, d)
    assert any("needs at least one silent case" in p for p in info.value.problems)
    assert any("sets 'bogus', which the plan context does not declare" in p
               for p in info.value.problems)


def test_rule_self_test_reports_failures(tmp_path):
    wrong_test = "fire:\n  - {bf16: false}\nsilent:\n  - {bf16: false}\n"
    raising = GOOD_RULE.replace("H901", "H902").replace("test-rule", "other").replace(
        '"bf16 and not gpu_bf16"', '"seq_len > 4096"')
    d = make_dir(tmp_path, {
        "H901-test-rule.yaml": GOOD_RULE, "H901-test-rule.test.yaml": wrong_test,
        "H902-other.yaml": raising,
        "H902-other.test.yaml": "fire:\n  - {seq_len: 8192}\nsilent:\n  - {}\n"})
    results = run_rule_tests("plan", d)
    by_label = {r.label: r for r in results}
    assert not by_label["H901 fire[0]"].passed
    assert "did not fire" in by_label["H901 fire[0]"].detail
    assert by_label["H901 silent[0]"].passed
    assert by_label["H902 fire[0]"].passed
    # None > 4096 raises in strict mode: a failed case, not a silent pass
    assert not by_label["H902 silent[0]"].passed
    assert "TypeError" in by_label["H902 silent[0]"].detail
    rule = load_rules("plan", d)[1]
    assert holds(rule, {}) is False  # lenient in normal use
    with pytest.raises(RuleEvaluationError, match="guard the condition"):
        holds(rule, {}, strict=True)


@pytest.mark.parametrize("expr, problem", [
    ("x = 1", "not a valid expression"),
    ("lambda: 1", "Lambda"),
    ("open('f')", "calls open()"),
    ("x.__class__", "private attribute"),
    ("x @ y", "MatMult"),
])
def test_conditions_reject_unsafe_or_invalid(expr, problem):
    _tree, _names, problems = parse_condition(expr)
    assert any(problem in p for p in problems), problems


def test_condition_names_and_features():
    tree, names, problems = parse_condition(
        "optim in ('paged_adamw_8bit', 'adamw_8bit') and max(a, b) > 3 "
        "and s.startswith('p') and any_x if [v for v in lst if v] else False")
    assert problems == [] and names == ("a", "any_x", "b", "lst", "optim", "s")
    from vramdoc.engine.conditions import evaluate_condition

    ctx = {"optim": "adamw_8bit", "a": 1, "b": 4, "s": "paged", "any_x": True, "lst": [0, 1]}
    assert evaluate_condition(tree, ctx) is True


def test_unknown_scope_and_missing_dir(tmp_path):
    with pytest.raises(UsageError, match="unknown rule scope 'plans'.*did you mean 'plan'"):
        load_rules("plans")
    with pytest.raises(UsageError, match="does not exist"):
        load_rules("plan", tmp_path / "nope")


def test_repository_rules_load_once_and_are_cached():
    """Loading every shipped rule is on `vramdoc plan`'s cold path; the second load is the cache.

    Its time is a benchmark figure (`python -m tests.benchmarks.bench_plan` prints it), not a
    timed assertion: a timed test fails on a loaded machine without anything being wrong."""
    rules = load_rules()
    assert rules
    assert load_rules() is rules


def test_wheel_layout_is_found(tmp_path, monkeypatch):
    """In a wheel the rules live in vramdoc/_rules (pyproject force-include)."""
    import vramdoc.engine.loader as loader

    fake_pkg = tmp_path / "site" / "vramdoc"
    (fake_pkg / "engine").mkdir(parents=True)
    shutil.copytree(loader.default_rules_dir(), fake_pkg / "_rules")
    monkeypatch.setattr(loader, "__file__", str(fake_pkg / "engine" / "loader.py"))
    assert loader.default_rules_dir() == fake_pkg / "_rules"
    assert load_rules("plan", loader.default_rules_dir())
