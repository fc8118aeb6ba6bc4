"""The reading side is light: no torch, transformers or textual where they are not needed."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT

CHECK = """
import sys
{body}
heavy = [m for m in ("torch", "transformers", "textual", "pynvml") if m in sys.modules]
print(",".join(heavy))
"""


def _heavy(body: str) -> str:
    r = subprocess.run([sys.executable, "-c", CHECK.format(body=body)], cwd=ROOT,
                       capture_output=True, text=True, check=True)
    return r.stdout.strip()


def test_monitor_and_watch_once_import_nothing_heavy():
    body = (
        "import vramdoc.monitor\n"
        "from vramdoc.cli import main\n"
        "import contextlib, io\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    main(['watch', 'examples/watch-demo/run', '--once'])\n"
    )
    assert _heavy(body) == ""
