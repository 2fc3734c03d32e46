"""Calibration of scenario parameters by approximate Bayesian computation (ABC-SMC).

The parameters and their priors come from the scenario's ``[calibration]`` table, the targets
from its ``[reference]`` ranges. Every particle (a parameter vector) is judged by a virtual
cohort of ``patients`` patients, summarised by the statistics ``cohort --compare-reference``
prints (:meth:`simulator.cohort.CohortResult.compare_reference`). The method, the distance and
the files are described in ``docs/calibration.md``.

Reproducibility: proposal ``i`` of population ``t`` draws from its own stream,
``SeedSequence(seed, spawn_key=(t, i))``, and only from it; the cohorts of all particles use the
same cohort seed (common random numbers), so two particles differ only by their parameters. A
population keeps the first ``particles`` accepted proposals in index order, so the result does
not depend on how many proposals ran at the same time, on the number of workers or on the
executor, and a run resumed from its database continues exactly as an uninterrupted one.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import pandas as pd

from simulator.scenario import (
    Prior,
    Scenario,
    ScenarioError,
    calibration_path,
    distribution_extremes,
    is_cohort_field,
    parameter_value,
    patient_raw,
    scenario_to_dict,
    set_path,
    validate_scenario,
    with_cohort_fields,
)

HISTORY = "history.sqlite"
DB_VERSION = 1
# Epsilon of population t: this quantile of the distances accepted in population t - 1.
EPSILON_QUANTILE = 0.5
# A population gives up after this many proposals per particle (acceptance below 0.5%).
MAX_PROPOSALS_PER_PARTICLE = 200
# Spawn-key tag of the streams of the posterior predictive check (never a population index).
PREDICTIVE_KEY = 1_000_000
# Medians that are NaN when not reached within the follow-up.
UNREACHED_MEDIANS = ("median_pfs_months", "median_os_months")
# A point target (low == high) is scaled by this fraction of its size.
POINT_TARGET_SCALE = 0.05


# --- the problem -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """What is calibrated: the scenario, the parameters with their priors, the targets and how
    each particle's cohort is run."""

    scenario: Scenario
    names: list[str]
    priors: list[Prior]
    targets: list[str]
    ranges: list[tuple[float, float]]
    arm: str | None
    patients: int
    cohort_seed: int
    settings: dict

    @property
    def scales(self) -> np.ndarray:
        """Each target's scale: the half-width of its range (5% of a point target's size)."""
        out = []
        for low, high in self.ranges:
            half = (high - low) / 2
            out.append(half if half > 0 else max(abs(low) * POINT_TARGET_SCALE, 1e-12))
        return np.asarray(out)

    def identity(self) -> dict:
        """What a resumed run must share with the run that wrote the database."""
        from simulator.sweep import _digest

        return {"version": DB_VERSION, "scenario_sha256": _digest(scenario_to_dict(self.scenario)),
                "settings_sha256": _digest(self.settings),
                "parameters": {name: prior.model_dump(exclude_none=True) for name, prior in zip(self.names, self.priors)},
                "targets": self.targets, "ranges": [list(r) for r in self.ranges], "arm": self.arm,
                "patients": self.patients, "cohort_seed": self.cohort_seed}


def make_problem(scenario: Scenario, patients: int = 50, settings: dict | None = None,
                 cohort_seed: int | None = None) -> Problem:
    """Check a scenario's ``[calibration]`` and ``[reference]`` and describe the problem.

    Raises
    ------
    ScenarioError
        One line naming the field: no parameters, no targets, a prior whose extreme values give
        an invalid scenario.
    """
    from simulator.cohort import arm_layers, check_layers, with_settings

    if patients <= 0:
        raise ScenarioError(f"--patients: must be > 0, got {patients}")
    settings = dict(settings or {})
    scenario, user = with_settings(scenario, settings)
    calibration = scenario.calibration
    if not calibration.parameters:
        raise ScenarioError("calibration.parameters: the scenario names no parameter to calibrate; "
                            "add [calibration.parameters.\"PATH\"] tables with a prior each")
    targets = list(calibration.targets) or list(scenario.reference)
    if not targets:
        raise ScenarioError("reference: the scenario gives no reference ranges to calibrate against")
    for path in settings:
        if path in calibration.parameters:
            raise ScenarioError(f"--set {path}: a calibrated parameter cannot also be set")
    arms = [calibration.arm] if calibration.arm else None
    check_layers(scenario, arm_layers(scenario, arms, user))
    resolved = scenario_to_dict(scenario)
    for path, prior in calibration.parameters.items():
        _check_prior_extremes(scenario, resolved, path, prior)
    seed = scenario.simulation.seed if cohort_seed is None else int(cohort_seed)
    return Problem(scenario, list(calibration.parameters), list(calibration.parameters.values()), targets,
                   [tuple(map(float, scenario.reference[t])) for t in targets], calibration.arm,
                   int(patients), seed, settings)


