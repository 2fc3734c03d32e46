"""Therapy and the clinic: pharmacokinetics, RECIST, monitoring, rules, policies, endpoints."""

from __future__ import annotations

import copy
import math

import numpy as np
import pandas as pd
import pytest

import simulator
from simulator.engine import clinic as cl
from simulator.engine.kernel import allocate_buffers
from simulator.engine.therapy import advance_pk, give_due_doses
from simulator.lowering import lower
from simulator.policy import LocalTherapy, PolicyError, StopDrug
from simulator.scenario import ScenarioError, load_scenario


def patient(**changes) -> dict:
    """A patient with drug-sensitive disease in lung and liver, one drug, two lines."""
    raw = {
        "id": "clinic-test",
        "clones": {
            "sensitive": {"birth": 0.14, "death": 0.13},
            "T790M": {"birth": 0.14, "death": 0.11, "resistance": "T790M"},
        },
        "lesions": {
            "primary": {"site": "lung", "carrying_capacity": 1e12, "cells": {"sensitive": 2e10}},
            "liver": {"site": "liver", "carrying_capacity": 1e12, "cells": {"sensitive": 5e9}},
        },
        "drugs": {
            "gefitinib": {"half_life_days": 2.0, "standard_dose": 250.0,
                          "effects": {"sensitive": {"death_increase": 0.08}}},
            "osimertinib": {"half_life_days": 2.0, "standard_dose": 80.0,
                            "effects": {"sensitive": {"death_increase": 0.08},
                                        "T790M": {"death_increase": 0.08}}},
        },
        "therapy": {"lines": {
            "gefitinib": {"dosing": [{"drug": "gefitinib", "dose": 250.0}],
                          "on_mechanism": {"T790M": "osimertinib"}},
            "osimertinib": {"dosing": [{"drug": "osimertinib", "dose": 80.0}]},
        }},
        "monitoring": {"measurement_sd_mm": 0.5},
        "simulation": {"duration_days": 400, "dt_days": 1, "seed": 7, "growth_law": "exponential",
                       "lethal_burden": 1e13},
    }
    for path, value in changes.items():
        node = raw
        keys = path.split(".")
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        node[keys[-1]] = value
    return raw


def run(raw: dict, **kwargs) -> simulator.PatientResult:
    return simulator.simulate(simulator.load_scenario(copy.deepcopy(raw)), **kwargs)


def kinds(result, kind: str) -> pd.DataFrame:
    return result.events[result.events["kind"] == kind]


# --- pharmacokinetics ------------------------------------------------------------------------


def test_oral_pk_matches_superposition_of_closed_forms():
    """Daily oral doses: the central amount equals the sum of Bateman functions, exactly."""
    raw = patient(**{"drugs.gefitinib.absorption_half_life_days": 0.2})
    scenario = simulator.load_scenario(raw)
    model = lower(scenario)
    out = allocate_buffers(model, 4, 16)
    ka, ke = math.log(2) / 0.2, math.log(2) / 2.0
    dt = 0.25
    dose_steps = {int(round(day / dt)) for day in range(10)}
    worst = 0.0
    for step in range(int(12 / dt)):
        if step in dose_steps:
            out.gut[0] += 250.0
        advance_pk(model.drugs, out, dt)
        t = (step + 1) * dt
        exact = sum(250.0 * ka / (ka - ke) * (math.exp(-ke * (t - d)) - math.exp(-ka * (t - d)))
                    for d in range(10) if d < t)
        worst = max(worst, abs(out.central[0] - exact) / exact)
    assert worst < 1e-12


