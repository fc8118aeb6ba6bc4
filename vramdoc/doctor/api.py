"""Library API changes (``rules/api/*.yaml``) checked on a scanned Python source.

Each finding names the release and the replacement and, when the fix is mechanical (a rename,
a removal, a moved keyword, an import from elsewhere), carries exact edits of the user's text
(:class:`vramdoc.readers.findings.Edit`) that ``doctor --fix`` applies. Codes:

A101 keyword removed · A102 keyword renamed · A103 keyword deprecated (still works) · A104
keyword that does not exist (did you mean) · A105 import removed · A106 a change that breaks
only on upgrading (the script's pinned release still has it).
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from vramdoc.errors import ConfigError
from vramdoc.readers._pyscan import TRAINING_CLASSES, CallSite, Kwarg, Scan
from vramdoc.readers.findings import Edit, Finding

STATUSES = ("removed", "renamed", "deprecated", "unknown")
_KEYS = {"kind", "applies_to", "name", "status", "since", "replacement", "rewrite", "unless",
         "needs_import", "message", "source"}
_SEQ2SEQ_EXTRA = ("predict_with_generate", "generation_max_length", "generation_num_beams",
                  "generation_config", "sortish_sampler")


@dataclass(frozen=True)
class Change:
    """One entry of an API-change file (see rules/api/README.md)."""

    library: str
    kind: str  # keyword | import
    name: str
    status: str
    message: str
    source: str
    applies_to: tuple[str, ...] = ()
    since: str | None = None
    replacement: str | None = None
    rewrite: str | None = None
    unless: str | None = None
    needs_import: str | None = None


def api_dir() -> Path:
    from vramdoc.engine.loader import default_rules_dir

    return default_rules_dir() / "api"


@cache
def load_changes(directory: Path | None = None) -> tuple[Change, ...]:
    """Every change of every ``rules/api/*.yaml``, validated; all problems reported at once.

    Parsed files come from the rules' disk cache (``vramdoc.engine.yamlcache``) when their
    size and mtime match, so a cold ``vramdoc doctor`` need not import PyYAML."""
    from vramdoc.engine import yamlcache

    d = directory or api_dir()
    problems: list[str] = []
    out: list[Change] = []
    for f in sorted(d.glob("*.yaml")):
        hit, data = yamlcache.get(f)
        if not hit:
            import yaml

            try:
                data = yaml.load(f.read_text(encoding="utf-8"),
                                 Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
            except (OSError, yaml.YAMLError) as exc:
                problems.append(f"{f.name}: cannot be read: {str(exc).splitlines()[0]}")
                continue
            yamlcache.put(f, data)
        if not isinstance(data, dict) or data.get("library") != f.stem or \
                not isinstance(data.get("changes"), list):
            problems.append(f"{f.name}: expected 'library: {f.stem}' and a 'changes:' list")
            continue
        for i, e in enumerate(data["changes"], 1):
            label = f"{f.name} entry {i}"
            if not isinstance(e, dict):
                problems.append(f"{label}: not a mapping")
                continue
            bad = set(e) - _KEYS
            if bad:
                problems.append(f"{label}: unknown keys {', '.join(sorted(bad))}")
            if e.get("kind") not in ("keyword", "import"):
                problems.append(f"{label}: kind must be keyword or import")
            if e.get("status") not in STATUSES:
                problems.append(f"{label}: status must be one of {', '.join(STATUSES)}")
            for k in ("name", "message", "source"):
                if not isinstance(e.get(k), str) or not e[k].strip():
                    problems.append(f"{label}: {k} missing")
            if e.get("status") != "unknown" and not isinstance(e.get("since"), str):
                problems.append(f"{label}: since (a release string) missing")
            if e.get("kind") == "keyword" and not e.get("applies_to"):
                problems.append(f"{label}: applies_to missing")
            if e.get("kind") == "import" and ":" not in str(e.get("name", "")):
                problems.append(f"{label}: an import's name is module:name")
            if e.get("status") == "renamed" and not (e.get("replacement") or e.get("rewrite")):
                problems.append(f"{label}: a rename needs a replacement")
            out.append(Change(
                library=f.stem, kind=str(e.get("kind")), name=str(e.get("name")),
                status=str(e.get("status")), message=str(e.get("message", "")),
                source=str(e.get("source", "")), applies_to=tuple(e.get("applies_to") or ()),
                since=e.get("since"), replacement=e.get("replacement"), rewrite=e.get("rewrite"),
                unless=e.get("unless"), needs_import=e.get("needs_import")))
    yamlcache.flush(d)
    if problems:
        raise ConfigError(problems, f"API-change data in {d}",
                          "fix the entries above (see rules/api/README.md)")
    return tuple(out)


def _groups(site: CallSite) -> set[str]:
    """The applies_to names that cover a call."""
    g = {site.cls}
    if site.cls in TRAINING_CLASSES:
        g.add("TrainingArguments")
    if site.kind in ("model", "peft_load", "aux_load"):
        g.add("from_pretrained")
    if site.cls in ("Trainer", "Seq2SeqTrainer"):
        g.add("Trainer")
    return g


def _version_text(lib: str, versions: dict[str, tuple[str | None, str]]) -> str:
    v, where = versions.get(lib, (None, ""))
    return f"{lib} {v} ({where})" if v else f"{lib} (newest release assumed)"


def _applies(change: Change, versions: dict[str, tuple[str | None, str]]) -> bool | None:
    """True: broken (or deprecated) in the user's release; False: only on upgrading; None:
    not relevant."""
    from vramdoc.doctor.versions import parse_version

    if change.status == "unknown" or change.since is None:
        return True
    v = versions.get(change.library, (None, ""))[0]
    if v is None:
        return True
    if parse_version(v) >= parse_version(change.since):
        return True
    return None if change.status == "deprecated" else False


class _Edits:
    """Exact edits on the original text (1-based lines, character columns)."""

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()

    def line(self, n: int) -> str:
        return self.lines[n - 1] if 0 < n <= len(self.lines) else ""

    def remove_kwarg(self, kw: Kwarg) -> tuple[Edit, ...]:
        first, last = self.line(kw.line), self.line(kw.end_line)
        before, after = first[: kw.column - 1], last[kw.end_column - 1:]
        if not before.strip() and re.match(r"^\s*,?\s*(#.*)?$", after):
            if kw.end_line < len(self.lines):
                return (Edit(kw.line, 1, kw.end_line + 1, 1, ""),)
            return (Edit(kw.line, 1, kw.end_line, len(last) + 1, ""),)
        m = re.match(r"^\s*,[ \t]*", after)
        if m and after[m.end():].strip():
            return (Edit(kw.line, kw.column, kw.end_line, kw.end_column + m.end(), ""),)
        m2 = re.search(r",\s*$", before)
        if m2:
            end = kw.end_column + (m.end() if m else 0)
            return (Edit(kw.line, m2.start() + 1, kw.end_line, end, ""),)
        if m:
            return (Edit(kw.line, kw.column, kw.end_line, kw.end_column + m.end(), ""),)
        return (Edit(kw.line, kw.column, kw.end_line, kw.end_column, ""),)

    def rename(self, kw: Kwarg, new: str) -> tuple[Edit, ...]:
        return (Edit(kw.line, kw.column, kw.line, kw.name_end_column, new),)

    def replace(self, kw: Kwarg, text: str) -> tuple[Edit, ...]:
        return (Edit(kw.line, kw.column, kw.end_line, kw.end_column, text),)


def _has_name(scan: Scan, name: str) -> bool:
    return any(i.name == name or i.module.split(".")[-1] == name for i in scan.imports) or \
        name in scan.names


def _import_edits(scan: Scan, ed: _Edits, module: str, name: str) -> tuple[Edit, ...]:
    """Add ``name`` to an existing ``from module import ...`` line, or a new import line."""
    for imp in scan.imports:
        if imp.module == module and imp.single_line and imp.alias_columns:
            text = ed.line(imp.line)
            end = imp.alias_columns[-1][1]
            if "(" not in text:
                return (Edit(imp.line, end, imp.line, end, f", {name}"),)
    last = max((i.end_line for i in scan.imports), default=0)
    return (Edit(last + 1, 1, last + 1, 1, f"from {module} import {name}\n"),)


def _known_keywords(site: CallSite, versions: dict[str, tuple[str | None, str]]
                    ) -> tuple[str, ...] | None:
    """The real keyword names of the call's class in the releases vramdoc ships (hf_names.json:
    transformers 5.23 / peft 0.21), or None when not checked (older releases, TRL classes)."""
    from vramdoc.doctor.versions import parse_version
    from vramdoc.setup import hf_names

    names = hf_names()
    if site.cls in ("TrainingArguments", "Seq2SeqTrainingArguments", "BitsAndBytesConfig"):
        v = versions.get("transformers", (None, ""))[0]
        if v is not None and parse_version(v) < (5, 0, 0):
            return None
        known = tuple(names["BitsAndBytesConfig" if site.cls == "BitsAndBytesConfig"
                            else "TrainingArguments"])
        extra = ("activation_checkpointing", "activation_checkpointing_kwargs")
        return known + extra + (_SEQ2SEQ_EXTRA if site.cls.startswith("Seq2Seq") else ())
    if site.cls == "LoraConfig":
        v = versions.get("peft", (None, ""))[0]
        if v is not None and parse_version(v) < (0, 17, 0):
            return None
        return tuple(names["LoraConfig"])
    return None


def _did_you_mean(name: str, known: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.7)
    return close[0] if close else ""


def check_api(path: str, scan: Scan, text: str, versions: dict[str, tuple[str | None, str]],
              line_of: Any = None, fixable: bool = True) -> list[Finding]:
    """The API findings of one scanned source (see the module doc for the codes)."""
    changes = load_changes()
    by_kw: dict[str, list[Change]] = {}
    by_import: dict[str, Change] = {}
    for c in changes:
        if c.kind == "keyword":
            by_kw.setdefault(c.name, []).append(c)
        else:
            by_import[c.name] = c
    ed = _Edits(text)
    line_of = line_of or (lambda line: (line, None))
    out: list[Finding] = []

    def add(line: int, column: int | None, code: str, severity: str, message: str, fix: str,
            edits: tuple[Edit, ...]) -> None:
        ln, cell = line_of(line)
        if cell is not None or not fixable:
            edits = ()
        kw: dict[str, Any] = {"column": column, "edits": edits}
        if cell is not None:
            kw["cell"] = cell
        out.append(Finding(path=path, line=ln, code=code, severity=severity,  # type: ignore[arg-type]
                           message=message, fix=fix, **kw))

    for site in scan.calls:
        groups = _groups(site)
        call = f"{site.cls}.from_pretrained" if "from_pretrained" in groups else site.cls
        present = {k.name for k in site.kwargs}
        known = _known_keywords(site, versions)
        for kw in site.kwargs:
            change = next((c for c in by_kw.get(kw.name, ()) if groups & set(c.applies_to)),
                          None)
            if change is None:
                if known is not None and kw.name not in known:
                    guess = _did_you_mean(kw.name, known)
                    add(kw.line, kw.column, "A104", "error",
                        f"{site.cls} has no keyword {kw.name!r}"
                        + (f" (did you mean {guess!r}?)" if guess else ""),
                        f"use {guess}" if guess else "remove it", ())
                continue
            state = _applies(change, versions)
            if state is None:
                continue
            lib = _version_text(change.library, versions)
            if state is False:
                add(kw.line, kw.column, "A106", "info",
                    f"{call}({kw.name}=...): {change.message} in {change.library} "
                    f"{change.since}; fine with {lib}, breaks on upgrading",
                    _fix_text(change), ())
                continue
            edits: tuple[Edit, ...] = ()
            sibling = change.unless in present if change.unless else False
            if kw.editable:
                if sibling:
                    edits = ed.remove_kwarg(kw)
                elif change.rewrite:
                    if kw.value is True:
                        edits = ed.replace(kw, change.rewrite)
                        if change.needs_import:
                            mod, name = change.needs_import.split(":")
                            if not _has_name(scan, name):
                                edits += _import_edits(scan, ed, mod, name)
                    elif kw.value is False or kw.value is None:
                        edits = ed.remove_kwarg(kw)
                elif change.replacement:
                    edits = ed.rename(kw, change.replacement)
                else:
                    edits = ed.remove_kwarg(kw)
            if change.status == "unknown":
                code, severity = "A104", "error"
                guess = "" if change.rewrite else _did_you_mean(kw.name, known or ())
                msg = change.message + (f" (did you mean {guess!r}?)" if guess else "")
            else:
                code = {"removed": "A101", "renamed": "A102", "deprecated": "A103"}[change.status]
                severity = "warning" if change.status == "deprecated" else "error"
                verb = "deprecated since" if change.status == "deprecated" else "since"
                msg = f"{change.message} ({change.library} {change.since}; you have {lib})" \
                    if change.status != "deprecated" else \
                    f"{change.message} ({verb} {change.library} {change.since})"
            fix = f"remove it: {change.unless} is already given" if sibling \
                else _fix_text(change)
            add(kw.line, kw.column, code, severity, f"{call}({kw.name}=...): {msg}", fix,
                edits)
    seen: set[tuple[int, str]] = set()
    for imp in scan.imports:
        change = by_import.get(f"{imp.module}:{imp.name}")
        if change is None or (imp.line, imp.name) in seen:
            continue
        seen.add((imp.line, imp.name))
        state = _applies(change, versions)
        if state is None:
            continue
        lib = _version_text(change.library, versions)
        rmod, rname = (change.replacement or ":").split(":")
        fix = f"from {rmod} import {rname}" if change.replacement else "remove the import"
        if state is False:
            add(imp.line, imp.column, "A106", "info",
                f"from {imp.module} import {imp.name}: {change.message} in {change.library} "
                f"{change.since}; fine with {lib}, breaks on upgrading", fix, ())
            continue
        edits = ()
        if imp.single_line and change.replacement:
            if len(imp.names) == 1:
                edits = (Edit(imp.line, imp.column, imp.end_line, imp.end_column,
                              f"from {rmod} import {rname}"),)
            else:
                i = imp.names.index(imp.name)
                start, end = imp.alias_columns[i]
                line = ed.line(imp.line)
                if i + 1 < len(imp.names):
                    end = imp.alias_columns[i + 1][0]
                else:
                    start = imp.alias_columns[i - 1][1]
                edits = (Edit(imp.line, start, imp.line, end, ""),
                         Edit(imp.line, len(line) + 1, imp.line, len(line) + 1,
                              f"\nfrom {rmod} import {rname}"))
        add(imp.line, imp.column, "A105", "error",
            f"from {imp.module} import {imp.name}: {change.message} ({change.library} "
            f"{change.since}; you have {lib})", fix, edits)
    return out


def _fix_text(change: Change) -> str:
    if change.rewrite:
        return f"write {change.rewrite}" + (f" (or drop it when {change.unless} is given)"
                                            if change.unless else "")
    if change.replacement:
        return f"use {change.replacement}"
    return "remove it"

