"""Virtual cohorts and trial arms with common random numbers.

Patient ``i`` of seed ``s`` draws its parameters from ``SeedSequence(s, spawn_key=(i, 1))``
and its course from ``SeedSequence(s, spawn_key=(i,))`` (the stream ``simulate`` uses for
replicate ``i``). Both depend on nothing but ``(s, i)``: the same patient is the same tumour in
every arm, has the same history until the first decision that differs, and gives the same
result whatever the number of workers.
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

from simulator.endpoints import untreated_doubling_days
from simulator.results import CLINICAL_EVENTS, _flat
from simulator.runner import simulate
from simulator.scenario import (
    REFERENCE_METRICS,
    Distribution,
    Scenario,
    ScenarioError,
    get_path,
    patient_raw,
    scenario_to_dict,
    set_path,
    validate_scenario,
)
from simulator.survival import logrank, median_survival, proportion_ci

DAYS_PER_MONTH = 30.4375
DEFAULT_ARM = "default"


def sample(distribution: Distribution, rng: np.random.Generator) -> Any:
    """One draw of a patient parameter."""
    d = distribution
    kind = d.distribution
    if kind == "fixed":
        return d.value
    if kind == "uniform":
        return float(rng.uniform(d.low, d.high))
    if kind == "loguniform":
        return float(math.exp(rng.uniform(math.log(d.low), math.log(d.high))))
    if kind == "normal":
        low = -math.inf if d.low is None else d.low
        high = math.inf if d.high is None else d.high
        for _ in range(10_000):
            value = float(rng.normal(d.mean, d.sd))
            if low <= value <= high:
                return value
        raise ScenarioError(f"normal(mean={d.mean}, sd={d.sd}): almost no mass in [{low}, {high}]")
    if kind == "lognormal":
        return float(d.median * math.exp(d.sigma * rng.standard_normal()))
    if kind == "poisson":
        return int(rng.poisson(d.mean))
    weights = np.asarray(d.weights if d.weights is not None else [1.0] * len(d.values), float)
    return d.values[int(rng.choice(len(d.values), p=weights / weights.sum()))]


def patient_generator(seed: int, patient: int) -> np.random.Generator:
    """The stream a patient's parameters are drawn from (independent of its course's stream)."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(patient, 1))))


def draw_patient(resolved: dict, cohort: dict, seed: int, patient: int) -> tuple[dict, dict]:
    """The raw scenario of one virtual patient, and the parameter values drawn for it."""
    raw = patient_raw(resolved)
    rng = patient_generator(seed, patient)
    subtype = _draw_subtype(cohort, rng)
    drawn: dict[str, Any] = {"subtype": subtype}
    for path, spec in cohort["parameters"].items():
        value = sample(Distribution.model_validate(spec), rng)
        if isinstance(get_path(raw, path), int) and not isinstance(value, bool):
            value = int(round(value))
        set_path(raw, path, value)
        drawn[path] = value
    # A subtype's settings win over the distributions (its parameters were still drawn, so
    # every patient consumes the same random numbers whatever its subtype).
    for path, value in cohort["subtypes"].get(subtype, {}).get("set", {}).items():
        set_path(raw, path, value)
        if path in drawn:
            drawn[path] = value
    for lesion, probability in cohort["optional_lesions"].items():
        present = bool(rng.random() < probability)
        drawn[f"has_{lesion}"] = present
        if not present:
            del raw["lesions"][lesion]
            raw["scheduled_local_therapy"] = [
                item for item in raw["scheduled_local_therapy"] if item["lesion"] != lesion
            ]
    return raw, drawn


def _draw_subtype(cohort: dict, rng: np.random.Generator) -> str:
    """The patient's subtype, from one uniform draw (always taken)."""
    u = rng.random()
    cumulative = 0.0
    for name, subtype in cohort["subtypes"].items():
        cumulative += subtype["probability"]
        if u < cumulative:
            return name
    return "base"


