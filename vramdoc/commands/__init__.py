"""Subcommands. Each module here is one command and defines:

- ``NAME`` (str), ``HELP`` (one line), ``ORDER`` (int, position in ``--help``);
- ``add_arguments(parser: argparse.ArgumentParser) -> None``;
- ``run(args: argparse.Namespace) -> int`` (the exit code).

Modules import heavy packages (torch, textual ...) only inside ``run``: ``vramdoc --help``
and ``vramdoc plan`` must stay light. The CLI discovers modules here by name, so adding a
command never touches ``cli.py``.
"""
