"""Reversible phenotype switching (drug-tolerant persisters) and what happens when a drug stops.

Statistical tests use fixed seeds and pass at p > 0.001 (tolerances from the stated law)."""

import copy
import math

import numpy as np
import pytest
from scipy import stats

import simulator
import verification_checks as vc
from simulator import theory as th
from simulator.policy import StopDrug
from simulator.runner import run_replicates


def switch_scenario(dt: float, b: float = 0.14, d: float = 0.13, rate: float = 0.1,
                    horizon: float = 30.0):
    """One cell of A (b, d) switching to a frozen type B at ``rate`` per day."""
    return simulator.load_scenario({
        "id": "switching-test",
        "clones": {"A": {"birth": b, "death": d}, "B": {"birth": 0.0, "death": 0.0}},
        "switching": [{"from": "A", "to": "B", "rate_per_day": rate}],
        "lesions": {"primary": {"site": "lung", "cells": {"A": 1}}},
        "monitoring": {"enabled": False, "visit_every_days": dt},
        "simulation": {"duration_days": horizon, "dt_days": dt, "record_every_days": horizon},
    })


@pytest.mark.parametrize("dt, seed", [(1.0, 1101), (30.0, 1102)])
def test_switching_joint_law_is_exact_at_any_step(dt, seed):
    """A switch removes the cell, so "no switch in the lineage" and the lineage's size given
    none follow B2 with mu = the switching rate: P(B = 0) = pM, P(B = 0, A = 0) = pE,
    P(B = 0, A = k) = (pM - pE)(1 - pB) pB^(k - 1). Chi-square, p > 0.001, n = 2000."""
    b, d, rate, horizon, n = 0.14, 0.13, 0.1, 30.0, 2000
    p_m, p_e, p_b = (float(x) for x in th.bnb_parameters(b, d, rate, horizon))
    cells = run_replicates(switch_scenario(dt), n, seed=seed).cells
    codes = np.where(cells[:, 1] > 0, 0, cells[:, 0] + 1)
    big_k = max(1, int(math.ceil(math.log(1.0 / (n * (p_m - p_e))) / math.log(p_b))))
    pmf = np.concatenate([[1.0 - p_m, p_e], (p_m - p_e) * (1 - p_b) * p_b ** np.arange(big_k)])
    _, _, p = vc.chi2_goodness_of_fit(codes, pmf)
    assert p > 0.001, (p, np.mean(codes == 0), 1 - p_m)


def persister_patient(drug_on: bool) -> dict:
    """1e6 frozen persisters P that revert to frozen sensitive cells S at 0.08 per day off
    drug and at 0.001 per day under full drug effect."""
    raw = {
        "id": "persisters",
        "clones": {"S": {"birth": 0.0, "death": 0.0}, "P": {"birth": 0.0, "death": 0.0}},
        "switching": [{"from": "P", "to": "S", "rate_per_day": 0.08, "drug": "tki",
                       "on_drug_rate_per_day": 0.001}],
        "lesions": {"primary": {"site": "lung", "cells": {"P": 1_000_000}}},
        "drugs": {"tki": {"half_life_days": 2.0, "standard_dose": 1.0, "ec50": 1e-3, "hill": 4.0}},
        "therapy": {"lines": {"tki": {"dosing": [{"drug": "tki", "dose": 1.0}]}}} if drug_on else {},
        "monitoring": {"enabled": False},
        "simulation": {"duration_days": 20, "dt_days": 1, "record_every_days": 20},
    }
    return raw


