"""Calibration (ABC-SMC) and sensitivity analysis: recovery of known parameters, bad input,
resuming, independence from the number of workers, and indices of a parameter with no effect."""

from __future__ import annotations

import math
import tomllib

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from simulator import calibration
from simulator.cli import main
from simulator.cohort import run_cohort
from simulator.scenario import load_scenario

# A cheap scenario: one lesion, exponential growth, monthly scans, 14 months of follow-up. The
# drug's kill sets the response, the resistant clone's birth rate (with the pre-existing pool
# drawn per patient) the time to progression.
BASE = """
id = "calibration-test"
description = "Two clone types and one drug, for calibration tests."

[clones.sensitive]
birth = 0.1
death = 0.09

[clones.resistant]
birth = 0.115
death = 0.095
resistance = "T790M"

[clones.bystander]
birth = 0.1
death = 0.1

[lesions.primary]
site = "lung"
carrying_capacity = 1e12
cells = { sensitive = 3e9, resistant = 1e6 }

[drugs.tki]
half_life_days = 2.0
effects.sensitive = { death_increase = 0.03 }

[therapy]
start_day = 14
lines.tki = { dosing = [{ drug = "tki", dose = 1 }] }

[monitoring]
visit_every_days = 28

[policy]
oligoprogression = { enabled = false }

[simulation]
duration_days = 420
record_every_days = 28
seed = 1
growth_law = "exponential"

[cohort.parameters."lesions.primary.cells.resistant"]
distribution = "lognormal"
median = 1e6
sigma = 1.5
"""

KILL = "drugs.tki.effects.sensitive.death_increase"
BIRTH = "clones.resistant.birth"
TRUTH = {KILL: 0.03, BIRTH: 0.115}
TARGETS = ("median_pfs_months", "objective_response")

CALIBRATION = f"""
[calibration]
targets = ["median_pfs_months", "objective_response"]

[calibration.parameters."{KILL}"]
distribution = "uniform"
low = 0.005
high = 0.06

[calibration.parameters."{BIRTH}"]
distribution = "uniform"
low = 0.1
high = 0.13
"""


def write_scenario(tmp_path, reference: dict, calibration_text: str = CALIBRATION, name="scenario.toml"):
    lines = ["[reference]"] + [f"{metric} = [{low!r}, {high!r}]" for metric, (low, high) in reference.items()]
    path = tmp_path / name
    path.write_text(BASE + "\n".join(lines) + "\n" + calibration_text)
    return path


@pytest.fixture(scope="module")
def observed():
    """The targets a cohort with the true parameters gives: each metric's 95% CI is its
    reference range (12 patients, the scenario's cohort seed)."""
    cohort = run_cohort(load_scenario(tomllib.loads(BASE)), n=12, settings=TRUTH)
    rows = []
    from simulator.cohort import observed_metric

    for metric in TARGETS:
        value, low, high = observed_metric(metric, cohort.endpoints)
        rows.append((metric, value, low, high))
    return {metric: (float(low), float(high)) for metric, _, low, high in rows}


def test_distance_is_zero_inside_ranges_and_counts_half_widths_outside():
    ranges = [(10.0, 14.0), (0.5, 0.7)]
    scales = np.array([2.0, 0.1])
    assert calibration.distance([12.0, 0.6], ranges, scales) == 0.0
    assert calibration.distance([16.0, 0.6], ranges, scales) == pytest.approx(1.0)
    assert calibration.distance([16.0, 0.4], ranges, scales) == pytest.approx(math.sqrt(2.0))
    assert calibration.distance([math.nan, 0.6], ranges, scales) == math.inf


