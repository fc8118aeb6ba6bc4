"""Accuracy of the estimator against measured peaks: ``python -m tests.benchmarks.accuracy``.

Runs every case of ``shared/calibration/measured.csv`` the setup format can express
(``calibration_cases.CASES``), compares like with like (allocated vs allocated, reserved vs
reserved, nvidia-smi vs the device view; 'unknown' vs reserved), and prints each case and the
summary: median and worst absolute error and the worst under-estimate.

Pass ``--csv PATH`` for another copy of the calibration file (default: ../shared/calibration/
measured.csv beside the checkout, or $VRAMDOC_CALIBRATION).
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import sys
from pathlib import Path

from tests.benchmarks.calibration_cases import CASES, VIEW_OF_METRIC
from vramdoc.estimate import estimate
from vramdoc.setup import setup_from_mapping
from vramdoc.units import GiB

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CSV = ROOT.parent / "shared" / "calibration" / "measured.csv"


def load_rows(path: Path) -> dict[str, dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return {row["id"]: row for row in csv.DictReader(fh)}


def run(path: Path) -> list[dict[str, object]]:
    rows = load_rows(path)
    results = []
    for case_id, mapping in CASES.items():
        row = rows.get(case_id)
        if row is None:
            continue
        est = estimate(setup_from_mapping(dict(mapping), source=case_id))
        view = VIEW_OF_METRIC[row["metric"]]
        predicted = getattr(est, view) / GiB
        measured = float(row["measured_gib"])
        results.append({
            "id": case_id, "model": est.model_name, "method": est.setup.method,
            "metric": row["metric"], "view": view.replace("_bytes", ""),
            "measured": measured, "predicted": predicted,
            "error": (predicted - measured) / measured, "peak_phase": est.peak_phase,
            "b": est.setup.training.per_device_train_batch_size, "s": est.setup.max_seq_length,
        })
    return results


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--csv", type=Path,
                    default=Path(os.environ.get("VRAMDOC_CALIBRATION", DEFAULT_CSV)))
    ap.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    args = ap.parse_args(argv)
    if not args.csv.is_file():
        print(f"calibration file not found: {args.csv}", file=sys.stderr)
        return 2
    res = run(args.csv)
    if args.markdown:
        print("| case | model | method | b x s | metric | measured GiB | predicted GiB | error |")
        print("|---|---|---|---|---|---:|---:|---:|")
        for r in res:
            print(f"| {r['id']} | {r['model']} | {r['method']} | {r['b']}x{r['s']} | "
                  f"{r['metric']} | {r['measured']:.2f} | {r['predicted']:.2f} | "
                  f"{100 * r['error']:+.1f} % |")
    else:
        print(f"{'case':<9} {'model':<14} {'method':<10} {'b x s':>8} {'metric':<15}"
              f"{'measured':>9} {'predicted':>10} {'error':>8}  peak phase")
        for r in res:
            print(f"{r['id']:<9} {r['model']:<14} {r['method']:<10} {str(r['b'])+'x'+str(r['s']):>8}"
                  f" {r['metric']:<15}{r['measured']:>9.2f} {r['predicted']:>10.2f}"
                  f" {100 * r['error']:>+7.1f}%  {r['peak_phase']}")
    errs = [abs(r["error"]) for r in res]
    under = min((r["error"] for r in res), default=0.0)
    methods = sorted({r["method"] for r in res})
    print(f"\n{len(res)} cases ({', '.join(methods)}): median |error| "
          f"{100 * statistics.median(errs):.1f} %, worst |error| {100 * max(errs):.1f} %, "
          f"worst under-estimate {100 * min(under, 0):.1f} %")
    return 0


if __name__ == "__main__":
    sys.exit(main())
