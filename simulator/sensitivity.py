"""Global sensitivity analysis of cohort endpoints to scenario parameters (SALib).

SALib draws the points (Saltelli's scheme for Sobol indices, trajectories for Morris), the
points run as a sweep (:mod:`simulator.sweep`: chunked, resumable, local processes or Dask,
the same virtual patients at every point), and SALib analyses one summary per point.

Layout of a sensitivity directory::

    sensitivity.json     what was asked (written first; a rerun must ask the same)
    sweep/               the sweep of the points (see simulator.sweep), resumed on a rerun
    indices.parquet      one row per endpoint, parameter and index, with its 95% CI
    indices.csv          the same table
    indices.png          bars with 95% CIs (the first endpoint)
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from simulator.scenario import Scenario, ScenarioError, get_path, scenario_to_dict

MANIFEST = "sensitivity.json"
DEFAULT_ENDPOINT = "rmst_pfs_months"


def parse_params(assignments: Sequence[str]) -> dict[str, tuple[float, float, bool]]:
    """``--param PATH=LOW:HIGH`` (or ``PATH=log:LOW:HIGH``) options as ``{path: (low, high, log)}``."""
    out: dict[str, tuple[float, float, bool]] = {}
    for assignment in assignments:
        path, separator, text = assignment.partition("=")
        path = path.strip()
        field = f"--param {path}"
        if not separator or not path:
            raise ScenarioError(f"--param: expected PATH=LOW:HIGH, got '{assignment}'")
        if path in out:
            raise ScenarioError(f"{field}: given twice")
        log = text.startswith("log:")
        parts = text.removeprefix("log:").split(":")
        if len(parts) != 2:
            raise ScenarioError(f"{field}: expected LOW:HIGH or log:LOW:HIGH, got '{text}'")
        try:
            low, high = float(parts[0]), float(parts[1])
        except ValueError:
            raise ScenarioError(f"{field}: LOW and HIGH must be numbers, got '{text}'") from None
        if not (math.isfinite(low) and math.isfinite(high) and low < high):
            raise ScenarioError(f"{field}: need LOW < HIGH, got '{text}'")
        if log and low <= 0:
            raise ScenarioError(f"{field}: log:LOW:HIGH needs LOW > 0, got '{text}'")
        out[path] = (low, high, log)
    if not out:
        raise ScenarioError("--param: give at least one PATH=LOW:HIGH")
    return out


def sample_points(ranges: dict[str, tuple[float, float, bool]], method: str, samples: int,
                  seed: int = 0) -> tuple[dict, np.ndarray, pd.DataFrame]:
    """SALib's problem, its sample matrix (in the sampled space: logarithms for ``log:``
    ranges) and the points as parameter values (one column per path)."""
    problem = {"num_vars": len(ranges), "names": list(ranges),
               "bounds": [[math.log(lo), math.log(hi)] if log else [lo, hi] for lo, hi, log in ranges.values()]}
    if samples < 2:
        raise ScenarioError(f"--samples: must be >= 2, got {samples}")
    if method == "sobol":
        from SALib.sample import sobol

        if samples & (samples - 1):
            raise ScenarioError(f"--samples: Sobol sampling needs a power of 2, got {samples}")
        matrix = sobol.sample(problem, samples, calc_second_order=False, seed=seed)
    elif method == "morris":
        from SALib.sample import morris

        matrix = morris.sample(problem, samples, num_levels=4, seed=seed)
    else:
        raise ScenarioError(f"--method: must be sobol or morris, got '{method}'")
    values = {path: np.exp(matrix[:, j]) if log else matrix[:, j]
              for j, (path, (_, _, log)) in enumerate(ranges.items())}
    return problem, matrix, pd.DataFrame(values)


def analyse(method: str, problem: dict, matrix: np.ndarray, y: np.ndarray, endpoint: str,
            seed: int = 0) -> pd.DataFrame:
    """SALib's indices for one endpoint as rows (endpoint, parameter, index, value, ci_low,
    ci_high); the intervals are SALib's bootstrap 95% intervals."""
    rows = []
    if method == "sobol":
        from SALib.analyze import sobol

        result = sobol.analyze(problem, y, calc_second_order=False, conf_level=0.95, seed=seed)
        pairs = (("S1", "S1_conf"), ("ST", "ST_conf"))
    else:
        from SALib.analyze import morris

        result = morris.analyze(problem, matrix, y, conf_level=0.95, num_levels=4, seed=seed)
        pairs = (("mu_star", "mu_star_conf"), ("sigma", None))
    for j, name in enumerate(problem["names"]):
        for index, conf in pairs:
            value = float(np.asarray(result[index])[j])
            half = float(np.asarray(result[conf])[j]) if conf else math.nan
            rows.append({"endpoint": endpoint, "parameter": name, "index": index, "value": value,
                         "ci_low": value - half, "ci_high": value + half})
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class SensitivityResult:
    directory: Path
    indices: pd.DataFrame
    points: int


