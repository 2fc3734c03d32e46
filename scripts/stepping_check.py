"""Two-sample checks that the engine's joined steps give the same patients as fixed steps.

For each catalog entry (or those named), every arm is run twice on ``-n`` patients: with the
scenario's stepping (joined steps) and with ``simulation.max_step_days = 0`` (fixed steps of
``dt_days``), on independent seeds. Endpoints are compared by two-sample tests: log-rank for
PFS and OS, Fisher's exact test for objective response and for T790M at first progression,
Mann-Whitney for the lesions at diagnosis. With m tests in all, a p-value below 0.05 / m
(Bonferroni) would be a difference.

    python scripts/stepping_check.py [ENTRY ...] -n 1000 [--workers 2] [--out table.csv] [--reference]
"""

import argparse
import time

import numpy as np
import pandas as pd
from scipy import stats

import simulator
from simulator.catalog import catalog_ids
from simulator.cohort import run_cohort
from simulator.survival import logrank

FIXED = {"simulation.max_step_days": 0.0}


def _responded(table: pd.DataFrame) -> np.ndarray:
    return table["best_response"].isin(["CR", "PR"]).to_numpy()


def _t790m_first(table: pd.DataFrame) -> np.ndarray:
    return table["mechanisms_at_progression"].map(lambda found: len(found) > 0 and found[0] == "T790M").to_numpy()


def _fisher(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float]:
    table = [[a.sum(), len(a) - a.sum()], [b.sum(), len(b) - b.sum()]]
    return a.mean(), b.mean(), float(stats.fisher_exact(table).pvalue)


def compare(joined: pd.DataFrame, fixed: pd.DataFrame) -> list[dict]:
    """The tests of one arm: joined against fixed."""
    rows = []
    for endpoint, time_column, event_column in (("PFS", "pfs_days", "progressed"), ("OS", "os_days", "died")):
        test = logrank(joined[time_column], joined[event_column], fixed[time_column], fixed[event_column])
        rows.append({"endpoint": f"{endpoint} (log-rank HR)", "joined": joined[time_column].median(),
                     "fixed": fixed[time_column].median(), "statistic": test["hazard_ratio"],
                     "p_value": test["p_value"]})
    for endpoint, of in (("objective response", _responded), ("T790M at first progression", _t790m_first)):
        a, b, p = _fisher(of(joined), of(fixed))
        rows.append({"endpoint": endpoint, "joined": a, "fixed": b, "statistic": a - b, "p_value": p})
    if joined["lesions_at_diagnosis"].notna().any():
        test = stats.mannwhitneyu(joined["lesions_at_diagnosis"], fixed["lesions_at_diagnosis"])
        rows.append({"endpoint": "lesions at diagnosis (Mann-Whitney)",
                     "joined": joined["lesions_at_diagnosis"].median(),
                     "fixed": fixed["lesions_at_diagnosis"].median(),
                     "statistic": float(test.statistic) / (len(joined) * len(fixed)),
                     "p_value": float(test.pvalue)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("entries", nargs="*")
    parser.add_argument("-n", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--out")
    parser.add_argument("--reference", action="store_true",
                        help="also print each entry's --compare-reference table (joined steps)")
    args = parser.parse_args()
    rows = []
    for entry in args.entries or [e for e in catalog_ids() if e.startswith("egfr-")]:
        timings = {}
        tables = {}
        for name, settings, seed in (("joined", None, args.seed), ("fixed", FIXED, args.seed + 1)):
            started = time.perf_counter()
            result = run_cohort(simulator.load_scenario(entry), n=args.n, seed=seed,
                                workers=args.workers, settings=settings)
            timings[name] = time.perf_counter() - started
            tables[name] = result.endpoints
            if name == "joined" and args.reference:
                with pd.option_context("display.width", 250, "display.max_colwidth", 60):
                    print(result.compare_reference().drop(columns="description", errors="ignore")
                          .to_string(index=False), flush=True)
        print(f"{entry}: joined {timings['joined']:.0f} s, fixed {timings['fixed']:.0f} s", flush=True)
        for arm in tables["joined"]["arm"].unique():
            for row in compare(tables["joined"].query("arm == @arm"), tables["fixed"].query("arm == @arm")):
                rows.append({"entry": entry, "arm": arm, **row})
    table = pd.DataFrame(rows)
    threshold = 0.05 / len(table)
    table["different"] = table["p_value"] < threshold
    with pd.option_context("display.width", 200, "display.max_rows", None):
        print(table.round(4).to_string(index=False))
    print(f"{len(table)} tests; Bonferroni threshold {threshold:.2g}; "
          f"{int(table['different'].sum())} below it; smallest p {table['p_value'].min():.3g}")
    if args.out:
        table.to_csv(args.out, index=False)


if __name__ == "__main__":
    main()