def test_standard_dosing_has_average_exposure_one_at_steady_state():
    """Exposure is normalised so that continuous standard dosing averages 1 (by definition)."""
    scenario = simulator.load_scenario(patient())
    model = lower(scenario)
    out = allocate_buffers(model, 4, 16)
    exposures = []
    steps_per_day = 8
    for step in range(60 * steps_per_day):
        if step % steps_per_day == 0:
            give_due_doses(model.drugs, out, 0, step // steps_per_day)
        # Average over the step by the midpoint of the exact decay.
        exposures.append(out.central[0] * math.exp(-model.drugs.drug_elimination[0] / (2 * steps_per_day)))
        advance_pk(model.drugs, out, 1.0 / steps_per_day)
    average = np.mean(exposures[-20 * steps_per_day:]) * model.drugs.drug_normalisation[0]
    assert average == pytest.approx(1.0, rel=2e-3)


def test_pulsed_schedule_gives_doses_only_in_active_days():
    raw = patient()
    raw["therapy"]["lines"]["gefitinib"]["dosing"] = [
        {"drug": "gefitinib", "dose": 1000.0, "every_days": 1, "cycle_days": 7, "active_days": 2},
        {"drug": "gefitinib", "dose": 50.0},
    ]
    scenario = simulator.load_scenario(raw)
    model = lower(scenario)
    out = allocate_buffers(model, 4, 16)
    for day in range(14):
        give_due_doses(model.drugs, out, 0, day)
    assert out.dose_given[0] == 2 * 2 * 1000.0 + 14 * 50.0


# --- RECIST ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sld, baseline, nadir, expected",
    [
        (70.0, 100.0, 100.0, cl.RESPONSE_PR),  # exactly -30% is a partial response
        (70.1, 100.0, 100.0, cl.RESPONSE_SD),
        (24.0, 30.0, 20.0, cl.RESPONSE_SD),  # +20% from the nadir but only +4 mm
        (25.0, 30.0, 20.0, cl.RESPONSE_PD),  # +25% and +5 mm
        (36.0, 50.0, 30.0, cl.RESPONSE_PD),  # exactly +20% and +6 mm
        (0.0, 50.0, 0.0, cl.RESPONSE_CR),
    ],
)
def test_recist_response_on_hand_computed_sums(sld, baseline, nadir, expected):
    gone = sld == 0.0
    assert cl.recist_response(sld, baseline, nadir, 2, gone, False, False) == expected


def test_a_new_lesion_is_progression_whatever_the_sum():
    assert cl.recist_response(10.0, 100.0, 10.0, 2, False, True, True) == cl.RESPONSE_PD


@pytest.mark.parametrize(
    "n_targets, any_progressing, growth, nadir, expected",
    [
        (0, True, 0.0, 0.0, True),  # no targets: any progressing lesion
        (0, False, 0.0, 0.0, False),
        (2, True, 6.0, 40.0, False),  # +6 mm of non-targets against a 40 mm target nadir
        (2, True, 8.0, 40.0, True),  # exactly 20% of it
        (2, True, 6.0, 0.0, True),  # targets gone: any unequivocal growth
        (2, False, 0.0, 0.0, False),
    ],
)
def test_non_target_progression_must_be_substantial_against_the_targets(n_targets, any_progressing, growth,
                                                                         nadir, expected):
    assert cl.non_target_unequivocal(n_targets, any_progressing, growth, nadir) == expected


def test_unequivocal_non_target_progression_is_progression_while_targets_respond():
    assert cl.recist_response(40.0, 100.0, 40.0, 2, False, False, True) == cl.RESPONSE_PD
    assert cl.recist_response(40.0, 100.0, 40.0, 2, False, False, False) == cl.RESPONSE_PR


def test_a_growing_non_target_lesion_ends_a_response_of_the_targets():
    """Two responding lung targets and a third lung lesion (two targets per organ at most) of
    resistant cells: the targets' sum keeps falling, but the third lesion's growth becomes
    unequivocal and RECIST calls progression with no new lesion and no rise of the sum."""
    raw = patient(**{"policy.oligoprogression.enabled": False, "monitoring.measurement_sd_mm": 0.0})
    raw["lesions"] = {
        "lung1": {"site": "lung", "carrying_capacity": 1e12, "cells": {"sensitive": 3e10}},
        "lung2": {"site": "lung", "carrying_capacity": 1e12, "cells": {"sensitive": 2e10}},
        "lung3": {"site": "lung", "carrying_capacity": 1e12, "cells": {"T790M": 5e9}},
    }
    raw["therapy"]["lines"]["gefitinib"].pop("on_mechanism")
    result = run(raw)
    visits = result.visits
    assert visits["response"].iloc[0] == "baseline"
    first_pd = visits.index[visits["response"] == "PD"][0]
    before = visits.loc[:first_pd]
    assert before["sum_diameters_mm"].is_monotonic_decreasing  # the targets never grew
    progressing = kinds(result, "lesion_progressing")
    at_pd = progressing[progressing["time"] == visits.loc[first_pd, "time"]]
    assert list(at_pd["lesion"]) == ["lung3"]  # alone, seen at baseline: not a new lesion


