"""Readers of what users already have: scripts, command lines, framework configs, run outputs.

Each reader module exposes ``detect(path, text) -> bool`` and ``read(path, text) -> SourceReport``
(see :mod:`vramdoc.readers.findings`). Nothing a user wrote is imported or executed.
"""

from __future__ import annotations

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
    "vramdoc.readers.runs",  # config.json / adapter_config.json / trainer_state.json
)