def test_calibration_recovers_known_parameters(tmp_path, observed):
    """Targets are the 95% CIs of a cohort simulated at TRUTH. With common random numbers the
    true parameters reproduce that cohort exactly (distance 0), so they lie in the region ABC
    converges to (the prior restricted to summaries inside the ranges); the posterior's 95%
    interval misses them only if they sit in the outer 2.5% of that region."""
    path = write_scenario(tmp_path, observed)
    result = calibration.calibrate(load_scenario(path), tmp_path / "out", populations=3, particles=20,
                                   patients=12, seed=1, predictive_draws=2)
    quantiles = result.quantiles().set_index("parameter")
    for name, truth in TRUTH.items():
        assert quantiles.loc[name, "q0.025"] <= truth <= quantiles.loc[name, "q0.975"], quantiles
    # The posterior is narrower than the prior for the kill, which sets the response.
    assert quantiles.loc[KILL, "q0.975"] - quantiles.loc[KILL, "q0.025"] < 0.9 * (0.06 - 0.005)
    epsilons = result.populations["epsilon"].to_numpy()
    assert math.isinf(epsilons[0]) and np.all(np.diff(epsilons[1:]) <= 0)
    posterior = pd.read_parquet(tmp_path / "out" / "posterior.parquet")
    assert posterior["weight"].sum() == pytest.approx(1.0)
    assert set(TRUTH) <= set(posterior.columns)
    for name in ("posterior.png", "predictive.png", "predictive.parquet", "calibrated.toml", "provenance.json"):
        assert (tmp_path / "out" / name).exists()
    calibrated = load_scenario(tmp_path / "out" / "calibrated.toml")
    assert calibrated.drugs["tki"].effects["sensitive"].death_increase == pytest.approx(quantiles.loc[KILL, "q0.5"])


# --- resuming and workers ----------------------------------------------------------------------

SMALL = dict(populations=2, particles=8, patients=6, seed=4, predictive_draws=0)


class Interrupt(KeyboardInterrupt):
    pass


def _stop_after_first(stats):
    if stats["population"] == 0:
        raise Interrupt


@pytest.fixture(scope="module")
def small_runs(tmp_path_factory):
    """The same calibration run whole with 1 and 2 workers, and interrupted after its first
    population then rerun."""
    root = tmp_path_factory.mktemp("calibration-runs")
    path = write_scenario(root, {"median_pfs_months": (9.0, 11.0), "objective_response": (0.8, 1.0)})
    scenario = load_scenario(path)
    one = calibration.calibrate(scenario, root / "one", workers=1, **SMALL)
    two = calibration.calibrate(scenario, root / "two", workers=2, **SMALL)
    with pytest.raises(Interrupt):
        calibration.calibrate(scenario, root / "resumed", progress=_stop_after_first, **SMALL)
    history = calibration.History(root / "resumed" / calibration.HISTORY)
    interrupted_at = history.last_population()
    history.close()
    resumed = calibration.calibrate(scenario, root / "resumed", **SMALL)
    return one, two, resumed, interrupted_at, scenario, root


def test_a_resumed_calibration_ends_as_an_uninterrupted_one(small_runs):
    one, _, resumed, interrupted_at, _, _ = small_runs
    assert interrupted_at == 0
    assert resumed.populations_run == 1
    pd.testing.assert_frame_equal(one.posterior, resumed.posterior)
    columns = ["t", "epsilon", "proposals", "simulated", "acceptance", "ess"]
    pd.testing.assert_frame_equal(one.populations[columns], resumed.populations[columns])


def test_same_seed_same_result_with_one_and_two_workers(small_runs):
    one, two, _, _, _, _ = small_runs
    pd.testing.assert_frame_equal(one.posterior, two.posterior)


def test_a_changed_calibration_in_the_same_directory_is_refused(small_runs):
    _, _, _, _, scenario, root = small_runs
    with pytest.raises(ValueError, match="holds a different calibration \\(changed: particles\\)"):
        calibration.calibrate(scenario, root / "one", **{**SMALL, "particles": 9})


def test_rerunning_a_finished_calibration_runs_nothing(small_runs):
    one, _, _, _, scenario, root = small_runs
    again = calibration.calibrate(scenario, root / "one", **SMALL)
    assert again.populations_run == 0
    pd.testing.assert_frame_equal(one.posterior, again.posterior)


