"""A researcher's path: arms and patients from the CLI, one precedence of settings, outputs
that standard readers open, whole-directory writes, provenance, errors, notebook display."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

import simulator
from simulator.cli import main
from simulator.cohort import draw_patient, patient_scenario, restricted_mean, run_cohort
from simulator.results import CLINICAL_EVENTS
from simulator.scenario import scenario_to_dict
from simulator.results import write_table
from simulator.sweep import SweepLock, plan_sweep, read_rows, run_sweep

OLIGO = "egfr-oligoprogression"
SHORT = ["--set", "simulation.duration_days=300"]
TEACHING = "two-clone-teaching"


@pytest.fixture
def cli():
    return CliRunner()


def invoke(cli, *args):
    return cli.invoke(main, [str(a) for a in args])


def assert_one_line_error(result, code: int = 2):
    assert result.exit_code == code, result.output
    assert result.output.count("\n") == 1 and "Traceback" not in result.output, result.output


def short_teaching(days: float = 100.0) -> simulator.Scenario:
    return simulator.load_scenario(TEACHING, {"simulation.duration_days": days})


# --- arms and patients -----------------------------------------------------------------------


def test_run_patient_in_an_arm_is_exactly_that_cohort_patient(cli, tmp_path):
    out = tmp_path / "patient"
    result = invoke(cli, "run", OLIGO, "--patient", 2, "--arm", "srt-oligo", *SHORT, "--out", out, "--no-figures")
    assert result.exit_code == 0, result.output
    cohort = run_cohort(simulator.load_scenario(OLIGO), n=3, arms=["srt-oligo"],
                        settings={"simulation.duration_days": 300}, keep_results=True)
    alone = pd.read_parquet(out / "endpoints.parquet")
    write_table(cohort.endpoints[cohort.endpoints["patient"] == 2], tmp_path / "row.parquet")
    row = pd.read_parquet(tmp_path / "row.parquet")
    pd.testing.assert_frame_equal(row[alone.columns], alone)
    events = pd.read_parquet(out / "events.parquet")
    clinical = events[events["kind"].isin(CLINICAL_EVENTS)][["time", "kind", "detail", "value"]]
    expected = cohort.events[(cohort.events["patient"] == 2)][["time", "kind", "detail", "value"]]
    pd.testing.assert_frame_equal(clinical.reset_index(drop=True), expected.reset_index(drop=True))
    # The drawn parameters differ from patient 0's: --patient is not --replicate.
    assert "patient parameters:" in result.output


def test_run_without_arm_names_the_arm_it_ran(cli):
    result = invoke(cli, "run", "egfr-drug-holiday", "--set", "simulation.duration_days=50")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0] == \
        "arm: continuous (the first of continuous, ctdna-holiday; choose with --arm)"
    bad = invoke(cli, "run", "egfr-drug-holiday", "--arm", "ctdna-holliday")
    assert_one_line_error(bad)
    assert "did you mean 'ctdna-holiday'" in bad.output


def test_show_lists_each_arms_settings(cli):
    result = invoke(cli, "show", OLIGO)
    assert result.exit_code == 0
    assert "  srt-oligo-5: " in result.output
    assert "      policy.oligoprogression.max_lesions = 5   (scenario: 3)" in result.output


# --- one precedence --------------------------------------------------------------------------


def test_precedence_is_scenario_then_arm_then_set_then_grid():
    path = "policy.oligoprogression.max_lesions"
    scenario = simulator.load_scenario(OLIGO)
    assert scenario.policy.oligoprogression.max_lesions == 3
    arm, _ = patient_scenario(scenario, "srt-oligo-5")
    assert arm.policy.oligoprogression.max_lesions == 5
    user, _ = patient_scenario(scenario, "srt-oligo-5", patient=1, settings={path: 2})
    assert user.policy.oligoprogression.max_lesions == 2
    plan = plan_sweep(scenario, pd.DataFrame({path: [1, 4]}), replicates=1, arms=["srt-oligo-5"],
                      settings={path: 2})
    resolved = scenario_to_dict(plan.scenario)
    for point, expected in ((0, 1), (1, 4)):
        raw, _ = draw_patient(resolved, resolved["cohort"], plan.seed, 0, plan.layers(point)["srt-oligo-5"])
        assert raw["policy"]["oligoprogression"]["max_lesions"] == expected


def test_set_wins_over_the_arm_in_a_cohort_and_is_recorded(cli, tmp_path):
    out = tmp_path / "cohort"
    result = invoke(cli, "cohort", OLIGO, "-n", 2, "--arm", "srt-oligo", "--set",
                    "policy.oligoprogression.enabled=false", *SHORT, "--out", out, "--no-figures")
    assert result.exit_code == 0, result.output
    provenance = json.loads((out / "provenance.json").read_text())
    layers = provenance["settings"]["srt-oligo"]
    assert [layer["source"] for layer in layers] == ["arms.srt-oligo.set", "--set"]
    assert layers[1]["set"] == {"policy.oligoprogression.enabled": False, "simulation.duration_days": 300}
    scenario, _ = patient_scenario(simulator.load_scenario(OLIGO), "srt-oligo", patient=0,
                                   settings={"policy.oligoprogression.enabled": False})
    assert scenario.policy.oligoprogression.enabled is False


def test_a_set_path_close_to_a_clone_name_suggests_it(cli):
    result = invoke(cli, "run", "--set", "clones.T790Mx.death=0.1")
    assert_one_line_error(result)
    assert "no 'T790Mx' in clones (did you mean 'T790M'?)" in result.output


# --- standard readers and column formats ------------------------------------------------------


@pytest.fixture(scope="module")
def small_sweep(tmp_path_factory):
    out = tmp_path_factory.mktemp("sweeps") / "s"
    run_sweep(short_teaching(), out, grid={"clones.resistant.birth": "log:0.17:0.2:2"}, replicates=3)
    return out


def test_sweep_rows_open_with_pandas_pyarrow_and_open_sweep(small_sweep):
    rows = pd.read_parquet(small_sweep / "rows")
    assert len(rows) == 6 and sorted(rows["point"].astype(int).unique()) == [0, 1]
    dataset = ds.dataset(small_sweep / "rows", partitioning="hive")
    assert dataset.count_rows() == 6
    opened = simulator.open_sweep(small_sweep)
    pd.testing.assert_frame_equal(opened.rows, read_rows(small_sweep))
    assert list(opened.summary["point"]) == [0, 1]
    assert opened.manifest["scales"] == {"clones.resistant.birth": "log"}
    for column in ("rmst_pfs_months", "rmst_os_months", "progressed_by_6_months", "first_rebiopsy_none"):
        assert pd.api.types.is_float_dtype(opened.summary[column])
    assert "Sweep(" in repr(opened) and "<table" in opened._repr_html_()


def test_list_columns_are_parquet_lists_in_every_table(cli, tmp_path, small_sweep):
    run_dir, cohort_dir = tmp_path / "run", tmp_path / "cohort"
    assert invoke(cli, "run", TEACHING, "--out", run_dir, "--no-figures").exit_code == 0
    assert invoke(cli, "cohort", TEACHING, "-n", 2, "--out", cohort_dir, "--no-figures").exit_code == 0
    chunk = next((small_sweep / "rows").glob("point=*/chunk-*.parquet"))
    for path in (run_dir / "endpoints.parquet", cohort_dir / "endpoints.parquet", chunk):
        schema = pq.read_schema(path)
        assert schema.field("mechanisms_at_progression").type == pa.list_(pa.string()), path
        assert "time_on_line" not in schema.names
        assert all(" " not in name for name in schema.names), schema.names


def test_visit_columns_have_no_spaces():
    result = simulator.simulate(simulator.load_scenario("egfr-first-line-gefitinib",
                                                        {"simulation.duration_days": 50}), seed=1)
    assert "vaf_MET_amplification" in result.visits.columns
    assert not [c for c in result.visits.columns if " " in c]


# --- output places ---------------------------------------------------------------------------


@pytest.mark.parametrize("command", [
    ["run", TEACHING],
    ["cohort", TEACHING, "-n", "1"],
    ["sweep", TEACHING, "--grid", "clones.resistant.birth=0.18", "--replicates", "1"],
])
def test_an_unwritable_out_is_refused_before_simulating(cli, tmp_path, command, monkeypatch):
    import simulator.runner

    def never(*args, **kwargs):
        raise AssertionError("simulated before checking the output place")

    monkeypatch.setattr(simulator.runner, "simulate", never)
    monkeypatch.setattr("simulator.cohort.run_patient", never)
    (tmp_path / "file").write_text("")
    result = invoke(cli, *command, "--out", tmp_path / "file" / "out")
    assert_one_line_error(result)
    assert "is not a directory" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_plot_sweep_into_a_missing_directory_is_one_line(cli, small_sweep, tmp_path):
    result = invoke(cli, "plot-sweep", small_sweep, "--out", tmp_path / "missing" / "p.png")
    assert_one_line_error(result)
    assert not (tmp_path / "missing").exists()


def test_a_rerun_replaces_the_directory_whole(cli, tmp_path):
    out = tmp_path / "run"
    assert invoke(cli, "run", TEACHING, "--out", out).exit_code == 0
    assert (out / "muller.png").exists()
    assert invoke(cli, "run", TEACHING, "--out", out, "--no-figures").exit_code == 0
    assert not list(out.glob("*.png"))
    cohort = tmp_path / "cohort"
    assert invoke(cli, "cohort", OLIGO, "-n", 1, *SHORT, "--out", cohort, "--no-figures").exit_code == 0
    assert (cohort / "comparisons.parquet").exists()
    assert invoke(cli, "cohort", OLIGO, "-n", 1, "--arm", "switch", *SHORT, "--out", cohort,
                  "--no-figures").exit_code == 0
    assert not (cohort / "comparisons.parquet").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cohort", "run"]  # no staging left


def test_a_failed_write_keeps_the_earlier_result_and_leaves_no_staging(tmp_path, monkeypatch):
    result = simulator.simulate(short_teaching(), seed=1)
    out = tmp_path / "run"
    result.write(out, figures=False)
    before = sorted(p.name for p in out.iterdir())

    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("simulator.plots.save_patient_figures", broken)
    with pytest.raises(OSError):
        result.write(out, figures=True)
    assert sorted(p.name for p in out.iterdir()) == before
    assert [p.name for p in tmp_path.iterdir()] == ["run"]


def test_a_truncated_chunk_is_recomputed_on_resume(tmp_path):
    out = tmp_path / "s"
    grid = {"clones.resistant.birth": "0.18,0.2"}
    run_sweep(short_teaching(), out, grid=grid, replicates=2)
    complete = read_rows(out)
    chunk = out / "rows" / "point=00001" / "chunk-0000.parquet"
    chunk.write_bytes(chunk.read_bytes()[:100])
    resumed = run_sweep(short_teaching(), out, grid=grid, replicates=2)
    assert resumed.chunks_run == 1
    pd.testing.assert_frame_equal(read_rows(out), complete)


def test_a_second_sweep_into_a_locked_directory_refuses(tmp_path):
    out = tmp_path / "s"
    grid = {"clones.resistant.birth": "0.18"}
    run_sweep(short_teaching(), out, grid=grid, replicates=1)
    with SweepLock(out):
        with pytest.raises(simulator.ScenarioError, match="another sweep .* is writing into"):
            run_sweep(short_teaching(), out, grid=grid, replicates=1)
    assert run_sweep(short_teaching(), out, grid=grid, replicates=1).chunks_skipped == 1


_KILLED_HOLDER = """
import os, pathlib, sys, time
from simulator.sweep import SweepLock
lock = SweepLock(pathlib.Path(sys.argv[1]))
lock.acquire()
worker = os.fork()
if worker == 0:
    os.closerange(1, 3)  # leave the test's pipes to the process it waits for
    time.sleep(60)
    os._exit(0)
