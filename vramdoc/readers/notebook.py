"""Jupyter notebooks (``.ipynb``): the code cells read as one script, findings per cell and line.

Code cells are joined in order; a map from each line of the joined text back to (cell, line in
cell) lets findings point at ``cell 4, line 2``. Cells are numbered from 1 over every cell of
the notebook (markdown included), as they appear on screen. IPython lines (``!pip install``,
``%%time``, ``%cd``) are blanked to comments so the rest of the cell still parses.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from vramdoc.errors import UsageError
from vramdoc.readers._pyscan import Scan, scan_source
from vramdoc.readers.findings import SourceReport
from vramdoc.safeload import show

KIND = "notebook"


@dataclass(frozen=True)
class Joined:
    """The notebook's code as one text, and where each of its lines came from."""

    text: str
    origin: tuple[tuple[int, int], ...]  # index line-1 -> (cell number, line in cell)

    def line_of(self, line: int | None) -> tuple[int | None, int | None]:
        if line is None or not 1 <= line <= len(self.origin):
            return line, None
        cell, ln = self.origin[line - 1]
        return ln, cell


def detect(path: str, text: str) -> bool:
    return Path(path).suffix.lower() == ".ipynb"


def join_cells(path: str, text: str) -> Joined:
    """The code cells of a notebook's JSON, joined (see module doc).

    Raises:
        UsageError: the file is not notebook JSON.
    """
    try:
        nb = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{path}: not a notebook (invalid JSON: {exc.msg}, line {exc.lineno})",
                         "give a .ipynb file saved by Jupyter, or the script itself") from None
    except (RecursionError, ValueError):  # 100,000 brackets; a 5,000-digit number
        raise UsageError(f"{path}: not a notebook (its JSON nests too deeply or holds a "
                         "number Python refuses to read)",
                         "give a .ipynb file saved by Jupyter, or the script itself") from None
    cells = nb.get("cells") if isinstance(nb, dict) else None
    if not isinstance(cells, list):
        raise UsageError(f"{path}: not a notebook (no 'cells' list)",
                         "give a .ipynb file saved by Jupyter (nbformat 4)")
    lines: list[str] = []
    origin: list[tuple[int, int]] = []
    for number, cell in enumerate(cells, 1):
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        src = cell.get("source", "")
        if isinstance(src, list) and all(isinstance(x, str) for x in src):
            src = "".join(src)
        elif not isinstance(src, str):  # nbformat 4: a string or a list of strings
            raise UsageError(f"{path}: cell {number}'s source is {show(src)}, not text",
                             "nbformat 4 keeps a cell's source as a string or a list of "
                             "strings; re-save the notebook with Jupyter")
        magic_cell = src.lstrip().startswith("%%")
        for i, line in enumerate(src.splitlines(), 1):
            stripped = line.lstrip()
            if magic_cell or stripped.startswith(("!", "%")):
                indent = line[: len(line) - len(stripped)]
                line = f"{indent}pass  # {stripped}" if indent else f"# {stripped}"
            lines.append(line)
            origin.append((number, i))
        lines.append("")  # cells are separate statements
        origin.append((number, len(src.splitlines()) + 1))
    return Joined("\n".join(lines) + "\n", tuple(origin))


def scan_notebook(path: str, text: str) -> tuple[Scan, Joined]:
    joined = join_cells(path, text)
    return scan_source(joined.text), joined


def read(path: str, text: str) -> SourceReport:
    from vramdoc.readers.python_script import report_from_scan

    scan, joined = scan_notebook(path, text)
    return report_from_scan(path, scan, kind=KIND, line_of=joined.line_of)

