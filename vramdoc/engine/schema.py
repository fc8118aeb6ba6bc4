"""The rule format: what a rule file holds, what a finding carries, and how both are checked.

One rule per YAML file, named ``<CODE>-<name>.yaml``, with a sibling ``<CODE>-<name>.test.yaml``
(see the project's COMMON brief for the fixed format). The code's letter fixes the scope and,
for plan rules, the kind:

====== ========= ==========================================
letter scope     kind
====== ========= ==========================================
H      plan      constraint (hardware / library constraints)
M      plan      lever (memory levers)
T      plan      guidance (training guidance)
D      doctor    the finding kind (nan, overflow, oom ...)
W      watch     the alert kind (loss_spike, memory_creep ...)
====== ========= ==========================================
"""

from __future__ import annotations

import ast
import difflib
import re
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

SCOPES = ("plan", "doctor", "watch")
SEVERITIES = ("error", "warning", "info")
STATUSES = ("stable", "preview")
PLAN_KINDS = ("constraint", "lever", "guidance")

# code letter -> (scope, kind for plan rules or None when the kind is free)
LETTERS: dict[str, tuple[str, str | None]] = {
    "H": ("plan", "constraint"),
    "M": ("plan", "lever"),
    "T": ("plan", "guidance"),
    "D": ("doctor", None),
    "W": ("watch", None),
}

REQUIRED_KEYS = (
    "code", "name", "status", "scope", "kind", "severity", "when", "message", "why",
    "tradeoff", "fix", "references",
)
OPTIONAL_KEYS = ("propose",)
ALL_KEYS = REQUIRED_KEYS + OPTIONAL_KEYS

CODE_RE = re.compile(r"^[A-Z][0-9]{3}$")
NAME_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
KIND_RE = re.compile(r"^[a-z][a-z0-9_]*$")
FILE_RE = re.compile(r"^(?P<code>[^-]+)-(?P<name>.+)\.yaml$")

# Top-level keys of a setup file (vramdoc.setup) that a rule may propose to change, and the
# from_pretrained keywords vramdoc reads under model_kwargs.
SETUP_SECTIONS = (
    "model", "task", "num_labels", "gpu", "model_kwargs", "quantization", "lora", "training",
    "max_seq_length", "prepare_model_for_kbit_training",
)
MODEL_KWARGS = ("dtype", "torch_dtype", "attn_implementation", "device_map", "trust_remote_code",
                "revision", "low_cpu_mem_usage")


def did_you_mean(word: str, known: Any) -> str:
    """`` (did you mean 'x'?)`` for the closest known word, or ``""``."""
    close = difflib.get_close_matches(word, [str(k) for k in known], n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


@dataclass(frozen=True)
class Rule:
    """One validated rule. ``names`` are the context names its condition reads."""

    code: str
    name: str
    status: str
    scope: str
    kind: str
    severity: str
    when: str
    message: str
    why: str
    tradeoff: str
    fix: str
    references: tuple[str, ...]
    propose: Mapping[str, Any] = field(default_factory=dict, hash=False, compare=False)
    path: str = ""
    names: tuple[str, ...] = ()
    message_names: tuple[str, ...] = ()
    # the parsed condition (an ast expression node), compiled once at load time
    tree: ast.expr | None = field(default=None, hash=False, compare=False, repr=False)

    @property
    def title(self) -> str:
        """``CODE name``, as rule listings show it."""
        return f"{self.code} {self.name}"


@dataclass(frozen=True)
class Finding:
    """A rule whose condition held for a context, with its message formatted on that context."""

    code: str
    name: str
    kind: str
    severity: str
    message: str
    fix: str
    propose: dict[str, Any]
    why: str
    rule: Rule = field(repr=False)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready mapping (the rule object reduced to its code)."""
        return {"code": self.code, "name": self.name, "kind": self.kind,
                "severity": self.severity, "message": self.message, "fix": self.fix,
                "propose": dict(self.propose), "why": self.why}


def message_fields(message: str) -> tuple[list[str], str | None]:
    """Root names of the ``str.format`` fields in ``message`` (``{gpu.name:>4}`` -> ``gpu``).

    Returns the names and an error text when the template itself is malformed.
    """
    names: list[str] = []
    try:
        for _literal, fname, _spec, _conv in string.Formatter().parse(message):
            if fname is None:
                continue
            if fname == "" or fname.isdigit():
                return names, "positional fields ({} or {0}) are not allowed; name the value"
            root = re.split(r"[.\[]", fname, maxsplit=1)[0]
            if root not in names:
                names.append(root)
    except ValueError as exc:
        return names, f"bad format template: {exc}"
    return names, None