@dataclass(frozen=True)
class CohortResult:
    """Endpoints of every (patient, arm), clinical events, and the scenario they came from.

    ``endpoints`` has one row per patient and arm: the endpoints of
    :func:`simulator.endpoints.patient_endpoints` plus the parameters drawn for the patient.
    ``events`` holds the clinical events (progression, biopsies, lines, holidays, local
    therapy, death) of every patient and arm. ``results`` holds full patient results only when
    asked for (``keep_results=True``), as they cost memory.
    """

    scenario: Scenario
    arms: list[str]
    seed: int
    endpoints: pd.DataFrame
    events: pd.DataFrame
    results: dict = field(default_factory=dict, repr=False)

    def summary(self) -> pd.DataFrame:
        """One row per arm: medians with 95% CIs, response, early progression, mechanisms."""
        return pd.DataFrame([arm_summary(self.endpoints[self.endpoints["arm"] == arm], arm)
                             for arm in self.arms])

    def comparisons(self) -> pd.DataFrame:
        """Each arm against the first: differences in medians, hazard ratio, log-rank p and
        the paired per-patient differences only a simulator can give."""
        rows = []
        reference = self.arms[0]
        for arm in self.arms[1:]:
            for endpoint, event in (("pfs_days", "progressed"), ("os_days", "died")):
                rows.append(compare_arms(self.endpoints, reference, arm, endpoint, event))
        return pd.DataFrame(rows)

    def compare_reference(self) -> pd.DataFrame:
        """Observed metrics beside the scenario's published ranges, per arm."""
        rows = []
        for arm in self.arms:
            table = self.endpoints[self.endpoints["arm"] == arm]
            for metric, (low, high) in self.scenario.reference.items():
                value, lower, upper = observed_metric(metric, table)
                rows.append({"arm": arm, "metric": metric, "observed": value, "ci_low": lower,
                             "ci_high": upper, "reference_low": low, "reference_high": high,
                             "within": bool(low <= value <= high) if not math.isnan(value) else False,
                             "description": REFERENCE_METRICS[metric]})
        return pd.DataFrame(rows)

    def write(self, directory) -> None:
        from simulator.results import write_atomically

        tables = {"endpoints": _parquet_ready(self.endpoints), "events": self.events,
                  "summary": self.summary()}
        if len(self.arms) > 1:
            tables["comparisons"] = self.comparisons()
        if self.scenario.reference:
            tables["reference"] = self.compare_reference()
        write_atomically(directory, tables, {
            "seed": self.seed, "arms": self.arms, "patients": int(self.endpoints["patient"].nunique()),
            "scenario": scenario_to_dict(self.scenario),
            **_versions(),
        })


def _versions() -> dict:
    import numba

    import simulator

    return {"simulator_version": simulator.__version__, "numpy_version": np.__version__,
            "numba_version": numba.__version__}


def _parquet_ready(table: pd.DataFrame) -> pd.DataFrame:
    table = table.copy()
    for column in table.columns:
        if table[column].dtype == object:
            table[column] = table[column].map(_flat)
    return table


def arm_scenarios(scenario: Scenario, arms: Sequence[str] | None) -> dict[str, dict]:
    """The resolved scenario of each requested arm (all arms, or the scenario as is)."""
    resolved = scenario_to_dict(scenario)
    if not arms:
        arms = list(scenario.arms) or [DEFAULT_ARM]
    out = {}
    for arm in arms:
        raw = {key: value for key, value in resolved.items()}
        if arm == DEFAULT_ARM and arm not in scenario.arms:
            out[arm] = raw
            continue
        if arm not in scenario.arms:
            known = list(scenario.arms) or ["(none defined)"]
            raise ScenarioError(f"--arm: unknown arm '{arm}'; allowed: {', '.join(known)}")
        raw = patient_raw(resolved) | {"cohort": resolved["cohort"]}
        for path, value in scenario.arms[arm].set.items():
            set_path(raw, path, value)
        out[arm] = raw
    return out


def _simulate_patients(task) -> tuple[list[dict], list[pd.DataFrame], dict]:
    """Worker: every arm of a chunk of patients (module level so processes can run it)."""
    arm_raws, seed, patients, keep_results = task
    rows, events, kept = [], [], {}
    for patient in patients:
        for arm, raw in arm_raws.items():
            scenario_raw, drawn = draw_patient(raw, raw["cohort"], seed, patient)
            scenario = validate_scenario(scenario_raw)
            result = simulate(scenario, seed=seed, replicate=patient, keep_trajectory=keep_results)
            row = {"patient": patient, "arm": arm, **result.endpoints,
                   "untreated_doubling_days": untreated_doubling_days(scenario), **drawn}
            row["mechanisms_at_progression"] = ";".join(row["mechanisms_at_progression"])
            row["time_on_line"] = _flat(row["time_on_line"])
            rows.append(row)
            clinical = result.events[result.events["kind"].isin(CLINICAL_EVENTS)]
            events.append(clinical[["time", "kind", "lesion", "detail", "value"]]
                          .assign(patient=patient, arm=arm))
            if keep_results:
                kept[(patient, arm)] = result
    return rows, events, kept


