"""Parameter sweeps: grids, samples and point lists over scenario parameters, run in chunks
on local processes or a Dask cluster, streamed to partitioned Parquet, resumable.

Layout of a sweep directory::

    manifest.json                  what was asked (scenario, settings, points, replicates, arms,
                                   seed) and where it ran (versions, command line, time, commit)
    points.parquet                 one row per point: its index and parameter values
    rows/point=00012/chunk-0003.parquet   endpoints of patients of one chunk of one point
    summary.parquet                one row per point and arm (written when all chunks are done)
    .lock                          held by the sweep writing into the directory

``rows`` is a hive-partitioned Parquet data set: ``pd.read_parquet(DIR / "rows")``,
``pyarrow.dataset.dataset(DIR / "rows", partitioning="hive")`` or duckdb's
``read_parquet('DIR/rows/*/*.parquet', hive_partitioning = true)`` read it, the ``point``
column coming from the folder names; :func:`open_sweep` reads a whole sweep. Every row has
the point's values as ``param:PATH`` columns.

Every chunk is written to a temporary name and renamed, so a file that exists is complete;
rerunning the same sweep skips the chunks already on disk and recomputes any that cannot be
read back whole. Patient ``i`` of every point is the same virtual patient (same seed and
index), so differences between points are the effect of the parameters, not of the random
numbers, and results do not depend on the executor or on the number of workers. A point's
values are applied last, after the arm's and the user's settings (see :mod:`simulator.cohort`).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import pandas as pd

from simulator.cohort import (
    DEFAULT_ARM,
    Layer,
    _quiet_worker,
    _simulate_patients,
    arm_layers,
    arm_summary,
    with_settings,
)
from simulator.results import text_columns_as_strings, _html_card, check_output_directory, run_context, write_table
from simulator.scenario import (
    Scenario,
    ScenarioError,
    _require_path,
    calibration_path,
    is_cohort_field,
    parameter_value,
    parse_value,
    patient_raw,
    scenario_to_dict,
    set_path,
    validate_scenario,
    with_cohort_fields,
)

MANIFEST_VERSION = 2
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


def grid_scales(grid: dict[str, Any]) -> dict[str, str]:
    """``log`` for parameters given as ``log:`` or ``logrange:``, else ``linear`` (for plots)."""
    return {path: "log" if isinstance(spec, str) and spec.strip().startswith(("log:", "logrange:"))
            else "linear" for path, spec in grid.items()}


def point_settings(scenario: Scenario, points: pd.DataFrame, arms: Sequence[str] | None = None,
                   settings: dict | None = None) -> list[dict]:
    """The settings of every point, each checked in every arm after the arm's and the user's
    settings: a wrong path or value fails before anything runs."""
    if len(points) > MAX_POINTS:
        raise ScenarioError(f"--points: {len(points):,} points; at most {MAX_POINTS:,}")
    scenario, user = with_settings(scenario, settings)
    resolved = scenario_to_dict(scenario)
    for path in points.columns:
        if is_cohort_field(path):
            calibration_path(resolved, path, f"--grid {path}")
        else:
            _require_path(resolved, path, f"--grid {path}")
    layers_by_arm = arm_layers(scenario, arms, user)
    out = []
    for index, row in enumerate(points.itertuples(index=False)):
        overrides = {path: _plain(value) for path, value in zip(points.columns, row)}
        for path, value in overrides.items():
            current = parameter_value(resolved, path)
            if isinstance(current, int) and not isinstance(current, bool) and isinstance(value, float):
                if value.is_integer():
                    overrides[path] = int(value)
        try:
            point_resolved = with_cohort_fields(resolved, overrides)
            if point_resolved is not resolved:
                validate_scenario(point_resolved)
        except ScenarioError as error:
            raise ScenarioError(f"point {index} ({_describe(overrides)}): {error}") from None
        for arm, layers in layers_by_arm.items():
            raw = patient_raw(resolved)
            for _, values in [*layers, ("--grid", patient_settings(overrides))]:
                for path, value in values.items():
                    set_path(raw, path, value)
            try:
                validate_scenario(raw)
            except ScenarioError as error:
                where = "" if arm == DEFAULT_ARM else f" (arm '{arm}')"
                raise ScenarioError(f"point {index} ({_describe(overrides)}): {error}{where}") from None
        out.append(overrides)
    return out


def patient_settings(overrides: dict) -> dict:
    """A point's patient parameters (its cohort fields go into the scenario: see
    :meth:`SweepPlan.resolved_at`)."""
    return {path: value for path, value in overrides.items() if not is_cohort_field(path)}


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
    point_settings: list[dict]
    replicates: int
    arms: list[str]
    seed: int
    chunk_size: int
    settings: dict
    scales: dict

    @property
    def horizon_days(self) -> float:
        """Horizon of the restricted means: the shortest follow-up of any point, so every
        point's means cover the same time."""
        resolved = scenario_to_dict(self.scenario)
        spans = []
        for overrides in self.point_settings or [{}]:
            raw = patient_raw(resolved)
            for path, value in {**self.settings, **patient_settings(overrides)}.items():
                set_path(raw, path, value)
            spans.append(float(raw["simulation"]["duration_days"]) - float(raw["therapy"]["start_day"]))
        return min(spans)

    def layers(self, point: int) -> dict[str, list[Layer]]:
        """Each arm's settings for one point: the arm's, the user's, then the point's (its
        patient parameters; its cohort fields are in :meth:`resolved_at`)."""
        _, user = with_settings(self.scenario, self.settings)
        point_layer = ("--grid", patient_settings(self.point_settings[point]))
        return arm_layers(self.scenario, self.arms, [*user, point_layer])

    def resolved_at(self, point: int) -> dict:
        """The resolved scenario patients of one point are drawn from (with its cohort fields)."""
        return with_cohort_fields(scenario_to_dict(self.scenario), self.point_settings[point])

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
            "settings_sha256": _digest(self.settings),
            "points_sha256": _digest(self.points.to_dict(orient="list")),
            "replicates": self.replicates,
            "arms": self.arms,
            "seed": self.seed,
            "chunk_size": self.chunk_size,
        }
        arm_settings = {arm: dict(self.scenario.arms[arm].set) if arm in self.scenario.arms else {}
                        for arm in self.arms}
        return body | {"scenario": scenario, "settings": self.settings, "arm_settings": arm_settings,
                       "precedence": ["scenario", "arm", "--set", "--grid"],
                       "parameters": list(self.points.columns), "scales": self.scales,
                       "n_points": len(self.points), "created": run_context()}


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


