"""Refuse before work: every value validation accepts runs within the stated resource bounds,
and every value it refuses gets one line naming the field, the value and what is allowed."""

from __future__ import annotations

import json
import math
import re

import pytest
from click.testing import CliRunner

from simulator.cli import main
from simulator.scenario import (
    MAX_RUN_BYTES,
    ScenarioError,
    load_scenario,
    peak_exposure,
    run_bytes,
    scenario_json_schema,
    set_path,
)
from simulator.sweep import MAX_POINTS, grid_points, parse_grid, plan_sweep

TEACHING = "two-clone-teaching"


def small(**changes) -> dict:
    raw = {
        "clones": {"sensitive": {"birth": 0.2, "death": 0.15}, "resistant": {"birth": 0.19, "death": 0.15}},
        "lesions": {"primary": {"site": "lung", "cells": {"sensitive": 1e9, "resistant": 1000}}},
        "drugs": {"tki": {"half_life_days": 2.0, "effects": {"sensitive": {"death_increase": 0.08}}}},
        "therapy": {"start_day": 60, "lines": {"tki": {"dosing": [{"drug": "tki", "dose": 1}]}}},
        "simulation": {"duration_days": 120},
    }
    for path, value in changes.items():
        set_path(raw, path.replace("__", "."), value)
    return raw


@pytest.mark.parametrize("override, expected", [
    # day values convert to step counts
    ("therapy.start_day=1e300", "therapy.start_day: must be <= 36525, got 1e+300"),
    ("scheduled_local_therapy=[{day = 1e300, lesion = 'primary', modality = 'surgery'}]",
     "scheduled_local_therapy[0].day: must be <= 36525"),
    ("simulation.duration_days=1e300", "simulation.duration_days: must be <= 36525"),
    # intervals shorter than a step
    ("simulation.dt_days=1e-12", "simulation.dt_days: must be >= 0.0001, got 1e-12"),
    ("monitoring.visit_every_days=1e-12", "monitoring.visit_every_days: must be >= simulation.dt_days (1, one step)"),
    ("therapy.lines.tki.dosing.0.every_days=1e-12", "therapy.lines.tki.dosing[0].every_days: must be >= simulation.dt_days"),
    ("simulation.record_every_days=1e-12", "simulation.record_every_days: must be >= dt_days (1, one step)"),
    # a cap on the steps
    ("simulation={duration_days = 36500, dt_days = 0.01}", "simulation.dt_days: duration_days / dt_days must be <= 1,000,000 steps"),
    # counts stay within int64
    ("simulation.lethal_burden=1e30", "simulation.lethal_burden: must be <= 1e+15, got 1e+30"),
    ("clones.sensitive.birth=20", "simulation.lethal_burden: a burden of 1e+12 cells grows within one step"),
    # lesions founded stay within the engine's room (2^20)
    ("seeding.rate=1", "seeding.rate: a run could found about"),
    # diameters stay finite
    ("monitoring.cells_per_cm3=1e-300", "monitoring.cells_per_cm3: must be >= 1000, got 1e-300"),
    # strict types
    ("monitoring.enabled=0", "monitoring.enabled: must be true or false, got 0"),
    ("monitoring.enabled='yes'", "monitoring.enabled: must be true or false, got 'yes'"),
    ("policy.switch_on_progression=1", "policy.switch_on_progression: must be true or false, got 1"),
    ("simulation.max_lesions=true", "simulation.max_lesions: must be a whole number, got True"),
    ("simulation.seed=1.5", "simulation.seed: must be a whole number, got 1.5"),
    ("monitoring.ctdna_min_copies='2'", "monitoring.ctdna_min_copies: must be a whole number, got '2'"),
    ("clones.sensitive.birth=true", "clones.sensitive.birth: must be a number, got True"),
    # ranges
    ("reference.median_pfs_months=[12, 9]", "reference.median_pfs_months: must be [low, high] with low <= high, got [12, 9]"),
    # a path through a value
    ("clones.sensitive.birth.x=1", "clones.sensitive.birth.x: 'clones.sensitive.birth' is a value (0.2), not a table"),
    ("clones.sensitive.label.x.y=1", "clones.sensitive.label.x: 'clones.sensitive.label' is a value"),
    # exposure-effect curves stay finite
    ("drugs.tki.hill=1e300", "drugs.tki.hill: must be <= 100, got 1e+300"),
    ("drugs.tki.ec50=1e-300", "drugs.tki.ec50: must be >= 1e-06, got 1e-300"),
    ("drugs.tki.ec50=0", "drugs.tki.ec50: must be >= 1e-06, got 0"),
    ("drugs.tki.effects.sensitive.hill=101", "drugs.tki.effects.sensitive.hill: must be <= 100"),
    ("therapy.lines.tki.dosing.0.dose=1e300", "therapy.lines.tki.dosing[0].dose: must be <= 1e+09"),
    ("clones.sensitive.death=1e300", "clones.sensitive.death: must be <= 100"),
])
def test_the_cli_refuses_with_one_line_exit_2_and_writes_nothing(tmp_path, override, expected):
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["run", TEACHING, "--set", override, "--out", str(out)])
    assert result.exit_code == 2, result.output
    message = result.output.strip()
    assert "\n" not in message and "Traceback" not in message
    assert expected in message, message
    assert list(tmp_path.iterdir()) == []