def _check_prior_extremes(scenario: Scenario, resolved: dict, path: str, prior: Prior) -> None:
    """A particle at a prior's extreme values must give a valid scenario (refused up front,
    not while the calibration runs)."""
    for label, value in distribution_extremes(prior):
        try:
            particle_scenario(scenario, {path: value}, resolved)
        except ScenarioError as error:
            raise ScenarioError(f"calibration.parameters.{path}: a particle at its {label} ({value:.6g}) "
                                f"is refused: {error}") from None


def particle_scenario(scenario: Scenario, values: dict[str, float],
                      resolved: dict | None = None) -> tuple[Scenario, dict]:
    """The scenario of one particle and the settings it applies to every patient.

    A path of ``--set`` becomes a setting (it wins over the cohort's draws, as ``--set`` does); a
    field of a cohort distribution changes the scenario's ``[cohort]`` itself.
    """
    resolved = scenario_to_dict(scenario) if resolved is None else resolved
    values = {path: _as_current(resolved, path, value) for path, value in values.items()}
    settings = {path: value for path, value in values.items() if not is_cohort_field(path)}
    moved = with_cohort_fields(resolved, values)
    if moved is not resolved:
        scenario = validate_scenario(moved)
    # The patient scenario with the settings must be valid too (the cohort checks each patient).
    patient = patient_raw(resolved)
    for path, value in settings.items():
        set_path(patient, path, value)
    validate_scenario(patient)
    return scenario, settings


# --- priors and the perturbation kernel (in the space where each prior is flat or normal) --


def _is_log(prior: Prior) -> bool:
    return prior.distribution in ("loguniform", "lognormal")


def _log_columns(priors: Sequence[Prior]) -> np.ndarray:
    return np.array([_is_log(prior) for prior in priors], bool)


def to_internal(priors: Sequence[Prior], values: np.ndarray) -> np.ndarray:
    """Parameter values -> the space the kernel moves in (log for log-scale priors)."""
    out = np.atleast_2d(np.asarray(values, float)).copy()
    logged = _log_columns(priors)
    out[:, logged] = np.log(out[:, logged])
    return out


def from_internal(priors: Sequence[Prior], z: np.ndarray) -> np.ndarray:
    out = np.atleast_2d(np.asarray(z, float)).copy()
    logged = _log_columns(priors)
    out[:, logged] = np.exp(out[:, logged])
    return out


def prior_sample(priors: Sequence[Prior], rng: np.random.Generator) -> np.ndarray:
    """One draw from the prior, in the internal space."""
    z = np.empty(len(priors))
    for j, p in enumerate(priors):
        if p.distribution == "uniform":
            z[j] = rng.uniform(p.low, p.high)
        elif p.distribution == "loguniform":
            z[j] = rng.uniform(math.log(p.low), math.log(p.high))
        elif p.distribution == "lognormal":
            z[j] = math.log(p.median) + p.sigma * rng.standard_normal()
        else:
            low = -math.inf if p.low is None else p.low
            high = math.inf if p.high is None else p.high
            while True:  # the schema guarantees at least 1% of the mass in [low, high]
                z[j] = rng.normal(p.mean, p.sd)
                if low <= z[j] <= high:
                    break
    return z