_IDENTITY = ("version", "scenario_sha256", "settings_sha256", "points_sha256", "replicates", "arms", "seed",
             "chunk_size")


def plan_sweep(scenario: Scenario, points: pd.DataFrame, replicates: int = 10,
               arms: Sequence[str] | None = None, seed: int | None = None,
               chunk_size: int = DEFAULT_CHUNK, settings: dict | None = None,
               scales: dict | None = None) -> SweepPlan:
    """Check and plan a sweep: every point in every arm is validated here.

    ``settings`` (``--set``) apply after each arm's settings and before the point's values;
    ``scales`` says which parameters were given on a log scale (for plots).
    """
    if replicates <= 0:
        raise ScenarioError(f"--replicates: must be > 0, got {replicates}")
    if chunk_size <= 0:
        raise ScenarioError(f"chunk_size: must be > 0, got {chunk_size}")
    if points.empty:
        raise ScenarioError("--grid: the grid has no points")
    settings = dict(settings or {})
    per_point = point_settings(scenario, points, arms, settings)
    scenario, _ = with_settings(scenario, settings)
    arm_names = list(arm_layers(scenario, arms))
    seed = scenario.simulation.seed if seed is None else int(seed)
    scales = {path: (scales or {}).get(path, "linear") for path in points.columns}
    return SweepPlan(scenario, points.reset_index(drop=True), per_point, int(replicates), arm_names,
                     seed, int(chunk_size), settings, scales)


# --- running ---------------------------------------------------------------------------------


def _chunk_task(plan: SweepPlan, chunk: Chunk):
    return (plan.resolved_at(chunk.point), plan.layers(chunk.point), plan.seed, list(chunk.patients), False)


def _run_chunk(task) -> pd.DataFrame:
    """Worker: the endpoint rows of one chunk (module level, so processes and Dask can run it)."""
    rows, _, _ = _simulate_patients(task)
    return text_columns_as_strings(pd.DataFrame(rows))


def _write_chunk(table: pd.DataFrame, chunk: Chunk, point_values: dict, directory: Path) -> None:
    # No 'point' column: the folder name gives it, and a column would clash with it.
    table = table.assign(**{f"param:{k}": v for k, v in point_values.items()})
    target = chunk.path(directory)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    write_table(table, partial)
    os.replace(partial, target)


