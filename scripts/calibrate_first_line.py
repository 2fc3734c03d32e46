"""Calibration of egfr-first-line-gefitinib against its published ranges (not run in CI).

    python scripts/calibrate_first_line.py [--out calibrations/first-line] [--workers 2]
        [--populations 4] [--particles 150] [--patients 100] [--scheduler tcp://HOST:8786]

ABC-SMC (simulator calibrate) with the defaults above: about 110,000 simulated patients and
40 minutes on 2 cores (docs/calibration.md gives the run). Larger runs (e.g. 6 populations of
200 particles, 200 patients each: about 1.2 million patients) want a Dask cluster. Rerunning
the same command resumes from the database in --out; more --populations continue it."""

from __future__ import annotations

import argparse
import sys
import time

from simulator.cli import main

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--out", default="calibrations/first-line")
parser.add_argument("--workers", type=int, default=2)
parser.add_argument("--scheduler", default=None)
parser.add_argument("--populations", type=int, default=4)
parser.add_argument("--particles", type=int, default=150)
parser.add_argument("--patients", type=int, default=100)
args = parser.parse_args()

command = ["calibrate", "egfr-first-line-gefitinib", "--out", args.out, "--populations", str(args.populations),
           "--particles", str(args.particles), "--patients", str(args.patients), "--seed", "1",
           "--workers", str(args.workers), "--predictive", "50"]
if args.scheduler:
    command += ["--scheduler", args.scheduler]
started = time.perf_counter()
try:
    main(command, standalone_mode=True)
except SystemExit as exit_:
    print(f"wall time {time.perf_counter() - started:.0f} s", file=sys.stderr)
    raise
