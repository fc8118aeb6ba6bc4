"""`vramdoc doctor` stays headless: reading a script imports nothing heavy (STYLE.md principle
1), checked in a fresh interpreter on the example script with a GPU (estimate + rules)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HEAVY = ("torch", "transformers", "peft", "bitsandbytes", "textual", "pynvml", "accelerate",
         "trl", "deepspeed", "libcst")
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "doctor-script" / "train.py"


def test_doctor_process_imports_nothing_heavy():
    code = (
        "import sys, io, contextlib\n"
        "from vramdoc.cli import main\n"
        "buf = io.StringIO()\n"
        "with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(io.StringIO()):\n"
        f"    rc = main(['doctor', {str(EXAMPLE)!r}, '--gpu', 'RTX-3060-12GB', '--json'])\n"
        f"heavy = [m for m in {HEAVY!r} if m in sys.modules]\n"
        "print(rc, ','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out[0] == "1"  # the example has error-severity findings
    assert out[1:] == [], f"heavy modules imported: {out[1:]}"
