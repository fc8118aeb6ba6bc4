"""Doctor reports: text grouped by file, the JSON contract, SARIF 2.1.0 for code-scanning UIs."""

from __future__ import annotations

from typing import Any

from vramdoc.doctor.checks import FileResult
from vramdoc.readers.findings import Finding

_MARK = {"error": "x", "warning": "!", "info": "·"}
_ORDER = {"error": 0, "warning": 1, "info": 2}
SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"


def _sorted(findings: list[Finding]) -> list[Finding]:
    return sorted(findings, key=lambda f: (f.cell or 0, f.line or 0, f.column or 0, f.code))


def location(f: Finding) -> str:
    """``train.py:12:5``; notebooks ``nb.ipynb:cell 3:2``."""
    where = f.path
    if f.cell is not None:
        where += f":cell {f.cell}"
    if f.line is not None:
        where += f":{f.line}"
        if f.column is not None:
            where += f":{f.column}"
    return where


def render_text(results: list[FileResult]) -> str:
    """The human report: per file, its findings in source order, then the totals."""
    from vramdoc.units import format_bytes

    lines: list[str] = []
    totals = {"error": 0, "warning": 0, "info": 0}
    fixable = 0
    for r in results:
        kind = f" ({r.kind})" if r.kind else ""
        lines.append(f"{r.path}{kind}")
        if r.error:
            lines.append(f"  x cannot read: {r.error}")
            lines.append("")
            continue
        if r.setup is not None:
            from vramdoc.estimate.render import describe_setup

            if r.estimate is not None:
                est = r.estimate
                lines.append(f"  setup: {describe_setup(est)}")
                lines.append(f"  estimate: peak allocated {format_bytes(est.peak_allocated_bytes)}"
                             f" ({est.peak_phase}), device {format_bytes(est.device_bytes)}"
                             + (f" on {est.gpu.name} ({format_bytes(est.gpu.memory_bytes)})"
                                if est.gpu is not None else " (no --gpu: fit not judged)"))
        for f in _sorted(r.findings):
            totals[f.severity] += 1
            fixable += bool(f.edits)
            tag = " [fixable]" if f.edits else ""
            lines.append(f"  {location(f)}: {_MARK[f.severity]} {f.code} {f.message}{tag}")
            if f.fix:
                lines.append(f"      fix: {f.fix}")
        if not r.findings:
            lines.append("  no findings")
        lines.append("")
    n = len(results)
    summary = (f"{n} file{'s' if n != 1 else ''}: {totals['error']} error(s), "
               f"{totals['warning']} warning(s), {totals['info']} info")
    unreadable = sum(1 for r in results if r.error)
    if unreadable:
        summary += f"; {unreadable} file(s) could not be read"
    if fixable:
        summary += f"; {fixable} fixable with --fix (writes a .fixed copy) or --diff"
    lines.append(summary)
    return "\n".join(lines) + "\n"


def to_json(results: list[FileResult]) -> dict[str, Any]:
    """``{"files": [{"path", "setup", "estimate", "findings": [...]}]}``."""
    from vramdoc.setup import setup_to_mapping

    files = []
    for r in results:
        entry: dict[str, Any] = {
            "path": r.path, "kind": r.kind,
            "setup": setup_to_mapping(r.setup) if r.setup is not None else None,
            "estimate": r.estimate.to_json() if r.estimate is not None else None,
            "findings": [f.to_json() for f in _sorted(r.findings)],
        }
        if r.error:
            entry["error"] = r.error
        files.append(entry)
    return {"files": files}


def to_sarif(results: list[FileResult]) -> dict[str, Any]:
    """A SARIF 2.1.0 log: one run, one result per finding, rules listed by code."""
    from vramdoc import __version__

    rules: dict[str, dict[str, Any]] = {}
    out: list[dict[str, Any]] = []
    level = {"error": "error", "warning": "warning", "info": "note"}
    for r in results:
        findings = list(r.findings)
        if r.error:
            findings.append(Finding(path=r.path, line=None, code="S100", severity="error",
                                    message=f"cannot read: {r.error}"))
        for f in _sorted(findings):
            rules.setdefault(f.code, {"id": f.code, "shortDescription": {"text": f.code}})
            region: dict[str, Any] = {"startLine": f.line or 1}
            if f.column is not None:
                region["startColumn"] = f.column
            text = f.message + (f" (fix: {f.fix})" if f.fix else "")
            if f.cell is not None:
                text = f"cell {f.cell}: {text}"
            out.append({
                "ruleId": f.code, "level": level[f.severity], "message": {"text": text},
                "locations": [{"physicalLocation": {
                    "artifactLocation": {"uri": f.path.replace("\\", "/")},
                    "region": region}}],
            })
    return {
        "$schema": SARIF_SCHEMA, "version": "2.1.0",
        "runs": [{"tool": {"driver": {"name": "vramdoc", "version": __version__,
                                      "rules": sorted(rules.values(), key=lambda x: x["id"])}},
                  "results": out}],
    }
