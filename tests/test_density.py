"""The density factor held over a step of a lesion with one clone type is exact: a lesion
growing at it reaches, in expectation, the size the density law's deterministic path reaches
(checked against a numerical solution of that path, with the rates built as the engine builds
them: density first, then drugs)."""

import math

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from simulator.engine.dynamics import GROWTH_LAW_CODES, exact_held_factor
from tests.reference import density_adjusted, density_factor


def _growth(law, cells, capacity, birth, death, scale, add):
    """Net growth rate per day at size ``cells`` (reference formulas)."""
    b, d = density_adjusted(birth, death, density_factor(law, cells, capacity))
    return b * scale - (d + add)


def _path_end(law, cells, capacity, birth, death, scale, add, dt):
    """ln N(dt) / N(0) along the deterministic path, integrated to 1e-12 relative."""
    def rhs(_, x):
        return [_growth(law, math.exp(x[0]), capacity, birth, death, scale, add)]
    solution = solve_ivp(rhs, (0.0, dt), [math.log(cells)], method="DOP853", rtol=1e-12,
                         atol=1e-12)
    return solution.y[0, -1] - math.log(cells)


CASES = [  # law, cells, capacity, birth, death, drug birth scale, drug added death, days
    ("gompertz", 1.0, 1e11, 0.05, 0.01, 1.0, 0.0, 30.0),
    ("gompertz", 1e3, 1e11, 0.05, 0.01, 1.0, 0.0, 1.0),
    ("gompertz", 1e9, 1e11, 0.05, 0.01, 1.0, 0.0, 120.0),
    ("gompertz", 1e9, 1e11, 0.05, 0.01, 0.3, 0.02, 28.0),
    ("gompertz", 5e10, 1e11, 0.2, 0.19, 0.8, 0.0, 365.0),
    ("logistic", 10.0, 1e6, 0.05, 0.01, 1.0, 0.0, 60.0),
    ("logistic", 5e5, 1e6, 0.05, 0.01, 1.0, 0.0, 200.0),
    ("logistic", 5e5, 1e6, 0.05, 0.01, 0.5, 0.03, 10.0),
    ("logistic", 9e5, 1e6, 0.3, 0.1, 0.1, 0.0, 7.0),
]


@pytest.mark.parametrize("case", CASES, ids=[f"{c[0]}-{c[1]:g}-{c[7]:g}d" for c in CASES])
def test_the_held_factor_of_one_clone_type_gives_the_density_laws_growth(case):
    law, cells, capacity, birth, death, scale, add, dt = case
    factor = exact_held_factor(GROWTH_LAW_CODES[law], cells, capacity, birth, death, scale, add, dt)
    b, d = density_adjusted(birth, death, factor)
    held_growth = (b * scale - (d + add)) * dt
    expected = _path_end(law, cells, capacity, birth, death, scale, add, dt)
    assert held_growth == pytest.approx(expected, rel=1e-8, abs=1e-10)
    assert 0.0 <= factor <= 1.0 + 1e-12


@pytest.mark.parametrize("law, cells, capacity", [
    ("gompertz", 2e11, 1e11),   # above capacity: deaths exceed births, another linear regime
    ("logistic", 2e6, 1e6),
    ("gompertz", 0.5, 1e11),    # below one cell the Gompertz factor is capped at 1
])
def test_the_closed_form_declines_outside_its_regime(law, cells, capacity):
    assert math.isnan(exact_held_factor(GROWTH_LAW_CODES[law], cells, capacity, 0.05, 0.01, 1.0,
                                        0.0, 10.0))


def test_a_path_that_crosses_capacity_within_the_step_is_left_to_the_quadrature():
    """Logistic growth cannot cross K; a drug that lowers deaths could, so the form refuses."""
    law = GROWTH_LAW_CODES["logistic"]
    assert math.isnan(exact_held_factor(law, 9.9e5, 1e6, 0.5, 0.1, 1.0, -0.2, 30.0))


def test_the_factor_does_not_matter_for_a_declining_clone():
    law = GROWTH_LAW_CODES["gompertz"]
    start = density_factor("gompertz", 1e8, 1e11)
    assert exact_held_factor(law, 1e8, 1e11, 0.01, 0.05, 1.0, 0.0, 10.0) == pytest.approx(start)
    assert exact_held_factor(law, 1e8, 1e11, 0.05, 0.01, 0.0, 0.0, 10.0) == pytest.approx(start)


def test_short_steps_agree_with_the_factor_at_the_start():
    law = GROWTH_LAW_CODES["gompertz"]
    start = density_factor("gompertz", 1e8, 1e11)
    factors = [exact_held_factor(law, 1e8, 1e11, 0.05, 0.01, 1.0, 0.0, dt) for dt in (1e-3, 1e-6)]
    assert np.allclose(factors, start, rtol=1e-4)