def prior_log_density(priors: Sequence[Prior], z: np.ndarray) -> float:
    """Log density of the prior at ``z`` (internal space), up to a constant; -inf outside
    its support."""
    total = 0.0
    for j, p in enumerate(priors):
        x = z[j]
        if p.distribution in ("uniform", "loguniform"):
            low, high = (p.low, p.high) if p.distribution == "uniform" else (math.log(p.low), math.log(p.high))
            if not low <= x <= high:
                return -math.inf
        elif p.distribution == "lognormal":
            total += -0.5 * ((x - math.log(p.median)) / p.sigma) ** 2
        else:
            if (p.low is not None and x < p.low) or (p.high is not None and x > p.high):
                return -math.inf
            total += -0.5 * ((x - p.mean) / p.sd) ** 2
    return total


def kernel_covariance(z: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Twice the weighted covariance of a population (Beaumont et al. 2009), kept positive
    definite when the population has collapsed along a direction."""
    mean = weights @ z
    centred = z - mean
    cov = 2.0 * (centred.T * weights) @ centred / max(1.0 - float(weights @ weights), 1e-12)
    cov = np.atleast_2d(cov)
    floor = 1e-12 * max(1.0, float(np.max(np.abs(np.diag(cov)))))
    return cov + floor * np.eye(len(cov))


def weighted_quantile(values: np.ndarray, weights: np.ndarray, q: float) -> float:
    order = np.argsort(values, kind="stable")
    cumulative = np.cumsum(weights[order])
    index = int(np.searchsorted(cumulative, q * cumulative[-1]))
    return float(values[order][min(index, len(values) - 1)])


def proposal_generator(seed: int, population: int, index: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(population, index))))


def propose(priors, previous, seed: int, population: int, index: int) -> np.ndarray:
    """Proposal ``index`` of ``population``: from the prior (population 0) or an ancestor of
    the previous population, chosen by weight and moved by the Gaussian kernel. Depends on
    nothing but its arguments."""
    rng = proposal_generator(seed, population, index)
    if previous is None:
        return prior_sample(priors, rng)
    z, weights, chol = previous
    ancestor = int(rng.choice(len(weights), p=weights))
    return z[ancestor] + chol @ rng.standard_normal(z.shape[1])


def importance_weights(priors, z: np.ndarray, previous) -> np.ndarray:
    """Normalised weights prior / (mixture of kernels around the previous population)."""
    if previous is None:
        return np.full(len(z), 1.0 / len(z))
    z_prev, w_prev, chol = previous
    inverse = np.linalg.inv(chol)
    log_prior = np.array([prior_log_density(priors, row) for row in z])
    # Mixture density up to the kernel's constant (the same for every particle).
    standardized = (z[:, None, :] - z_prev[None, :, :]) @ inverse.T
    log_kernel = -0.5 * np.sum(standardized ** 2, axis=2)
    peak = log_kernel.max(axis=1, keepdims=True)
    log_mixture = peak[:, 0] + np.log(np.exp(log_kernel - peak) @ w_prev)
    log_w = log_prior - log_mixture
    log_w -= log_w.max()
    w = np.exp(log_w)
    return w / w.sum()


# --- one particle ----------------------------------------------------------------------------


def distance(observed: np.ndarray, ranges: Sequence[tuple[float, float]], scales: np.ndarray) -> float:
    """Root sum of squares of each summary's distance to its range (0 inside), in units of the
    range's half-width; infinite when a summary could not be computed (e.g. a median not
    reached)."""
    observed = np.asarray(observed, float)
    if not np.all(np.isfinite(observed)):
        return math.inf
    low = np.array([r[0] for r in ranges])
    high = np.array([r[1] for r in ranges])
    gap = np.maximum(0.0, np.maximum(low - observed, observed - high)) / scales
    return float(np.sqrt(np.sum(gap ** 2)))


def simulate_particle(task) -> list[float]:
    """Worker: the target summaries of one particle's cohort (module level, so processes and
    Dask can run it)."""
    from simulator.cohort import DAYS_PER_MONTH, follow_up_days, run_cohort

    resolved, values, targets, arm, patients, cohort_seed, settings = task
    scenario = validate_scenario(resolved)
    scenario, particle_settings = particle_scenario(scenario, values, resolved)
    cohort = run_cohort(scenario, n=patients, seed=cohort_seed, arms=[arm] if arm else None,
                        settings={**settings, **particle_settings})
    table = cohort.compare_reference()
    table = table[table["arm"] == cohort.arms[0]].set_index("metric")
    out = [float(table.loc[metric, "observed"]) for metric in targets]
    # A median not reached is at least the follow-up: count it as that (a lower bound).
    horizon = follow_up_days(cohort.scenario) / DAYS_PER_MONTH
    return [horizon if metric in UNREACHED_MEDIANS and math.isnan(value) else value
            for metric, value in zip(targets, out)]


def _task(problem: Problem, resolved: dict, values: dict) -> tuple:
    return (resolved, values, problem.targets, problem.arm, problem.patients, problem.cohort_seed,
            problem.settings)


# --- the history database ----------------------------------------------------------------------


class History:
    """The SQLite database of a calibration: what was asked, and every finished population
    (written in one transaction, so a population is there whole or not at all)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.connection = sqlite3.connect(self.path, timeout=30)
        with self.connection:
            self.connection.executescript("""
                CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
                CREATE TABLE IF NOT EXISTS populations (
                    t INTEGER PRIMARY KEY, epsilon REAL, proposals INTEGER, simulated INTEGER,
                    accepted INTEGER, acceptance REAL, ess REAL, seconds REAL, finished TEXT);
                CREATE TABLE IF NOT EXISTS particles (
                    t INTEGER, i INTEGER, proposal INTEGER, weight REAL, distance REAL,
                    parameters TEXT, summaries TEXT, PRIMARY KEY (t, i));
            """)

    def close(self) -> None:
        self.connection.close()

    def meta(self, key: str) -> Any:
        row = self.connection.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def set_meta(self, key: str, value: Any) -> None:
        with self.connection:
            self.connection.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value, default=str)))

    def populations(self) -> pd.DataFrame:
        return pd.read_sql_query("SELECT * FROM populations ORDER BY t", self.connection)

    def last_population(self) -> int:
        row = self.connection.execute("SELECT MAX(t) FROM populations").fetchone()
        return -1 if row[0] is None else int(row[0])

    def particles(self, t: int, names: Sequence[str], targets: Sequence[str]) -> pd.DataFrame:
        rows = self.connection.execute(
            "SELECT i, proposal, weight, distance, parameters, summaries FROM particles WHERE t = ? ORDER BY i",
            (t,)).fetchall()
        table = pd.DataFrame({"particle": [r[0] for r in rows], "proposal": [r[1] for r in rows],
                              "weight": [r[2] for r in rows], "distance": [r[3] for r in rows]})
        parameters = np.array([json.loads(r[4]) for r in rows], float).reshape(len(rows), len(names))
        summaries = np.array([json.loads(r[5]) for r in rows], float).reshape(len(rows), len(targets))
        for j, name in enumerate(names):
            table[name] = parameters[:, j]
        for k, target in enumerate(targets):
            table[f"summary:{target}"] = summaries[:, k]
        return table

    def add_population(self, t: int, stats: dict, proposals: list[int], weights: np.ndarray,
                       distances: np.ndarray, values: np.ndarray, summaries: np.ndarray) -> None:
        with self.connection:
            self.connection.execute(
                "INSERT INTO populations VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (t, stats["epsilon"], stats["proposals"], stats["simulated"], stats["accepted"],
                 stats["acceptance"], stats["ess"], stats["seconds"], time.strftime("%Y-%m-%dT%H:%M:%S")))
            self.connection.executemany(
                "INSERT INTO particles VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(t, i, proposals[i], float(weights[i]), float(distances[i]),
                  json.dumps([float(v) for v in values[i]]), json.dumps([float(s) for s in summaries[i]]))
                 for i in range(len(weights))])


