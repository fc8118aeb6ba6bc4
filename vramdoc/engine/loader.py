"""Find, read and validate rule files; report every problem at once.

The rules directory is ``rules/`` at the repository root in a checkout, or ``vramdoc/_rules``
inside an installed wheel (pyproject force-includes ``rules/`` there). Loading is on the cold
path of ``vramdoc plan``: files are parsed with libyaml's ``CSafeLoader`` when PyYAML has it,
only the files of the requested scope are read (the code letter in the file name tells the
scope), sibling test files are only checked for existence (their cases are read by
:func:`load_rule_cases`), and results are cached per process.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vramdoc.engine.conditions import parse_condition
from vramdoc.engine.schema import (
    ALL_KEYS,
    CODE_RE,
    FILE_RE,
    KIND_RE,
    LETTERS,
    MODEL_KWARGS,
    NAME_RE,
    PLAN_KINDS,
    REQUIRED_KEYS,
    SCOPES,
    SETUP_SECTIONS,
    SEVERITIES,
    STATUSES,
    Rule,
    did_you_mean,
    message_fields,
)
from vramdoc.errors import ConfigError, UsageError

CONTEXTS_DIR = "_contexts"
TEST_SUFFIX = ".test.yaml"


def _yaml_load(text: str) -> Any:
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return yaml.load(text, Loader=loader)  # noqa: S506 - a SafeLoader


def default_rules_dir() -> Path:
    """``rules/`` next to the package in a checkout, else the wheel's ``vramdoc/_rules``."""
    pkg = Path(__file__).resolve().parent.parent
    checkout = pkg.parent / "rules"
    if checkout.is_dir() and (pkg.parent / "pyproject.toml").is_file():
        return checkout
    return pkg / "_rules"


def _resolve_dir(rules_dir: str | Path | None) -> Path:
    return Path(rules_dir).resolve() if rules_dir is not None else default_rules_dir()


def _read_yaml(path: Path, problems: list[str], label: str) -> Any:
    from vramdoc.engine import yamlcache

    hit, cached = yamlcache.get(path)
    if hit:
        return cached
    try:
        data = _yaml_load(path.read_text(encoding="utf-8"))
        yamlcache.put(path, data)
        return data
    except OSError as exc:
        problems.append(f"{label}: cannot be read: {exc.strerror or exc}")
    except Exception as exc:  # yaml.YAMLError: keep the first line, it names the position
        first = str(exc).strip().splitlines()
        problems.append(f"{label}: not valid YAML: {' '.join(s.strip() for s in first[:3])}")
    return None


@functools.cache
def _contexts(rules_dir: Path) -> tuple[dict[str, dict[str, str]], dict[str | None, list[str]]]:
    """Declared context names per scope, and the problems found in each scope's context file
    (key None: files that belong to no scope). A broken doctor context does not stop plan."""
    out: dict[str, dict[str, str]] = {}
    by_scope: dict[str | None, list[str]] = {}
    cdir = rules_dir / CONTEXTS_DIR
    for scope in SCOPES:
        path = cdir / f"{scope}.yaml"
        problems = by_scope.setdefault(scope, [])
        if not path.is_file():
            continue
        label = f"{CONTEXTS_DIR}/{path.name}"
        data = _read_yaml(path, problems, label)
        if data is None:
            continue
        if not isinstance(data, dict):
            problems.append(f"{label}: must map each context name to its description")
            continue
        names: dict[str, str] = {}
        for k, v in data.items():
            if not isinstance(k, str) or not k.isidentifier():
                problems.append(f"{label}: {k!r} is not a valid name (letters, digits, _)")
            elif not isinstance(v, str) or not v.strip():
                problems.append(f"{label}: {k}: give a one-line description")
            else:
                names[k] = v
        out[scope] = names
    stray = by_scope.setdefault(None, [])
    if cdir.is_dir():
        for path in sorted(cdir.iterdir()):
            if path.suffix in (".yaml", ".yml") and path.stem not in SCOPES:
                stray.append(f"{CONTEXTS_DIR}/{path.name}: {path.stem!r} is not a scope "
                             f"({', '.join(SCOPES)})")
    return out, by_scope


def context_names(scope: str, rules_dir: str | Path | None = None) -> dict[str, str]:
    """The names (with descriptions) the ``scope`` context declares; {} when undeclared."""
    return dict(_contexts(_resolve_dir(rules_dir))[0].get(scope, {}))