# --- bad input -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change, expected",
    [
        ((f'"{BIRTH}"', '"clones.resistant.brith"'),
         "calibration.parameters.clones.resistant.brith: no scenario parameter"),
        (("low = 0.1\nhigh = 0.13", "low = 0.13\nhigh = 0.1"),
         f"calibration.parameters.{BIRTH}.high: must be > low"),
        (('targets = ["median_pfs_months", "objective_response"]', 'targets = ["median_ttf_months"]'),
         "calibration.targets[0]: unknown metric 'median_ttf_months'"),
        (('targets = ["median_pfs_months", "objective_response"]', 'targets = ["median_os_months"]'),
         "calibration.targets[0]: 'median_os_months' has no range in [reference]"),
        (('targets = ["median_pfs_months", "objective_response"]', 'targets = ["median_pfs_on_tki_months"]'),
         "calibration.targets[0]: 'median_pfs_on_tki_months' has no range in [reference]"),
        ((f'"{KILL}"]\ndistribution = "uniform"\nlow = 0.005\nhigh = 0.06',
          f'"{KILL}"]\ndistribution = "fixed"\nvalue = 0.03'),
         "a prior must be one of uniform, loguniform, normal, lognormal"),
        ((f'"{BIRTH}"', '"cohort.parameters.lesions.primary.cells.resistant.sgma"'),
         "'sgma' is not a number of this distribution (did you mean 'sigma'?)"),
    ],
)
def test_bad_calibration_input_is_one_line_exit_2_and_writes_nothing(tmp_path, change, expected):
    text = CALIBRATION.replace(*change)
    assert text != CALIBRATION
    path = write_scenario(tmp_path, {"median_pfs_months": (9.0, 11.0), "objective_response": (0.8, 1.0)}, text)
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["calibrate", str(path), "--out", str(out), "--particles", "4",
                                       "--patients", "2", "--populations", "1"])
    assert result.exit_code == 2, result.output
    assert expected in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not out.exists()


