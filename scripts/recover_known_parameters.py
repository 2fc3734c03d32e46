"""Does ABC-SMC recover known parameters of the first-line scenario? (not run in CI)

    python scripts/recover_known_parameters.py [--out calibrations/recovery] [--cohort 1000]
        [--populations 3] [--particles 60] [--patients 60] [--workers 2]

The truth is the catalog's own values of the parameters its ``[calibration]`` names. A cohort of
``--cohort`` patients is simulated at the truth (seed 7, not the calibration's seed, so the
particles do not share its random numbers), its summaries become the targets (the 95% CI of
response and T790M share; median PFS plus or minus one scan interval, the resolution at which a
scan-read median can move), and the scenario is calibrated against them. The script prints each
parameter's truth against its posterior median and 95% interval, and exits 1 if an interval
misses its truth. The test suite runs the same check at small size on a cheap scenario
(``tests/test_calibration.py::test_calibration_recovers_known_parameters``).
"""

from __future__ import annotations

import argparse
import sys
import time

import simulator
from simulator import calibration
from simulator.cohort import observed_metric, run_cohort
from simulator.scenario import parameter_value, scenario_to_dict, validate_scenario

SCENARIO = "egfr-first-line-gefitinib"
TRUTH_SEED = 7

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--out", default="calibrations/recovery")
parser.add_argument("--cohort", type=int, default=1000)
parser.add_argument("--populations", type=int, default=3)
parser.add_argument("--particles", type=int, default=60)
parser.add_argument("--patients", type=int, default=60)
parser.add_argument("--workers", type=int, default=2)
args = parser.parse_args()

started = time.perf_counter()
scenario = simulator.load_scenario(SCENARIO)
resolved = scenario_to_dict(scenario)
truth = {path: parameter_value(resolved, path) for path in scenario.calibration.parameters}

cohort = run_cohort(scenario, n=args.cohort, seed=TRUTH_SEED, workers=args.workers)
scan_months = scenario.monitoring.visit_every_days / 30.4375
targets = {}
for metric in scenario.calibration.targets:
    value, low, high = observed_metric(metric, cohort.endpoints)
    if metric == "median_pfs_months":
        low, high = value - scan_months, value + scan_months
    targets[metric] = [float(low), float(high)]
    print(f"target {metric}: observed {value:.4g}, range [{low:.4g}, {high:.4g}]")
resolved["reference"] = {**resolved["reference"], **targets}
problem = validate_scenario(resolved)

result = calibration.calibrate(problem, args.out, populations=args.populations, particles=args.particles,
                               patients=args.patients, seed=1, workers=args.workers, predictive_draws=0,
                               progress=lambda stats: print(calibration.format_progress(stats), flush=True))
quantiles = result.quantiles().set_index("parameter")
covered = True
for path, value in truth.items():
    low, median, high = (quantiles.loc[path, q] for q in ("q0.025", "q0.5", "q0.975"))
    inside = low <= value <= high
    covered &= inside
    print(f"{path}: truth {value:.4g}, posterior median {median:.4g} [95%: {low:.4g}, {high:.4g}]"
          f" {'covers' if inside else 'MISSES'}")
print(f"{args.cohort} truth patients and {int(result.populations['simulated'].sum()) * args.patients:,} "
      f"calibration patients in {time.perf_counter() - started:.0f} s")
sys.exit(0 if covered else 1)