def _check_propose(value: Any, label: str, problems: list[str]) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        problems.append(f"{label}: propose must map dotted setup keys to values")
        return {}
    from vramdoc.setup import REMOVED_TRAINING_KEYS, hf_names

    names = hf_names()
    known_by_section: dict[str, Any] = {
        "training": set(names["TrainingArguments"]) | {"gradient_checkpointing_kwargs"},
        "lora": names["LoraConfig"],
        "quantization": set(names["BitsAndBytesConfig"]) | set(names["GPTQConfig"])
        | set(names["AwqConfig"]) | {"quant_method"},
        "model_kwargs": MODEL_KWARGS,
    }
    out: dict[str, Any] = {}
    for key, v in value.items():
        parts = str(key).split(".")
        section = parts[0]
        if section not in SETUP_SECTIONS:
            problems.append(f"{label}: propose key {key!r}: {section!r} is not a setup-file "
                            f"section{did_you_mean(section, SETUP_SECTIONS)}")
            continue
        if section in known_by_section:
            if len(parts) != 2:
                problems.append(f"{label}: propose key {key!r}: write {section}.<key>")
                continue
            if section == "training" and parts[1] in REMOVED_TRAINING_KEYS:
                problems.append(f"{label}: propose key {key!r} was removed in transformers 5; "
                                f"use {REMOVED_TRAINING_KEYS[parts[1]]}")
                continue
            if parts[1] not in known_by_section[section]:
                problems.append(f"{label}: propose key {key!r}: {parts[1]!r} is not a "
                                f"{section} key{did_you_mean(parts[1], known_by_section[section])}")
                continue
        elif len(parts) != 1:
            problems.append(f"{label}: propose key {key!r}: {section} takes no sub-keys")
            continue
        if not isinstance(v, str | int | float | bool | list | type(None)):
            problems.append(f"{label}: propose {key}: value must be a scalar or a list")
            continue
        out[str(key)] = v
    return out


def _nonempty_str(data: dict[str, Any], key: str, label: str, problems: list[str]) -> str:
    v = data.get(key)
    if not isinstance(v, str) or not v.strip():
        if key in data:
            problems.append(f"{label}: {key} must be a non-empty string")
        return ""
    return v.strip()