def test_target_lesions_at_most_five_and_two_per_organ():
    raw = patient(**{"monitoring.measurement_sd_mm": 0.0})
    raw["lesions"] = {
        f"{site}{i}": {"site": site, "carrying_capacity": 1e12, "cells": {"sensitive": (i + 1) * 3e9}}
        for site in ("lung", "liver", "bone") for i in range(3)
    }
    result = run(raw)
    baseline = result.observations[result.observations["visit"] == 0]
    targets = baseline[baseline["target"]]
    assert len(targets) == 5
    per_site = targets["lesion"].str.rstrip("0123456789").value_counts()
    assert per_site.max() == 2
    # The largest lesions of each organ are chosen first.
    assert set(targets["lesion"]) >= {"lung2", "liver2", "bone2"}


def test_lesion_below_detection_limit_is_invisible_though_present():
    raw = patient()
    raw["therapy"]["lines"]["gefitinib"]["on_mechanism"] = {}
    raw["lesions"]["hidden"] = {"site": "bone", "carrying_capacity": 1e12, "cells": {"T790M": 1e7}}
    raw["clones"]["T790M"]["death"] = 0.14  # critical: stays near 1e7 cells, 2.7 mm across
    result = run(raw)
    assert "hidden" not in set(result.observations["lesion"])
    truth = result.trajectory[(result.trajectory["lesion"] == "hidden")].groupby("time")["cells"].sum()
    assert (truth > 0).all()
    # The rules saw a responding patient and never acted on the hidden lesion.
    assert kinds(result, "progression").empty
    assert kinds(result, "local_therapy").empty
    visible = run({**raw, "monitoring": {"measurement_sd_mm": 0.5, "detection_limit_mm": 2.0}})
    assert "hidden" in set(visible.observations["lesion"])


# --- rules -----------------------------------------------------------------------------------


def test_oligoprogression_gets_local_therapy_and_keeps_the_drug():
    raw = patient()
    raw["lesions"]["brain"] = {"site": "brain", "carrying_capacity": 1e12, "cells": {"T790M": 2e9}}
    raw["clones"]["T790M"]["death"] = 0.11
    result = run(raw)
    treated = kinds(result, "local_therapy")
    assert not treated.empty and set(treated["lesion"]) == {"brain"}
    assert set(treated["detail"]) == {"radiotherapy"}
    starts = kinds(result, "line_start")
    # The drug is kept at the oligoprogression; a later switch, if any, comes after it.
    assert starts["detail"].iloc[0] == "gefitinib"
    assert (starts["time"].iloc[1:] > treated["time"].iloc[0]).all()


def test_a_lesion_gets_no_more_radiotherapy_courses_than_allowed():
    raw = patient()
    raw["lesions"]["brain"] = {"site": "brain", "carrying_capacity": 1e12, "cells": {"T790M": 2e9}}
    raw["clones"]["T790M"]["death"] = 0.11
    raw["therapy"]["lines"]["gefitinib"]["on_mechanism"] = {}
    raw["policy"] = {"oligoprogression": {"max_rounds": 0}}  # rounds unlimited: courses bind
    for allowed in (1, 2):
        raw["local_therapy"] = {"radiotherapy": {"kill_fraction": 0.9999, "failure_probability": 0.0,
                                                 "max_courses_per_lesion": allowed}}
        treated = kinds(run(raw), "local_therapy")
        assert (treated["lesion"] == "brain").sum() == allowed
    raw["local_therapy"]["radiotherapy"]["max_courses_per_lesion"] = 1
    raw["scheduled_local_therapy"] = [{"day": 10, "lesion": "brain", "modality": "radiotherapy"},
                                      {"day": 20, "lesion": "brain", "modality": "radiotherapy"}]
    with pytest.raises(ScenarioError, match="max_courses_per_lesion allows 1"):
        load_scenario(raw)