# --- running -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CalibrationResult:
    """A finished (or resumed) calibration: its directory, the populations and the posterior
    (the last population: one row per particle, its weight, distance, parameters and summaries)."""

    directory: Path
    problem: Problem
    populations: pd.DataFrame
    posterior: pd.DataFrame
    seed: int
    populations_run: int

    def __repr__(self) -> str:
        return (f"CalibrationResult('{self.directory}', parameters={self.problem.names}, "
                f"populations={len(self.populations)}, particles={len(self.posterior)})")

    def quantiles(self, q: Sequence[float] = (0.025, 0.5, 0.975)) -> pd.DataFrame:
        """Weighted posterior quantiles: one row per parameter."""
        w = self.posterior["weight"].to_numpy()
        return pd.DataFrame([{"parameter": name, **{f"q{v:g}": weighted_quantile(self.posterior[name].to_numpy(), w, v)
                                                     for v in q}} for name in self.problem.names])


def format_progress(stats: dict) -> str:
    """One line on a finished population (what ``calibrate``'s ``progress`` receives)."""
    return (f"population {stats['population'] + 1}/{stats['populations']}: epsilon {stats['epsilon']:.4g}, "
            f"acceptance {stats['acceptance']:.1%} ({stats['accepted']} of {stats['proposals']}), "
            f"ESS {stats['ess']:.1f}, {stats['patients']} patients, {stats['seconds']:.1f} s")