def _build_rule(path: Path, data: Any, declared: Mapping[str, Mapping[str, str]],
                problems: list[str]) -> Rule | None:
    label = path.name
    n_before = len(problems)
    if not isinstance(data, dict):
        problems.append(f"{label}: must hold a mapping of rule keys ({', '.join(REQUIRED_KEYS)})")
        return None
    for k in data:
        if k not in ALL_KEYS:
            problems.append(f"{label}: unknown key {k!r}{did_you_mean(str(k), ALL_KEYS)}")
    missing = [k for k in REQUIRED_KEYS if k not in data]
    if missing:
        problems.append(f"{label}: missing key(s) {', '.join(missing)}")
    code = str(data.get("code", ""))
    name = str(data.get("name", ""))
    m = FILE_RE.match(path.name)
    if "code" in data and not CODE_RE.match(code):
        problems.append(f"{label}: code {code!r} must be a capital letter and 3 digits (H101)")
    elif "code" in data and code[0] not in LETTERS:
        problems.append(f"{label}: code {code!r}: the letter must be one of "
                        f"{', '.join(LETTERS)} (H/M/T plan, D doctor, W watch)")
    if m and "code" in data and m.group("code") != code:
        problems.append(f"{label}: code {code!r} differs from the file-name prefix "
                        f"{m.group('code')!r}")
    if "name" in data and not NAME_RE.match(name):
        problems.append(f"{label}: name {name!r} must be lower-case words joined by '-'")
    elif m and "name" in data and m.group("name") != name:
        problems.append(f"{label}: name {name!r} differs from the file name "
                        f"(expected {m.group('code')}-{name}.yaml)")
    status = data.get("status")
    if "status" in data and status not in STATUSES:
        problems.append(f"{label}: status {status!r} must be one of {', '.join(STATUSES)}")
    scope = data.get("scope")
    if "scope" in data and scope not in SCOPES:
        problems.append(f"{label}: unknown scope {scope!r}; one of {', '.join(SCOPES)}"
                        f"{did_you_mean(str(scope), SCOPES)}")
    elif CODE_RE.match(code) and code[0] in LETTERS and scope != LETTERS[code[0]][0]:
        problems.append(f"{label}: a {code[0]} rule has scope {LETTERS[code[0]][0]}, "
                        f"not {scope!r}")
    severity = data.get("severity")
    if "severity" in data and severity not in SEVERITIES:
        problems.append(f"{label}: unknown severity {severity!r}; one of "
                        f"{', '.join(SEVERITIES)}{did_you_mean(str(severity), SEVERITIES)}")
    kind = str(data.get("kind", ""))
    if "kind" in data:
        if scope == "plan":
            want = LETTERS.get(code[:1], ("", None))[1]
            if kind not in PLAN_KINDS:
                problems.append(f"{label}: plan kind {kind!r} must be one of "
                                f"{', '.join(PLAN_KINDS)}")
            elif want is not None and kind != want:
                problems.append(f"{label}: a {code[0]} rule is a {want}, not a {kind}")
        elif not KIND_RE.match(kind):
            problems.append(f"{label}: kind {kind!r} must be a lower_snake_case word")
    texts = {k: _nonempty_str(data, k, label, problems)
             for k in ("message", "why", "tradeoff", "fix")}
    refs = data.get("references")
    if "references" in data and (not isinstance(refs, list) or not refs
                                 or not all(isinstance(r, str) and r.strip() for r in refs)):
        problems.append(f"{label}: references must be a non-empty list of strings "
                        "(URLs or repo@commit:path)")
        refs = []
    when = data.get("when")
    tree, names, cond_problems = (None, (), []) if "when" not in data else parse_condition(when)
    problems.extend(f"{label}: {p}" for p in cond_problems)
    msg_names, msg_problem = message_fields(texts["message"])
    if msg_problem:
        problems.append(f"{label}: message: {msg_problem}")
    if scope in SCOPES:
        if scope not in declared:
            problems.append(f"{label}: no {CONTEXTS_DIR}/{scope}.yaml declares the {scope} "
                            "context names")
        else:
            known = declared[scope]
            for n in names:
                if n not in known:
                    problems.append(f"{label}: `when` reads {n!r}, which the {scope} context "
                                    f"does not declare{did_you_mean(n, known)}")
            for n in msg_names:
                if n not in known:
                    problems.append(f"{label}: message placeholder {{{n}}} is not declared in "
                                    f"the {scope} context{did_you_mean(n, known)}")
    propose = _check_propose(data.get("propose"), label, problems)
    if not (path.parent / (path.name[: -len(".yaml")] + TEST_SUFFIX)).is_file():
        problems.append(f"{label}: missing its test file "
                        f"{path.name[: -len('.yaml')]}{TEST_SUFFIX} (fire and silent cases)")
    if len(problems) > n_before:
        return None
    return Rule(
        code=code, name=name, status=str(status), scope=str(scope), kind=kind,
        severity=str(severity), when=str(when).strip(), message=texts["message"],
        why=texts["why"], tradeoff=texts["tradeoff"], fix=texts["fix"],
        references=tuple(r.strip() for r in refs or ()), propose=propose, path=str(path),
        names=names, message_names=tuple(msg_names), tree=tree,
    )


@functools.cache
def _load(rules_dir: Path, scope: str | None) -> tuple[Rule, ...]:
    if not rules_dir.is_dir():
        raise UsageError(f"rules directory {str(rules_dir)!r} does not exist",
                         "reinstall vramdoc; the wheel ships its rules as vramdoc/_rules")
    declared, ctx_problems = _contexts(rules_dir)
    scopes = SCOPES if scope is None else (scope,)
    problems: list[str] = [p for key in (*scopes, None) if key is not None or scope is None
                           for p in ctx_problems.get(key, [])]
    files = sorted(p for p in rules_dir.iterdir() if p.is_file())
    rule_files: list[Path] = []
    stems = set()
    for p in files:
        if p.name.endswith(TEST_SUFFIX):
            continue
        if p.suffix == ".yml":
            problems.append(f"{p.name}: rule files end in .yaml")
            continue
        if p.suffix != ".yaml":
            continue
        stems.add(p.name[: -len(".yaml")])
        m = FILE_RE.match(p.name)
        if not m or not CODE_RE.match(m.group("code")) or m.group("code")[0] not in LETTERS:
            problems.append(f"{p.name}: a rule file is named <CODE>-<name>.yaml with CODE a "
                            f"letter of {''.join(LETTERS)} and 3 digits (H101-bf16-needs-ampere)")
            continue
        if scope is None or LETTERS[m.group("code")[0]][0] == scope:
            rule_files.append(p)
    for p in files:
        if p.name.endswith(TEST_SUFFIX) and p.name[: -len(TEST_SUFFIX)] not in stems:
            problems.append(f"{p.name}: test file without a rule file "
                            f"{p.name[: -len(TEST_SUFFIX)]}.yaml")
    rules: list[Rule] = []
    for p in rule_files:
        data = _read_yaml(p, problems, p.name)
        if data is None and problems and problems[-1].startswith(p.name):
            continue
        rule = _build_rule(p, data, declared, problems)
        if rule is not None:
            rules.append(rule)
    seen_codes: dict[str, str] = {}
    seen_names: dict[str, str] = {}
    for p in rule_files:
        m = FILE_RE.match(p.name)
        assert m is not None
        c, n = m.group("code"), m.group("name")
        if c in seen_codes:
            problems.append(f"{p.name}: duplicate code {c} (also {seen_codes[c]})")
        if n in seen_names:
            problems.append(f"{p.name}: duplicate name {n!r} (also {seen_names[n]})")
        seen_codes.setdefault(c, p.name)
        seen_names.setdefault(n, p.name)
    from vramdoc.engine import yamlcache

    yamlcache.flush(rules_dir)
    yamlcache.flush(rules_dir / CONTEXTS_DIR)
    if problems:
        raise ConfigError(problems, f"rules in {rules_dir}",
                          "fix the rule files above; `vramdoc rules test` checks them")
    return tuple(sorted(rules, key=lambda r: r.code))