def run_sensitivity(scenario: Scenario, out: str | Path, ranges: dict[str, tuple[float, float, bool]],
                    method: str = "sobol", endpoints: Sequence[str] | None = None, patients: int = 20,
                    samples: int = 64, arm: str | None = None, seed: int | None = None, sample_seed: int = 0,
                    executor: str = "local", workers: int = 1, scheduler: str | None = None,
                    settings: dict | None = None, progress: bool = False) -> SensitivityResult:
    """Sample the ranges with SALib, run the points as a sweep into ``out/sweep`` (resuming
    it) and analyse each endpoint (a numeric column of the sweep's summary).

    Parameters
    ----------
    ranges
        ``{path: (low, high, log)}`` (see :func:`parse_params`).
    method, samples
        ``sobol`` (first-order and total indices; ``samples`` x (k + 2) points, ``samples`` a
        power of 2) or ``morris`` (``mu_star`` and ``sigma``; ``samples`` trajectories of k + 1).
    patients, arm, seed
        Virtual patients per point (the same ones at every point), the arm, the cohort seed.
    """
    from simulator.results import check_output_directory, write_table
    from simulator.sweep import execute_sweep, plan_sweep

    endpoints = list(endpoints or [DEFAULT_ENDPOINT])
    if patients <= 0:
        raise ScenarioError(f"--patients: must be > 0, got {patients}")
    problem, matrix, points = sample_points(ranges, method, samples, sample_seed)
    resolved = scenario_to_dict(scenario)
    for path in points.columns:
        try:
            current = get_path(resolved, path)
        except ScenarioError:
            continue  # plan_sweep names the path
        if isinstance(current, int) and not isinstance(current, bool):
            points[path] = points[path].round().astype(int)
    from simulator.cohort import default_arm

    plan = plan_sweep(scenario, points, patients, [arm or default_arm(scenario)], seed, settings=settings,
                      scales={path: "log" if log else "linear" for path, (_, _, log) in ranges.items()})
    directory = Path(out)
    check_output_directory(directory, marker=MANIFEST)
    request = json.loads(json.dumps({"method": method, "ranges": {p: list(r) for p, r in ranges.items()},
                                     "samples": samples, "sample_seed": sample_seed, "patients": patients,
                                     "arm": plan.arms[0], "seed": plan.seed, "settings": dict(settings or {})}))
    manifest = directory / MANIFEST
    if manifest.exists():
        previous = json.loads(manifest.read_text())
        if previous != request:
            changed = sorted(k for k in request if previous.get(k) != request[k])
            raise ScenarioError(f"--out: '{directory}' holds a different analysis (changed: {', '.join(changed)}); "
                                "use a new directory or rerun the same command to resume")
    else:
        from simulator.sweep import connect_dask

        if executor == "dask":  # reachable before anything is written
            from simulator.sweep import _disconnect

            _disconnect(connect_dask(scheduler, workers))
        directory.mkdir(parents=True, exist_ok=True)
        _replace(manifest, lambda p: p.write_text(json.dumps(request, indent=2)))
    execute_sweep(plan, directory / "sweep", executor, workers, scheduler, progress)
    summary = pd.read_parquet(directory / "sweep" / "summary.parquet").sort_values("point")
    tables = []
    for endpoint in endpoints:
        if endpoint not in summary.columns or not pd.api.types.is_numeric_dtype(summary[endpoint]):
            numeric = [c for c in summary.columns if pd.api.types.is_numeric_dtype(summary[c])
                       and not c.startswith("param:") and c != "point"]
            raise ScenarioError(f"--endpoint: no numeric summary '{endpoint}'; allowed: {', '.join(numeric)}")
        y = summary[endpoint].to_numpy(float)
        if not np.all(np.isfinite(y)):
            missing = int(np.sum(~np.isfinite(y)))
            raise ScenarioError(f"--endpoint {endpoint}: no value at {missing} of {len(y)} points (a median not "
                                f"reached?); use an endpoint with a value everywhere, e.g. {DEFAULT_ENDPOINT}")
        tables.append(analyse(method, problem, matrix, y, endpoint, sample_seed))
    indices = pd.concat(tables, ignore_index=True)

    def picture(path: Path) -> None:
        from simulator.plots import sensitivity_plot

        sensitivity_plot(indices).savefig(path, dpi=110, bbox_inches="tight", format="png")

    _replace(directory / "indices.parquet", lambda p: write_table(indices, p))
    _replace(directory / "indices.csv", lambda p: indices.to_csv(p, index=False))
    _replace(directory / "indices.png", picture)
    return SensitivityResult(directory, indices, len(points))


def _replace(target: Path, write) -> None:
    """Write to a temporary name beside ``target``, then rename: a file that exists is whole."""
    partial = target.with_name(f".{target.name}.{os.getpid()}.tmp{target.suffix}")
    try:
        write(partial)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
