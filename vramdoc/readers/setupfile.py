"""vramdoc's own setup files (YAML or JSON, the schema of :mod:`vramdoc.setup`), read as they are,
so ``vramdoc doctor run.yaml`` checks the setup that ``vramdoc estimate --config run.yaml``
estimates. The setup's own validation (unknown keys with a did-you-mean, removed keys, bad
values) runs later, on the doctor's side, with each problem on its line.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from vramdoc.readers._common import json_lines, load_yaml
from vramdoc.readers._frameworks import top_keys
from vramdoc.readers.findings import Finding, SourceReport

KIND = "setup"

# a setup file names its model under ``model`` (axolotl says base_model, LLaMA-Factory and TRL
# model_name_or_path) and describes a run with at least one of these sections
_SIGNS = frozenset({"training", "lora", "quantization", "model_kwargs", "max_seq_length",
                    "stack", "num_gpus", "prepare_model_for_kbit_training", "hold_outputs"})
_JSON_KEY = re.compile(r'"([A-Za-z_][A-Za-z0-9_]*)"\s*:')


def _keys(path: Path, text: str) -> set[str]:
    suffix = path.suffix.lower()
    if suffix in (".yml", ".yaml"):
        return top_keys(text)
    if suffix == ".json":
        try:
            data = json.loads(text)
        except ValueError:  # broken JSON: any key it names (read() then says what is wrong)
            return set(_JSON_KEY.findall(text[:50000]))
        return {k for k in data if isinstance(k, str)} if isinstance(data, dict) else set()
    return set()


def detect(path: str | Path, text: str) -> bool:
    p = Path(path)
    if p.name in ("config.json", "adapter_config.json", "trainer_state.json"):
        return False  # a run's files (vramdoc.readers.runs)
    keys = _keys(p, text)
    return "model" in keys and bool(keys & _SIGNS)


def read(path: str | Path, text: str) -> SourceReport:
    p = Path(path)
    data: Any
    if p.suffix.lower() == ".json":
        try:
            data, error = json.loads(text), ""
        except ValueError as exc:
            data, error = None, f"not valid JSON: {exc}"
        lines = json_lines(text) if not error else {}
    else:
        data, lines, error = load_yaml(text)
    if error or not isinstance(data, dict):
        return SourceReport(str(p), KIND, None, (Finding(
            str(p), None, "R200", "error", error or "a setup file holds a mapping at the top",
            "fix the file (see README 'Setup files')"),))
    return SourceReport(str(p), KIND, {k: v for k, v in data.items() if isinstance(k, str)},
                        lines=lines)