def load_rules(scope: str | None = None, rules_dir: str | Path | None = None) -> tuple[Rule, ...]:
    """Load and validate the rules of ``scope`` (all scopes when None), sorted by code.

    Args:
        scope: ``plan``, ``doctor`` or ``watch``; None loads every rule file.
        rules_dir: a rules directory; default :func:`default_rules_dir`.

    Raises:
        ConfigError: listing every problem in every file read (and the context files).
        UsageError: the scope is unknown or the directory does not exist.
    """
    if scope is not None and scope not in SCOPES:
        raise UsageError(f"unknown rule scope {scope!r}{did_you_mean(scope, SCOPES)}",
                         f"use one of {', '.join(SCOPES)}")
    return _load(_resolve_dir(rules_dir), scope)


@dataclass(frozen=True)
class RuleCases:
    """The fire and silent cases of one rule's test file."""

    rule: Rule
    fire: tuple[dict[str, Any], ...]
    silent: tuple[dict[str, Any], ...]


def cases_path(rule: Rule) -> Path:
    """The sibling test file of a rule."""
    p = Path(rule.path)
    return p.with_name(p.name[: -len(".yaml")] + TEST_SUFFIX)


def load_rule_cases(rules: tuple[Rule, ...] | list[Rule],
                    rules_dir: str | Path | None = None) -> list[RuleCases]:
    """Read and validate the test files of ``rules``.

    Raises:
        ConfigError: listing every malformed test file (not a mapping, keys other than
            fire/silent, no case in one of them, a case that is not a mapping, a case naming
            a context name its scope does not declare).
    """
    declared, _ = _contexts(_resolve_dir(rules_dir))
    problems: list[str] = []
    out: list[RuleCases] = []
    for rule in rules:
        path = cases_path(rule)
        label = path.name
        data = _read_yaml(path, problems, label)
        if data is None:
            if not (problems and problems[-1].startswith(label)):
                problems.append(f"{label}: empty; give fire: and silent: lists of cases")
            continue
        if not isinstance(data, dict):
            problems.append(f"{label}: must hold a mapping with fire: and silent: lists")
            continue
        for k in data:
            if k not in ("fire", "silent"):
                problems.append(f"{label}: unknown key {k!r}; only fire and silent")
        known = declared.get(rule.scope, {})
        lists: dict[str, tuple[dict[str, Any], ...]] = {}
        for k in ("fire", "silent"):
            cases = data.get(k)
            if not isinstance(cases, list) or not cases:
                problems.append(f"{label}: needs at least one {k} case")
                lists[k] = ()
                continue
            good = []
            for i, case in enumerate(cases):
                if not isinstance(case, dict):
                    problems.append(f"{label}: {k}[{i}] must be a mapping of context names")
                    continue
                bad = [n for n in case if n not in known]
                for n in bad:
                    problems.append(f"{label}: {k}[{i}] sets {n!r}, which the {rule.scope} "
                                    f"context does not declare{did_you_mean(str(n), known)}")
                good.append(case)
            lists[k] = tuple(good)
        out.append(RuleCases(rule=rule, fire=lists["fire"], silent=lists["silent"]))
    if problems:
        raise ConfigError(problems, "rule test files",
                          "each <CODE>-<name>.test.yaml holds fire: and silent: lists of cases")
    return out


def clear_cache() -> None:
    """Forget loaded rules (tests that edit rule files call this)."""
    _load.cache_clear()
    _contexts.cache_clear()
