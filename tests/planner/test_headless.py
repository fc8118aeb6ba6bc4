"""`vramdoc plan` stays headless: no torch / transformers / peft / bitsandbytes / textual /
pynvml, nor the watch's msgspec / numpy, in the process (STYLE.md principle 1), checked in a
fresh interpreter."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("torch", "transformers", "peft", "bitsandbytes", "textual", "pynvml", "accelerate",
         # the watch's own dependencies: msgspec (its follower) and numpy (its column path)
         "msgspec", "numpy", "vramdoc.monitor.batch")


def test_plan_process_imports_nothing_heavy():
    code = (
        "import sys, io, contextlib\n"
        "from vramdoc.cli import main\n"
        "buf = io.StringIO()\n"
        "with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(io.StringIO()):\n"
        "    rc = main(['plan', '--model', 'llama-2-7b', '--gpu', '6GB', '--json'])\n"
        f"heavy = [m for m in {HEAVY!r} if m in sys.modules]\n"
        "print(rc, ','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out[0] == "0"
    assert out[1:] == [], f"heavy modules imported: {out[1:]}"
