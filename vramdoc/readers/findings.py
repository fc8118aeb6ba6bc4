"""The located diagnostic every reader and doctor check returns (ruff's shape: a code, a
range, a message, a fix, and an optional mechanical rewrite).

Readers are pure functions per source format (a Python script read as a syntax tree, an
axolotl / LLaMA-Factory / TRL YAML, a command line, a DeepSpeed JSON, a run output): each
returns a :class:`SourceReport` with the setup it found, as a mapping in the setup-file schema
that :func:`vramdoc.setup.setup_from_mapping` validates, plus located findings. A reader knows
nothing about the others; :mod:`vramdoc.readers` picks one per file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Severity = Literal["error", "warning", "info"]
SEVERITIES: tuple[Severity, ...] = ("error", "warning", "info")


@dataclass(frozen=True)
class Edit:
    """Replace the text between two 1-based (line, column) positions; columns count characters
    from 1 and ``end`` is exclusive. An empty ``replacement`` deletes."""

    line: int
    column: int
    end_line: int
    end_column: int
    replacement: str


@dataclass(frozen=True)
class Finding:
    """One located problem or note. ``line``/``column`` are 1-based, None when unknown."""

    path: str
    line: int | None
    code: str
    severity: Severity
    message: str
    fix: str = ""
    column: int | None = None
    edits: tuple[Edit, ...] = ()  # a mechanical rewrite, applied by ``doctor --fix``
    cell: int | None = None  # notebooks: 1-based code-cell number; ``line`` is within the cell

    def to_json(self) -> dict[str, Any]:
        out = {"code": self.code, "severity": self.severity, "line": self.line,
               "column": self.column, "message": self.message, "fix": self.fix,
               "fixable": bool(self.edits)}
        if self.cell is not None:
            out["cell"] = self.cell
        return out


@dataclass(frozen=True)
class SourceReport:
    """What one reader found in one file.

    ``setup`` is a mapping in the setup-file schema (model, model_kwargs, quantization, lora,
    training, max_seq_length, num_gpus ...) or None when the file reveals no setup (an
    accelerate config alone, a notes file). ``lines`` maps a setup key path such as
    ``"training.optim"`` to the line that set it, so later checks can point at it.
    """

    path: str
    # python, notebook, shell, axolotl, llamafactory, trl, accelerate, deepspeed or run
    kind: str
    setup: dict[str, Any] | None
    findings: tuple[Finding, ...] = ()
    lines: dict[str, int] = field(default_factory=dict)
    # notebooks: the cell of each entry of ``lines`` (whose lines then count within the cell)
    cells: dict[str, int] = field(default_factory=dict)