def _chunk_is_complete(path: Path, rows: int) -> bool:
    """A chunk on disk counts only if its Parquet footer reads and it has all its rows (a
    file cut short by a crash or a full disk is run again)."""
    import pyarrow.parquet as pq

    try:
        return pq.read_metadata(path).num_rows == rows
    except (OSError, ValueError):
        return False


def prepare_directory(plan: SweepPlan, directory: Path) -> None:
    """Create the sweep directory, or check that it holds this same sweep (to resume)."""
    manifest_path = directory / "manifest.json"
    check_output_directory(directory, marker="manifest.json")
    if manifest_path.exists():
        try:
            previous = json.loads(manifest_path.read_text())
        except (OSError, ValueError) as error:
            raise ScenarioError(f"--out: cannot read '{manifest_path}': {error}") from None
        current = plan.manifest()
        changed = [key for key in _IDENTITY if previous.get(key) != current.get(key)]
        if changed:
            raise ScenarioError(
                f"--out: '{directory}' holds a different sweep (changed: {', '.join(changed)}); "
                "use a new directory or rerun the same command to resume"
            )
        return
    directory.mkdir(parents=True, exist_ok=True)
    _write_json_atomically(manifest_path, plan.manifest())
    points = plan.points.assign(point=range(len(plan.points)))
    partial = directory / ".points.parquet.tmp"
    points.to_parquet(partial, index=False)
    os.replace(partial, directory / "points.parquet")