print(worker, flush=True)
os.kill(os.getpid(), 9)
"""


def test_a_killed_sweeps_lock_is_free_while_its_forked_workers_still_run(tmp_path):
    """The lock dies with the sweep's process: workers forked while it was held do not keep it."""
    import os
    import signal
    import subprocess
    import sys

    holder = subprocess.run([sys.executable, "-c", _KILLED_HOLDER, str(tmp_path)],
                            capture_output=True, text=True, timeout=60)
    assert holder.returncode == -signal.SIGKILL, holder.stderr
    worker = int(holder.stdout)
    try:
        os.kill(worker, 0)  # the orphaned worker still runs
        with SweepLock(tmp_path):
            pass
    finally:
        os.kill(worker, signal.SIGKILL)


# --- errors ----------------------------------------------------------------------------------


def test_an_internal_error_is_one_line_naming_a_log(cli, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("engine exploded")

    monkeypatch.setattr("simulator.runner.simulate", broken)
    result = invoke(cli, "run", TEACHING)
    assert_one_line_error(result, code=3)
    assert "internal error: RuntimeError: engine exploded; traceback in " in result.output
    log = result.output.split("traceback in ")[1].split(" ")[0]
    text = open(log).read()
    assert "Traceback" in text and "engine exploded" in text


def test_usage_errors_are_one_line_with_the_help_hint(cli):
    result = invoke(cli, "cohort", "-n", "many")
    assert_one_line_error(result)
    assert result.output.endswith("(see 'main cohort --help')\n")


def test_a_misspelt_scenario_id_gets_a_suggestion_and_help_names_the_default(cli):
    result = invoke(cli, "run", "egfr-first-line-gefitnib")
    assert_one_line_error(result)
    assert "did you mean 'egfr-first-line-gefitinib'" in result.output
    from simulator.catalog import DEFAULT_SCENARIO

    help_text = "".join(invoke(cli, "run", "--help").output.split())  # undo the line wrapping
    assert f"(default:{DEFAULT_SCENARIO})" in help_text and "teaching" not in help_text


# --- provenance ------------------------------------------------------------------------------


def test_provenance_is_complete_and_reruns_the_run(cli, tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    assert invoke(cli, "run", OLIGO, "--patient", 1, "--arm", "srt-oligo", "--seed", 7, *SHORT,
                  "--out", first, "--no-figures").exit_code == 0
    provenance = json.loads((first / "provenance.json").read_text())
    for key in ("simulator_version", "command_line", "created_utc", "seed", "replicate", "scenario"):
        assert key in provenance
    assert provenance["seed"] == 7 and provenance["replicate"] == 1
    assert provenance["invocation"]["arm"] == "srt-oligo"
    assert "git_commit" in provenance  # the tests run from a checkout
    result = invoke(cli, "run", first / "provenance.json", "--out", second, "--no-figures")
    assert result.exit_code == 0, result.output
    for table in ("trajectory", "events", "visits", "endpoints"):
        pd.testing.assert_frame_equal(pd.read_parquet(first / f"{table}.parquet"),
                                      pd.read_parquet(second / f"{table}.parquet"))


def test_sweep_manifest_records_where_it_ran(small_sweep):
    manifest = json.loads((small_sweep / "manifest.json").read_text())
    for key in ("simulator_version", "command_line", "created_utc"):
        assert key in manifest["created"]
    assert manifest["precedence"] == ["scenario", "arm", "--set", "--grid"]


# --- notebooks and smooth endpoints ----------------------------------------------------------


def test_results_have_short_reprs_html_and_summary_frames():
    result = simulator.simulate(short_teaching(), seed=1)
    assert len(repr(result)) < 300 and repr(result).startswith("PatientResult(")
    assert isinstance(result.summary(), pd.DataFrame) and len(result.summary()) == 1
    html = result._repr_html_()
    assert "<table" in html and "data:image/png;base64," in html
    assert "total burden" in result.summary_text()
    cohort = run_cohort(short_teaching(), n=2)
    assert len(repr(cohort)) < 300 and "<table" in cohort._repr_html_()


def test_restricted_mean_on_a_hand_computed_example():
    # S = 1 on [0, 1), 4/5 on [1, 3), 4/15 from 3: area to 4 is 1 + 1.6 + 4/15.
    times, events = [1, 2, 3, 3, 4], [True, False, True, True, False]
    assert restricted_mean(times, events, 4.0) == pytest.approx(1 + 1.6 + 4 / 15)
    assert restricted_mean(times, events, 0.5) == pytest.approx(0.5)
    # Without censoring it is the mean of min(T, horizon).
    draws = np.random.default_rng(1).exponential(10.0, 50)
    assert restricted_mean(draws, np.ones(50, bool), 8.0) == pytest.approx(np.minimum(draws, 8.0).mean())
    assert math.isfinite(restricted_mean(draws, np.zeros(50, bool), 8.0))


def test_plot_sweep_cli_reads_the_scales_and_refuses_text_endpoints(cli, small_sweep, tmp_path):
    target = tmp_path / "p.png"
    result = invoke(cli, "plot-sweep", small_sweep, "--out", target)
    assert result.exit_code == 0, result.output
    assert target.read_bytes()[:4] == b"\x89PNG"
    bad = invoke(cli, "plot-sweep", small_sweep, "--endpoint", "mechanisms_at_first_progression")
    assert_one_line_error(bad)
    assert "is not a number" in bad.output


def test_a_rewrite_through_a_link_replaces_the_target_and_keeps_the_link(tmp_path):
    result = simulator.simulate(short_teaching(), seed=1)
    target, link = tmp_path / "target", tmp_path / "link"
    result.write(target, figures=False)
    link.symlink_to(target)
    result.write(link, figures=False)
    assert link.is_symlink() and (link / "provenance.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link", "target"]
