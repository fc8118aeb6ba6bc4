"""Every shipped rule file (all scopes): its cases pass, and the registry holds together."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from vramdoc.engine import default_rules_dir, load_rule_cases, load_rules
from vramdoc.engine.selftest import run_case

ROOT = Path(__file__).resolve().parents[2]
RULES = load_rules()
CASES = load_rule_cases(RULES)
README_BLOCK = re.compile(r"<!-- section:rules -->\n(.*?)<!-- /section:rules -->", re.S)


def _case_params():
    for rc in CASES:
        for i, case in enumerate(rc.fire):
            yield pytest.param(rc.rule, case, True, i, id=f"{rc.rule.code}-fire{i}")
        for i, case in enumerate(rc.silent):
            yield pytest.param(rc.rule, case, False, i, id=f"{rc.rule.code}-silent{i}")


@pytest.mark.parametrize("rule, case, expected, index", list(_case_params()))
def test_rule_case(rule, case, expected, index):
    result = run_case(rule, case, expected, index)
    assert result.passed, result.detail


def test_rules_directory_is_the_checkout_one():
    assert default_rules_dir() == ROOT / "rules"


def test_codes_unique_and_match_file_names():
    codes = [r.code for r in RULES]
    assert len(codes) == len(set(codes))
    for r in RULES:
        assert Path(r.path).name == f"{r.code}-{r.name}.yaml"
    names = [r.name for r in RULES]
    assert len(names) == len(set(names))


def test_every_rule_has_fire_and_silent_cases():
    by_code = {rc.rule.code: rc for rc in CASES}
    assert set(by_code) == {r.code for r in RULES}
    for rc in CASES:
        assert rc.fire and rc.silent, rc.rule.code


def test_every_rule_documents_why_tradeoff_fix_and_references():
    for r in RULES:
        assert len(r.why) >= 40, r.code
        assert r.tradeoff and r.fix, r.code
        assert all(ref.startswith(("http", "github:")) or "@" in ref for ref in r.references), \
            r.code


def test_plan_rules_cover_the_required_topics():
    plan = load_rules("plan")
    assert len(plan) >= 25
    kinds = {r.kind for r in plan}
    assert kinds == {"constraint", "lever", "guidance"}
    text = " ".join(r.when for r in plan)
    for needle in ("gpu_bf16", "gpu_fa2", "gpu_cuda", "gradient_checkpointing",
                   "optim_state_bits", "optim_paged", "bnb_4bit_use_double_quant",
                   "learning_rate", "warmup_steps", "lr_scheduler_type", "max_grad_norm",
                   "lora_alpha", "fp16"):
        assert needle in text, needle


def test_readme_rules_block_is_generated():
    """README's section:rules is exactly `vramdoc rules list --markdown` (regenerate with
    `python -m tests.rules.regen_readme`)."""
    from tests.rules.regen_readme import readme_block

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    m = README_BLOCK.search(readme)
    assert m, "README.md has no <!-- section:rules --> block"
    assert m.group(1).strip() == readme_block().strip(), (
        "README rules block is stale: run `python -m tests.rules.regen_readme`")
    for r in RULES:
        assert f"[{r.code}](" in m.group(1), r.code


def test_rules_cli(run_cli):
    code, out, _err = run_cli("rules", "test")
    assert code == 0
    n_cases = sum(len(rc.fire) + len(rc.silent) for rc in CASES)
    assert out.strip().endswith(f"{n_cases} passed, 0 failed ({len(RULES)} rules)")
    code, out, _err = run_cli("rules", "list", "--scope", "plan")
    assert code == 0 and out.count("\n") == len(load_rules("plan"))
    code, out, _err = run_cli("rules", "show", "h103")
    assert code == 0
    for heading in ("## What it does", "## Why", "## Trade-off", "## Fix", "## References"):
        assert heading in out
    assert "Fires when: `attn_implementation == 'flash_attention_2' and not gpu_fa2`" in out
    code, _out, err = run_cli("rules", "show", "H1O3")
    assert code == 2 and "no rule 'H1O3' (did you mean" in err


def test_rules_test_fails_with_exit_1(tmp_path, run_cli, monkeypatch):
    import shutil

    import vramdoc.engine.loader as loader
    from vramdoc.engine import clear_cache

    d = tmp_path / "rules"
    shutil.copytree(default_rules_dir(), d)
    (d / "H101-bf16-needs-ampere.test.yaml").write_text(
        "fire:\n  - {bf16: false}\nsilent:\n  - {bf16: false}\n")
    monkeypatch.setattr(loader, "default_rules_dir", lambda: d)
    clear_cache()
    try:
        code, out, _err = run_cli("rules", "test")
    finally:
        clear_cache()
    assert code == 1
    assert "FAIL H101 fire[0]" in out and ", 1 failed" in out
