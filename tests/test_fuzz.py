"""Property-based fuzzing (small profile; ``scripts/fuzz.py`` runs the large one).

Every generated case is either refused with one line before any work, or runs to its end with
finite, non-negative outputs. The examples are derandomized, so a failure here is reproducible.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fuzzing import cohorts, damaged, leaves, run_case, run_cohort_case, set_arguments
from simulator.cli import main
from simulator.scenario import load_scenario, scenario_to_dict

SMALL = settings(max_examples=200, deadline=None, derandomize=True, database=None, print_blob=True,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
TEACHING = "two-clone-teaching"
TEACHING_PATHS = [p for p in leaves(scenario_to_dict(load_scenario(TEACHING)))
                  if not p.startswith(("citations", "long_description", "description", "id"))]


@SMALL
@given(damaged(), st.booleans())
def test_generated_scenarios_are_refused_in_one_line_or_run_finite(case, keep_trajectory):
    raw, changes = case
    outcome = run_case(raw, keep_trajectory=keep_trajectory)
    assert not outcome.problems, (changes, outcome.problems)


@settings(SMALL, max_examples=60)
@given(cohorts())
def test_generated_cohorts_are_refused_in_validation_or_run_finite(raw):
    outcome = run_cohort_case(raw, n=2)
    assert not outcome.problems, outcome.problems


@settings(SMALL, max_examples=80)
@given(set_arguments(TEACHING_PATHS))
def test_set_values_exit_0_or_2_with_one_line_and_nothing_written(tmp_path_factory, assignments):
    out = tmp_path_factory.mktemp("set") / "out"
    arguments = [item for text in assignments for item in ("--set", text)]
    checked = CliRunner().invoke(main, ["validate", TEACHING, *arguments])
    result = CliRunner().invoke(main, ["run", TEACHING, *arguments, "--no-figures", "--out", str(out)])
    assert result.exit_code in (0, 2), (assignments, result.output, result.exception)
    assert checked.exit_code == result.exit_code, (assignments, checked.output, result.output)
    if result.exit_code == 2:
        message = result.output.strip()
        assert "\n" not in message and "Traceback" not in message, (assignments, message)
        assert not Path(out).exists()
    else:
        assert (out / "endpoints.parquet").exists()


def test_the_issue_reproducer_hill_and_ec50_is_refused():
    # A NaN rate once turned into silent extinction of every clone, drug-free ones included.
    outcome = run_case(_teaching_raw({"drugs.tki.hill": 1e300, "drugs.tki.ec50": 1e-300}))
    assert outcome.refused and outcome.message.startswith("drugs.tki.ec50: must be >= 1e-06")


def _teaching_raw(overrides: dict) -> dict:
    raw = scenario_to_dict(load_scenario(TEACHING))
    from simulator.scenario import set_path

    for path, value in overrides.items():
        set_path(raw, path, value)
    return raw


@pytest.mark.parametrize("path", ["clones.sensitive.birth", "simulation.max_lesions"])
def test_the_paths_list_covers_the_scenario(path):
    assert path in TEACHING_PATHS


def _edges(scenario_id: str) -> list[tuple[str, float]]:
    from fuzzing import schema_bounds
    from simulator.scenario import scenario_json_schema

    schema = scenario_json_schema()
    raw = scenario_to_dict(load_scenario(scenario_id))
    from simulator.scenario import get_path

    cases = []
    for path in leaves(raw):
        if path.startswith(("cohort", "arms", "reference")):
            continue
        value = get_path(raw, path)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            cases += [(path, bound) for bound in schema_bounds(schema, path)]
    return cases


TEACHING_EDGES = _edges(TEACHING)
CLINIC = "egfr-oligoprogression"
CLINIC_EDGES = _edges(CLINIC)


def test_every_bound_of_the_teaching_scenario_is_tried():
    assert len(TEACHING_EDGES) > 80
    assert ("drugs.tki.hill", 100.0) in TEACHING_EDGES and ("monitoring.cells_per_cm3", 1e3) in TEACHING_EDGES


@pytest.mark.parametrize("path, bound", TEACHING_EDGES, ids=[f"{p}={b:g}" for p, b in TEACHING_EDGES])
def test_a_value_at_the_edge_of_its_bound_is_refused_in_one_line_or_runs_finite(path, bound):
    raw = _teaching_raw({path: int(bound) if bound.is_integer() and abs(bound) < 2**63 else bound,
                         "simulation.duration_days": 200.0})
    if path == "simulation.duration_days":
        raw["simulation"]["duration_days"] = bound
    outcome = run_case(raw)
    assert not outcome.problems, outcome.problems


@pytest.mark.parametrize("path, bound", CLINIC_EDGES, ids=[f"{p}={b:g}" for p, b in CLINIC_EDGES])
def test_a_clinic_scenario_at_the_edge_of_a_bound_is_refused_in_one_line_or_runs_finite(path, bound):
    raw = scenario_to_dict(load_scenario(CLINIC))
    raw.pop("cohort")
    from simulator.scenario import set_path

    set_path(raw, "simulation.duration_days", 364.0)
    set_path(raw, path, int(bound) if bound.is_integer() and abs(bound) < 2**63 else bound)
    outcome = run_case(raw)
    assert not outcome.problems, outcome.problems
