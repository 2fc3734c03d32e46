"""Lesions at diagnosis with joined against fixed history steps, on independent samples.

Runs only the pre-diagnosis histories of a catalog entry's patients: two samples with the
engine's joined steps and two with fixed steps (``simulation.max_step_days = 0``), each on its
own seed, ``-n`` patients per sample. Reports each sample's median lesions and days to
diagnosis, the Mann-Whitney test of the pooled joined against the pooled fixed samples, and the
same test within each stepping (two samples that differ only by their seeds), which shows how
far medians move from seed to seed.

    python scripts/history_stepping_check.py [ENTRY] -n 2000 [--workers 2] [--seed 31]
"""

import argparse
from concurrent.futures import ProcessPoolExecutor

import numpy as np
from scipy import stats

import simulator
from simulator.catalog import catalog_path
from simulator.cohort import draw_patient
from simulator.history import grow_to_diagnosis
from simulator.lowering import lower
from simulator.scenario import scenario_to_dict, validate_scenario

FIXED = ("fixed steps", {"simulation.max_step_days": 0.0})
CHUNK = 250


def histories(task) -> np.ndarray:
    """(lesions alive at diagnosis, days to diagnosis) of each patient of a chunk."""
    entry, fixed, seed, patients = task
    resolved = scenario_to_dict(simulator.load_scenario(catalog_path(entry)))
    layers = [FIXED] if fixed else []
    rows = []
    for patient in patients:
        raw, _ = draw_patient(resolved, resolved["cohort"], seed, patient, layers)
        scenario = validate_scenario(raw)
        diagnosis = grow_to_diagnosis(scenario, lower(scenario), seed, patient)
        rows.append(((diagnosis.cells.sum(axis=1) > 0).sum(), diagnosis.days))
    return np.array(rows, dtype=float).reshape(-1, 2)


def sample(pool, entry: str, fixed: bool, seed: int, n: int) -> np.ndarray:
    tasks = [(entry, fixed, seed, range(start, min(start + CHUNK, n)))
             for start in range(0, n, CHUNK)]
    return np.concatenate(list(pool.map(histories, tasks)))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("entry", nargs="?", default="egfr-first-line-gefitinib")
    parser.add_argument("-n", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--seed", type=int, default=31, help="first of four consecutive seeds")
    args = parser.parse_args()
    samples = {}
    with ProcessPoolExecutor(args.workers) as pool:
        for offset, fixed in enumerate((False, True, False, True)):
            seed = args.seed + offset
            rows = sample(pool, args.entry, fixed, seed, args.n)
            samples.setdefault(fixed, []).append(rows)
            print(f"{'fixed' if fixed else 'joined'} seed {seed}: median lesions "
                  f"{np.median(rows[:, 0]):g}, median days {np.median(rows[:, 1]):.1f}")
    joined, fixed = (np.concatenate(samples[key]) for key in (False, True))
    lesions = stats.mannwhitneyu(joined[:, 0], fixed[:, 0]).pvalue
    days = stats.mannwhitneyu(joined[:, 1], fixed[:, 1]).pvalue
    print(f"pooled, joined / fixed: median lesions {np.median(joined[:, 0]):g} / "
          f"{np.median(fixed[:, 0]):g} (Mann-Whitney p {lesions:.2f}), median days "
          f"{np.median(joined[:, 1]):.1f} / {np.median(fixed[:, 1]):.1f} (p {days:.2f})")
    for key, name in ((False, "joined"), (True, "fixed")):
        first, second = samples[key]
        p = stats.mannwhitneyu(first[:, 0], second[:, 0]).pvalue
        print(f"{name}, seed against seed: lesions p {p:.2f}")


if __name__ == "__main__":
    main()
