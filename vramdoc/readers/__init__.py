"""Readers of what users already have: scripts, command lines, framework configs, run outputs.

Each reader module exposes ``detect(path, text) -> bool`` and ``read(path, text) -> SourceReport``
(see :mod:`vramdoc.readers.findings`). Nothing a user wrote is imported or executed.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from vramdoc.errors import UsageError, VramdocError

if TYPE_CHECKING:
    from vramdoc.readers.findings import SourceReport

# Reader modules, tried in this order; the first whose ``detect`` accepts the file reads it.
# A module listed here but not present yet is skipped (readers land one by one).
READER_MODULES: tuple[str, ...] = (
    "vramdoc.readers.notebook",  # .ipynb
    "vramdoc.readers.python_script",  # .py
    "vramdoc.readers.shell",  # python train.py ..., accelerate launch, torchrun, trl sft
    "vramdoc.readers.deepspeed",  # DeepSpeed JSON (zero_optimization ...)
    "vramdoc.readers.accelerate",  # accelerate config YAML (distributed_type ...)
    "vramdoc.readers.axolotl",  # axolotl YAML (base_model, micro_batch_size ...)
    "vramdoc.readers.llamafactory",  # LLaMA-Factory YAML (cutoff_len, finetuning_type ...)
    "vramdoc.readers.trl",  # TRL config YAML (model_name_or_path + SFTConfig keys)
    "vramdoc.readers.setupfile",  # vramdoc's own setup file (model + training / lora ...)
    "vramdoc.readers.runs",  # config.json / adapter_config.json / trainer_state.json
)


def reader_modules() -> list[ModuleType]:
    """The reader modules present, in :data:`READER_MODULES` order (imported on first use)."""
    mods = []
    for name in READER_MODULES:
        try:
            mods.append(importlib.import_module(name))
        except ModuleNotFoundError as exc:
            if exc.name != name:  # a reader that is there but broken must not hide
                raise
    return mods


def _reader_modules_lazily() -> Iterator[ModuleType]:
    """:func:`reader_modules`, each imported only when the caller gets to it."""
    for name in READER_MODULES:
        try:
            mod = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        yield mod


def read_text(path: str | Path) -> str:
    """The text of a user's file, or a UsageError (exit 2) saying why it cannot be read."""
    from vramdoc.safeload import MAX_DATA_BYTES, short

    p = Path(path)
    name = short(str(p))
    try:
        if not p.exists():
            raise UsageError(f"{name}: no such file", "check the path")
        if not p.is_file():
            raise UsageError(f"{name}: not a file", "give a script, notebook or config file")
        # a notebook keeps its cells' outputs (images included): allow it more
        cap = MAX_NOTEBOOK_BYTES if p.suffix.lower() == ".ipynb" else MAX_DATA_BYTES
        if p.stat().st_size > cap:
            raise UsageError(f"{name}: too large to be a script or config (over "
                             f"{cap // 2**20} MiB)", "give the training script or config "
                             "itself; a notebook's outputs can be cleared before checking")
        return p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"{name}: not a UTF-8 text file",
                         "give a script, notebook or config file saved as UTF-8") from None
    except (OSError, ValueError) as exc:  # ENAMETOOLONG, EACCES, ELOOP; NUL byte in the path
        raise UsageError(f"{name}: cannot be read ({getattr(exc, 'strerror', None) or exc})",
                         "check the path and the file's permissions") from None


# Notebooks with their cells' outputs (plots as base64) reach tens of MiB.
MAX_NOTEBOOK_BYTES = 64 * 2**20


class ReaderError(VramdocError):
    """A reader failed on a file (a vramdoc bug, reported without a traceback)."""


def _failed(mod: ModuleType, path: str | Path, exc: Exception) -> ReaderError:
    name = mod.__name__.rsplit(".", 1)[-1]
    return ReaderError(f"{path}: the {name} reader failed ({type(exc).__name__}: {exc})",
                       "this is a vramdoc bug: rerun with --debug for the traceback and report it")


def reader_for(path: str | Path, text: str) -> ModuleType | None:
    """The first reader whose ``detect`` accepts the file, or None (readers after it are not
    imported: a cold ``vramdoc doctor train.py`` loads the script reader alone)."""
    for mod in _reader_modules_lazily():
        try:
            found = mod.detect(str(path), text)
        except VramdocError:
            raise
        except Exception as exc:  # noqa: BLE001 - a reader bug must not become a traceback
            raise _failed(mod, path, exc) from exc
        if found:
            return mod
    return None


def read_with(mod: ModuleType, path: str | Path, text: str) -> SourceReport:
    """``mod.read`` with a reader's own bug turned into a ReaderError."""
    try:
        report: SourceReport = mod.read(str(path), text)
    except VramdocError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise _failed(mod, path, exc) from exc
    return report


def read_source(path: str | Path) -> SourceReport:
    """Read one user file with the reader that recognises it.

    Raises:
        UsageError: the file cannot be read or no reader recognises it (exit code 2).
    """
    text = read_text(path)
    mod = reader_for(path, text)
    if mod is None:
        raise UsageError(f"{path}: not a file vramdoc can read",
                         "give a Python script or notebook, a shell script, an axolotl / "
                         "LLaMA-Factory / TRL / accelerate YAML, a DeepSpeed JSON, a run's "
                         "config.json, or a vramdoc setup file")
    return read_with(mod, path, text)
