"""Residual tissue: the volume of killed cells that a CT still sees until it resolves.

The checks are deterministic: frozen cells (no birth, no death), CT without noise, and the
accrual of residual tissue compared with its integral computed independently."""

import math

import numpy as np
import pytest
from click.testing import CliRunner
from scipy import integrate

import simulator
from simulator.cli import main
from simulator.engine import kernel
from simulator.engine.clinic import diameter_mm
from simulator.lowering import lower

FRACTION, HALF_LIFE = 0.5, 60.0


def treated_lesion(modality: str, removes_tissue: bool, visits_every: float = 30.0) -> simulator.Scenario:
    """1e9 frozen cells in the lung, all killed on day 0 by one course of ``modality``; a
    second lesion of frozen cells keeps the patient's disease (and the run) going."""
    return simulator.load_scenario({
        "id": "residual-test",
        "clones": {"A": {"birth": 0.0, "death": 0.0}},
        "lesions": {"treated": {"site": "lung", "cells": {"A": 1_000_000_000}},
                    "other": {"site": "liver", "cells": {"A": 1_000_000}}},
        "local_therapy": {modality: {"kill_fraction": 1.0, "failure_probability": 0.0,
                                     "removes_tissue": removes_tissue}},
        "scheduled_local_therapy": [{"day": 0, "lesion": "treated", "modality": modality}],
        "monitoring": {"visit_every_days": visits_every, "measurement_sd_mm": 0.0,
                       "residual_fraction": FRACTION, "residual_half_life_days": HALF_LIFE},
        "policy": {"oligoprogression": {"enabled": False}},
        "simulation": {"duration_days": 240, "dt_days": 1, "record_every_days": 30},
    })


def treated_diameters(result) -> dict[float, float]:
    seen = result.observations.query("lesion == 'treated'")
    return dict(zip(seen["time"], seen["diameter_mm"]))


def test_radiotherapy_leaves_residual_tissue_that_resolves_at_its_half_life():
    """Every cell dies on day 0; the CT sees half their volume, halving every 60 days, until
    it falls below the 5 mm detection limit (day 177)."""
    seen = treated_diameters(simulator.simulate(treated_lesion("radiotherapy", False)))
    assert seen[0.0] == pytest.approx(diameter_mm(1e9, 1e9))
    for day in (30.0, 60.0, 90.0, 120.0, 150.0):
        expected = diameter_mm(FRACTION * 1e9 * 2.0 ** (-day / HALF_LIFE), 1e9)
        assert seen[day] == pytest.approx(expected, rel=1e-12)
    assert 180.0 not in seen  # 5e8 * 2^-3 = 6.25e7 cells' volume: 4.9 mm, below 5 mm


def test_surgery_takes_the_tissue_away():
    seen = treated_diameters(simulator.simulate(treated_lesion("surgery", True)))
    assert list(seen) == [0.0]


def accrual_model(birth: float, death: float):
    scenario = simulator.load_scenario({
        "id": "accrual",
        "clones": {"A": {"birth": birth, "death": death}},
        "lesions": {"primary": {"site": "lung", "cells": {"A": 10**12}}},
        "monitoring": {"residual_fraction": FRACTION, "residual_half_life_days": HALF_LIFE},
    })
    model = lower(scenario)
    return model, kernel.allocate_buffers(model, 4, 16)


def accrue(model, buffers, birth_scale: float, death_add: float, days: float) -> float:
    kernel._initialise(model.dynamics, buffers.population, buffers.clock, model.initial_cells,
                       model.lesion_site, model.lesion_capacity, model.lesion_law)
    scale = np.full_like(buffers.birth_scale, birth_scale)
    add = np.full_like(buffers.death_add, death_add)
    accrue_step(model, buffers, scale, add, days)
    return float(buffers.residual[0])


def accrue_step(model, buffers, scale, add, days):
    """The residual tissue one step of ``days`` adds to lesion 0, at the density factor the
    step holds for its cells."""
    total = int(buffers.cells[0].sum())
    factor = kernel._lesion_density(model.dynamics, buffers.population, 0, total, scale, add, days)
    kernel._accrue_residual(model.dynamics, buffers.population, 0, factor, scale, add, days)


