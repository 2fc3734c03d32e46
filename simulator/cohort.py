"""Virtual cohorts and trial arms with common random numbers.

Patient ``i`` of seed ``s`` draws its parameters from ``SeedSequence(s, spawn_key=(i, 1))``
and its course from ``SeedSequence(s, spawn_key=(i,))`` (the stream ``simulate`` uses for
replicate ``i``). Both depend on nothing but ``(s, i)``: the same patient is the same tumour in
every arm, has the same history until the first decision that differs, and gives the same
result whatever the number of workers.

One precedence decides every parameter of a patient, later sources winning:

1. the scenario, with the patient's drawn ``cohort.parameters``, subtype settings and
   optional lesions;
2. the arm's ``set``;
3. settings given by the user (``--set``, the ``settings`` argument);
4. the values of a sweep point (``--grid``).

Patient parameters are drawn before any setting is applied, so a setting never changes
which random numbers a patient gets.
"""

from __future__ import annotations

import difflib
import gc
import math
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

from simulator.results import (_html_card, build_result, clinical_event_columns, column_name,
                               endpoint_columns, endpoints_of, run_context, text_columns_as_strings)
from simulator.runner import provenance, run_patient
from simulator.scenario import (
    REFERENCE_METRICS,
    LINE_PFS_METRIC,
    reference_metric_description,
    Distribution,
    Scenario,
    ScenarioError,
    get_path,
    patient_raw,
    scenario_to_dict,
    set_path,
    validate_scenario,
)
from simulator.survival import kaplan_meier, logrank, median_survival, proportion_ci

DAYS_PER_MONTH = 30.4375
DEFAULT_ARM = "default"
# Smallest share of tumour cells carrying T790M that assays of untreated tumours find (tissue
# PCR with enrichment, digital PCR of plasma: about 0.1%; Wang 2014, Ma 2017).
PRETREATMENT_DETECTION = 1e-3


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


Layer = tuple[str, dict]
"""A source of settings and its ``{path: value}``, e.g. ``("--set", {...})``."""


