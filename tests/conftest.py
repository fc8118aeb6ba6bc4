"""Shared test fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"

# No test reaches the network: force Hugging Face libraries offline.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# The parsed-rules cache goes to a folder of this test session, not the user's ~/.cache.
if "VRAMDOC_CACHE_DIR" not in os.environ:
    import tempfile

    os.environ["VRAMDOC_CACHE_DIR"] = tempfile.mkdtemp(prefix="vramdoc-test-cache-")


@pytest.fixture
def run_cli(capsys):
    """Run `vramdoc ARGS` in-process; returns (exit_code, stdout, stderr)."""
    from vramdoc.cli import main

    def _run(*args: str) -> tuple[int, str, str]:
        code = main(list(args))
        out = capsys.readouterr()
        return code, out.out, out.err

    return _run
