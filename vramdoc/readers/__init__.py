"""Readers of what users already have: scripts, command lines, framework configs, run outputs.

Each reader module exposes ``detect(path, text) -> bool`` and ``read(path, text) -> SourceReport``
(see :mod:`vramdoc.readers.findings`). Nothing a user wrote is imported or executed.
"""