def calibrate(scenario: Scenario, out: str | Path, populations: int = 5, particles: int = 100,
              patients: int = 50, seed: int = 0, workers: int = 1, executor: str = "local",
              scheduler: str | None = None, settings: dict | None = None,
              progress: Callable[[dict], None] | None = None, predictive_draws: int = 20,
              command: str | None = None, source: str | None = None) -> CalibrationResult:
    """Calibrate the scenario's ``[calibration]`` parameters against its ``[reference]`` by ABC-SMC.

    Parameters
    ----------
    out
        Directory of the run: ``history.sqlite`` and the outputs. Rerunning with the same
        arguments resumes from the last finished population (more ``populations`` continue it).
    populations, particles
        Populations of the sequential Monte Carlo and accepted particles in each.
    patients
        Virtual patients in the cohort of each particle (same cohort seed for every particle).
    seed
        Seed of the proposals (the cohorts use the scenario's seed).
    workers, executor, scheduler
        Local processes (``local``), or a Dask cluster (``dask``: at ``scheduler`` or a local
        cluster of ``workers``). Results do not depend on them.
    progress
        Called with each population's statistics once it is written.
    predictive_draws
        Cohorts simulated from posterior draws for the posterior predictive check.
    command, source
        The command line and the scenario's catalog id or absolute file name, recorded in the
        outputs (``calibrated.toml`` extends ``source``; without it, it holds the posterior
        medians only).
    """
    from simulator.results import check_output_directory

    if populations <= 0:
        raise ScenarioError(f"--populations: must be > 0, got {populations}")
    if particles < 2:
        raise ScenarioError(f"--particles: must be >= 2, got {particles}")
    if workers <= 0:
        raise ScenarioError(f"--workers: must be > 0, got {workers}")
    if seed < 0:
        raise ScenarioError(f"--seed: must be >= 0, got {seed}")
    if executor not in ("local", "dask"):
        raise ScenarioError(f"--executor: must be one of local, dask; got '{executor}'")
    problem = make_problem(scenario, patients, settings)
    directory = Path(out)
    check_output_directory(directory, marker=HISTORY)
    identity = json.loads(json.dumps({**problem.identity(), "seed": int(seed), "particles": int(particles)}))
    history_path = directory / HISTORY
    if history_path.exists():
        history = History(history_path)
        previous = history.meta("identity") or {}
        history.close()
        if previous != identity:
            changed = sorted(k for k in set(identity) | set(previous) if previous.get(k) != identity.get(k))
            raise ScenarioError(f"--out: '{directory}' holds a different calibration (changed: "
                                f"{', '.join(changed)}); use a new directory or rerun the same command to resume")
    # Connect before writing anything: an unreachable scheduler must leave no directory behind.
    connection = connect(executor, scheduler, workers)
    from simulator.sweep import SweepLock

    lock = SweepLock(directory, what="calibration")
    history = None
    try:
        directory.mkdir(parents=True, exist_ok=True)
        lock.acquire()
        fresh = not history_path.exists()
        history = History(history_path)
        if fresh:
            history.set_meta("identity", identity)
            history.set_meta("source", source)
            history.set_meta("scenario", scenario_to_dict(problem.scenario))
        ran = _run_populations(problem, history, populations, particles, seed, workers, connection, progress)
        result = _result(problem, history, directory, seed, ran)
        write_outputs(result, history, workers, connection, predictive_draws, command)
    finally:
        _close(connection)
        lock.release()
        if history is not None:
            history.close()
    return result


