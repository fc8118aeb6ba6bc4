"""A cold `vramdoc doctor` on a script imports what reading a script needs: with the rules
cache filled (as after any earlier run), neither PyYAML nor the planner's search module."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "examples" / "doctor-script" / "train.py"
PROBE = """
import json, sys
from vramdoc.cli import main
code = main(["doctor", sys.argv[1]])
print(json.dumps({"code": code, "yaml": "yaml" in sys.modules,
                  "search": "vramdoc.planner.search" in sys.modules,
                  "readers": sorted(m for m in sys.modules if m.startswith("vramdoc.readers."))}))
"""


def _run(tmp_path: Path) -> dict:
    env = dict(os.environ, VRAMDOC_CACHE_DIR=str(tmp_path / "cache"), PYTHONPATH=str(ROOT))
    env.pop("VRAMDOC_NO_CACHE", None)
    out = subprocess.run([sys.executable, "-c", PROBE, str(SCRIPT)], capture_output=True,
                         text=True, env=env, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def test_doctor_on_a_script_skips_yaml_and_the_search(tmp_path):
    first = _run(tmp_path)  # fills the rules cache
    second = _run(tmp_path)
    assert second["code"] == first["code"]
    assert not second["yaml"]
    assert not second["search"]
    # readers after the script reader are not imported for a .py file
    assert "vramdoc.readers.axolotl" not in second["readers"]
    assert "vramdoc.readers.python_script" in second["readers"]