def test_a_prior_reaching_an_invalid_value_is_refused_before_anything_runs(tmp_path):
    text = CALIBRATION.replace("low = 0.1\nhigh = 0.13", "low = 0.1\nhigh = 150")
    path = write_scenario(tmp_path, {"median_pfs_months": (9.0, 11.0), "objective_response": (0.8, 1.0)}, text)
    result = CliRunner().invoke(main, ["calibrate", str(path), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    assert f"calibration.parameters.{BIRTH}: a particle at its high (150) is refused" in result.output
    assert not (tmp_path / "out").exists()


def test_a_scenario_without_calibration_is_refused(tmp_path):
    path = write_scenario(tmp_path, {"median_pfs_months": (9.0, 11.0)}, "")
    result = CliRunner().invoke(main, ["calibrate", str(path), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and "calibration.parameters: the scenario names no parameter" in result.output
    assert not (tmp_path / "out").exists()


def test_a_line_s_pfs_can_be_a_target(tmp_path):
    text = CALIBRATION.replace('targets = ["median_pfs_months", "objective_response"]',
                               'targets = ["median_pfs_on_tki_months", "objective_response"]')
    path = write_scenario(tmp_path, {"median_pfs_on_tki_months": (9.0, 11.0), "objective_response": (0.8, 1.0)}, text)
    problem = calibration.make_problem(load_scenario(path), patients=5)
    assert set(problem.targets) == {"median_pfs_on_tki_months", "objective_response"}


def test_the_catalog_calibration_table_is_valid():
    scenario = load_scenario("egfr-first-line-gefitinib")
    assert 2 <= len(scenario.calibration.parameters) <= 6
    problem = calibration.make_problem(scenario, patients=5)
    assert set(problem.targets) <= set(scenario.reference)


# --- sensitivity -----------------------------------------------------------------------------


@pytest.mark.parametrize("method, samples, index", [("sobol", 8, "ST"), ("morris", 4, "mu_star")])
def test_sensitivity_gives_zero_to_a_parameter_without_effect(tmp_path, method, samples, index):
    """The bystander clone has no cells and no mutation leads to it, so its birth rate changes
    nothing; with the same virtual patients at every point the endpoint is exactly the same,
    and its indices are exactly zero. The drug's kill moves the endpoint."""
    path = write_scenario(tmp_path, {"median_pfs_months": (9.0, 11.0)}, "")
    out = tmp_path / "sens"
    result = CliRunner().invoke(main, ["sensitivity", str(path), "--param", f"{KILL}=0.005:0.06",
                                       "--param", "clones.bystander.birth=0.05:0.2", "--method", method,
                                       "--samples", str(samples), "--patients", "6", "--out", str(out)])
    assert result.exit_code == 0, result.output
    indices = pd.read_parquet(out / "indices.parquet")
    pd.testing.assert_frame_equal(indices, pd.read_csv(out / "indices.csv"), check_dtype=False)
    table = indices[indices["index"] == index].set_index("parameter")["value"]
    assert table["clones.bystander.birth"] == 0.0
    assert table[KILL] > 0.0
    assert (out / "indices.png").exists() and (out / "sweep" / "summary.parquet").exists()


@pytest.mark.parametrize(
    "param, expected",
    [
        (f"{KILL}=0.06:0.005", f"--param {KILL}: need LOW < HIGH"),
        ("drugs.tki.effects.sensitive.death_increse=0.01:0.02", "did you mean 'death_increase'"),
        (f"{KILL}=log:0:0.1", "log:LOW:HIGH needs LOW > 0"),
    ],
)
def test_bad_sensitivity_input_is_one_line_exit_2(tmp_path, param, expected):
    path = write_scenario(tmp_path, {"median_pfs_months": (9.0, 11.0)}, "")
    out = tmp_path / "sens"
    result = CliRunner().invoke(main, ["sensitivity", str(path), "--param", param, "--samples", "4",
                                       "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert expected in result.output and len(result.output.strip().splitlines()) == 1
    assert not out.exists()


COHORT_MEDIAN = "cohort.parameters.lesions.primary.cells.resistant.median"


def test_a_sweep_over_a_cohort_distribution_moves_the_population_not_the_patients(tmp_path):
    """A swept median of a cohort distribution changes what every patient draws: with the
    same random numbers at every point, each patient's resistant pool (lognormal: median times
    exp(sigma z)) scales with the median, exactly up to the rounding of each pool to whole cells."""
    path = write_scenario(tmp_path, {"median_pfs_months": (9.0, 11.0)}, "")
    out = tmp_path / "sweep"
    result = CliRunner().invoke(main, ["sweep", str(path), "--grid", f"{COHORT_MEDIAN}=1e5,1e7",
                                       "--replicates", "4", "--out", str(out)])
    assert result.exit_code == 0, result.output
    from simulator.sweep import open_sweep

    rows = open_sweep(out).rows.sort_values(["point", "patient"])
    pools = rows.pivot(index="patient", columns="point", values="lesions.primary.cells.resistant")
    rounding = 100 * 0.5 + 0.5
    assert np.all(np.abs(pools[1] - 100.0 * pools[0]) <= rounding), pools


def test_sensitivity_ranks_a_cohort_distribution_field(tmp_path):
    """The median of the resistant pool drawn per patient drives progression, so its index
    is positive; the bystander's birth rate changes nothing and its index is exactly zero."""
    path = write_scenario(tmp_path, {"median_pfs_months": (9.0, 11.0)}, "")
    out = tmp_path / "sens"
    result = CliRunner().invoke(main, ["sensitivity", str(path), "--param", f"{COHORT_MEDIAN}=log:1e4:1e8",
                                       "--param", "clones.bystander.birth=0.05:0.2", "--method", "morris",
                                       "--samples", "4", "--patients", "6", "--out", str(out)])
    assert result.exit_code == 0, result.output
    indices = pd.read_parquet(out / "indices.parquet")
    table = indices[indices["index"] == "mu_star"].set_index("parameter")["value"]
    assert table[COHORT_MEDIAN] > 0.0 and table["clones.bystander.birth"] == 0.0


@pytest.mark.parametrize(
    "param, expected",
    [
        ("cohort.parameters.lesions.primary.cells.resistant.medain=1e5:1e7", "did you mean 'median'"),
        ("cohort.parameters.lesions.primary.cells.resistant.sigma=-1:1", "sigma"),
    ],
)
def test_bad_cohort_fields_in_a_sensitivity_are_one_line_exit_2(tmp_path, param, expected):
    path = write_scenario(tmp_path, {"median_pfs_months": (9.0, 11.0)}, "")
    out = tmp_path / "sens"
    result = CliRunner().invoke(main, ["sensitivity", str(path), "--param", param, "--method", "morris",
                                       "--samples", "2", "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert expected in result.output and len(result.output.strip().splitlines()) == 1
    assert not out.exists()
