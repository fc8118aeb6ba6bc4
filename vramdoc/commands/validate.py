"""`vramdoc validate`: check the estimator against your own measured runs."""

from __future__ import annotations

import argparse
import csv
import io
import sys
from pathlib import Path

from vramdoc.errors import EXIT_OK, ConfigError, UsageError

NAME = "validate"
ORDER = 60
HELP = "compare estimates with peaks you measured (a CSV of setup files and figures)"
DESCRIPTION = """\
Compare vramdoc's estimates with peaks you measured on your own runs.

RUNS.csv has one row per run and the columns
  id        a name for the run
  setup     path to its setup file (YAML/JSON, as `vramdoc estimate --config` reads;
            relative to the CSV file)
  metric    what you measured: allocated (torch.cuda.max_memory_allocated),
            reserved (max_memory_reserved) or nvidia_smi (device memory used)
  measured  the figure, with a unit: 19.25GiB, 23000MiB (GB = GiB)

Each run is compared with the matching view of the estimate; the summary gives the median
and worst absolute error and the worst under-estimate (the side that crashes runs).

example:
  vramdoc validate my_runs.csv"""

_COLUMNS = ("id", "setup", "metric", "measured")
# One row per measured run: 10,000 is far above anyone's log, and keeps the work (one estimate
# per row) to seconds.
MAX_ROWS = 10_000


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("runs", metavar="RUNS.csv", help="CSV with columns id,setup,metric,measured")
    p.add_argument("--json", action="store_true", help="print the comparisons as JSON")


def run(args: argparse.Namespace) -> int:
    from vramdoc.estimate import estimate
    from vramdoc.safeload import MAX_DATA_BYTES, dumps_strict, read_text, short
    from vramdoc.setup import load_setup_file
    from vramdoc.units import format_bytes, parse_size
    from vramdoc.validate import compare, summarize, view_of

    hint = "give a CSV with columns id,setup,metric,measured"
    path = Path(args.runs)
    text = read_text(path, what="CSV", max_bytes=MAX_DATA_BYTES, hint=hint)
    name = short(str(path))
    try:
        reader = csv.DictReader(io.StringIO(text, newline=""))
        missing = [c for c in _COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise UsageError(f"{name}: missing column(s) {', '.join(missing)}",
                             f"the header must name {','.join(_COLUMNS)}")
        rows = []
        for row in reader:
            rows.append(row)
            if len(rows) > MAX_ROWS:
                raise UsageError(f"{name}: more than {MAX_ROWS:,} runs",
                                 "split the CSV; validate compares one row per measured run")
    except csv.Error as exc:  # a field over csv's size limit, a NUL byte, bad quoting
        raise UsageError(f"{name}: not a readable CSV: {exc}", hint) from None
    problems = []
    for i, row in enumerate(rows, start=2):
        if any(row.get(c) is None for c in _COLUMNS):
            problems.append(f"line {i}: has fewer than the {len(_COLUMNS)} columns "
                            f"{','.join(_COLUMNS)}")
            continue
        if not row["setup"].strip():
            problems.append(f"line {i}: the setup column is empty; give the setup file's path")
        try:
            view_of(row["metric"])
            parse_size(row["measured"], what="measured")
        except UsageError as exc:
            problems.append(f"line {i}: {exc.message}")
    if problems:
        raise ConfigError(problems, name, hint)
    results = []
    for row in rows:
        est = estimate(load_setup_file(path.parent / row["setup"].strip()))
        results.append(compare(row["id"], est, row["metric"], parse_size(row["measured"])))
    s = summarize(results)
    if args.json:
        runs = [{"id": r.id, "metric": r.metric, "view": r.view,
                 "measured_bytes": r.measured_bytes, "predicted_bytes": r.predicted_bytes,
                 "error": r.error, "peak_phase": r.peak_phase} for r in results]
        summary = {"count": s.count, "median_abs_error": s.median_abs_error,
                   "worst_abs_error": s.worst_abs_error,
                   "worst_under_estimate": s.worst_under_estimate}
        sys.stdout.write(dumps_strict({"runs": runs, "summary": summary}, indent=2))
        sys.stdout.write("\n")
        return EXIT_OK
    print(f"{'run':<24} {'metric':<12} {'measured':>11} {'predicted':>11} {'error':>8}  peak")
    for r in results:
        print(f"{r.id:<24} {r.metric:<12} {format_bytes(r.measured_bytes):>11} "
              f"{format_bytes(r.predicted_bytes):>11} {100 * r.error:>+7.1f}%  {r.peak_phase}")
    print(f"\n{s.count} runs: median |error| {100 * s.median_abs_error:.1f} %, worst |error| "
          f"{100 * s.worst_abs_error:.1f} %, worst under-estimate "
          f"{100 * s.worst_under_estimate:.1f} %")
    return EXIT_OK
