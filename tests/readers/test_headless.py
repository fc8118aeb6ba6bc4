"""Reading configs, command lines and run files imports no heavy package."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT

CODE = """
import sys
from pathlib import Path
from vramdoc.readers import read_source
for f in sorted(Path('tests/readers/fixtures').rglob('*')):
    if f.is_file() and f.suffix != '.md':
        read_source(f)
heavy = {'torch', 'transformers', 'peft', 'bitsandbytes', 'accelerate', 'deepspeed', 'trl',
         'textual', 'pynvml'}
print(sorted(heavy & {m.split('.')[0] for m in sys.modules}))
"""


def test_readers_import_no_heavy_package() -> None:
    r = subprocess.run([sys.executable, "-c", CODE], cwd=ROOT, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"