def test_rounds_of_oligoprogression_are_limited_per_line():
    raw = patient()
    # Resistant lesions a factor 5 apart (~54 days of growth): they progress one at a time.
    for name, site, cells in (("brain", "brain", 2e8), ("adrenal", "adrenal", 4e7),
                              ("node", "lymph", 8e6)):
        raw["lesions"][name] = {"site": site, "carrying_capacity": 1e12, "cells": {"T790M": cells}}
    raw["clones"]["T790M"]["death"] = 0.11
    raw["therapy"]["lines"]["gefitinib"]["on_mechanism"] = {}
    raw["policy"] = {"oligoprogression": {"max_rounds": 1, "max_lesions": 1}}
    raw["local_therapy"] = {"radiotherapy": {"kill_fraction": 0.9999, "failure_probability": 0.0,
                                             "max_courses_per_lesion": 0}}
    result = run(raw)
    treated = kinds(result, "local_therapy")
    first_switch = kinds(result, "line_start")["time"].iloc[1]
    assert len(treated[treated["time"] < first_switch]) == 1


def test_systemic_progression_switches_line_by_the_mechanism_found():
    raw = patient()
    for lesion in raw["lesions"].values():
        lesion["cells"] = {"sensitive": 5e9, "T790M": 5e9}
    raw["lesions"].update({
        f"met{i}": {"site": site, "carrying_capacity": 1e12, "cells": {"sensitive": 5e9, "T790M": 5e9}}
        for i, site in enumerate(("bone", "adrenal"))
    })
    result = run(raw)
    assert kinds(result, "local_therapy").empty
    assert list(kinds(result, "line_start")["detail"]) == ["gefitinib", "osimertinib"]
    assert list(kinds(result, "biopsy")["detail"]) == ["T790M"]
    assert result.endpoints["mechanisms_at_progression"] == ["T790M"]
    assert result.endpoints["progressed"] and result.endpoints["treatment_failed"]
    switch = kinds(result, "line_start")["time"].iloc[1]
    assert result.endpoints["ttf_days"] == switch
    assert result.endpoints["time_on_line"]["gefitinib"] == switch


def test_the_baseline_of_a_new_line_is_the_scan_that_led_to_it():
    raw = patient(**{"policy.oligoprogression.enabled": False})
    for lesion in raw["lesions"].values():
        lesion["cells"] = {"sensitive": 5e9, "T790M": 5e9}
    result = run(raw)
    switch = kinds(result, "line_start")["time"].iloc[1]
    visits = result.visits
    # The first scan on the new line is already assessed: no second baseline, so the new
    # line's response and progression are measured from the switch scan.
    assert list(visits.loc[visits["response"] == "baseline", "time"]) == [0.0]
    after = visits[visits["time"] > switch]
    assert not after.empty and after["response"].iloc[0] in ("CR", "PR", "SD", "PD")


def test_a_pause_keeps_the_lines_baseline_and_nadir():
    raw = patient(**{"policy.adaptive.enabled": True, "simulation.duration_days": 1500,
                     "monitoring.visit_every_days": 28})
    raw["drugs"]["gefitinib"]["effects"]["sensitive"]["death_increase"] = 0.03
    raw["therapy"]["lines"]["gefitinib"]["on_mechanism"] = {}
    raw["policy"]["oligoprogression"] = {"enabled": False}
    result = run(raw)
    restarts = kinds(result, "drug_restart")
    assert "progression" in set(restarts["detail"]), restarts
    visits = result.visits
    later_lines = kinds(result, "line_start")["time"].iloc[1:]
    on_first_line = visits[visits["time"] < later_lines.min()] if len(later_lines) else visits
    # Restarting after progression in a pause sets no new baseline on the same line.
    assert list(on_first_line.loc[on_first_line["response"] == "baseline", "time"]) == [0.0]


