"""Virtual cohorts, arms with common random numbers, survival statistics and the catalog."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import simulator
from simulator.catalog import catalog_ids
from simulator.cohort import draw_patient, run_cohort, sample
from simulator.scenario import Distribution, scenario_to_dict
from simulator.survival import kaplan_meier, logrank, median_survival, proportion_ci

SMALL = "egfr-first-line-gefitinib"


def short(scenario_id: str, days: float = 400.0, **overrides) -> simulator.Scenario:
    return simulator.load_scenario(scenario_id, {"simulation.duration_days": days, **overrides})


# --- patients --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec, mean, variance",
    [
        ({"distribution": "uniform", "low": 2.0, "high": 4.0}, 3.0, 4.0 / 12),
        ({"distribution": "normal", "mean": 1.0, "sd": 0.5}, 1.0, 0.25),
        ({"distribution": "poisson", "mean": 3.0}, 3.0, 3.0),
        ({"distribution": "lognormal", "median": 2.0, "sigma": 0.3},
         2.0 * math.exp(0.045), 4.0 * math.exp(0.09) * (math.exp(0.09) - 1)),
    ],
)
def test_parameter_distributions_have_their_moments(spec, mean, variance):
    """The sample mean of 4,000 draws lies within 4 standard errors of the exact mean."""
    rng = np.random.default_rng(5)
    distribution = Distribution.model_validate(spec)
    draws = np.array([sample(distribution, rng) for _ in range(4000)], float)
    assert abs(draws.mean() - mean) < 4 * math.sqrt(variance / draws.size)


def test_choice_follows_its_weights():
    rng = np.random.default_rng(9)
    distribution = Distribution.model_validate(
        {"distribution": "choice", "values": ["a", "b", "c"], "weights": [0.5, 0.3, 0.2]})
    counts = pd.Series([sample(distribution, rng) for _ in range(3000)]).value_counts()
    chi2 = stats.chisquare([counts["a"], counts["b"], counts["c"]], [1500, 900, 600])
    assert chi2.pvalue > 0.001


def test_patients_are_the_same_whatever_the_cohort_size():
    scenario = short(SMALL)
    resolved = scenario_to_dict(scenario)
    alone, drawn_alone = draw_patient(resolved, resolved["cohort"], 2026, 17)
    again, drawn_again = draw_patient(resolved, resolved["cohort"], 2026, 17)
    other, _ = draw_patient(resolved, resolved["cohort"], 2026, 18)
    assert alone == again and drawn_alone == drawn_again
    assert alone != other


# --- cohorts ---------------------------------------------------------------------------------


def test_cohort_is_bit_identical_for_any_number_of_workers():
    scenario = short(SMALL, 300.0)
    one = run_cohort(scenario, n=6, workers=1)
    two = run_cohort(scenario, n=6, workers=2)
    pd.testing.assert_frame_equal(one.endpoints, two.endpoints)
    pd.testing.assert_frame_equal(one.events, two.events)


def test_patient_i_is_the_same_in_a_larger_cohort_and_alone():
    scenario = short(SMALL, 300.0)
    full = run_cohort(scenario, n=4)
    alone = run_cohort(scenario, n=1, start=2)
    row = full.endpoints[full.endpoints["patient"] == 2].reset_index(drop=True)
    pd.testing.assert_frame_equal(row, alone.endpoints)


def test_arms_share_the_patient_until_the_first_differing_decision():
    scenario = short("egfr-drug-holiday", 500.0)
    cohort = run_cohort(scenario, n=6, keep_results=True)
    assert cohort.arms == ["continuous", "ctdna-holiday"]
    for patient in range(6):
        continuous = cohort.results[(patient, "continuous")]
        holiday = cohort.results[(patient, "ctdna-holiday")]
        stops = holiday.events[holiday.events["kind"] == "drug_stop"]
        diverged = stops["time"].iloc[0] if len(stops) else math.inf
        # Everything the clinic saw before the first stop is identical in both arms.
        seen_a = continuous.visits[continuous.visits["time"] <= diverged].reset_index(drop=True)
        seen_b = holiday.visits[holiday.visits["time"] <= diverged].reset_index(drop=True)
        columns = ["time", "response", "sum_diameters_mm", "marker", "ctdna_copies"]
        pd.testing.assert_frame_equal(seen_a[columns], seen_b[columns])
        same_truth = continuous.trajectory["time"] <= diverged
        assert continuous.trajectory[same_truth]["cells"].equals(
            holiday.trajectory[holiday.trajectory["time"] <= diverged]["cells"])


def test_cohort_summary_and_comparison_tables():
    scenario = short("egfr-oligoprogression", 500.0)
    cohort = run_cohort(scenario, n=8, arms=["switch", "srt-oligo"])
    summary = cohort.summary()
    assert list(summary["arm"]) == ["switch", "srt-oligo"]
    assert (summary["patients"] == 8).all()
    comparison = cohort.comparisons()
    assert set(comparison["endpoint"]) == {"pfs_days", "os_days"}
    shares = comparison[["patients_better", "patients_same", "patients_worse"]].sum(axis=1)
    assert np.allclose(shares, 1.0)


def test_unknown_arm_and_bad_sizes_are_refused():
    scenario = short(SMALL)
    with pytest.raises(simulator.ScenarioError, match="--arm: unknown arm 'nope'"):
        run_cohort(scenario, n=2, arms=["nope"])
    with pytest.raises(ValueError, match="n: must be > 0"):
        run_cohort(scenario, n=0)


def test_bad_distribution_and_missing_path_name_the_field():
    raw = scenario_to_dict(short(SMALL))
    raw["cohort"]["parameters"]["clones.sensitive.birth"] = {"distribution": "uniform", "low": 2, "high": 1}
    with pytest.raises(simulator.ScenarioError, match="high: must be > low"):
        simulator.load_scenario(raw)
    raw = scenario_to_dict(short(SMALL))
    raw["cohort"]["parameters"]["clones.sensitive.brith"] = {"distribution": "fixed", "value": 0.1}
    with pytest.raises(simulator.ScenarioError,
                       match=r"cohort.parameters.clones.sensitive.brith: no scenario parameter .*did you mean 'birth'"):
        simulator.load_scenario(raw)


# --- survival statistics ---------------------------------------------------------------------


def test_kaplan_meier_on_a_hand_computed_example():
    # Times 1, 2+, 3, 3, 4+: S(1) = 4/5, S(3) = 4/5 * (1 - 2/3) = 4/15.
    table = kaplan_meier([1, 2, 3, 3, 4], [True, False, True, True, False]).set_index("time")
    assert table.loc[1, "survival"] == pytest.approx(0.8)
    assert table.loc[3, "survival"] == pytest.approx(4 / 15)
    assert table.loc[3, "at_risk"] == 3
    assert median_survival([1, 2, 3, 3, 4], [True, False, True, True, False])[0] == 3


def test_kaplan_meier_median_of_exponential_times_is_unbiased():
    """The KM median of 2,000 exponential times is within 4 asymptotic SDs of ln 2."""
    rng = np.random.default_rng(3)
    times = rng.exponential(1.0, 2000)
    median, low, high = median_survival(times, np.ones(times.size, bool))
    sd = 1.0 / (2 * 0.5 * math.sqrt(times.size))  # sd of a sample median: 1 / (2 f(m) sqrt(n))
    assert abs(median - math.log(2)) < 4 * sd
    assert low < median < high


def test_logrank_is_uniform_under_the_null_and_finds_a_real_difference():
    rng = np.random.default_rng(11)
    p_values = [logrank(rng.exponential(1, 60), np.ones(60, bool),
                        rng.exponential(1, 60), np.ones(60, bool))["p_value"] for _ in range(200)]
    assert stats.kstest(p_values, "uniform").pvalue > 0.001
    test = logrank(rng.exponential(0.5, 300), np.ones(300, bool), rng.exponential(1, 300), np.ones(300, bool))
    assert test["p_value"] < 1e-6
    assert test["hr_lower"] < 2.0 < test["hr_upper"]


def test_wilson_interval_covers_the_proportion():
    p, low, high = proportion_ci(30, 100)
    assert p == 0.3 and low == pytest.approx(0.2189, abs=1e-4) and high == pytest.approx(0.3958, abs=1e-4)


# --- the catalog -----------------------------------------------------------------------------

CATALOG = catalog_ids()


def test_the_catalog_has_the_required_scenarios():
    required = {"egfr-first-line-gefitinib", "egfr-first-line-osimertinib", "egfr-histologic-subtypes",
                "egfr-oligoprogression", "egfr-drug-holiday", "egfr-consolidation", "egfr-adaptive",
                "egfr-resistance-switch", "two-clone-teaching"}
    assert required <= set(CATALOG)


@pytest.mark.parametrize("scenario_id", CATALOG)
def test_catalog_entry_loads_and_runs_a_short_cohort(scenario_id, catalog_runs):
    scenario = simulator.load_scenario(scenario_id)
    assert scenario.id == scenario_id
    assert scenario.description and scenario.long_description.strip() and scenario.citations
    cohort = run_cohort(simulator.load_scenario(scenario_id, {"simulation.duration_days": 200.0}), n=2)
    assert len(cohort.endpoints) == 2 * len(cohort.arms)
    catalog_runs.append(scenario_id)


@pytest.fixture(scope="module")
def catalog_runs():
    ran: list[str] = []
    yield ran
    assert ran, "no catalog scenario was tested"
