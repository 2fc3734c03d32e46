"""The engine's joined steps: taken where the rates allow, refused where they move, and never
past a stop (docs/model.md, "Joined steps")."""

import math

import pytest
from click.testing import CliRunner

import simulator
from simulator.cli import main
from simulator.engine.kernel import COUNT_STEPS
from simulator.runner import run_patient
from simulator.scenario import scenario_to_dict, validate_scenario

from verification_checks import make_scenario


def steps_taken(scenario) -> int:
    buffers, _ = run_patient(scenario, seed=3)
    return int(buffers.counters[COUNT_STEPS])


def growing(duration: float = 420.0, **simulation) -> dict:
    raw = scenario_to_dict(make_scenario({"A": {"birth": 0.2, "death": 0.19}},
                                         {"primary": {"site": "lung", "cells": {"A": 10**6}}},
                                         duration=duration, dt=1.0))
    raw["simulation"].update(simulation)
    return raw


def test_constant_rates_are_joined_up_to_the_longest_step():
    assert steps_taken(validate_scenario(growing())) == math.ceil(420 / 42)
    assert steps_taken(validate_scenario(growing(max_step_days=0.0))) == 420
    assert steps_taken(validate_scenario(growing(max_step_days=100.0))) == math.ceil(420 / 100)


def test_steps_stay_short_while_a_drug_builds_up_and_long_at_its_steady_state():
    """A daily drug from day 60 (half-life 2 days): while exposure rises the engine takes
    shorter steps (more than untreated), then joins them again once exposure is periodic
    (far fewer than daily)."""
    raw = scenario_to_dict(simulator.load_scenario("two-clone-teaching"))
    raw["simulation"].update(duration_days=200.0, dt_days=1.0, record_every_days=200.0)
    raw["monitoring"] = {"enabled": False}
    scenario = validate_scenario(raw)
    buffers, _ = run_patient(scenario, seed=3)
    taken = int(buffers.counters[COUNT_STEPS])
    untreated = raw | {"therapy": {"lines": {}}}
    untreated_taken = steps_taken(validate_scenario(untreated))
    assert untreated_taken < taken < 200 / 4, (untreated_taken, taken)


def test_death_at_the_lethal_burden_is_found_on_the_same_day_as_with_plain_steps():
    """A near-deterministic population (1e9 cells, growth 0.01/day) reaches 1e11 on day
    ln(100) / 0.01 = 460.5: both steppings end on the first whole day past it."""
    ends = []
    for max_step in (42.0, 0.0):
        raw = growing(duration=700.0, lethal_burden=1e11, max_step_days=max_step)
        raw["lesions"]["primary"]["cells"] = {"A": 10**9}
        result = simulator.simulate(validate_scenario(raw), seed=5)
        assert result.endpoints["stop_reason"] == "death"
        ends.append(result.end_time)
    assert ends[0] == ends[1] == math.ceil(math.log(100) / 0.01)


@pytest.mark.parametrize("field, value", [("step_tolerance", 0.0), ("step_tolerance", 2.0),
                                          ("max_step_days", -1.0)])
def test_bad_stepping_fields_are_one_line_exit_2_and_write_nothing(tmp_path, field, value):
    with pytest.raises(simulator.ScenarioError, match=f"simulation.{field}"):
        validate_scenario(growing(**{field: value}))
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["run", "two-clone-teaching", "--out", str(out),
                                       "--set", f"simulation.{field}={value}"])
    assert result.exit_code == 2, result.output
    assert f"simulation.{field}" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not out.exists()


def test_the_history_joins_its_steps_up_to_the_longest_step_too():
    """History steps of 7 days, joined at most 42 days at a time (6 steps), never 42 of them."""
    from simulator import history
    from simulator.lowering import lower

    scenario = simulator.load_scenario("egfr-first-line-gefitinib")
    grown = history.history_model(scenario, lower(scenario))
    assert grown.dynamics.dt == 7.0 and grown.dynamics.max_block == 6
