"""Command line: parse -> call the core -> render -> exit code. No logic lives here."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from types import ModuleType

from vramdoc import __version__
from vramdoc.errors import EXIT_USAGE, VramdocError


def _command_modules(only: str | None = None) -> list[ModuleType]:
    """Every command module, or only ``only``'s when a module of that name defines it (the
    cold path of one command then imports nothing the other commands need)."""
    import vramdoc.commands as pkg

    if only is not None and not only.startswith("_"):
        try:
            mod = importlib.import_module(f"vramdoc.commands.{only}")
        except ImportError:
            mod = None
        if mod is not None and getattr(mod, "NAME", None) == only and hasattr(mod, "run"):
            return [mod]
    mods = []
    for info in pkgutil.iter_modules(pkg.__path__):
        if info.name.startswith("_"):
            continue
        mod = importlib.import_module(f"vramdoc.commands.{info.name}")
        if hasattr(mod, "NAME") and hasattr(mod, "run"):
            mods.append(mod)
    return sorted(mods, key=lambda m: (getattr(m, "ORDER", 100), m.NAME))


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as one line with exit code 2, no usage dump."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise VramdocError(message, f"see `{self.prog} --help`")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser of every command, or of ``command`` alone when it names one."""
    parser = _Parser(
        prog="vramdoc",
        description="GPU-memory planner and training doctor for fine-tuning Hugging Face LLMs.",
    )
    parser.add_argument("--version", action="version", version=f"vramdoc {__version__}")
    parser.add_argument(
        "--debug", action="store_true", help="show the full traceback when something fails"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for mod in _command_modules(command):
        p = sub.add_parser(
            mod.NAME, help=mod.HELP, description=getattr(mod, "DESCRIPTION", mod.HELP),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                       help="show the full traceback when something fails")
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``vramdoc`` console script. Returns the exit code."""
    argv = sys.argv[1:] if argv is None else argv
    debug = "--debug" in argv
    try:
        first = next((a for a in argv if not a.startswith("-")), None)
        parser = build_parser(first if first and first.isidentifier() else None)
        args = parser.parse_args(argv)
        if not getattr(args, "command", None):
            parser.print_help(sys.stderr)
            return EXIT_USAGE
        return int(args._run(args))
    except VramdocError as exc:
        if debug:
            raise
        print(f"error: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"hint: {exc.hint}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
