"""Parameter sweeps: points, validation, resumable output, executors and the CLI."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

import simulator
from simulator.cli import main
from simulator.scenario import ScenarioError
from simulator.sweep import grid_points, parse_values, plan_sweep, read_rows, run_sweep

SCENARIO = "two-clone-teaching"


def teaching(days: float = 300.0) -> simulator.Scenario:
    return simulator.load_scenario(SCENARIO, {"simulation.duration_days": days})


def test_values_lists_and_ranges():
    assert parse_values("a", "0.1, 0.2,0.3") == [0.1, 0.2, 0.3]
    assert parse_values("a", "lin:0:1:3") == [0.0, 0.5, 1.0]
    assert parse_values("a", "log:1e-9:1e-7:3") == pytest.approx([1e-9, 1e-8, 1e-7])
    assert parse_values("a", "range:1:2") == ("range", 1.0, 2.0)
    with pytest.raises(ScenarioError, match="--grid a: expected lin:START:STOP:N"):
        parse_values("a", "lin:0:1")
    with pytest.raises(ScenarioError, match="log ranges need START and STOP > 0"):
        parse_values("a", "log:0:1:3")


def test_grid_is_a_product_and_samples_are_seeded_latin_hypercubes():
    points = grid_points({"a": [1, 2], "b": [3, 4, 5]})
    assert len(points) == 6 and set(points.columns) == {"a", "b"}
    sample = grid_points({"a": ("range", 0.0, 1.0), "b": ("logrange", 1e-9, 1e-6)}, "lhs:10", 3)
    again = grid_points({"a": ("range", 0.0, 1.0), "b": ("logrange", 1e-9, 1e-6)}, "lhs:10", 3)
    pd.testing.assert_frame_equal(sample, again)
    # Latin hypercube: exactly one point in each tenth of every axis.
    assert sorted(np.floor(sample["a"] * 10).astype(int)) == list(range(10))
    with pytest.raises(ScenarioError, match="the grid is empty"):
        grid_points({})


def test_missing_path_suggests_the_nearest_and_bad_values_name_the_field():
    scenario = teaching()
    with pytest.raises(ScenarioError, match=r"--grid clones.resistant.brith: no scenario parameter .*'birth'"):
        plan_sweep(scenario, pd.DataFrame({"clones.resistant.brith": [0.1]}))
    with pytest.raises(ScenarioError, match=r"point 0 \(clones.resistant.birth=-0.1\): clones.resistant.birth"):
        plan_sweep(scenario, pd.DataFrame({"clones.resistant.birth": [-0.1]}))
    with pytest.raises(ScenarioError, match="policy.oligoprogression.max_lesions"):
        plan_sweep(scenario, pd.DataFrame({"policy.oligoprogression.max_lesions": [9]}))


def test_sweep_writes_resumes_and_refuses_a_changed_grid(tmp_path):
    grid = {"clones.resistant.birth": "0.18,0.2"}
    out = tmp_path / "sweep"
    first = run_sweep(teaching(), out, grid=grid, replicates=4)
    assert first.chunks_run == 2 and first.chunks_skipped == 0
    rows = read_rows(out)
    assert len(rows) == 8 and set(rows["point"]) == {0, 1}
    assert len(first.summary()) == 2
    again = run_sweep(teaching(), out, grid=grid, replicates=4)
    assert again.chunks_run == 0 and again.chunks_skipped == 2
    with pytest.raises(ScenarioError, match="holds a different sweep"):
        run_sweep(teaching(), out, grid={"clones.resistant.birth": "0.18,0.21"}, replicates=4)


def test_an_interrupted_sweep_loses_only_its_unfinished_chunks(tmp_path):
    grid = {"clones.resistant.birth": "0.18,0.2"}
    out = tmp_path / "sweep"
    run_sweep(teaching(), out, grid=grid, replicates=4)
    complete = read_rows(out)
    lost = out / "rows" / "point=00001" / "chunk-0000.parquet"
    lost.unlink()
    (lost.parent / ".chunk-0000.parquet.999.tmp").write_bytes(b"half a file")
    resumed = run_sweep(teaching(), out, grid=grid, replicates=4)
    assert resumed.chunks_run == 1
    assert not list(out.glob("rows/*/.*.tmp"))
    pd.testing.assert_frame_equal(read_rows(out), complete)


def test_results_do_not_depend_on_workers(tmp_path):
    grid = {"clones.resistant.birth": "0.18,0.2"}
    run_sweep(teaching(), tmp_path / "one", grid=grid, replicates=3, workers=1)
    run_sweep(teaching(), tmp_path / "two", grid=grid, replicates=3, workers=2)
    pd.testing.assert_frame_equal(read_rows(tmp_path / "one"), read_rows(tmp_path / "two"))


def test_dask_local_cluster_gives_the_same_rows(tmp_path):
    pytest.importorskip("distributed")
    grid = {"clones.resistant.birth": "0.18,0.2"}
    run_sweep(teaching(), tmp_path / "local", grid=grid, replicates=3)
    run_sweep(teaching(), tmp_path / "dask", grid=grid, replicates=3, executor="dask", workers=2)
    pd.testing.assert_frame_equal(read_rows(tmp_path / "local"), read_rows(tmp_path / "dask"))


def test_unreachable_scheduler_fails_fast_with_a_clear_message(tmp_path):
    pytest.importorskip("distributed")
    started = time.perf_counter()
    with pytest.raises(ScenarioError, match="--scheduler: cannot reach 'tcp://127.0.0.1:9'"):
        run_sweep(teaching(), tmp_path / "s", grid={"clones.resistant.birth": "0.18"}, replicates=1,
                  executor="dask", scheduler="tcp://127.0.0.1:9")
    assert time.perf_counter() - started < 30
    assert not (tmp_path / "s").exists()


def test_cli_sweep_bad_path_exits_2_and_writes_nothing(tmp_path):
    out = tmp_path / "s"
    result = CliRunner().invoke(main, ["sweep", SCENARIO, "--grid", "clones.resistant.brith=0.1,0.2",
                                       "--out", str(out)])
    assert result.exit_code == 2
    assert result.output.startswith("error: --grid clones.resistant.brith") and result.output.count("\n") == 1
    assert not out.exists()


def test_cli_dry_run_counts_points_and_simulations():
    result = CliRunner().invoke(main, ["sweep", SCENARIO, "--grid", "clones.resistant.birth=lin:0.17:0.2:4",
                                       "--replicates", "5", "--set", "simulation.duration_days=100",
                                       "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "4 points x 5 patients x 1 arm(s) = 20 simulations" in result.output
