"""Print a catalog entry's targets against a cohort, with the lesions at diagnosis and the
patterns of progression: the table each long description quotes.

    python scripts/catalog_check.py egfr-first-line-gefitinib -n 1000 [--set PATH=VALUE ...]
"""

import argparse
import time

import numpy as np

import simulator
from simulator.cohort import run_cohort
from simulator.cli import parse_overrides


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("scenario")
    parser.add_argument("-n", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--set", dest="assignments", action="append", default=[])
    parser.add_argument("--arm", action="append")
    args = parser.parse_args()
    scenario = simulator.load_scenario(args.scenario)
    started = time.perf_counter()
    result = run_cohort(scenario, n=args.n, workers=args.workers, arms=args.arm,
                        settings=parse_overrides(tuple(args.assignments)) or None)
    seconds = time.perf_counter() - started
    table = result.endpoints
    print(f"{args.n} patients x {len(result.arms)} arms in {seconds:.0f} s")
    with np.printoptions(precision=3):
        print(result.compare_reference().drop(columns="description", errors="ignore").to_string(index=False))
    summary = result.summary()
    columns = ["arm", "median_pfs_months", "pfs_ci_low", "pfs_ci_high", "median_os_months",
               "objective_response", "rmst_pfs_months", "local_therapies_per_patient",
               "median_relative_dose"]
    print(summary[[c for c in columns if c in summary]].round(3).to_string(index=False))
    if len(result.arms) > 1:
        comparisons = result.comparisons()
        print(comparisons.round(4).to_string(index=False))
    for arm in result.arms:
        rows = table[table["arm"] == arm]
        first = rows["progressing_lesions"].map(lambda c: c[0] if len(c) else np.nan).dropna()
        print(f"[{arm}] lesions at diagnosis: median {rows['lesions_at_diagnosis'].median():.0f} "
              f"(IQR {rows['lesions_at_diagnosis'].quantile(.25):.0f}-{rows['lesions_at_diagnosis'].quantile(.75):.0f}), "
              f"visible median {rows['visible_lesions_at_diagnosis'].median():.0f} "
              f"(mean {rows['visible_lesions_at_diagnosis'].mean():.1f}); history median "
              f"{rows['history_days'].median() / 365.25:.1f} years")
        print(f"[{arm}] first progressions in 1-3 lesions: {(first <= 3).mean():.0%}; deaths by "
              f"cause: {rows['death_cause'].value_counts(normalize=True).round(2).to_dict()}; "
              f"mean local therapies {rows['local_therapies'].mean():.2f}")
        for column in [c for c in rows.columns if c.startswith("pfs_") and c.endswith("_days")
                       and c != "pfs_days"]:
            line = column[4:-5]
            taken = rows[rows[f"days_on_{line}"] > 0]
            print(f"[{arm}] line {line}: {len(taken)} patients, median PFS on it "
                  f"{taken[column].median() / 30.4375:.1f} months (raw), best response "
                  f"{taken[f'best_response_{line}'].value_counts(normalize=True).round(2).to_dict()}")


if __name__ == "__main__":
    main()