def test_holidays_apply_only_on_the_lines_the_rule_names():
    raw = patient(**{"policy.holiday.enabled": True, "simulation.duration_days": 1200})
    raw["policy"]["holiday"]["lines"] = ["osimertinib"]
    assert kinds(run(raw), "drug_stop").empty
    raw["policy"]["holiday"]["lines"] = ["gefitinib"]
    assert not kinds(run(raw), "drug_stop").empty
    raw["policy"]["holiday"]["lines"] = ["afatinib"]
    with pytest.raises(ScenarioError, match="policy.holiday.lines"):
        load_scenario(raw)


def test_without_a_mechanism_the_next_line_is_the_default():
    raw = patient(**{"policy.oligoprogression.enabled": False})
    raw["clones"]["other"] = {"birth": 0.14, "death": 0.11}
    for lesion in raw["lesions"].values():
        lesion["cells"] = {"sensitive": 5e9, "other": 5e9}
    raw["therapy"]["lines"]["chemotherapy"] = {"dosing": []}
    raw["therapy"]["lines"]["gefitinib"]["next"] = "chemotherapy"
    result = run(raw)
    assert list(kinds(result, "line_start")["detail"]) == ["gefitinib", "chemotherapy"]
    assert kinds(result, "biopsy")["detail"].iloc[0] == "none"


def test_drug_holiday_starts_and_ends_by_its_rule():
    raw = patient(**{"policy.holiday.enabled": True, "simulation.duration_days": 1200})
    result = run(raw)
    stops = kinds(result, "drug_stop")
    restarts = kinds(result, "drug_restart")
    assert not stops.empty and stops["detail"].iloc[0] == "holiday"
    visits = result.visits.set_index("time")
    stop_day = stops["time"].iloc[0]
    # The rule: the last min_visits visits were responses with small sums and negative ctDNA.
    before = visits.loc[:stop_day].tail(2)
    assert before["response"].isin(["CR", "PR"]).all()
    assert (before["sum_diameters_mm"] <= 20.0).all() and not before["ctdna_positive"].any()
    assert not restarts.empty and restarts["time"].iloc[0] > stop_day
    restart = visits.loc[restarts["time"].iloc[0]]
    reason = restarts["detail"].iloc[0]
    if reason == "ctDNA positive":
        assert restart["ctdna_positive"]
    else:
        assert reason in ("marker rise", "progression")
    assert 0 < result.endpoints["holiday_days"] < 1200
    assert result.endpoints["relative_dose"] < 1.0


def test_adaptive_therapy_cycles_on_and_off():
    raw = patient(**{"policy.adaptive.enabled": True, "simulation.duration_days": 1500,
                     "monitoring.visit_every_days": 28})
    raw["drugs"]["gefitinib"]["effects"]["sensitive"]["death_increase"] = 0.03
    result = run(raw)
    stops, restarts = kinds(result, "drug_stop"), kinds(result, "drug_restart")
    assert len(stops) >= 2 and len(restarts) >= 2
    assert set(stops["detail"]) == {"adaptive"}
    baseline = result.visits["marker"].iloc[0]
    for time in stops["time"]:
        assert result.visits.set_index("time").loc[time, "marker"] < 0.5 * baseline
    assert 0.0 < result.endpoints["relative_dose"] < 1.0


def test_consolidation_treats_every_residual_lesion_once():
    raw = patient(**{"policy.consolidation.enabled": True, "policy.consolidation.after_days": 90})
    raw["drugs"]["gefitinib"]["effects"]["sensitive"]["death_increase"] = 0.03
    result = run(raw)
    treated = kinds(result, "local_therapy")
    first = treated["time"].min()
    assert set(treated[treated["time"] == first]["lesion"]) == {"primary", "liver"}
    modality = dict(zip(treated["lesion"], treated["detail"]))
    assert modality == {"primary": "surgery", "liver": "radiotherapy"}
    assert len(treated) == 2