def run_cohort(scenario: Scenario, n: int, seed: int | None = None, workers: int = 1,
               arms: Sequence[str] | None = None, progress: bool = False,
               keep_results: bool = False, start: int = 0) -> CohortResult:
    """Simulate ``n`` virtual patients (``start`` .. ``start + n - 1``) in every arm.

    Parameters
    ----------
    scenario
        A scenario; its ``cohort`` section says how patients differ, its ``arms`` the
        strategies (all are run unless ``arms`` names some).
    n, seed, start
        Patients and seed (default: the scenario's); patient ``i`` is the same for any ``n``.
    workers
        Processes; results are bit-identical for any number.
    progress
        Show a progress bar (patients done, rate, time left).
    keep_results
        Keep every full :class:`PatientResult` (memory grows with ``n``).
    """
    if n <= 0:
        raise ValueError(f"n: must be > 0, got {n}")
    if workers <= 0:
        raise ValueError(f"workers: must be > 0, got {workers}")
    seed = scenario.simulation.seed if seed is None else int(seed)
    arm_raws = arm_scenarios(scenario, arms)
    patients = list(range(start, start + n))
    chunks = _chunks(patients, workers)
    tasks = [(arm_raws, seed, chunk, keep_results) for chunk in chunks]
    rows, events, kept = [], [], {}
    for chunk_rows, chunk_events, chunk_kept in _map(tasks, workers, progress, [len(c) for c in chunks]):
        rows += chunk_rows
        events += chunk_events
        kept.update(chunk_kept)
    endpoints = pd.DataFrame(rows)
    events_table = pd.concat(events, ignore_index=True) if events else pd.DataFrame()
    return CohortResult(scenario=scenario, arms=list(arm_raws), seed=seed, endpoints=endpoints,
                        events=events_table, results=kept)


def _chunks(patients: list[int], workers: int) -> list[list[int]]:
    size = max(1, min(25, math.ceil(len(patients) / (4 * workers))))
    return [patients[i:i + size] for i in range(0, len(patients), size)]


def _map(tasks: list, workers: int, progress: bool, sizes: list[int]) -> Iterable:
    """Run tasks in order (in this process, or in ``workers`` processes), with progress."""
    from tqdm import tqdm

    bar = tqdm(total=sum(sizes), unit="patient", disable=not progress, leave=False)
    try:
        if workers == 1:
            for task, size in zip(tasks, sizes):
                yield _simulate_patients(task)
                bar.update(size)
            return
        pool = ProcessPoolExecutor(max_workers=workers, initializer=_quiet_worker, initargs=(os.getpid(),))
        try:
            for output, size in zip(pool.map(_simulate_patients, tasks), sizes):
                yield output
                bar.update(size)
        except BaseException:
            # Interrupted or failed: drop the queued chunks instead of waiting for all of them.
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown()
    finally:
        bar.close()


PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
PARENT_POLL_SECONDS = 0.5


def _quiet_worker(parent: int | None = None) -> None:
    """Initializer of pool workers: one BLAS thread, and end with the process that started the
    pool, however it ends (even SIGKILL, which runs no cleanup in it)."""
    import ctypes
    import multiprocessing
    import signal
    import sys
    import threading

    # A worker must not compete for cores with its siblings through threaded BLAS.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        except (OSError, AttributeError):
            pass  # the watching thread below still ends the worker
    watched = os.getppid()
    if parent is not None and watched != parent and multiprocessing.get_start_method() != "forkserver":
        os._exit(1)  # the pool's process died before this worker could watch it
    # The kernels release the GIL, so this thread runs even while a patient is simulated.
    threading.Thread(target=_watch_parent, args=(watched,), name="watch-parent", daemon=True).start()