class SweepLock:
    """An exclusive lock on a sweep directory (``DIR/.lock``), so that a second sweep into
    it refuses instead of doing the same work. The operating system releases it when the
    process ends, however it ends, so a crash never leaves a stale lock.

    A forked worker closes its copy of the lock file at once (``_drop_inherited_locks``):
    the lock belongs to the open file, which fork shares, so a killed sweep's lock would
    otherwise last until its last worker had ended too."""

    def __init__(self, directory: Path, what: str = "sweep"):
        self.path = directory / ".lock"
        self.what = what
        self.handle = None

    def __enter__(self) -> SweepLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def acquire(self) -> None:
        import fcntl

        handle = open(self.path, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise ScenarioError(f"--out: another {self.what} (pid {holder}) is writing into '{self.path.parent}'; "
                                "wait for it to finish or choose another directory") from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self.handle = handle
        _HELD_LOCKS.add(self)

    def release(self) -> None:
        if self.handle is not None:
            self.handle.close()
            self.handle = None
        _HELD_LOCKS.discard(self)


_HELD_LOCKS: weakref.WeakSet[SweepLock] = weakref.WeakSet()


def _drop_inherited_locks() -> None:
    """In a forked child, close the lock files inherited from the parent (closing a copy
    leaves the parent's lock in place)."""
    for lock in list(_HELD_LOCKS):
        lock.release()


os.register_at_fork(after_in_child=_drop_inherited_locks)


def _write_json_atomically(path: Path, value: dict) -> None:
    partial = path.with_name(f".{path.name}.tmp")
    partial.write_text(json.dumps(value, indent=2, default=str))
    os.replace(partial, path)


@dataclass(frozen=True)
class SweepResult:
    """What :func:`run_sweep` did: the directory and how many chunks ran and were skipped.
    Read the data with :meth:`rows`, :meth:`summary` or :func:`open_sweep`."""

    directory: Path
    chunks_run: int
    chunks_skipped: int
    seconds: float

    def rows(self, columns: Sequence[str] | None = None) -> pd.DataFrame:
        return read_rows(self.directory, columns)

    def summary(self) -> pd.DataFrame:
        return pd.read_parquet(self.directory / "summary.parquet")


class Sweep:
    """A sweep directory, opened (see :func:`open_sweep`).

    Attributes
    ----------
    manifest : dict
        What was asked and where it ran.
    points : pandas.DataFrame
        One row per point: ``point`` and one column per parameter path.
    summary : pandas.DataFrame
        One row per point and arm: ``point``, ``param:PATH`` columns and the endpoints of
        :func:`simulator.cohort.arm_summary` (empty until the sweep is complete).
    rows : pandas.DataFrame
        One row per point, arm and patient (read on first use).
    """

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        manifest = self.directory / "manifest.json"
        if not manifest.exists():
            raise ScenarioError(f"open_sweep: no manifest.json in '{self.directory}'; not a sweep directory")
        self.manifest = json.loads(manifest.read_text())
        self.points = pd.read_parquet(self.directory / "points.parquet")
        summary = self.directory / "summary.parquet"
        self.summary = pd.read_parquet(summary) if summary.exists() else pd.DataFrame()
        self._rows = None

    @property
    def rows(self) -> pd.DataFrame:
        if self._rows is None:
            self._rows = read_rows(self.directory)
        return self._rows

    def __repr__(self) -> str:
        return (f"Sweep('{self.directory}', points={len(self.points)}, replicates={self.manifest.get('replicates')}, "
                f"arms={self.manifest.get('arms')}, complete={not self.summary.empty})")

    def _repr_html_(self) -> str:
        from simulator.plots import plot_sweep

        def draw():
            return plot_sweep(self.summary, "rmst_pfs_months", scales=self.manifest.get("scales"))

        return _html_card(repr(self), self.summary, draw)


def open_sweep(directory: str | Path) -> Sweep:
    """Open a sweep directory: its ``manifest``, ``points``, ``summary`` and ``rows``
    (:class:`Sweep`), e.g. ``simulator.open_sweep("sweeps/t790m").summary``."""
    return Sweep(directory)


def run_sweep(scenario: Scenario, out: str | Path, grid: dict[str, str] | None = None,
              points: pd.DataFrame | str | Path | None = None, sample: str | None = None,
              replicates: int = 10, arms: Sequence[str] | None = None, seed: int | None = None,
              executor: str = "local", workers: int = 1, scheduler: str | None = None,
              progress: bool = False, sample_seed: int = 0, settings: dict | None = None) -> SweepResult:
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
    settings
        ``{path: value}`` applied after each arm's settings and before the point's values.
    executor, workers, scheduler
        Where chunks run: ``local`` processes or ``dask`` (see :func:`execute_sweep`).
    """
    if points is not None and grid:
        raise ScenarioError("--points: give either --grid or --points, not both")
    if points is None:
        parsed = {path: (parse_values(path, v) if isinstance(v, str) else list(v))
                  for path, v in (grid or {}).items()}
        table = grid_points(parsed, sample, sample_seed)
        scales = grid_scales(grid or {})
    else:
        table = points if isinstance(points, pd.DataFrame) else points_from_csv(points)
        scales = {}
    plan = plan_sweep(scenario, table, replicates, arms, seed, settings=settings, scales=scales)
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
    lock = SweepLock(directory)
    try:
        prepare_directory(plan, directory)
        lock.acquire()
    except BaseException:
        _disconnect(connection)
        raise
    try:
        return _execute_locked(plan, directory, workers, scheduler, progress, connection)
    finally:
        lock.release()


def _execute_locked(plan: SweepPlan, directory: Path, workers: int, scheduler, progress: bool,
                    connection) -> SweepResult:
    for stale in (directory / "rows").glob("point=*/.*.tmp"):
        stale.unlink()  # left by an interrupted write; its chunk is simply run again
    chunks = plan.chunks()
    rows_per_chunk = {chunk: len(chunk.patients) * len(plan.arms) for chunk in chunks}
    todo = [chunk for chunk in chunks if not _chunk_is_complete(chunk.path(directory), rows_per_chunk[chunk])]
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
    """Rows of a sweep (all points, or one), in point and patient order, with the ``point``
    (an integer) first."""
    directory = Path(directory)
    pattern = f"point={point:05d}/chunk-*.parquet" if point is not None else "point=*/chunk-*.parquet"
    files = sorted((directory / "rows").glob(pattern))
    wanted = [c for c in columns if c != "point"] if columns else None
    if not files:
        return pd.DataFrame(columns=["point", *(wanted or [])])
    tables = []
    for path in files:
        table = pd.read_parquet(path, columns=wanted)
        table.insert(0, "point", int(path.parent.name.removeprefix("point=")))
        tables.append(table)
    return pd.concat(tables, ignore_index=True)


def write_summary(plan: SweepPlan, directory: Path) -> pd.DataFrame:
    """One row per point and arm, computed point by point (never all rows at once)."""
    rows = []
    horizon = plan.horizon_days
    mechanisms = plan.scenario.mechanisms
    for point, values in enumerate(plan.points.to_dict(orient="records")):
        table = read_rows(directory, point=point)
        if len(table) < plan.replicates * len(plan.arms):
            continue
        for arm in plan.arms:
            arm_rows = table[table["arm"] == arm]
            summary = arm_summary(arm_rows, arm, horizon, mechanisms)
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