def test_scheduled_local_therapy_kills_its_fraction():
    raw = patient(**{"monitoring.enabled": False})
    raw["therapy"]["lines"] = {}
    raw["scheduled_local_therapy"] = [{"day": 10, "lesion": "liver", "modality": "surgery"}]
    raw["local_therapy"] = {"surgery": {"kill_fraction": 0.999}}
    result = run(raw)
    event = kinds(result, "local_therapy").iloc[0]
    assert event["lesion"] == "liver" and event["time"] == 10
    # Survivors of a binomial thinning: 0.001 of the cells, within 5 binomial SDs.
    n = 5e9 * math.exp(0.01 * 10)
    assert abs(event["value"] - 1e-3) < 5 * math.sqrt(1e-3 / n) + 1e-6


def test_death_ends_the_patient_at_the_lethal_burden():
    raw = patient(**{"simulation.lethal_burden": 5e10, "simulation.duration_days": 2000})
    raw["therapy"]["lines"] = {}
    result = run(raw)
    death = kinds(result, "death")
    assert len(death) == 1 and death["value"].iloc[0] >= 5e10
    assert result.endpoints["died"] and result.endpoints["os_days"] == death["time"].iloc[0]
    assert result.end_time == death["time"].iloc[0]


def test_an_oversized_brain_lesion_kills():
    raw = patient(**{"simulation.duration_days": 2000, "mortality.organ_lethal_cells": {"brain": 5e10}})
    raw["therapy"]["lines"] = {}
    raw["lesions"]["brain"] = {"site": "brain", "carrying_capacity": 1e12, "cells": {"T790M": 1e10}}
    result = run(raw)
    death = kinds(result, "death")
    assert len(death) == 1 and death["value"].iloc[0] < 1e13  # long before the lethal burden
    brain = result.trajectory.query("lesion == 'brain'").groupby("time")["cells"].sum()
    assert brain.iloc[-1] >= 5e10 and (brain.iloc[:-1] < 5e10).all()
    assert result.end_time == death["time"].iloc[0]


def frozen_patient(hazard: float, exponent: float, cells: float) -> dict:
    """A tumour that neither grows nor shrinks (b = d = 0) under a burden hazard of death."""
    return {
        "id": "hazard-test",
        "clones": {"frozen": {"birth": 0.0, "death": 0.0}},
        "lesions": {"primary": {"site": "lung", "cells": {"frozen": cells}}},
        "mortality": {"hazard_per_day": hazard, "hazard_reference_cells": 1e10,
                      "hazard_exponent": exponent},
        "monitoring": {"enabled": False},
        "simulation": {"duration_days": 100, "dt_days": 1, "record_every_days": 100},
    }


@pytest.mark.parametrize("cells, seed", [(1e10, 21), (4e10, 22)])
def test_the_burden_hazard_raises_death_as_stated(cells, seed):
    """With a constant burden N the hazard is h (N / N_ref)^k, so P(dead by T) = 1 - exp(-h'T)
    exactly at step ends; exact binomial test, pass if p > 0.001. n = 400 patients."""
    from scipy import stats

    h, k, horizon, n = 0.01, 0.5, 100.0, 400
    scenario = load_scenario(frozen_patient(h, k, cells))
    dead = sum(simulator.simulate(scenario, seed=seed, replicate=i, keep_trajectory=False)
               .endpoints["died"] for i in range(n))
    expected = 1.0 - math.exp(-h * (cells / 1e10) ** k * horizon)
    assert stats.binomtest(int(dead), n, expected).pvalue > 0.001, (dead / n, expected)


def test_an_unfit_patient_gets_no_further_line():
    raw = patient(**{"fitness.unfit_per_line": 50.0})
    for lesion in raw["lesions"].values():
        lesion["cells"] = {"sensitive": 5e9, "T790M": 5e9}
    result = run(raw)
    assert list(kinds(result, "line_start")["detail"]) == ["gefitinib"]
    exhausted = kinds(result, "therapy_exhausted")
    assert len(exhausted) == 1 and exhausted["value"].iloc[0] == 1.0  # unfit, not out of lines
    fit = run(patient(**{"fitness.unfit_per_line": 0.0}) | {"lesions": raw["lesions"]})
    assert list(kinds(fit, "line_start")["detail"]) == ["gefitinib", "osimertinib"]