def draw_patient(resolved: dict, cohort: dict, seed: int, patient: int,
                 layers: Sequence[Layer] = ()) -> tuple[dict, dict]:
    """The raw scenario of one virtual patient, and the parameter values it got.

    Parameters
    ----------
    resolved, cohort
        The resolved scenario and its ``cohort`` section.
    seed, patient
        Which patient: its draws depend on nothing else.
    layers
        Settings applied after the draws, in order (an arm's, the user's, a sweep point's);
        a setting of a drawn path wins, and ``drawn`` then reports the value used. Settings
        under an optional lesion the patient does not have are skipped.
    """
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
    absent = []
    for lesion, probability in cohort["optional_lesions"].items():
        present = bool(rng.random() < probability)
        drawn[f"has_{lesion}"] = present
        if not present:
            absent.append(f"lesions.{lesion}.")
            del raw["lesions"][lesion]
            raw["scheduled_local_therapy"] = [
                item for item in raw["scheduled_local_therapy"] if item["lesion"] != lesion
            ]
    for _, settings in layers:
        for path, value in settings.items():
            if path.startswith(tuple(absent)):
                continue
            set_path(raw, path, value)
            if path in drawn:
                drawn[path] = value
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
    :func:`simulator.endpoints.patient_endpoints` (``mechanisms_at_progression`` a list, time
    on each line as ``days_on_LINE``) plus the parameters drawn for the patient. ``events``
    holds the clinical events (progression, biopsies, lines, holidays, local therapy, death)
    of every patient and arm. ``results`` holds full patient results only when asked for
    (``keep_results=True``), as they cost memory. ``layers`` are the settings each arm
    applied on top of the scenario, in order.
    """

    scenario: Scenario
    arms: list[str]
    seed: int
    endpoints: pd.DataFrame = field(repr=False)
    events: pd.DataFrame = field(repr=False)
    results: dict = field(default_factory=dict, repr=False)
    layers: dict = field(default_factory=dict, repr=False)

    def __repr__(self) -> str:
        patients = self.endpoints["patient"].nunique() if len(self.endpoints) else 0
        return (f"CohortResult(scenario={self.scenario.id!r}, arms={self.arms}, patients={patients}, "
                f"seed={self.seed})")

    def _repr_html_(self) -> str:
        from simulator.plots import km_plot

        table = self.summary().set_index("arm").T
        return _html_card(repr(self), table, lambda: km_plot(self.endpoints, "pfs_days", "progressed"))

    def summary(self) -> pd.DataFrame:
        """One row per arm (see :func:`arm_summary`): medians with 95% CIs, restricted means,
        response, progression by 3, 6 and 12 months, time on each line, mechanisms."""
        horizon = follow_up_days(self.scenario)
        mechanisms = self.scenario.mechanisms
        return pd.DataFrame([arm_summary(self.endpoints[self.endpoints["arm"] == arm], arm, horizon,
                                         mechanisms) for arm in self.arms])

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
                             "description": reference_metric_description(metric)})
        return pd.DataFrame(rows)

    def provenance(self) -> dict:
        """Versions, command line, time, commit, seed, the scenario and each arm's settings
        in the order they were applied."""
        return {**run_context(), "seed": self.seed, "arms": self.arms,
                "patients": int(self.endpoints["patient"].nunique()),
                "settings": {arm: [{"source": source, "set": settings} for source, settings in layers]
                             for arm, layers in self.layers.items()},
                "scenario": scenario_to_dict(self.scenario)}

    def write(self, directory, figures: bool = True, report: bool = False,
              figure_format: str = "png", dpi: int = 120) -> None:
        """Write the tables, ``provenance.json``, with ``figures`` Kaplan-Meier curves and a
        swimmer plot (``figure_format`` png, svg or pdf at ``dpi``) and with ``report`` a
        self-contained ``report.html``, replacing an earlier result in ``directory`` whole."""
        from simulator.results import write_atomically

        tables = {"endpoints": self.endpoints, "events": self.events, "summary": self.summary()}
        if len(self.arms) > 1:
            tables["comparisons"] = self.comparisons()
        if self.scenario.reference:
            tables["reference"] = self.compare_reference()

        def draw(staging) -> None:
            from simulator.plots import save_cohort_figures

            if figures:
                save_cohort_figures(self.endpoints, self.events, staging, figure_format, dpi)
            if report:
                from simulator.report import REPORT_NAME, cohort_report

                (staging / REPORT_NAME).write_text(cohort_report(self), encoding="utf-8")

        write_atomically(directory, tables, self.provenance(), draw if figures or report else None)


# Sections about the cohort as a whole; settings of these change the scenario, not a patient.
SCENARIO_LEVEL = ("cohort", "arms", "reference", "calibration")


def with_settings(scenario: Scenario, settings: dict | None) -> tuple[Scenario, list[Layer]]:
    """The scenario with user ``settings`` applied (so its seed, duration and cohort are
    the effective ones), and the layer that re-applies them to each patient after its arm's
    settings and draws, so they win over both."""
    if not settings:
        return scenario, []
    from simulator.scenario import load_scenario

    updated = load_scenario(scenario_to_dict(scenario), dict(settings))
    per_patient = {path: value for path, value in settings.items() if path.split(".")[0] not in SCENARIO_LEVEL}
    return updated, [("--set", per_patient)] if per_patient else []


def follow_up_days(scenario: Scenario) -> float:
    """Days from the start of therapy to the end of the run: the longest any patient is
    followed, and the horizon of restricted means."""
    return float(scenario.simulation.duration_days - scenario.therapy.start_day)


def default_arm(scenario: Scenario) -> str:
    """The arm run when none is named: the scenario's first, else ``default``."""
    return next(iter(scenario.arms), DEFAULT_ARM)


