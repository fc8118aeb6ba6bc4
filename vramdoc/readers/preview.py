"""Read one framework config, command line or run output and estimate it, until ``vramdoc
doctor`` takes over: ``python -m vramdoc.readers.preview FILE [--gpu GPU]``.

Prints the findings (``path:line: CODE severity: message (fix)``), the setup read, as a
vramdoc setup file, and the estimate ``vramdoc estimate --config`` prints for it. Exit codes
as estimate's: 0 fits (or no GPU named), 1 does not fit, 2 unreadable input.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from vramdoc.readers.findings import SourceReport

# the readers of this family, tried in vramdoc.readers.READER_MODULES' order
MODULES = ("shell", "deepspeed", "accelerate", "axolotl", "llamafactory", "trl", "runs")


def read_file(path: Path) -> SourceReport | None:
    """The report of the first reader of this family whose ``detect`` accepts ``path``."""
    text = "" if path.name == "training_args.bin" else path.read_text(encoding="utf-8")
    for name in MODULES:
        mod = importlib.import_module(f"vramdoc.readers.{name}")
        if mod.detect(path, text):
            report: SourceReport = mod.read(path, text)
            return report
    return None


def render_findings(report: SourceReport) -> str:
    lines = []
    for f in report.findings:
        where = f"{report.path}:{f.line}" if f.line else report.path
        fix = f" ({f.fix})" if f.fix else ""
        lines.append(f"{where}: {f.code} {f.severity}: {f.message}{fix}")
    return "\n".join(lines) + ("\n" if lines else "")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m vramdoc.readers.preview", description=__doc__)
    p.add_argument("file", type=Path)
    p.add_argument("--gpu", help="the GPU to check the estimate against (vramdoc gpus)")
    args = p.parse_args(argv)
    from vramdoc.errors import VramdocError

    try:
        if not args.file.is_file():
            raise VramdocError(f"{args.file} does not exist", "give a config, script or run file")
        report = read_file(args.file)
        if report is None:
            raise VramdocError(f"{args.file}: not a format these readers know",
                               "give an axolotl, LLaMA-Factory, TRL, accelerate or DeepSpeed "
                               "config, a shell script, or a run's JSON")
        sys.stdout.write(render_findings(report))
        if report.setup is None:
            return 2 if any(f.severity == "error" for f in report.findings) else 0
        import yaml

        from vramdoc.estimate import estimate
        from vramdoc.estimate.render import render_estimate
        from vramdoc.setup import setup_from_mapping

        setup = setup_from_mapping(report.setup, source=report.path)
        if args.gpu:
            setup = setup.replace(gpu=args.gpu)
        sys.stdout.write("\nsetup read:\n" + yaml.safe_dump(report.setup, sort_keys=False)
                         + "\n")
        est = estimate(setup)
        sys.stdout.write(render_estimate(est))
        return 1 if est.fits is False else 0
    except VramdocError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
