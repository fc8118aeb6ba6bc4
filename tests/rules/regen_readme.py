"""Regenerate README's ``section:rules`` block from the rule files.

    python -m tests.rules.regen_readme
"""

from __future__ import annotations

import re
from pathlib import Path

from vramdoc.commands.rules import markdown_table

ROOT = Path(__file__).resolve().parents[2]


def readme_block() -> str:
    """The text between the section:rules markers."""
    return "## Rules\n\n" + markdown_table()


def main() -> None:
    path = ROOT / "README.md"
    text = path.read_text(encoding="utf-8")
    block = re.compile(r"(<!-- section:rules -->\n).*?(<!-- /section:rules -->)", re.S)
    if not block.search(text):
        raise SystemExit("README.md has no <!-- section:rules --> block")
    new = block.sub(lambda m: m.group(1) + readme_block() + m.group(2), text)
    path.write_text(new, encoding="utf-8")
    print("README.md section:rules regenerated")


if __name__ == "__main__":
    main()