@pytest.mark.parametrize("drug_on, seed", [(False, 1201), (True, 1202)])
def test_tolerance_decays_at_its_rate(drug_on, seed):
    """Persisters left after 20 days: Binomial(1e6, exp(-rate 20)) with rate 0.08 off drug;
    on a drug far above its EC50 the rate is 0.001 after the first day's absorption, so
    the expected count is bounded between exp(-0.08 - 0.001 * 19) and exp(-0.001 * 20).
    z-test, |z| < 3.29 (two-sided 0.001)."""
    scenario = simulator.load_scenario(persister_patient(drug_on))
    left = simulator.simulate(scenario, seed=seed, keep_trajectory=False).final_cells.sum(axis=0)[1]
    n = 1_000_000
    if not drug_on:
        p = math.exp(-0.08 * 20)
        z = (left - n * p) / math.sqrt(n * p * (1 - p))
        assert abs(z) < 3.29, (left, n * p)
    else:
        low, high = math.exp(-0.08 - 0.001 * 19), math.exp(-0.001 * 20)
        assert n * low - 3.29 * math.sqrt(n * low) < left <= n * high + 3.29 * math.sqrt(n * high)
        assert left > 4 * n * math.exp(-0.08 * 20)  # the drug holds tolerance


def test_switching_input_is_checked():
    raw = persister_patient(True)
    bad = copy.deepcopy(raw)
    bad["switching"][0]["to"] = "Q"
    with pytest.raises(simulator.scenario.ScenarioError, match=r"switching\[0\]\.to"):
        simulator.load_scenario(bad)
    bad = copy.deepcopy(raw)
    del bad["switching"][0]["on_drug_rate_per_day"]
    with pytest.raises(simulator.scenario.ScenarioError, match="go together"):
        simulator.load_scenario(bad)


def test_a_withdrawn_drug_lets_sensitive_cells_regrow_within_a_week():
    """Sensitive cells decline on the drug; the drug is stopped at the first visit (day 28);
    with a 2-day half-life the burden's minimum comes within 7 days of stopping."""
    raw = {
        "id": "withdrawal",
        "clones": {"sensitive": {"birth": 0.14, "death": 0.11}},
        "lesions": {"primary": {"site": "lung", "cells": {"sensitive": 1e10}}},
        "drugs": {"tki": {"half_life_days": 2.0, "standard_dose": 1.0, "ec50": 0.1,
                          "effects": {"sensitive": {"death_increase": 0.06}}}},
        "therapy": {"lines": {"tki": {"dosing": [{"drug": "tki", "dose": 1.0}]}}},
        "monitoring": {"visit_every_days": 28},
        "policy": {"oligoprogression": {"enabled": False}},
        "simulation": {"duration_days": 70, "dt_days": 1, "record_every_days": 1},
    }
    stopped = []

    def stop_at_first_visit(visit):
        if visit.drug_on and not stopped:
            stopped.append(visit.time)
            return [StopDrug()]
        return []

    result = simulator.simulate(simulator.load_scenario(raw), seed=3, policy=stop_at_first_visit)
    burden = result.burden
    after = burden[burden.index >= stopped[0]]
    assert stopped == [28.0]
    assert after.idxmin() <= stopped[0] + 7, after.head(10)
    assert after.iloc[-1] > 2 * after.min()  # and it regrows


def test_the_persisters_entry_gathers_tolerance_on_drug_and_loses_it_in_a_pause():
    """egfr-persisters: gefitinib 120 days on, 60 off. Off drug persisters revert at 0.1/day,
    so over the 56 days between the records on days 119 and 175 they fall by up to e^-5.6
    (less the inflow at 1e-4/day from sensitive cells), while sensitive cells, free of the
    drug, regrow (net up to 0.09/day)."""
    result = simulator.simulate(simulator.load_scenario("egfr-persisters"), seed=2026)
    cells = result.trajectory.groupby(["time", "clone"], observed=True)["cells"].sum().unstack()
    persisters, sensitive = cells["persister"], cells["sensitive"]
    assert persisters.loc[0] == 0 and persisters.loc[7] > 1e6  # induced by the drug
    assert persisters.loc[175] < persisters.loc[119] / 3  # tolerance fades off drug
    assert sensitive.loc[175] > 1.5 * sensitive.loc[119]  # and sensitive cells regrow
    assert sensitive.loc[238] < sensitive.loc[175] / 2  # they respond again on re-challenge
