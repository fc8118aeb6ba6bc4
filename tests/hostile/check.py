"""What "handled" means for one hostile case, shared by the test and the corpus runner."""

from __future__ import annotations

import json
from pathlib import Path

from tests.hostile.cases import Case


def materialize(case: Case, folder: Path) -> list[str]:
    """Write the case's files into ``folder``; its argv with ``{d}`` replaced."""
    for rel, content in case.files.items():
        p = folder / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            p.write_bytes(content)
        else:
            p.write_text(content, encoding="utf-8")
    return [a.replace("{d}", str(folder)) for a in case.argv]


def _strict(text: str) -> None:
    def refuse(name: str) -> None:
        raise ValueError(f"bare {name} in JSON output")

    json.loads(text, parse_constant=refuse)


def problems(case: Case, code: int, out: str, err: str) -> list[str]:
    """Why the outcome mishandles the case (empty: handled)."""
    found = []
    if code not in case.codes:
        found.append(f"exit {code}, expected {case.codes}")
    if "Traceback" in err or "Traceback" in out:
        found.append("traceback")
    if code == 2 and not err.startswith("error: "):
        found.append("no one-line error message")
    if case.says and case.says.lower() not in err.lower():
        found.append(f"message lacks {case.says!r}")
    if "--json" in case.argv and code in (0, 1):
        try:
            _strict(out)
        except ValueError as exc:
            found.append(f"stdout is not strict JSON: {exc}")
    return found
