"""Parameter sweeps: grids, samples and point lists over scenario parameters, run in chunks
on local processes or a Dask cluster, streamed to partitioned Parquet, resumable.

Layout of a sweep directory::

    manifest.json                  what was asked (scenario, points, replicates, arms, seed)
    points.parquet                 one row per point: its index and parameter values
    rows/point=00012/chunk-0003.parquet   endpoints of patients of one chunk of one point
    summary.parquet                one row per point and arm (written when all chunks are done)

Every chunk is written to a temporary name and renamed, so a file that exists is complete;
rerunning the same sweep skips the chunks already on disk. Patient ``i`` of every point is the
same virtual patient (same seed and index), so differences between points are the effect of
the parameters, not of the random numbers, and results do not depend on the executor or on the
number of workers.
"""

from __future__ import annotations

import hashlib
import itertools
from collections import abc
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import pandas as pd

from simulator.cohort import _quiet_worker, _simulate_patients, arm_scenarios, arm_summary
from simulator.scenario import (
    Scenario,
    ScenarioError,
    _require_path,
    get_path,
    load_scenario,
    parse_value,
    scenario_to_dict,
    set_path,
)

MANIFEST_VERSION = 1
DEFAULT_CHUNK = 25
# Every point is validated before anything runs (about 10 ms each for a catalog scenario).
MAX_POINTS = 1_000_000


# --- the points ------------------------------------------------------------------------------


def parse_grid(assignments: Sequence[str]) -> dict[str, list[Any] | tuple[str, float, float]]:
    """``--grid PATH=VALUES`` options, in order, as ``{path: values}``; a path given twice is
    refused (the second would silently replace the first)."""
    grid: dict[str, Any] = {}
    for assignment in assignments:
        path, separator, values = assignment.partition("=")
        path = path.strip()
        if not separator or not path:
            raise ScenarioError(f"--grid: expected PATH=VALUES, got '{assignment}'")
        if path in grid:
            raise ScenarioError(f"--grid {path}: given twice; give each path once with all its values")
        grid[path] = parse_values(path, values)
    return grid


def parse_values(path: str, text: str) -> list[Any] | tuple[str, float, float]:
    """VALUES of ``--grid PATH=VALUES``.

    ``a,b,c`` a list; ``lin:START:STOP:N`` or ``log:START:STOP:N`` evenly spaced (log: in
    log space); ``range:LOW:HIGH`` (or ``logrange:LOW:HIGH``) a range to sample with
    ``--sample``. Returns a list of values, or ``(kind, low, high)`` for a range.
    """
    field = f"--grid {path}"
    text = text.strip()
    if not text:
        raise ScenarioError(f"{field}: no values given")
    if text.startswith(("lin:", "log:")):
        parts = text.split(":")
        if len(parts) != 4:
            raise ScenarioError(f"{field}: expected {parts[0]}:START:STOP:N, got '{text}'")
        start, stop, count = _number(field, parts[1]), _number(field, parts[2]), parts[3]
        if not count.isdigit() or not 1 <= int(count) <= MAX_POINTS:
            raise ScenarioError(f"{field}: N must be a whole number from 1 to {MAX_POINTS:,}, got '{count}'")
        if parts[0] == "log":
            if start <= 0 or stop <= 0:
                raise ScenarioError(f"{field}: log ranges need START and STOP > 0, got '{text}'")
            return [float(v) for v in np.geomspace(start, stop, int(count))]
        return [float(v) for v in np.linspace(start, stop, int(count))]
    if text.startswith(("range:", "logrange:")):
        parts = text.split(":")
        if len(parts) != 3:
            raise ScenarioError(f"{field}: expected {parts[0]}:LOW:HIGH, got '{text}'")
        low, high = _number(field, parts[1]), _number(field, parts[2])
        if not low < high or (parts[0] == "logrange" and low <= 0):
            raise ScenarioError(f"{field}: need 0 < LOW < HIGH for logrange, LOW < HIGH for range; got '{text}'")
        return (parts[0], low, high)
    return [parse_value(item.strip()) for item in text.split(",") if item.strip()]


