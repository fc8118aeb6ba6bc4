"""End-to-end time of a fake-tensor probe of a 7B model (the README's example).

    python -m tests.benchmarks.bench_probe_fake [--runs 3] [-- probe arguments]

Each run is a fresh `vramdoc probe ... --device fake` process (imports of torch, transformers,
peft and bitsandbytes included); the import share is measured apart with a process that only
imports what the probe imports before its steps, the way the probe imports them (its import
phase: ``vramdoc.commands.probe._ImportPhase`` and ``build.preload`` for the same setup), and
exits. Target: <= 10 s end to end on the project's 2-core machines.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

from tests.benchmarks._cold import cold_env, run_once, time_command

DEFAULT_ARGS = ["--model", "llama-2-7b", "--method", "qlora", "--batch", "1", "--seq-len",
                "512", "--device", "fake"]
IMPORTS = "from tests.benchmarks.bench_probe_fake import imports_only; imports_only({args!r})"


def imports_only(probe_args: list[str]) -> None:
    """Import what `vramdoc probe PROBE_ARGS` imports before its steps, as it imports them."""
    from vramdoc.commands.probe import _ImportPhase, _preload

    phase = _ImportPhase()
    import torch  # noqa: F401
    import transformers  # noqa: F401

    import vramdoc.estimate  # noqa: F401
    import vramdoc.probe.doctor  # noqa: F401
    import vramdoc.probe.recipe  # noqa: F401
    import vramdoc.probe.report  # noqa: F401
    import vramdoc.probe.segments  # noqa: F401
    from vramdoc.cli import build_parser
    from vramdoc.commands._setup_args import mapping_from_args
    from vramdoc.models import resolve_model
    from vramdoc.setup import setup_from_mapping

    args = build_parser("probe").parse_args(["probe", *probe_args])
    setup = setup_from_mapping(mapping_from_args(args), source="command line")
    _preload(setup, resolve_model(setup.model))
    phase.end()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("probe_args", nargs="*", help="arguments of `vramdoc probe`")
    ns = ap.parse_args(argv)
    probe_args = ns.probe_args or DEFAULT_ARGS
    wall, cpu = time_command(["probe", *probe_args], ns.runs, "fake probe")
    with tempfile.TemporaryDirectory(prefix="vramdoc-bench-") as tmp:
        env = cold_env(Path(tmp))
        cmd = [sys.executable, "-c", IMPORTS.format(args=list(probe_args))]
        run_once(cmd, env)
        got = [run_once(cmd, env) for _ in range(ns.runs)]
    if any(code != 0 for _w, _c, code in got):
        print("the import-only process failed: no import share", file=sys.stderr)
        return 1
    imp_wall = statistics.median(w for w, _c, _r in got)
    imp_cpu = statistics.median(c for _w, c, _r in got)
    print(f"of which imports (what the probe imports before its steps: torch, transformers, "
          f"peft, bitsandbytes, accelerate, the modeling module, vramdoc's probe): "
          f"{imp_wall:.2f} s wall, {imp_cpu:.2f} s CPU (median); the rest (build, steps, "
          f"report, exit): {cpu - imp_cpu:.2f} s CPU")
    return 0


if __name__ == "__main__":
    sys.exit(main())
