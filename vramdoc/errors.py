"""Errors a user can act on, and the exit codes the CLI maps them to.

Every error carries a one-line ``message`` naming what is wrong and a ``hint`` saying
what to do. The CLI prints both on stderr and exits with ``exit_code``; a traceback is
shown only with ``--debug``.
"""

from __future__ import annotations

# Exit codes, shared by every subcommand.
EXIT_OK = 0
EXIT_DOES_NOT_FIT = 1  # a plan or estimate that does not fit the GPU; a probe that found problems
EXIT_USAGE = 2  # bad input: unknown model / GPU, malformed config, impossible combination
EXIT_NO_HARDWARE = 3  # `--gpu auto` or `--device cuda` without a usable GPU / driver


class VramdocError(Exception):
    """Base class: a message a person can act on, plus a hint."""

    exit_code = EXIT_USAGE

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\nhint: {self.hint}"


class UsageError(VramdocError):
    """The user's input is wrong (bad flag value, unknown key, impossible combination)."""


class UnknownModelError(UsageError):
    """The model name, repo id or path resolves to nothing."""


class UnknownGpuError(UsageError):
    """The GPU name or size is not understood."""


class ConfigError(UsageError):
    """A setup file is malformed. Lists every problem at once (torchtune's ConfigError habit)."""

    def __init__(self, problems: list[str], source: str = "config", hint: str = "") -> None:
        self.problems = list(problems)
        head = f"{source}: {len(self.problems)} problem(s)" if len(self.problems) > 1 else source
        body = "\n".join(f"  - {p}" for p in self.problems)
        msg = f"{head}:\n{body}" if len(self.problems) > 1 else f"{head}: {self.problems[0]}"
        super().__init__(msg, hint)


class HardwareError(VramdocError):
    """A GPU or driver was asked for and is not there."""

    exit_code = EXIT_NO_HARDWARE


class MissingDependencyError(VramdocError):
    """An optional extra (probe, tui, nvml) is needed and not installed."""

    exit_code = EXIT_USAGE

    def __init__(self, package: str, extra: str, feature: str) -> None:
        super().__init__(
            f"{feature} needs the '{package}' package, which is not installed",
            f'pip install "vramdoc[{extra}]"',
        )