def _number(field: str, text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ScenarioError(f"{field}: '{text}' is not a number") from None


def grid_points(grid: dict[str, Any], sample: str | None = None, sample_seed: int = 0) -> pd.DataFrame:
    """The points of a sweep: the product of value lists, or a seeded sample over ranges.

    ``sample`` is ``lhs:N`` (Latin hypercube) or ``random:N``; with it, every grid entry must be
    a range. Without it, every entry must be a list.
    """
    if not grid:
        raise ScenarioError("--grid: the grid is empty; give at least one PATH=VALUES")
    ranges = {path: spec for path, spec in grid.items() if isinstance(spec, tuple)}
    if sample is None:
        if ranges:
            path = next(iter(ranges))
            raise ScenarioError(f"--grid {path}: a range needs --sample lhs:N or random:N")
        for path, values in grid.items():
            if not values:
                raise ScenarioError(f"--grid {path}: no values given")
        count = math.prod(len(values) for values in grid.values())
        if count > MAX_POINTS:
            sizes = " x ".join(str(len(values)) for values in grid.values())
            raise ScenarioError(f"--grid: {sizes} = {count:,} points; at most {MAX_POINTS:,}")
        rows = list(itertools.product(*grid.values()))
        return pd.DataFrame(rows, columns=list(grid))
    kind, _, count = sample.partition(":")
    if kind not in ("lhs", "random") or not count.isdigit() or not 1 <= int(count) <= MAX_POINTS:
        raise ScenarioError(f"--sample: expected lhs:N or random:N with N from 1 to {MAX_POINTS:,}, got '{sample}'")
    if len(ranges) != len(grid):
        path = next(p for p in grid if p not in ranges)
        raise ScenarioError(f"--grid {path}: with --sample every entry must be range:LOW:HIGH or logrange:LOW:HIGH")
    n = int(count)
    rng = np.random.default_rng(sample_seed)
    if kind == "lhs":
        from scipy.stats import qmc

        unit = qmc.LatinHypercube(d=len(ranges), seed=rng).random(n)
    else:
        unit = rng.random((n, len(ranges)))
    columns = {}
    for column, (path, (scale, low, high)) in enumerate(ranges.items()):
        u = unit[:, column]
        columns[path] = (np.exp(np.log(low) + u * (np.log(high) - np.log(low))) if scale == "logrange"
                         else low + u * (high - low))
    return pd.DataFrame(columns)


def points_from_csv(path: str | Path) -> pd.DataFrame:
    """Points from a CSV file: one column per scenario path, one row per point."""
    try:
        table = pd.read_csv(path)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise ScenarioError(f"--points: cannot read '{path}': {error}") from None
    if table.empty or table.columns.empty:
        raise ScenarioError(f"--points: '{path}' has no points")
    return table


def point_scenarios(scenario: Scenario, points: pd.DataFrame) -> Sequence[Scenario]:
    """Validate every point up front: a wrong path or value fails before anything runs.

    Points are validated one at a time and not kept: the sequence returned rebuilds a point's
    scenario when asked, so memory does not grow with the number of points.
    """
    if len(points) > MAX_POINTS:
        raise ScenarioError(f"--points: {len(points):,} points; at most {MAX_POINTS:,}")
    resolved = scenario_to_dict(scenario)
    for path in points.columns:
        _require_path(resolved, path, f"--grid {path}")
    scenarios = _PointScenarios(resolved, points)
    for index in range(len(points)):
        scenarios[index]
    return scenarios


class _PointScenarios(abc.Sequence):
    """The scenario of each point, validated on demand from the base and the point's values."""

    def __init__(self, resolved: dict, points: pd.DataFrame):
        self._resolved = resolved
        self._columns = list(points.columns)
        self._rows = list(points.itertuples(index=False, name=None))

    def __len__(self) -> int:
        return len(self._rows)

    def __getitem__(self, index: int) -> Scenario:
        overrides = {path: _plain(value) for path, value in zip(self._columns, self._rows[index])}
        for path, value in overrides.items():
            current = get_path(self._resolved, path)
            if isinstance(current, int) and not isinstance(current, bool) and isinstance(value, float):
                if value.is_integer():
                    overrides[path] = int(value)
        try:
            return load_scenario(self._resolved, overrides)
        except ScenarioError as error:
            raise ScenarioError(f"point {index} ({_describe(overrides)}): {error}") from None


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _describe(overrides: dict) -> str:
    return ", ".join(f"{path}={value}" for path, value in overrides.items())


# --- the plan --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Chunk:
    point: int
    index: int
    patients: tuple[int, ...]

    def path(self, directory: Path) -> Path:
        return directory / "rows" / f"point={self.point:05d}" / f"chunk-{self.index:04d}.parquet"


@dataclass(frozen=True)
class SweepPlan:
    """What a sweep will run: points, arms, replicates and the chunks they split into."""

    scenario: Scenario
    points: pd.DataFrame
    scenarios: list[Scenario]
    replicates: int
    arms: list[str]
    seed: int
    chunk_size: int

    @property
    def simulations(self) -> int:
        return len(self.points) * self.replicates * len(self.arms)

    def chunks(self) -> list[Chunk]:
        out = []
        for point in range(len(self.points)):
            for index, start in enumerate(range(0, self.replicates, self.chunk_size)):
                stop = min(start + self.chunk_size, self.replicates)
                out.append(Chunk(point, index, tuple(range(start, stop))))
        return out

    def manifest(self) -> dict:
        """What identifies the sweep: a rerun must ask for exactly this."""
        scenario = scenario_to_dict(self.scenario)
        body = {
            "version": MANIFEST_VERSION,
            "scenario_sha256": _digest(scenario),
            "points_sha256": _digest(self.points.to_dict(orient="list")),
            "replicates": self.replicates,
            "arms": self.arms,
            "seed": self.seed,
            "chunk_size": self.chunk_size,
        }
        return body | {"scenario": scenario, "parameters": list(self.points.columns),
                       "n_points": len(self.points)}


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


_IDENTITY = ("version", "scenario_sha256", "points_sha256", "replicates", "arms", "seed", "chunk_size")


def plan_sweep(scenario: Scenario, points: pd.DataFrame, replicates: int = 10,
               arms: Sequence[str] | None = None, seed: int | None = None,
               chunk_size: int = DEFAULT_CHUNK) -> SweepPlan:
    if replicates <= 0:
        raise ScenarioError(f"--replicates: must be > 0, got {replicates}")
    if chunk_size <= 0:
        raise ScenarioError(f"chunk_size: must be > 0, got {chunk_size}")
    if points.empty:
        raise ScenarioError("--grid: the grid has no points")
    scenarios = point_scenarios(scenario, points)
    arm_names = list(arm_scenarios(scenario, arms))
    seed = scenario.simulation.seed if seed is None else int(seed)
    return SweepPlan(scenario, points.reset_index(drop=True), scenarios, int(replicates), arm_names,
                     seed, int(chunk_size))


# --- running ---------------------------------------------------------------------------------


def _chunk_task(plan: SweepPlan, chunk: Chunk):
    arm_raws = arm_scenarios(plan.scenarios[chunk.point], plan.arms)
    return (arm_raws, plan.seed, list(chunk.patients), False)


def _run_chunk(task) -> pd.DataFrame:
    """Worker: the endpoint rows of one chunk (module level, so processes and Dask can run it)."""
    rows, _, _ = _simulate_patients(task)
    return pd.DataFrame(rows)


def _write_chunk(table: pd.DataFrame, chunk: Chunk, point_values: dict, directory: Path) -> None:
    from simulator.cohort import _parquet_ready

    table = table.assign(point=chunk.point, **{f"param:{k}": v for k, v in point_values.items()})
    target = chunk.path(directory)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    _parquet_ready(table).to_parquet(partial, index=False)
    os.replace(partial, target)


def prepare_directory(plan: SweepPlan, directory: Path) -> None:
    """Create the sweep directory, or check that it holds this same sweep (to resume)."""
    manifest_path = directory / "manifest.json"
    if directory.exists() and not directory.is_dir():
        raise ScenarioError(f"--out: '{directory}' exists and is not a directory")
    if manifest_path.exists():
        previous = json.loads(manifest_path.read_text())
        current = plan.manifest()
        changed = [key for key in _IDENTITY if previous.get(key) != current.get(key)]
        if changed:
            raise ScenarioError(
                f"--out: '{directory}' holds a different sweep (changed: {', '.join(changed)}); "
                "use a new directory or rerun the same command to resume"
            )
        return
    if directory.exists() and any(directory.iterdir()):
        raise ScenarioError(f"--out: '{directory}' exists with other content; choose an empty or new directory")
    directory.mkdir(parents=True, exist_ok=True)
    _write_json_atomically(manifest_path, plan.manifest())
    points = plan.points.assign(point=range(len(plan.points)))
    partial = directory / ".points.parquet.tmp"
    points.to_parquet(partial, index=False)
    os.replace(partial, directory / "points.parquet")


def _write_json_atomically(path: Path, value: dict) -> None:
    partial = path.with_name(f".{path.name}.tmp")
    partial.write_text(json.dumps(value, indent=2, default=str))
    os.replace(partial, path)


@dataclass(frozen=True)
class SweepResult:
    directory: Path
    chunks_run: int
    chunks_skipped: int
    seconds: float

    def rows(self, columns: Sequence[str] | None = None) -> pd.DataFrame:
        return read_rows(self.directory, columns)

    def summary(self) -> pd.DataFrame:
        return pd.read_parquet(self.directory / "summary.parquet")


def run_sweep(scenario: Scenario, out: str | Path, grid: dict[str, str] | None = None,
              points: pd.DataFrame | str | Path | None = None, sample: str | None = None,
              replicates: int = 10, arms: Sequence[str] | None = None, seed: int | None = None,
              executor: str = "local", workers: int = 1, scheduler: str | None = None,
              progress: bool = False, sample_seed: int = 0) -> SweepResult:
    """Run a parameter sweep into ``out`` (resuming if it holds the same sweep).

    Parameters
    ----------
    grid
        ``{path: values}`` with values as on the command line (``"0.1,0.2"``,
        ``"log:1e-9:1e-6:4"``, ``"range:0.1:0.2"`` with ``sample``), or lists of values.
    points
        Instead of a grid: a table (or CSV file) with one column per path.
    sample
        ``lhs:N`` or ``random:N`` to sample ranges (seeded by ``sample_seed``).
    replicates, arms, seed
        Virtual patients per point, arms to run (default all), seed (default the scenario's).
    executor, workers, scheduler
        Where chunks run: ``local`` processes or ``dask`` (see :func:`execute_sweep`).
    """
    if points is not None and grid:
        raise ScenarioError("--points: give either --grid or --points, not both")
    if points is None:
        parsed = {path: (parse_values(path, v) if isinstance(v, str) else list(v))
                  for path, v in (grid or {}).items()}
        table = grid_points(parsed, sample, sample_seed)
    else:
        table = points if isinstance(points, pd.DataFrame) else points_from_csv(points)
    plan = plan_sweep(scenario, table, replicates, arms, seed)
    return execute_sweep(plan, out, executor, workers, scheduler, progress)


def execute_sweep(plan: SweepPlan, directory: str | Path, executor: str = "local", workers: int = 1,
                  scheduler: str | None = None, progress: bool = False) -> SweepResult:
    """Run every chunk not yet on disk, then write the per-point summary.

    Parameters
    ----------
    executor
        ``local`` (this process when ``workers`` is 1, else a process pool) or ``dask`` (a
        Dask distributed cluster at ``scheduler``, or a local cluster of ``workers`` processes).
    """
    directory = Path(directory)
    if executor not in ("local", "dask"):
        raise ScenarioError(f"--executor: must be one of local, dask; got '{executor}'")
    if workers <= 0:
        raise ScenarioError(f"--workers: must be > 0, got {workers}")
    # Connect before writing anything: an unreachable scheduler must leave no directory behind.
    connection = connect_dask(scheduler, workers) if executor == "dask" else None
    try:
        prepare_directory(plan, directory)
    except BaseException:
        _disconnect(connection)
        raise
    for stale in (directory / "rows").glob("point=*/.*.tmp"):
        stale.unlink()  # left by an interrupted write; its chunk is simply run again
    chunks = plan.chunks()
    todo = [chunk for chunk in chunks if not chunk.path(directory).exists()]
    started = time.perf_counter()
    values = plan.points.to_dict(orient="records")
    run = (lambda plan, todo, workers, _: _run_dask(plan, todo, workers, connection)) \
        if connection is not None else _run_local
    from tqdm import tqdm

    bar = tqdm(total=sum(len(c.patients) for c in todo) * len(plan.arms),
               unit="sim", disable=not progress, leave=False, desc="sweep")
    try:
        for chunk, table in run(plan, todo, workers, scheduler):
            _write_chunk(table, chunk, {k: _plain(v) for k, v in values[chunk.point].items()}, directory)
            bar.update(len(chunk.patients) * len(plan.arms))
    finally:
        bar.close()
    write_summary(plan, directory)
    return SweepResult(directory, len(todo), len(chunks) - len(todo), time.perf_counter() - started)


def _run_local(plan: SweepPlan, chunks: list[Chunk], workers: int, scheduler) -> Iterator:
    if workers == 1:
        for chunk in chunks:
            yield chunk, _run_chunk(_chunk_task(plan, chunk))
        return
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    # Workers end with this process, whatever kills it (see simulator.cohort._quiet_worker).
    pool = ProcessPoolExecutor(max_workers=workers, initializer=_quiet_worker, initargs=(os.getpid(),))
    try:
        yield from _windowed(pool.submit, lambda f: f.result(), wait, FIRST_COMPLETED, plan, chunks, workers)
    except BaseException:
        # Interrupted: drop what has not started; chunks already on disk are complete.
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()


def _run_dask(plan: SweepPlan, chunks: list[Chunk], workers: int, connection) -> Iterator:
    client, _ = connection
    try:
        from distributed import wait

        yield from _windowed(lambda f, t: client.submit(f, t, pure=False), lambda f: f.result(),
                             wait, "FIRST_COMPLETED", plan, chunks, workers)
    finally:
        _disconnect(connection)


def _disconnect(connection) -> None:
    if connection is None:
        return
    client, cluster = connection
    client.close()
    if cluster is not None:
        cluster.close()


def _windowed(submit, result, wait, first_completed, plan, chunks, workers) -> Iterator:
    """Keep at most 2 x workers chunks in flight, so memory stays bounded on any sweep size."""
    pending = {}
    queue = iter(chunks)
    window = 2 * workers
    for chunk in itertools.islice(queue, window):
        pending[submit(_run_chunk, _chunk_task(plan, chunk))] = chunk
    while pending:
        done, _ = wait(list(pending), return_when=first_completed)
        for future in done:
            chunk = pending.pop(future)
            yield chunk, result(future)
            following = next(queue, None)
            if following is not None:
                pending[submit(_run_chunk, _chunk_task(plan, following))] = following


def connect_dask(scheduler: str | None, workers: int, timeout: float = 5.0):
    """A Dask client: to ``scheduler`` (failing within ``timeout`` seconds if unreachable), or
    to a new local cluster of ``workers`` single-threaded processes."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise ScenarioError("--executor dask: needs dask[distributed]; pip install 'simulator[dask]'") from None
    if scheduler:
        try:
            return Client(scheduler, timeout=timeout), None
        except (OSError, TimeoutError) as error:
            raise ScenarioError(f"--scheduler: cannot reach '{scheduler}' within {timeout:g} s ({error})") from None
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                           dashboard_address=None, host="127.0.0.1")
    return Client(cluster), cluster


# --- reading and summarising -----------------------------------------------------------------


def read_rows(directory: str | Path, columns: Sequence[str] | None = None,
              point: int | None = None) -> pd.DataFrame:
    """Rows of a sweep (all points, or one), in point and patient order."""
    directory = Path(directory)
    pattern = f"point={point:05d}/chunk-*.parquet" if point is not None else "point=*/chunk-*.parquet"
    files = sorted((directory / "rows").glob(pattern))
    if not files:
        return pd.DataFrame(columns=list(columns) if columns else None)
    tables = [pd.read_parquet(f, columns=list(columns) if columns else None) for f in files]
    return pd.concat(tables, ignore_index=True)


SUMMARY_COLUMNS = ["pfs_days", "progressed", "os_days", "died", "best_response", "local_therapies",
                   "relative_dose", "mechanisms_at_progression", "ttf_days", "treatment_failed",
                   "holiday_days", "arm", "patient"]


def write_summary(plan: SweepPlan, directory: Path) -> pd.DataFrame:
    """One row per point and arm, computed point by point (never all rows at once)."""
    rows = []
    for point, values in enumerate(plan.points.to_dict(orient="records")):
        table = read_rows(directory, SUMMARY_COLUMNS, point=point)
        if len(table) < plan.replicates * len(plan.arms):
            continue
        for arm in plan.arms:
            arm_rows = table[table["arm"] == arm]
            summary = arm_summary(arm_rows, arm)
            summary["median_ttf_months"] = float(arm_rows["ttf_days"].median()) / 30.4375
            rows.append({"point": point, **{f"param:{k}": _plain(v) for k, v in values.items()}, **summary})
    result = pd.DataFrame(rows)
    partial = directory / ".summary.parquet.tmp"
    result.to_parquet(partial, index=False)
    os.replace(partial, directory / "summary.parquet")
    return result


def estimate_seconds(plan: SweepPlan, workers: int, calibration_patients: int = 3) -> float:
    """Seconds the sweep should take, from a short run of the first point (compiles first)."""
    chunk = Chunk(0, 0, tuple(range(min(calibration_patients, plan.replicates))))
    _run_chunk(_chunk_task(plan, Chunk(0, 0, (0,))))
    started = time.perf_counter()
    _run_chunk(_chunk_task(plan, chunk))
    per_patient = (time.perf_counter() - started) / len(chunk.patients)
    efficiency = 1.0 if workers == 1 else 0.85
    return per_patient * len(plan.points) * plan.replicates / (workers * efficiency)


def format_duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "unknown"
    minutes, seconds = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{seconds:02d}s" if hours else f"{minutes}m{seconds:02d}s"