@pytest.mark.parametrize("birth, death, birth_scale, death_add, days", [
    (0.14, 0.05, 0.8, 0.04, 42.0),   # a drug that slows division and kills: decline
    (0.14, 0.05, 1.0, 0.01, 10.0),   # a weak drug: the compartment still grows
    (0.0, 0.0, 1.0, math.log(2.0) / HALF_LIFE, 7.0),  # decline at the clearance rate: r + k = 0
])
def test_accrual_is_the_integral_of_killed_cells_along_the_expected_path(birth, death, birth_scale,
                                                                           death_add, days):
    """f * add * n * integral_0^h e^(r s) e^(-k (h - s)) ds, by quadrature."""
    model, buffers = accrual_model(birth, death)
    clearance = math.log(2.0) / HALF_LIFE
    r = birth * birth_scale - death - death_add
    quadrature, _ = integrate.quad(lambda s: math.exp(r * s - clearance * (days - s)), 0.0, days)
    expected = FRACTION * death_add * 1e12 * quadrature
    assert accrue(model, buffers, birth_scale, death_add, days) == pytest.approx(expected, rel=1e-9)


def test_accrual_in_a_crowded_lesion_follows_the_density_adjusted_rates():
    """Under Gompertz growth a crowded lesion divides less (births fall towards deaths), so on
    a drug its cells decline faster than their intrinsic rates say: the tissue accrued over a
    step follows the rates the step gives the cells (the density factor held over it), the same
    whether the step is one day or six weeks."""
    birth, death, birth_scale, death_add, days = 0.14, 0.05, 0.8, 0.04, 42.0
    scenario = simulator.load_scenario({
        "id": "crowded",
        "clones": {"A": {"birth": birth, "death": death}},
        "lesions": {"primary": {"site": "lung", "cells": {"A": 10**12}, "carrying_capacity": 1e13,
                                "growth_law": "gompertz"}},
        "monitoring": {"residual_fraction": FRACTION, "residual_half_life_days": HALF_LIFE},
    })
    model = lower(scenario)
    buffers = kernel.allocate_buffers(model, 4, 16)
    got = accrue(model, buffers, birth_scale, death_add, days)
    scale = np.full_like(buffers.birth_scale, birth_scale)
    add = np.full_like(buffers.death_add, death_add)
    factor = kernel._lesion_density(model.dynamics, buffers.population, 0, 10**12, scale, add, days)
    assert 0.0 < factor < 0.2  # crowded: a tenth of the intrinsic net growth is left
    r = (death + (birth - death) * factor) * birth_scale - death - death_add
    clearance = math.log(2.0) / HALF_LIFE
    quadrature, _ = integrate.quad(lambda s: math.exp(r * s - clearance * (days - s)), 0.0, days)
    assert got == pytest.approx(FRACTION * death_add * 1e12 * quadrature, rel=1e-9)
    intrinsic = birth * birth_scale - death - death_add
    too_much, _ = integrate.quad(lambda s: math.exp(intrinsic * s - clearance * (days - s)), 0.0, days)
    assert got < 0.8 * FRACTION * death_add * 1e12 * too_much


def test_accrual_over_two_half_steps_equals_one_step():
    """Split at the expected size halfway, the residual tissue is the same: it does not depend
    on the step length."""
    model, buffers = accrual_model(0.14, 0.05)
    whole = accrue(model, buffers, 0.8, 0.04, 40.0)
    model, buffers = accrual_model(0.14, 0.05)
    first = accrue(model, buffers, 0.8, 0.04, 20.0)
    buffers.cells[0, 0] = int(round(1e12 * math.exp((0.14 * 0.8 - 0.05 - 0.04) * 20.0)))
    scale, add = np.full_like(buffers.birth_scale, 0.8), np.full_like(buffers.death_add, 0.04)
    accrue_step(model, buffers, scale, add, 20.0)
    assert first > 0.0
    assert buffers.residual[0] == pytest.approx(whole, rel=1e-9)


@pytest.mark.parametrize("setting, field", [
    ("monitoring.residual_fraction=1.5", "monitoring.residual_fraction"),
    ("monitoring.residual_half_life_days=0", "monitoring.residual_half_life_days"),
    ("local_therapy.surgery.removes_tissue=maybe", "local_therapy.surgery.removes_tissue"),
])
def test_bad_residual_settings_are_refused_before_work(tmp_path, setting, field):
    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["run", "two-clone-teaching", "--set", setting, "--out", str(out)])
    assert result.exit_code == 2
    assert field in result.output and len(result.output.strip().splitlines()) == 1
    assert not out.exists()
