"""The disease before diagnosis (history.*) and the endpoints it feeds."""

import math

import numpy as np
import pandas as pd
import pytest

import simulator
from simulator import history
from simulator.lowering import lower
from simulator.scenario import scenario_to_dict, validate_scenario


def grown(diagnosis_cells=1e7, seeding=1e-6, **history_fields):
    """A small tumour from one cell, without therapy, seeding metastases as it grows."""
    return validate_scenario({
        "clones": {"s": {"birth": 0.3, "death": 0.1}, "r": {"birth": 0.3, "death": 0.12}},
        "mutations": [{"from": "s", "to": "r", "probability": 1e-4}],
        "lesions": {"primary": {"site": "lung", "cells": {"s": 1}, "carrying_capacity": 1e12}},
        "seeding": {"rate": seeding, "site_weights": {"liver": 0.5, "brain": 0.5},
                    "carrying_capacity": 1e12},
        "history": {"enabled": True, "diagnosis_cells": diagnosis_cells, **history_fields},
        "simulation": {"duration_days": 30, "dt_days": 1, "record_every_days": 1,
                       "growth_law": "exponential", "lethal_burden": 1e10},
    })


@pytest.mark.parametrize("step", [1.0, 7.0, 30.0])
def test_the_history_stops_at_its_size_within_the_stated_resolution(step):
    scenario = grown(step_days=step)
    for replicate in range(5):
        result = simulator.simulate(scenario, seed=11, replicate=replicate, keep_trajectory=False)
        at_zero = result.trajectory[result.trajectory["time"] == 0]["cells"].sum()
        # Sub-steps near the size grow the tumour by at most 1% each at the fastest net rate.
        assert 1e7 <= at_zero <= 1e7 * 1.01 * (1 + 1e-9), (step, replicate, at_zero)


def test_histories_are_conditioned_on_survival_and_reproducible():
    scenario = grown()
    first = simulator.simulate(scenario, seed=3, replicate=2, keep_trajectory=False)
    again = simulator.simulate(scenario, seed=3, replicate=2, keep_trajectory=False)
    assert first.endpoints == again.endpoints
    model = lower(scenario)
    attempts = [history.grow_to_diagnosis(scenario, model, 3, r).attempts
                for r in range(30)]
    # From one cell a lineage survives with probability (b - d) / b = 2/3, so the number of
    # attempts is geometric with mean 1.5; 30 histories all needing one attempt has
    # probability (2/3)^30 = 5e-6.
    assert max(attempts) > 1 and min(attempts) == 1


def test_metastases_exist_at_all_sizes_and_carry_resistance_from_the_history():
    scenario = grown(seeding=2e-7)
    result = simulator.simulate(scenario, seed=5, keep_trajectory=False)
    lesions = result.lesions
    assert len(lesions) > 10
    at_diagnosis = result.endpoints["lesions_at_diagnosis"]
    assert (lesions["born"].iloc[:at_diagnosis] < 0).all()  # founded before diagnosis
    assert (lesions["born"].iloc[at_diagnosis:] >= 0).all()
    day0 = result.trajectory[result.trajectory["time"] == 0].groupby("lesion", observed=True)["cells"].sum()
    assert day0.max() / day0[day0 > 0].min() > 100  # sizes spread over orders of magnitude
    assert result.endpoints["lesions_at_diagnosis"] == int((day0 > 0).sum())
    assert result.endpoints["history_days"] > 0


def test_the_history_can_be_kept_in_the_tables_at_negative_days():
    scenario = grown(seeding=2e-7, keep_in_tables=True, step_days=1.0)
    result = simulator.simulate(scenario, seed=5)
    trajectory = result.trajectory
    assert trajectory["time"].min() < -30
    totals = trajectory.groupby("time")["cells"].sum()
    assert totals.loc[totals.index < 0].iloc[0] < totals.loc[0.0]
    seeded = result.events[(result.events["kind"] == "lesion_seeded") & (result.events["time"] < 0)]
    assert len(seeded) == int((result.lesions["born"] < 0).sum()) - 1 > 0  # all but the primary


def test_a_history_that_cannot_reach_diagnosis_is_one_line():
    # Refused before any work when even the fastest clone could not get there in time.
    with pytest.raises(simulator.ScenarioError, match="history.max_days: growing at most 0.2/day"):
        grown(diagnosis_cells=1e9, max_days=30)
    # Found while running when density slows growth too much (logistic, just above the size).
    raw = scenario_to_dict(grown(diagnosis_cells=1e9, max_days=120, step_days=7.0))
    raw["lesions"]["primary"].update(carrying_capacity=1.0001e9, growth_law="logistic")
    raw["seeding"]["rate"] = 0.0
    with pytest.raises(simulator.errors.EngineError, match="history.max_days"):
        simulator.simulate(validate_scenario(raw), seed=1)


@pytest.mark.parametrize("field, value, message", [
    ("diagnosis_cells", 0.5, "history.diagnosis_cells"),
    ("diagnosis_cells", 1e11, "history.diagnosis_cells: must be below simulation.lethal_burden"),
    ("step_days", 0, "history.step_days"),
    ("max_attempts", 0, "history.max_attempts"),
])
def test_bad_history_fields_are_refused(field, value, message):
    raw = scenario_to_dict(grown())
    raw["history"][field] = value
    with pytest.raises(simulator.ScenarioError, match=message):
        validate_scenario(raw)


def test_t790m_carries_its_fitness_cost_off_drug_in_the_catalog():
    clones = simulator.load_scenario("egfr-first-line-gefitinib").clones
    sensitive, t790m = clones["sensitive"], clones["T790M"]
    assert t790m.birth - t790m.death < sensitive.birth - sensitive.death


def test_the_share_of_each_resistance_mechanism_at_diagnosis_is_the_tumour_at_day_0():
    raw = scenario_to_dict(grown(seeding=2e-7))
    raw["clones"]["r"]["resistance"] = "gatekeeper"
    result = simulator.simulate(validate_scenario(raw), seed=5, keep_trajectory=False)
    day0 = result.trajectory[result.trajectory["time"] == 0].groupby("clone", observed=True)["cells"].sum()
    share = result.endpoints["gatekeeper_fraction_at_diagnosis"]
    assert share == day0["r"] / day0.sum()
    assert 0 < share < 1  # mutation at 1e-4 per division over ~1e7 cells leaves some


def test_pretreatment_t790m_counts_patients_above_the_assays_detection():
    from simulator.cohort import PRETREATMENT_DETECTION, observed_metric

    shares = [0.0, 1e-7, PRETREATMENT_DETECTION / 2, PRETREATMENT_DETECTION, 0.02, 0.5, 0.0, 0.0]
    table = pd.DataFrame({"T790M_fraction_at_diagnosis": shares})
    observed, low, high = observed_metric("t790m_before_treatment", table)
    assert observed == 3 / 8
    assert low < observed < high