def _watch_parent(parent: int) -> None:
    import time

    # An orphan is re-parented (to init or a subreaper), so its parent id changes.
    while os.getppid() == parent:
        time.sleep(PARENT_POLL_SECONDS)
    os._exit(1)


# --- summaries ------------------------------------------------------------------------------


def arm_summary(table: pd.DataFrame, arm: str) -> dict:
    pfs = median_survival(table["pfs_days"] / DAYS_PER_MONTH, table["progressed"])
    os_ = median_survival(table["os_days"] / DAYS_PER_MONTH, table["died"])
    response = proportion_ci(int(table["best_response"].isin(["CR", "PR"]).sum()), len(table))
    early = observed_metric("progressed_by_3_months", table)
    first = table.loc[table["mechanisms_at_progression"] != "", "mechanisms_at_progression"]
    first = first.str.split(";").str[0]
    return {
        "arm": arm,
        "patients": len(table),
        "median_pfs_months": pfs[0], "pfs_ci_low": pfs[1], "pfs_ci_high": pfs[2],
        "median_os_months": os_[0], "os_ci_low": os_[1], "os_ci_high": os_[2],
        "objective_response": response[0],
        "progressed_by_3_months": early[0],
        "mechanisms_at_first_progression": ", ".join(
            f"{name} {count / len(first):.0%}" for name, count in first.value_counts().items()
        ) if len(first) else "",
        "local_therapies_per_patient": float(table["local_therapies"].mean()),
        "median_relative_dose": float(table["relative_dose"].median()),
    }


def compare_arms(endpoints: pd.DataFrame, reference: str, arm: str, endpoint: str, event: str) -> dict:
    a = endpoints[endpoints["arm"] == reference].set_index("patient")
    b = endpoints[endpoints["arm"] == arm].set_index("patient").loc[a.index]
    median_a = median_survival(a[endpoint], a[event])[0]
    median_b = median_survival(b[endpoint], b[event])[0]
    test = logrank(b[endpoint], b[event], a[endpoint], a[event])
    paired = (b[endpoint] - a[endpoint]) / DAYS_PER_MONTH
    return {
        "arm": arm, "reference": reference, "endpoint": endpoint,
        "median_difference_months": (median_b - median_a) / DAYS_PER_MONTH,
        "hazard_ratio": test["hazard_ratio"], "hr_ci_low": test["hr_lower"], "hr_ci_high": test["hr_upper"],
        "logrank_p": test["p_value"],
        "paired_mean_difference_months": float(paired.mean()),
        "paired_median_difference_months": float(paired.median()),
        "patients_better": float((paired > 0).mean()),
        "patients_same": float((paired == 0).mean()),
        "patients_worse": float((paired < 0).mean()),
    }


def observed_metric(metric: str, table: pd.DataFrame) -> tuple[float, float, float]:
    """A reference metric observed in one arm, with its 95% CI."""
    n = len(table)
    if metric == "median_pfs_months":
        return median_survival(table["pfs_days"] / DAYS_PER_MONTH, table["progressed"])
    if metric == "median_os_months":
        return median_survival(table["os_days"] / DAYS_PER_MONTH, table["died"])
    if metric == "objective_response":
        return proportion_ci(int(table["best_response"].isin(["CR", "PR"]).sum()), n)
    if metric == "pd_best_response":
        return proportion_ci(int((table["best_response"] == "PD").sum()), n)
    if metric == "progressed_by_3_months":
        early = table["progressed"] & (table["pfs_days"] <= 3 * DAYS_PER_MONTH)
        return proportion_ci(int(early.sum()), n)
    if metric == "t790m_at_progression":
        first = table.loc[table["mechanisms_at_progression"] != "", "mechanisms_at_progression"]
        first = first.str.split(";").str[0]
        return proportion_ci(int(first.str.split("+").apply(lambda m: "T790M" in m).sum()), len(first))
    if metric == "doubling_time_days":
        values = table["untreated_doubling_days"].to_numpy()
        low, high = np.quantile(values, [0.25, 0.75]) if n else (math.nan, math.nan)
        return float(np.median(values)) if n else math.nan, float(low), float(high)
    raise ValueError(f"metric: unknown '{metric}'; allowed: {', '.join(REFERENCE_METRICS)}")