def test_hill_and_ec50_that_would_overflow_the_curve_are_refused_with_the_bound():
    # Each within its own bounds, but (exposure / ec50) ** hill would overflow a double.
    raw = small(**{"drugs.tki.hill": 100.0, "drugs.tki.ec50": 1e-3})
    with pytest.raises(ScenarioError, match=r"drugs.tki.hill: \(peak exposure / ec50\) \^ hill must stay below 1e300"):
        load_scenario(raw)
    # A steep curve around a sensible ec50 is fine.
    assert load_scenario(small(**{"drugs.tki.hill": 100.0, "drugs.tki.ec50": 0.5}))


def test_peak_exposure_bounds_the_steady_state_peak():
    # Daily doses, half-life 2 days, instantaneous absorption: the steady-state peak amount is
    # dose / (1 - 2^(-1/2)), the average amount dose / (k tau): exposure = k tau / (1 - e^(-k tau)).
    import math

    scenario = load_scenario(small())
    k = math.log(2) / 2.0
    assert peak_exposure(scenario, "tki") == pytest.approx(k / (1 - math.exp(-k)))
    # With absorption the bound is looser but still finite and above the true peak.
    slow = load_scenario(small(**{"drugs.tki.absorption_half_life_days": 0.5}))
    assert k / (1 - math.exp(-k)) < peak_exposure(slow, "tki") < 10


def test_memory_is_estimated_before_allocating():
    raw = small()
    raw["clones"] = {f"c{i}": {"birth": 0.1, "death": 0.1} for i in range(200)}
    raw["lesions"]["primary"]["cells"] = {"c0": 1000}
    raw["drugs"]["tki"]["effects"] = {}
    raw["simulation"] = {"max_lesions": 1e5, "duration_days": 730}
    with pytest.raises(ScenarioError) as refused:
        load_scenario(raw)
    message = str(refused.value)
    assert message.startswith("simulation.max_lesions: a run would need 15.8 GiB")
    assert "100,000 lesions x 200 clone types x 106 records" in message
    raw["simulation"]["max_lesions"] = 1000
    need, _ = run_bytes(load_scenario(raw))
    assert need < MAX_RUN_BYTES


