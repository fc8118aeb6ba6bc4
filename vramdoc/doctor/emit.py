"""The setup a file describes, as a vramdoc setup file (``doctor --emit yaml``)."""

from __future__ import annotations

from typing import Any


def setup_yaml(setup: Any, source: str) -> str:
    import yaml

    from vramdoc.setup import setup_to_mapping

    body = yaml.safe_dump(setup_to_mapping(setup), sort_keys=False, default_flow_style=False)
    return f"# vramdoc setup read from {source} by `vramdoc doctor --emit yaml`\n{body}"