def connect(executor: str, scheduler: str | None, workers: int):
    """``None`` for local processes, else a Dask ``(client, cluster)``."""
    if executor == "dask" or scheduler:
        from simulator.sweep import connect_dask

        return connect_dask(scheduler, workers)
    return None


def _close(connection) -> None:
    from simulator.sweep import _disconnect

    _disconnect(connection)


def evaluate(tasks: list, workers: int, connection) -> Iterator[list[float]]:
    """Summaries of each task, in order: in this process, a process pool or on Dask."""
    if not tasks:
        return
    if connection is not None:
        client, _ = connection
        futures = [client.submit(simulate_particle, task, pure=False) for task in tasks]
        for future in futures:
            yield future.result()
        return
    if workers == 1:
        for task in tasks:
            yield simulate_particle(task)
        return
    from concurrent.futures import ProcessPoolExecutor

    from simulator.cohort import _quiet_worker

    pool = ProcessPoolExecutor(max_workers=workers, initializer=_quiet_worker, initargs=(os.getpid(),))
    try:
        yield from pool.map(simulate_particle, tasks)
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()


def _run_populations(problem: Problem, history: History, populations: int, particles: int, seed: int,
                     workers: int, connection, progress) -> int:
    resolved = scenario_to_dict(problem.scenario)
    scales = problem.scales
    ran = 0
    for t in range(history.last_population() + 1, populations):
        started = time.perf_counter()
        if t == 0:
            previous, epsilon, batch = None, math.inf, particles
        else:
            last = history.particles(t - 1, problem.names, problem.targets)
            w_prev = last["weight"].to_numpy()
            z_prev = to_internal(problem.priors, last[problem.names].to_numpy())
            chol = np.linalg.cholesky(kernel_covariance(z_prev, w_prev))
            previous = (z_prev, w_prev, chol)
            epsilon = weighted_quantile(last["distance"].to_numpy(), w_prev, EPSILON_QUANTILE)
            rate = float(history.populations().set_index("t").loc[t - 1, "acceptance"])
            batch = particles
        accepted: list[tuple[int, np.ndarray, float, list[float]]] = []
        index, simulated = 0, 0
        limit = MAX_PROPOSALS_PER_PARTICLE * particles
        while len(accepted) < particles:
            if index >= limit:
                raise ScenarioError(f"population {t}: fewer than {particles} of {limit} proposals within "
                                    f"epsilon {epsilon:.4g}; widen the priors or the reference ranges, or "
                                    "use fewer populations")
            if t > 0:
                missing = particles - len(accepted)
                batch = int(min(limit - index, max(4, math.ceil(1.2 * missing / max(rate, 0.01)))))
            proposals = [(i, propose(problem.priors, previous, seed, t, i)) for i in range(index, index + batch)]
            index += batch
            inside = [(i, z) for i, z in proposals if math.isfinite(prior_log_density(problem.priors, z))]
            values = from_internal(problem.priors, np.array([z for _, z in inside])) if inside else []
            tasks = [_task(problem, resolved, dict(zip(problem.names, map(float, v)))) for v in values]
            for (i, z), summary in zip(inside, evaluate(tasks, workers, connection)):
                simulated += 1
                d = distance(summary, problem.ranges, scales)
                if d <= epsilon:
                    accepted.append((i, z, d, summary))
        # The first `particles` accepted in proposal order: independent of the batch sizes.
        accepted.sort(key=lambda item: item[0])
        accepted = accepted[:particles]
        z = np.array([a[1] for a in accepted])
        weights = importance_weights(problem.priors, z, previous)
        proposals_used = accepted[-1][0] + 1
        stats = {"population": t, "epsilon": float(epsilon), "proposals": proposals_used, "simulated": simulated,
                 "accepted": particles, "acceptance": particles / proposals_used,
                 "ess": float(1.0 / np.sum(weights ** 2)), "seconds": time.perf_counter() - started}
        history.add_population(t, stats, [a[0] for a in accepted], weights, np.array([a[2] for a in accepted]),
                               from_internal(problem.priors, z), np.array([a[3] for a in accepted]))
        ran += 1
        if progress is not None:
            progress({**stats, "populations": populations, "patients": simulated * problem.patients})
    return ran