def test_cohort_distributions_are_checked_at_their_extreme_quantiles():
    def with_parameter(path, spec):
        raw = small()
        raw["cohort"] = {"parameters": {path: spec}}
        return raw

    cases = [
        ("lesions.primary.cells.resistant", {"distribution": "lognormal", "median": 1e3, "sigma": 1e300},
         "sigma: the 1 - 1e-09 quantile of this lognormal is not finite"),
        ("lesions.primary.cells.resistant", {"distribution": "poisson", "mean": 1e300},
         "mean: must be in [0, 1e+15] for a poisson, got 1e+300"),
        # A lognormal of cells whose upper tail passes the 1e15 cells a compartment may hold.
        ("lesions.primary.cells.resistant", {"distribution": "lognormal", "median": 1e9, "sigma": 3},
         "a draw at its 1 - 1e-09 quantile"),
        # An untruncated normal of a rate goes negative in its tail: truncate it.
        ("clones.sensitive.birth", {"distribution": "normal", "mean": 0.2, "sd": 0.05},
         "clones.sensitive.birth: a draw at its 1e-09 quantile (-0.0998"),
        ("clones.sensitive.birth", {"distribution": "normal", "mean": 0.2, "sd": 0.05, "low": 0.5, "high": 0.6},
         "mass in [low, high]; at least 0.01 is needed"),
        ("clones.sensitive.birth", {"distribution": "normal", "mean": 0.2, "sd": 0.05, "low": 0.3, "high": 0.1},
         "high: must be >= low (0.3), got 0.1"),
        ("clones.sensitive.birth", {"distribution": "lognormal", "median": 0.2, "sigma": 0.1, "low": 0},
         "low: not a parameter of distribution 'lognormal' (it takes median, sigma)"),
        ("policy.holiday.enabled", {"distribution": "choice", "values": [True, "yes"]},
         "a draw at its choice 1 ('yes') is refused: policy.holiday.enabled: must be true or false"),
    ]
    for path, spec, expected in cases:
        with pytest.raises(ScenarioError) as refused:
            load_scenario(with_parameter(path, spec))
        assert expected in str(refused.value), (spec, str(refused.value))
    fine = {"distribution": "normal", "mean": 0.2, "sd": 0.05, "low": 0.0}
    assert load_scenario(with_parameter("clones.sensitive.birth", fine))


def test_extremes_are_checked_within_each_subtype():
    raw = small()
    raw["cohort"] = {
        "parameters": {"simulation.lethal_burden": {"distribution": "uniform", "low": 1e11, "high": 1e13}},
        "subtypes": {"fast": {"probability": 0.1, "set": {"clones.sensitive.birth": 15.0}}},
    }
    # Each alone is fine; a fast subtype growing e^14.85-fold in a step from a 1e13-cell lethal
    # burden passes the int64 counts.
    with pytest.raises(ScenarioError, match=r"cohort.parameters.simulation.lethal_burden: a draw at its high "
                                            r"\(1e\+13\) in subtype 'fast' is refused: simulation.lethal_burden"):
        load_scenario(raw)


def test_extends_a_directory_or_a_non_utf8_file_is_one_line_naming_the_file(tmp_path):
    (tmp_path / "base.toml").mkdir()
    child = tmp_path / "child.toml"
    child.write_text('extends = "base"\n')
    with pytest.raises(ScenarioError, match=r"child.toml: extends 'base': '.*base.toml' is a directory"):
        load_scenario(child)
    (tmp_path / "latin.toml").write_bytes('id = "caf\xe9"\n'.encode("latin-1"))
    child.write_text('extends = "latin"\n')
    with pytest.raises(ScenarioError, match=r"latin.toml: not UTF-8 text \(byte 9\)"):
        load_scenario(child)
    with pytest.raises(ScenarioError, match="is a directory, not a scenario file"):
        load_scenario(tmp_path)


def test_duplicate_grid_paths_are_refused():
    assert parse_grid(["a=1,2", "b=lin:0:1:3"]) == {"a": [1, 2], "b": [0.0, 0.5, 1.0]}
    with pytest.raises(ScenarioError, match="--grid a: given twice"):
        parse_grid(["a=1,2", " a =3"])


def test_a_huge_grid_is_refused_before_any_point_is_built():
    grid = {"a": list(range(1000)), "b": list(range(1000)), "c": list(range(1000))}
    with pytest.raises(ScenarioError, match=r"--grid: 1000 x 1000 x 1000 = 1,000,000,000 points; at most 1,000,000"):
        grid_points(grid)
    with pytest.raises(ScenarioError, match="--sample"):
        grid_points({"a": ("range", 0.0, 1.0)}, f"lhs:{MAX_POINTS + 1}")


def test_sweep_points_are_validated_one_at_a_time_and_not_kept():
    import sys

    import pandas as pd

    scenario = load_scenario(TEACHING)
    points = pd.DataFrame({"clones.resistant.birth": [0.15 + 0.0001 * i for i in range(300)]})
    plan = plan_sweep(scenario, points, replicates=1)
    assert len(plan.point_settings) == 300
    assert plan.point_settings[299]["clones.resistant.birth"] == pytest.approx(0.1799)
    # The plan holds each point's settings, not 300 scenario objects.
    assert all(isinstance(settings, dict) and len(settings) == 1 for settings in plan.point_settings)
    assert sum(sys.getsizeof(settings) for settings in plan.point_settings) < 300 * 1_000
    bad = pd.DataFrame({"clones.resistant.birth": [0.1] * 10 + [-1.0]})
    with pytest.raises(ScenarioError, match=r"point 10 \(clones.resistant.birth=-1.0\)"):
        plan_sweep(scenario, bad, replicates=1)


