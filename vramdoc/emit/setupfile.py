"""The plan as a setup file (`--emit yaml`): `vramdoc estimate --config` reads it back."""

from __future__ import annotations

from typing import Any


def render_yaml(plan: Any, header: str = "") -> str:
    """A setup file for the plan's setup (``vramdoc.setup.setup_to_mapping``)."""
    import yaml

    from vramdoc.setup import setup_to_mapping

    body = yaml.safe_dump(setup_to_mapping(plan.setup), sort_keys=False,
                          default_flow_style=False, width=100)
    lines = [f"# {line}" for line in header.splitlines()] if header else []
    return "\n".join([*lines, body]) if lines else body
