"""`vramdoc doctor`: check the training scripts, notebooks and configs users already have."""

from __future__ import annotations

import argparse
import json
import re
import sys

from vramdoc.errors import EXIT_DOES_NOT_FIT, EXIT_OK, EXIT_USAGE, UsageError

# the libraries with API-change data in rules/api/
LIBRARY_FLAGS = ("transformers", "peft", "trl", "accelerate")

NAME = "doctor"
ORDER = 15
HELP = "check a training script, notebook or config: API breaks, rules, memory, fixes"
DESCRIPTION = """\
Read what you already have, without importing or running it: a Python training script or
notebook (from_pretrained, BitsAndBytesConfig, LoraConfig, TrainingArguments, Trainer ...),
or any config file a vramdoc reader recognises. For each file, say line by line:

  A1xx  keywords and imports that your transformers / peft / trl release removed, renamed or
        deprecated, and keys that never existed (data: rules/api/*.yaml)
  H/M/T the plan rules on the setup the file describes (hardware, memory, guidance)
  S2xx  the setup's validity, and the estimate against --gpu (or a GPU the file names):
        fits or not, and the planner's closest setup that fits
  S1xx  what the reader could not know (values from variables, `...` elisions, syntax errors)

Library releases: --transformers/--peft/--trl/... flags, else a pin in a requirements*.txt
beside the file, else the installed version, else the newest release.

examples:
  vramdoc doctor train.py --gpu RTX-3060-12GB
  vramdoc doctor train.py notebook.ipynb --json
  vramdoc doctor train.py --emit yaml > setup.yaml      # then estimate / plan / probe it
  vramdoc doctor train.py --fix                         # writes train.fixed.py beside it
  vramdoc doctor train.py --diff                        # the same changes as a unified diff
  vramdoc doctor train.py --format sarif > doctor.sarif

exit codes: 0 no error-severity finding, 1 at least one (an API break, a hardware rule, a
setup that does not fit), 2 a file cannot be read or a flag is wrong."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("paths", nargs="+", metavar="PATH", help="files to check")
    p.add_argument("--gpu", "-g", metavar="GPU",
                   help="judge the fit on this GPU (catalog name, a size such as 24GB, or auto)")
    p.add_argument("--model", "-m", help="the model, when the file does not name it literally")
    p.add_argument("--seq-len", "-s", type=int, metavar="N",
                   help="max_seq_length, when the file does not say")
    for lib in LIBRARY_FLAGS:
        p.add_argument(f"--{lib}", metavar="VERSION",
                       help=f"check against this {lib} release (default: a requirements*.txt "
                            "pin beside the file, else the installed one, else the newest)")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print the JSON report on stdout")
    out.add_argument("--format", choices=("text", "json", "sarif"), default="text",
                     help="report format on stdout (default text)")
    out.add_argument("--emit", choices=("yaml",),
                     help="print the setup the file describes as a vramdoc setup file "
                          "(the report goes to stderr)")
    out.add_argument("--fix", action="store_true",
                     help="write FILE.fixed.py beside each script with the mechanical fixes "
                          "applied (never overwrites anything)")
    out.add_argument("--diff", action="store_true",
                     help="print the mechanical fixes as a unified diff")
    p.add_argument("--no-plan", action="store_true",
                   help="do not ask the planner for a setup that fits (faster)")


_VERSION = re.compile(r"^\d{1,4}(?:\.\d{1,6}){0,3}(?:[.-]?(?:a|b|rc|dev|post)\d{0,6})*$")


def _check_flags(args: argparse.Namespace) -> None:
    """The flags the files do not say, refused before any file is read."""
    from vramdoc.safeload import short
    from vramdoc.setup import MAX_SEQ_LENGTH

    if args.seq_len is not None and not 0 < args.seq_len <= MAX_SEQ_LENGTH:
        raise UsageError(f"--seq-len must be between 1 and {MAX_SEQ_LENGTH:,}, got "
                         f"{args.seq_len}", "e.g. --seq-len 1024")
    if args.gpu is not None and not args.gpu.strip():
        raise UsageError("--gpu '' names no GPU", "give a catalog name (T4), a size (24GB) "
                         "or auto, or leave --gpu out")
    if args.model is not None and not args.model.strip():
        raise UsageError("--model '' names no model", "give a catalog name, a Hugging Face "
                         "repo id or a config.json path, or leave --model out")
    for lib in LIBRARY_FLAGS:
        v = getattr(args, lib, None)
        if v is not None and not _VERSION.match(v):
            raise UsageError(f"--{lib} {short(v)!r} is not a release number",
                             f"e.g. --{lib} 4.57.1")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from vramdoc.doctor.checks import DoctorOptions, doctor_file
    from vramdoc.doctor.render import render_text, to_json, to_sarif

    _check_flags(args)
    if args.emit and len(args.paths) != 1:
        raise UsageError("--emit yaml takes one file", "run it once per file")
    if args.gpu:
        from vramdoc.hardware import resolve_gpu

        resolve_gpu(args.gpu)  # a wrong --gpu is a usage error before any file is read
    opts = DoctorOptions(
        gpu=args.gpu, model=args.model, seq_len=args.seq_len, plan=not args.no_plan,
        versions={lib: getattr(args, lib, None) for lib in LIBRARY_FLAGS})
    results = [doctor_file(p, opts) for p in args.paths]
    fmt = "json" if args.json else args.format
    report = render_text(results)
    if args.emit:
        r = results[0]
        sys.stderr.write(report)
        if r.setup is None:
            raise UsageError(f"{r.path}: no valid setup to emit",
                             "see the findings above; --model / --seq-len fill what is missing")
        from vramdoc.doctor.emit import setup_yaml

        sys.stdout.write(setup_yaml(r.setup, r.path))
    elif args.fix or args.diff:
        from vramdoc.doctor.fixer import apply_edits, unified_diff, write_fixed

        sys.stderr.write(report)
        for r in results:
            if r.text is None or r.kind != "python":
                if r.kind == "notebook":
                    sys.stderr.write(f"{r.path}: notebooks are not rewritten; apply the fixes "
                                     "listed above by hand\n")
                continue
            fixed, n = apply_edits(r.text, r.findings)
            if n == 0:
                sys.stderr.write(f"{r.path}: nothing to fix mechanically\n")
                continue
            if args.diff:
                sys.stdout.write(unified_diff(Path(r.path), r.text, fixed))
            else:
                out = write_fixed(Path(r.path), fixed)
                sys.stderr.write(f"{r.path}: {n} fix(es) applied, wrote {out}\n")
    elif fmt == "json":
        json.dump(to_json(results), sys.stdout, indent=2)
        sys.stdout.write("\n")
    elif fmt == "sarif":
        json.dump(to_sarif(results), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(report)
    if any(r.error for r in results):
        return EXIT_USAGE
    return EXIT_DOES_NOT_FIT if any(r.errors for r in results) else EXIT_OK