def _bounds(node, path=""):
    """(path, bound, description) of every property of the schema with a numeric bound."""
    for name, prop in (node.get("properties") or {}).items():
        for option in [prop, *prop.get("anyOf", [])]:
            for key in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
                if key in option:
                    yield f"{path}{name}", option[key], prop.get("description", "")


def test_every_bound_appears_in_the_schema_description():
    schema = scenario_json_schema()
    missing = []
    for definition, node in [("Scenario", schema), *schema["$defs"].items()]:
        for path, bound, description in _bounds(node, f"{definition}."):
            if path.startswith(("Distribution.", "Prior.", "Citation.", "Subtype.", "Cohort.")):
                continue  # distribution parameters are checked through their quantiles
            spellings = {f"{bound:g}", f"{bound:,}", str(bound),
                         re.sub(r"e([+-]?)0*(\d)", lambda m: f"e{m[1].strip('+')}{m[2]}", f"{bound:g}")}
            if bound > 0 and math.log10(bound).is_integer():
                spellings.add(f"1e{int(math.log10(bound))}")
            if bound == 2**63 - 1:
                spellings.add("2^63 - 1")
            if isinstance(bound, float) and bound.is_integer():
                spellings |= {f"{int(bound)}", f"{int(bound):,}"}
            if bound == 0 and ("(0" in description or "between 0" in description or "> 0" in description):
                continue
            if not any(spelling in description for spelling in spellings):
                missing.append(f"{path} ({bound}): {description!r}")
    assert not missing, "\n".join(missing)


def test_validate_prints_the_same_line_as_run(tmp_path):
    result = CliRunner().invoke(main, ["validate", TEACHING, "--set", "therapy.start_day=1e300"])
    assert result.exit_code == 2
    assert result.output.strip().endswith("therapy.start_day: must be <= 36525, got 1e+300")
    assert json.loads(CliRunner().invoke(main, ["schema"]).output)["$defs"]["Therapy"]


def test_death_before_the_first_line_counts_as_events_at_time_zero():
    from simulator.runner import simulate

    # 1e9 cells growing at 0.05/day pass 2e9 in about 14 days; therapy was to start on day 100.
    raw = small(**{"simulation.lethal_burden": 2e9, "therapy.start_day": 100})
    result = simulate(load_scenario(raw), seed=1)
    died = result.events[result.events["kind"] == "death"]["time"]
    assert len(died) == 1 and died.iloc[0] < 100
    e = result.endpoints
    assert (e["pfs_days"], e["os_days"], e["ttf_days"], e["end_days"]) == (0.0, 0.0, 0.0, 0.0)
    assert e["progressed"] and e["died"] and e["treatment_failed"]
    assert e["lines_used"] == 0


def test_a_dry_run_of_a_huge_grid_is_refused_in_one_line():
    grid = [item for path in ("clones.resistant.birth", "clones.sensitive.death", "clones.resistant.death")
            for item in ("--grid", f"{path}=lin:0.1:0.2:1000")]
    result = CliRunner().invoke(main, ["sweep", TEACHING, *grid, "--dry-run"])
    assert result.exit_code == 2
    assert result.output.strip() == "error: --grid: 1000 x 1000 x 1000 = 1,000,000,000 points; at most 1,000,000"


@pytest.mark.parametrize("override, expected", [
    ("lesions.primary.site=5", "lesions.primary.site: must be a string, got 5"),
    ("monitoring=3", "monitoring: must be a table, got 3"),
    ("mutations=5", "mutations: must be a list, got 5"),
    ("reference.median_pfs_months=[1]", "reference.median_pfs_months: too few values, item [1] is missing"),
])
def test_a_value_of_the_wrong_shape_is_named_with_the_shape_allowed(override, expected):
    result = CliRunner().invoke(main, ["validate", TEACHING, "--set", override])
    assert result.exit_code == 2 and result.output.strip().endswith(expected), result.output