def test_same_seed_gives_identical_events_and_observations():
    raw = patient(**{"policy.holiday.enabled": True})
    first, second = run(raw, seed=11), run(raw, seed=11)
    pd.testing.assert_frame_equal(first.events, second.events)
    pd.testing.assert_frame_equal(first.visits, second.visits)
    other = run(raw, seed=12)
    assert not first.visits["marker"].equals(other.visits["marker"])


# --- Python policies -------------------------------------------------------------------------


def test_python_policy_sees_visits_and_its_actions_happen():
    seen = []

    def stop_on_day_112(visit):
        seen.append((visit.time, visit.response, len(visit.history)))
        return [StopDrug()] if visit.time == 112 else []

    result = run(patient(), policy=stop_on_day_112)
    assert [s[0] for s in seen] == list(result.visits["time"])
    assert [s[2] for s in seen] == list(range(len(seen)))
    stop = kinds(result, "drug_stop")
    assert list(stop["time"]) == [112.0] and list(stop["detail"]) == ["policy"]


def test_python_policy_biopsy_is_logged():
    def biopsy_at_first_visit(visit):
        if visit.time == 56:
            assert visit.biopsy("primary") == {}
        return []

    result = run(patient(), policy=biopsy_at_first_visit)
    assert list(kinds(result, "biopsy")["lesion"]) == ["primary"]


def test_policy_asking_the_impossible_gets_a_clear_error():
    def treat_nowhere(visit):
        return [LocalTherapy("pancreas", "radiotherapy")]

    with pytest.raises(PolicyError, match=r"LocalTherapy.lesion: no lesion 'pancreas' .*seen: primary, liver"):
        run(patient(), policy=treat_nowhere)

    def unknown_line(visit):
        from simulator.policy import SwitchLine

        return [SwitchLine("nivolumab")]

    with pytest.raises(PolicyError, match="SwitchLine.line: unknown line 'nivolumab'"):
        run(patient(), policy=unknown_line)


# --- bad input -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change, message",
    [
        ({"drugs.gefitinib.effects": {"sensitve": {"death_increase": 0.1}}},
         "drugs.gefitinib.effects.sensitve: unknown clone type 'sensitve' (did you mean 'sensitive'?)"),
        ({"drugs.gefitinib.half_life_days": -2.0}, "drugs.gefitinib.half_life_days"),
        ({"policy.oligoprogression.max_lesions": 6}, "policy.oligoprogression.max_lesions"),
        ({"policy.adaptive.stop_fraction": 1.5}, "policy.adaptive.stop_fraction"),
        ({"therapy.lines.gefitinib.next": "chemo"}, "therapy.lines.gefitinib.next: unknown line 'chemo'"),
        ({"therapy.lines.gefitinib.on_mechanism": {"T790M": "osimertinb"}},
         "therapy.lines.gefitinib.on_mechanism.T790M: unknown line 'osimertinb'"),
        ({"therapy.lines.gefitinib.dosing": [{"drug": "erlotinib", "dose": 150}]},
         "therapy.lines.gefitinib.dosing[0].drug: unknown drug 'erlotinib'"),
        ({"therapy.lines.gefitinib.dosing": [{"drug": "gefitinib", "dose": -250}]},
         "therapy.lines.gefitinib.dosing[0].dose"),
    ],
)
def test_bad_therapy_input_names_the_field(change, message):
    with pytest.raises(simulator.ScenarioError) as error:
        simulator.load_scenario(patient(**change))
    text = str(error.value)
    assert message in text and "\n" not in text


def test_death_before_any_scan_ends_progression_free_survival():
    raw = patient(**{"simulation.lethal_burden": 5e10, "simulation.duration_days": 2000,
                     "monitoring.visit_every_days": 1000})
    raw["therapy"]["lines"] = {}
    result = run(raw)
    death = kinds(result, "death")["time"].iloc[0]
    assert kinds(result, "progression").empty or kinds(result, "progression")["time"].iloc[0] > death
    assert result.endpoints["progressed"] and result.endpoints["pfs_days"] == death