def arm_layers(scenario: Scenario, arms: Sequence[str] | None,
               settings: Sequence[Layer] = ()) -> dict[str, list[Layer]]:
    """The settings of each requested arm (all arms by default), each followed by
    ``settings``: the arm's first, so later sources win."""
    if not arms:
        arms = list(scenario.arms) or [DEFAULT_ARM]
    out = {}
    for arm in arms:
        if arm == DEFAULT_ARM and arm not in scenario.arms:
            out[arm] = list(settings)
            continue
        if arm not in scenario.arms:
            known = list(scenario.arms) or ["(none defined)"]
            close = difflib.get_close_matches(arm, list(scenario.arms), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise ScenarioError(f"--arm: unknown arm '{arm}'{hint}; allowed: {', '.join(known)}")
        out[arm] = [(f"arms.{arm}.set", dict(scenario.arms[arm].set)), *settings]
    return out


def check_layers(scenario: Scenario, layers_by_arm: dict[str, list[Layer]]) -> None:
    """Refuse, before anything runs, settings that make an arm's patient scenario invalid
    (drawn parameters aside: each patient is checked as it is drawn)."""
    resolved = scenario_to_dict(scenario)
    for arm, layers in layers_by_arm.items():
        raw = patient_raw(resolved)
        for source, settings in layers:
            for path, value in settings.items():
                set_path(raw, path, value)
            try:
                validate_scenario(raw)
            except ScenarioError as error:
                where = "" if arm == DEFAULT_ARM else f" (arm '{arm}')"
                raise ScenarioError(f"{source}: {error}{where}") from None


def patient_scenario(scenario: Scenario, arm: str | None = None, patient: int | None = None,
                     seed: int | None = None, settings: dict | None = None) -> tuple[Scenario, dict]:
    """The scenario of one patient in one arm, exactly as :func:`run_cohort` simulates it.

    Parameters
    ----------
    arm
        An arm of the scenario (default: its first, if it has arms).
    patient, seed
        Draw the cohort's parameters for this patient of ``seed`` (default: the scenario's);
        without ``patient``, the scenario's own values are used.
    settings
        ``{path: value}`` applied after the arm's settings.

    Returns
    -------
    (Scenario, dict)
        The patient's scenario and the values drawn for it (empty without ``patient``).
    """
    scenario, user = with_settings(scenario, settings)
    arm = default_arm(scenario) if arm is None else arm
    layers = arm_layers(scenario, [arm], user)[arm]
    check_layers(scenario, {arm: layers})
    resolved = scenario_to_dict(scenario)
    if patient is None:
        raw = patient_raw(resolved)
        for _, values in layers:
            for path, value in values.items():
                set_path(raw, path, value)
        return validate_scenario(raw), {}
    seed = scenario.simulation.seed if seed is None else int(seed)
    raw, drawn = draw_patient(resolved, resolved["cohort"], seed, patient, layers)
    return validate_scenario(raw), drawn


def _simulate_patients(task) -> tuple[list[dict], list[pd.DataFrame], dict]:
    """Worker: every arm of a chunk of patients (module level so processes can run it)."""
    resolved, layers_by_arm, seed, patients, keep_results = task
    # Full collections would rescan every object pandas, numba and pydantic made on import
    # (about 8% of a cohort's time); frozen, they are left out of the scans.
    gc.freeze()
    lines = list(resolved["therapy"]["lines"])
    rows, kept = [], {}
    events = {name: [] for name in _EVENT_COLUMNS}
    for patient in patients:
        for arm, layers in layers_by_arm.items():
            scenario_raw, drawn = draw_patient(resolved, resolved["cohort"], seed, patient, layers)
            scenario = validate_scenario(scenario_raw)
            # Endpoints and events straight from the engine; the tables only when kept.
            buffers, diagnosis = run_patient(scenario, seed, patient, keep_trajectory=keep_results)
            endpoints = endpoints_of(scenario, buffers, diagnosis)
            columns = clinical_event_columns(scenario, buffers)
            if keep_results:
                kept[(patient, arm)] = build_result(scenario, buffers,
                                                    provenance(scenario, seed, patient), diagnosis)
            rows.append({"patient": patient, "arm": arm, **endpoint_columns(endpoints, lines), **drawn})
            for name, values in columns.items():
                events[name].extend(values)
            n_events = len(columns["time"])
            events["patient"].extend([patient] * n_events)
            events["arm"].extend([arm] * n_events)
    return rows, events, kept


_EVENT_COLUMNS = ("time", "kind", "lesion", "detail", "value", "patient", "arm")


def run_cohort(scenario: Scenario, n: int, seed: int | None = None, workers: int = 1,
               arms: Sequence[str] | None = None, progress: bool = False,
               keep_results: bool = False, start: int = 0, settings: dict | None = None) -> CohortResult:
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
    settings
        ``{path: value}`` applied after each arm's settings, so they win over the arm's and
        over drawn parameters (see the module's precedence).
    """
    if n <= 0:
        raise ValueError(f"n: must be > 0, got {n}")
    if workers <= 0:
        raise ValueError(f"workers: must be > 0, got {workers}")
    scenario, user = with_settings(scenario, settings)
    layers_by_arm = arm_layers(scenario, arms, user)
    check_layers(scenario, layers_by_arm)
    seed = scenario.simulation.seed if seed is None else int(seed)
    resolved = scenario_to_dict(scenario)
    patients = list(range(start, start + n))
    chunks = _chunks(patients, workers)
    tasks = [(resolved, layers_by_arm, seed, chunk, keep_results) for chunk in chunks]
    rows, kept = [], {}
    events = {name: [] for name in _EVENT_COLUMNS}
    for chunk_rows, chunk_events, chunk_kept in _map(tasks, workers, progress, [len(c) for c in chunks]):
        rows += chunk_rows
        for name, values in chunk_events.items():
            events[name] += values
        kept.update(chunk_kept)
    # One table from all chunks' columns, so its types do not depend on how patients were split.
    endpoints = text_columns_as_strings(pd.DataFrame(rows))
    events_table = pd.DataFrame(events)
    return CohortResult(scenario=scenario, arms=list(layers_by_arm), seed=seed, endpoints=endpoints,
                        events=events_table, results=kept, layers=layers_by_arm)


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


def first_findings(mechanisms: pd.Series) -> pd.Series:
    """What each patient's first re-biopsy found (``'T790M+MET amplification'``, ``'none'``),
    for the patients who had one; ``mechanisms`` holds lists (or arrays read from Parquet)."""
    found = mechanisms[mechanisms.map(len) > 0]
    return found.map(lambda findings: str(findings[0]))


def restricted_mean(time, event, horizon: float) -> float:
    """Restricted mean survival time: the area under the Kaplan-Meier curve up to ``horizon``
    (same unit as ``time``). It moves smoothly with the survival times, where a median jumps
    from one visit to the next."""
    table = kaplan_meier(time, event)
    starts = table["time"].to_numpy()
    ends = np.append(starts[1:], np.inf)
    widths = np.clip(np.minimum(ends, horizon) - starts, 0.0, None)
    return float(np.sum(table["survival"].to_numpy() * widths))


def progressed_by(table: pd.DataFrame, months: float, horizon_days: float) -> float:
    """Fraction with the PFS event within ``months`` (NaN beyond the follow-up, where it is
    not observed)."""
    days = months * DAYS_PER_MONTH
    if days > horizon_days or not len(table):
        return math.nan
    return float((table["progressed"] & (table["pfs_days"] <= days)).mean())


def arm_summary(table: pd.DataFrame, arm: str, horizon_days: float | None = None,
                mechanisms: Sequence[str] | None = None) -> dict:
    """One arm's endpoints.

    Medians of PFS and OS (months, Kaplan-Meier, 95% CI; NaN when not reached) and endpoints
    that vary smoothly across a sweep: restricted mean PFS and OS up to ``horizon_days``
    (months; default: the longest follow-up), the fraction progressed by 3, 6 and 12 months,
    mean months on each line (from the ``days_on_LINE`` columns), and for each resistance
    mechanism (default: those found) the fraction of all patients whose first re-biopsy
    found it (``first_rebiopsy_MECHANISM``; ``first_rebiopsy_none``: a biopsy found none).
    """
    if horizon_days is None:
        horizon_days = float(table["end_days"].max()) if len(table) else 0.0
    pfs = median_survival(table["pfs_days"] / DAYS_PER_MONTH, table["progressed"])
    os_ = median_survival(table["os_days"] / DAYS_PER_MONTH, table["died"])
    response = proportion_ci(int(table["best_response"].isin(["CR", "PR"]).sum()), len(table))
    first = first_findings(table["mechanisms_at_progression"])
    summary = {
        "arm": arm,
        "patients": len(table),
        "median_pfs_months": pfs[0], "pfs_ci_low": pfs[1], "pfs_ci_high": pfs[2],
        "median_os_months": os_[0], "os_ci_low": os_[1], "os_ci_high": os_[2],
        "rmst_horizon_months": horizon_days / DAYS_PER_MONTH,
        "rmst_pfs_months": restricted_mean(table["pfs_days"], table["progressed"], horizon_days) / DAYS_PER_MONTH,
        "rmst_os_months": restricted_mean(table["os_days"], table["died"], horizon_days) / DAYS_PER_MONTH,
        "objective_response": response[0],
        "progressed_by_3_months": progressed_by(table, 3, horizon_days),
        "progressed_by_6_months": progressed_by(table, 6, horizon_days),
        "progressed_by_12_months": progressed_by(table, 12, horizon_days),
        "mechanisms_at_first_progression": ", ".join(
            f"{name} {count / len(first):.0%}" for name, count in first.value_counts().items()
        ) if len(first) else "",
        "local_therapies_per_patient": float(table["local_therapies"].mean()),
        "median_relative_dose": float(table["relative_dose"].median()),
    }
    for column in [c for c in table.columns if c.startswith("days_on_")]:
        line = column.removeprefix("days_on_")
        summary[f"mean_months_on_{line}"] = float(table[column].mean()) / DAYS_PER_MONTH
    findings = first.str.split("+")
    if mechanisms is None:
        mechanisms = sorted({m for found in findings for m in found} - {"none"})
    for name in [*mechanisms, "none"]:
        hits = int(findings.map(lambda found, name=name: name in found).sum()) if len(findings) else 0
        summary[f"first_rebiopsy_{column_name(name)}"] = hits / len(table) if len(table) else math.nan
    return summary


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
    if metric == "complete_response":
        return proportion_ci(int((table["best_response"] == "CR").sum()), n)
    if metric == "pd_best_response":
        return proportion_ci(int((table["best_response"] == "PD").sum()), n)
    if metric == "progressed_by_3_months":
        early = table["progressed"] & (table["pfs_days"] <= 3 * DAYS_PER_MONTH)
        return proportion_ci(int(early.sum()), n)
    if metric == "t790m_at_progression":
        first = first_findings(table["mechanisms_at_progression"])
        return proportion_ci(int(first.str.split("+").apply(lambda m: "T790M" in m).sum()), len(first))
    if metric == "t790m_before_treatment":  # no T790M clone type: no patient carries it
        shares = table.get("T790M_fraction_at_diagnosis", pd.Series(0.0, index=table.index))
        return proportion_ci(int((shares >= PRETREATMENT_DETECTION).sum()), n)
    if metric == "doubling_time_days":
        values = table["untreated_doubling_days"].to_numpy()
        low, high = np.quantile(values, [0.25, 0.75]) if n else (math.nan, math.nan)
        return float(np.median(values)) if n else math.nan, float(low), float(high)
    if metric == "brain_at_diagnosis":
        return proportion_ci(int(table["brain_at_diagnosis"].sum()), n)
    if metric == "brain_at_first_progression":
        first = table["brain_at_progression"].map(lambda found: bool(len(found)) and bool(found[0]))
        return proportion_ci(int(first.sum()), n)
    if metric == "no_second_line":
        progressed = table[table["progressing_lesions"].map(len) > 0]
        return proportion_ci(int((progressed["lines_used"] <= 1).sum()), len(progressed))
    line = LINE_PFS_METRIC.fullmatch(metric)
    if line is not None and f"pfs_{column_name(line['line'])}_days" in table:
        name = column_name(line["line"])
        taken = table[table[f"days_on_{name}"] > 0]
        return median_survival(taken[f"pfs_{name}_days"] / DAYS_PER_MONTH, taken[f"progressed_{name}"])
    raise ValueError(f"metric: unknown '{metric}'; allowed: {', '.join(REFERENCE_METRICS)}")