def _result(problem: Problem, history: History, directory: Path, seed: int, ran: int) -> CalibrationResult:
    last = history.last_population()
    return CalibrationResult(directory, problem, history.populations(),
                             history.particles(last, problem.names, problem.targets), seed, ran)


# --- outputs -----------------------------------------------------------------------------------


def posterior_predictive(result: CalibrationResult, draws: int, workers: int = 1, connection=None) -> pd.DataFrame:
    """Cohorts from ``draws`` posterior draws (chosen by weight), each with its own new patients
    (a cohort seed of its own), against the targets: one row per draw and target."""
    problem = result.problem
    posterior = result.posterior
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(result.seed, spawn_key=(PREDICTIVE_KEY,))))
    chosen = rng.choice(len(posterior), size=draws, p=posterior["weight"].to_numpy())
    seeds = np.random.SeedSequence(result.seed, spawn_key=(PREDICTIVE_KEY, 1)).generate_state(draws)
    resolved = scenario_to_dict(problem.scenario)
    tasks = []
    for k, row in enumerate(chosen):
        values = {name: float(posterior[name].iloc[row]) for name in problem.names}
        task = list(_task(problem, resolved, values))
        task[5] = int(seeds[k])
        tasks.append(tuple(task))
    rows = []
    for k, summary in enumerate(evaluate(tasks, workers, connection)):
        for metric, value, (low, high) in zip(problem.targets, summary, problem.ranges):
            rows.append({"draw": k, "particle": int(chosen[k]), "cohort_seed": int(seeds[k]), "metric": metric,
                         "observed": value, "reference_low": low, "reference_high": high,
                         "within": bool(low <= value <= high)})
    return pd.DataFrame(rows)


def calibrated_toml(result: CalibrationResult, source: str | None, provenance: dict) -> str:
    """A scenario that extends the calibrated one with the posterior medians, its provenance
    in comments."""
    from simulator.sweep import _plain

    medians = result.quantiles((0.5,)).set_index("parameter")["q0.5"]
    resolved = scenario_to_dict(result.problem.scenario)
    lines = [f"# Calibrated by 'simulator calibrate' (ABC-SMC): posterior medians of {len(result.posterior)} particles",
             f"# after {len(result.populations)} populations; seed {result.seed}, "
             f"{result.problem.patients} patients per particle, cohort seed {result.problem.cohort_seed}.",
             f"# command: {provenance.get('command_line', '')}",
             "# versions: " + ", ".join(f"{k.removesuffix('_version')} {v}" for k, v in provenance.items()
                                        if k.endswith("_version")),
             f"# created (UTC): {provenance.get('created_utc', '')}"
             + (f"; commit {provenance['git_commit']}" if provenance.get("git_commit") else ""),
             ""]
    if source is None:
        # No file or catalog id to extend: the whole resolved scenario, with the medians set.
        raw = json.loads(json.dumps(resolved))
        raw["id"] = result.problem.scenario.id + "-calibrated"
        raw["description"] = "Calibrated: " + result.problem.scenario.description
        for name in result.problem.names:
            key, field = calibration_path(resolved, name)
            value = _as_current(resolved, name, _plain(medians[name]))
            if key is None:
                set_path(raw, name, value)
            else:
                raw["cohort"]["parameters"][key][field] = value
        lines.append("# The scenario as resolved, with the posterior medians.")
        lines += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in raw.items() if v is not None]
        return "\n".join(lines) + "\n"
    lines.append(f"extends = {json.dumps(source)}")
    lines.append(f"id = {json.dumps(result.problem.scenario.id + '-calibrated')}")
    lines.append(f"description = {json.dumps('Calibrated: ' + result.problem.scenario.description)}")
    top_level: dict[str, Any] = {}
    for name in result.problem.names:
        key, field = calibration_path(resolved, name)
        value = _as_current(resolved, name, _plain(medians[name]))
        if key is not None:
            lines.append(f"cohort.parameters.{json.dumps(key)}.{_toml_key(field)} = {_toml_value(value)}")
            continue
        head = name.split(".")[0]
        if _through_list(resolved, name):
            # A list is replaced whole by 'extends': write all of it, with the value set.
            container = top_level.setdefault(head, json.loads(json.dumps(resolved[head])))
            set_path({head: container}, name, value)
        else:
            lines.append(".".join(_toml_key(k) for k in name.split(".")) + f" = {_toml_value(value)}")
    for head, container in top_level.items():
        lines.append(f"{_toml_key(head)} = {_toml_value(container)}")
    return "\n".join(lines) + "\n"


def _as_current(resolved: dict, path: str, value: float) -> Any:
    """``value`` rounded to a whole number where the scenario holds one."""
    current = parameter_value(resolved, path)
    return int(round(value)) if isinstance(current, int) and not isinstance(current, bool) else value


def _through_list(resolved: dict, path: str) -> bool:
    node: Any = resolved
    for key in path.split(".")[:-1]:
        node = node[int(key)] if isinstance(node, list) else node[key]
        if isinstance(node, list):
            return True
    return False


def _toml_key(key: str) -> str:
    return key if key.replace("_", "").replace("-", "").isascii() and key.replace("_", "").replace("-", "").isalnum() \
        else json.dumps(key, ensure_ascii=False)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items() if v is not None) + "}"
    raise TypeError(f"cannot write {value!r} as TOML")


def write_outputs(result: CalibrationResult, history: History, workers: int, connection,
                  predictive_draws: int, command: str | None) -> None:
    """Posterior and populations (Parquet), the pairwise posterior plot, the posterior
    predictive check, ``calibrated.toml`` and ``provenance.json``, each written to a temporary
    name and renamed (a file that exists is complete)."""
    from simulator.plots import calibration_pairs_plot, predictive_check_plot
    from simulator.results import run_context, write_table

    directory = result.directory
    context = run_context()
    if command is not None:
        context["command_line"] = command
    provenance = {**context, "seed": result.seed, "identity": history.meta("identity"),
                  "populations": len(result.populations), "particles": len(result.posterior),
                  "patients_simulated": int(result.populations["simulated"].sum()) * result.problem.patients,
                  "source": history.meta("source"),
                  "scenario": scenario_to_dict(result.problem.scenario)}
    predictive = posterior_predictive(result, predictive_draws, workers, connection) if predictive_draws else None

    def replace(name: str, write: Callable[[Path], None]) -> None:
        target = directory / name
        partial = directory / f".{name}.{os.getpid()}.tmp{Path(name).suffix}"
        try:
            write(partial)
            os.replace(partial, target)
        finally:
            partial.unlink(missing_ok=True)

    replace("posterior.parquet", lambda p: write_table(result.posterior, p))
    replace("populations.parquet", lambda p: write_table(result.populations, p))
    replace("posterior.png", lambda p: _save(calibration_pairs_plot(result.posterior, result.problem.names,
                                                                      _prior_bounds(result.problem)), p))
    if predictive is not None:
        replace("predictive.parquet", lambda p: write_table(predictive, p))
        replace("predictive.png", lambda p: _save(predictive_check_plot(predictive), p))
    text = calibrated_toml(result, history.meta("source"), provenance)
    replace("calibrated.toml", lambda p: p.write_text(text))
    replace("provenance.json", lambda p: p.write_text(json.dumps(provenance, indent=2, default=str)))


def _prior_bounds(problem: Problem) -> dict:
    return {name: (prior.low, prior.high, _is_log(prior)) for name, prior in zip(problem.names, problem.priors)}


def _save(figure, path: Path) -> None:
    figure.savefig(path, dpi=110, bbox_inches="tight", format="png")
