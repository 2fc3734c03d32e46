"""Tests of simulator.theory against docs/model.md section B and against structure."""

from decimal import Decimal, getcontext

import numpy as np
import pytest
from scipy.integrate import quad, solve_ivp

from simulator import theory as th

B, D = 0.14, 0.13  # Bozic 2013 pre-treatment rates used by the check values


def printed(text):
    """pytest.approx of a printed check value, tolerant to half a unit in its last digit."""
    value = Decimal(text)
    return pytest.approx(float(value), abs=0.5 * 10.0 ** value.as_tuple().exponent)


# --------------------------------------------------------------------------- check values

@pytest.mark.parametrize("t, alpha, beta, mean, variance", [
    (30, "0.771134", "0.830452", "1.349859", "12.7510"),
    (100, "0.891512", "0.960089", "2.718282", "126.1109"),
])
def test_kendall_check_values(t, alpha, beta, mean, variance):
    a, b = th.birth_death_alpha_beta(B, D, t)
    assert a == printed(alpha)
    assert b == printed(beta)
    assert th.birth_death_mean(B, D, t) == printed(mean)
    assert th.birth_death_variance(B, D, t) == printed(variance)


def test_hitting_time_check_value():
    assert th.hitting_time_mean(B, D, 1e9) == printed("1866")


def test_bnb_check_values():
    pM, pE, pB = th.bnb_parameters(B, D, 1e-3, 30)
    assert pM == printed("0.967128")
    assert pE == printed("0.762818")
    assert pB == printed("0.821497")


def test_luria_delbruck_check_values():
    expected = ["0.367879", "0.183940", "0.107298", "0.068977", "0.047454"]
    p = th.luria_delbruck_pmf(1.0, 4)
    assert [float(x) for x in p] == [printed(e) for e in expected]


def test_cure_check_value_exact_and_approx():
    args = (1e9, 0.14, 0.17, 5e-8, 1 / 14)
    exact = th.cure_probability_no_resistance(*args)
    approx = th.cure_probability_approx(*args)
    # Both round to the printed 5.778e-8; they differ by about 5e-6 relative.
    assert exact == printed("5.778e-8")
    assert approx == printed("5.778e-8")
    assert approx == pytest.approx(exact, rel=1e-4)


def test_sphere_rule_of_thumb():
    assert th.cells_from_diameter(1.0) == printed("5.2e8")
    assert th.cells_from_diameter(3.5) == printed("2e10")


# --------------------------------------------------------------------------- B1 structure

RATES = [(0.14, 0.13, 30.0), (0.1, 0.25, 10.0), (0.2, 0.2, 15.0), (0.3, 0.0, 5.0), (0.0, 0.1, 7.0)]


@pytest.mark.parametrize("b, d, t", RATES)
def test_pmf_normalised_with_kendall_moments(b, d, t):
    k = np.arange(4000)
    p = th.birth_death_pmf(k, b, d, t)
    mean = np.sum(k * p)
    assert np.sum(p) == pytest.approx(1.0, abs=1e-10)
    assert mean == pytest.approx(th.birth_death_mean(b, d, t), rel=1e-10)
    assert np.sum((k - mean) ** 2 * p) == pytest.approx(th.birth_death_variance(b, d, t), rel=1e-9)
    assert p[0] == th.extinction_probability(b, d, t)


def _pmf_by_convolution(b, d, t, n0):
    alpha, beta = th.birth_death_alpha_beta(b, d, t)
    k_max = int(np.ceil(np.log(1e-17) / np.log(beta)))  # single-cell tail mass below 1e-15
    single = th.birth_death_pmf(np.arange(k_max + 1), b, d, t)
    total = np.array([1.0])
    for _ in range(n0):
        total = np.convolve(total, single)
    return total


@pytest.mark.parametrize("b, d, t, n0", [(0.14, 0.13, 30.0, 3), (0.1, 0.25, 10.0, 7), (0.2, 0.2, 8.0, 5)])
def test_pmf_from_several_cells_matches_convolution_and_moments(b, d, t, n0):
    brute = _pmf_by_convolution(b, d, t, n0)
    k = np.arange(brute.size)
    exact = th.birth_death_pmf(k, b, d, t, n0=n0)
    np.testing.assert_allclose(exact, brute, rtol=1e-10, atol=1e-15)
    mean = np.sum(k * exact)
    assert np.sum(exact) == pytest.approx(1.0, abs=1e-10)
    assert mean == pytest.approx(th.birth_death_mean(b, d, t, n0), rel=1e-10)
    assert np.sum((k - mean) ** 2 * exact) == pytest.approx(
        th.birth_death_variance(b, d, t, n0), rel=1e-9)
    assert exact[0] == pytest.approx(th.extinction_probability(b, d, t, n0), rel=1e-12)


@pytest.mark.parametrize("n0", [1, 4])
def test_cdf_is_cumulative_pmf(n0):
    k = np.arange(300)
    pmf = th.birth_death_pmf(k, B, D, 30.0, n0=n0)
    np.testing.assert_allclose(th.birth_death_cdf(k, B, D, 30.0, n0=n0), np.cumsum(pmf),
                               rtol=1e-12, atol=1e-15)


def test_pmf_broadcasts_over_rates():
    k = np.arange(5)[:, None]
    t = np.array([1.0, 10.0, 50.0])
    grid = th.birth_death_pmf(k, B, D, t, n0=2)
    for j, tj in enumerate(t):
        np.testing.assert_allclose(grid[:, j], th.birth_death_pmf(k[:, 0], B, D, tj, n0=2), rtol=1e-13)


def test_critical_case_is_limit_of_noncritical():
    b, t = 0.2, 30.0
    critical = b * t / (1 + b * t)
    assert th.birth_death_alpha_beta(b, b, t) == (pytest.approx(critical, rel=1e-15),) * 2
    for delta in (1e-6, -1e-6, 1e-9):
        alpha, beta = th.birth_death_alpha_beta(b, b + delta, t)
        assert alpha == pytest.approx(critical, rel=10 * abs(delta) * t)
        assert beta == pytest.approx(critical, rel=10 * abs(delta) * t)
    # Both sides of the switch to the series at |r| t = 1e-8 agree with Kendall's formula,
    # written with expm1 so that it is accurate for any r != 0.
    for d in (b - 0.99e-8 / t, b - 1.01e-8 / t, b + 0.5e-8 / t):
        r = b - d
        growth = np.expm1(r * t)
        kendall = (d * growth / (b * growth + r), b * growth / (b * growth + r))
        np.testing.assert_allclose(th.birth_death_alpha_beta(b, d, t), kendall, rtol=1e-13)
    assert th.birth_death_variance(b, b, t, n0=3) == pytest.approx(3 * 2 * b * t, rel=1e-15)


def test_long_times_reach_the_limits():
    alpha, beta = th.birth_death_alpha_beta(B, D, 1e6)
    assert (alpha, beta) == (pytest.approx(D / B, rel=1e-15), 1.0)
    assert th.extinction_probability(B, D, 1e6, n0=3) == pytest.approx(
        th.ultimate_extinction_probability(B, D, n0=3), rel=1e-14)
    assert th.birth_death_alpha_beta(0.1, 0.3, 1e4)[0] == 1.0
    assert th.ultimate_extinction_probability(0.1, 0.3, n0=5) == 1.0


def test_hitting_time_quantiles_are_gumbel():
    mean = th.hitting_time_mean(B, D, 1e9)
    integral, _ = quad(lambda q: th.hitting_time_quantile(q, B, D, 1e9), 0, 1, limit=200)
    assert integral == pytest.approx(mean, rel=1e-8)
    median = th.hitting_time_quantile(0.5, B, D, 1e9)
    assert median == pytest.approx(mean + (-np.log(np.log(2)) - np.euler_gamma) / (B - D), rel=1e-14)


# --------------------------------------------------------------------------- B2 structure

def _riccati_generating_function(b, d, mu, dt, s):
    """F(s, dt) = E[s^N; no mutation] from dF/dt = b F^2 + d - (b + d + mu) F, F(s, 0) = s."""
    s = np.atleast_1d(np.asarray(s, dtype=float))
    sol = solve_ivp(lambda _, f: b * f ** 2 + d - (b + d + mu) * f, (0, dt), s,
                    rtol=1e-12, atol=1e-14)
    return sol.y[:, -1]


@pytest.mark.parametrize("b, d, mu, dt", [(0.14, 0.13, 1e-3, 30.0), (0.1, 0.3, 0.05, 12.0),
                                          (0.2, 0.2, 0.01, 40.0)])
def test_bnb_parameters_match_generating_function(b, d, mu, dt):
    pM, pE, pB = th.bnb_parameters(b, d, mu, dt)
    s = 0.5
    f0, f_half, f1 = _riccati_generating_function(b, d, mu, dt, [0.0, s, 1.0])
    assert pM == pytest.approx(f1, rel=1e-9)  # so pM**n0 is P(no mutation) from n0 cells
    assert pE == pytest.approx(f0, rel=1e-9)
    assert pE + (pM - pE) * (1 - pB) * s / (1 - pB * s) == pytest.approx(f_half, rel=1e-9)
    assert pB == pytest.approx(b * pE / d, rel=1e-13)
    assert pE == pytest.approx(d * (1 - pM) / (b + d + mu - d - b * pM), rel=1e-8)


@pytest.mark.parametrize("b, d", [(0.14, 0.13), (0.2, 0.2), (0.1, 0.3)])
def test_bnb_without_mutation_is_kendall(b, d):
    alpha, beta = th.birth_death_alpha_beta(b, d, 30.0)
    assert th.bnb_parameters(b, d, 0.0, 30.0) == (1.0, pytest.approx(alpha, rel=1e-13),
                                                  pytest.approx(beta, rel=1e-13))
    pM, pE, pB = th.bnb_parameters(b, d, 1e-12, 30.0)
    assert (pM, pE, pB) == (pytest.approx(1.0, abs=1e-9), pytest.approx(alpha, rel=1e-9),
                            pytest.approx(beta, rel=1e-9))


# --------------------------------------------------------------------------- B3 structure

def test_no_preexisting_resistance_matches_its_integral():
    size, u, n = 1e9, 1e-9, 2
    r = B - D
    integral, _ = quad(lambda x: r * np.exp(-r * x) / (B - D * np.exp(-r * x)), 0, np.inf)
    expected = np.exp(-size * u * n * B * integral)
    assert th.prob_no_preexisting_resistance(size, u, B, D, n) == pytest.approx(expected, rel=1e-8)
    assert th.prob_no_preexisting_resistance(size, u, B, 0.0, n) == pytest.approx(
        np.exp(-size * u * n), rel=1e-14)
    assert th.prob_no_preexisting_resistance(size, u, B, 1e-12, n) == pytest.approx(
        np.exp(-size * u * n), rel=1e-10)


def test_expected_preexisting_resistant():
    size, u, n, r = 1e9, 1e-9, 50, B - D
    neutral = size * u * n * B / r * np.log(size)
    assert th.expected_preexisting_resistant(size, u, B, D, n) == pytest.approx(neutral, rel=1e-14)
    assert th.expected_preexisting_resistant(size, u, B, D, n, r_resistant=r) == pytest.approx(
        neutral, rel=1e-14)
    costly = th.expected_preexisting_resistant(size, u, B, D, n, r_resistant=0.005)
    assert costly == pytest.approx(u * n * B * size / 0.005, rel=1e-14)
    assert costly < neutral


def test_luria_delbruck_total_and_tail():
    m = 1.0
    p = th.luria_delbruck_pmf(m, 4000)
    assert np.all(p > 0) and np.sum(p) < 1
    errors = [abs(n * (1 - np.sum(p[:n])) / m - 1) for n in (1000, 2000, 4000)]
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 0.01
    assert th.luria_delbruck_pmf(0.0, 3).tolist() == [1.0, 0.0, 0.0, 0.0]


# --------------------------------------------------------------------------- B4 structure

def _cure_high_precision(M, b, d, u, s_r):
    getcontext().prec = 60
    M, b, d, u, s_r = (Decimal(repr(x)) for x in (M, b, d, u, s_r))
    a, lin = b * (1 - u), b + d - b * u * (1 - s_r)
    q = (lin - (lin * lin - 4 * a * d).sqrt()) / (2 * a)
    return float((M * q.ln()).exp())


@pytest.mark.parametrize("M, b, d, u, s_r", [(1e9, 0.14, 0.17, 5e-8, 1 / 14),
                                            (1e10, 0.1, 0.13, 1e-9, 0.3),
                                            (1e3, 0.2, 0.1, 1e-3, 0.5)])
def test_cure_probability_matches_high_precision_root(M, b, d, u, s_r):
    assert th.cure_probability_no_resistance(M, b, d, u, s_r) == pytest.approx(
        _cure_high_precision(M, b, d, u, s_r), rel=1e-9)


def test_cure_probability_with_preexisting_resistance():
    M, b, d, u, b_r, d_r = 1e9, 0.14, 0.17, 5e-8, 0.14, 0.13
    s_r = 1 - d_r / b_r
    without = th.cure_probability_no_resistance(M, b, d, u, s_r)
    assert th.cure_probability(M, b, d, u, b_r, d_r) == pytest.approx(without, rel=1e-15)
    mean_r0 = 3.0  # Poisson R0: E[x^R0] = exp(-mean (1 - x))
    k = np.arange(60)
    poisson = np.exp(-mean_r0 + k * np.log(mean_r0) - np.cumsum(np.log(np.maximum(k, 1))))
    assert th.cure_probability(M, b, d, u, b_r, d_r, R0_pmf=poisson) == pytest.approx(
        np.exp(-mean_r0 * s_r) * without, rel=1e-12)
    assert th.cure_probability(M, b, d, u, 0.1, 0.2, R0_pmf=poisson) == pytest.approx(1.0, rel=1e-12)


def test_deterministic_nadir_is_the_minimum():
    args = (1e10, 0.03, 1e4, 0.01)
    t_nadir = th.deterministic_nadir_time(*args)
    h = 1e-3
    slope = (th.deterministic_two_population(t_nadir + h, *args)
             - th.deterministic_two_population(t_nadir - h, *args)) / (2 * h)
    assert abs(slope) < 1e-6 * th.deterministic_two_population(t_nadir, *args)
    assert th.deterministic_nadir_time(1.0, 0.03, 1e4, 0.01) == 0.0


# --------------------------------------------------------------------------- B5 and units

def test_growth_laws_solve_their_odes():
    t = np.linspace(0.5, 300, 50)
    h = 1e-3
    V0, K = 1e8, 1e11

    def derivative(f):
        return (f(t + h) - f(t - h)) / (2 * h)

    a = 0.02
    gomp = lambda s: th.gompertz(s, V0, K, a)
    np.testing.assert_allclose(derivative(gomp), a * gomp(t) * np.log(K / gomp(t)), rtol=1e-6)
    r = 0.05
    logi = lambda s: th.logistic(s, V0, K, r)
    np.testing.assert_allclose(derivative(logi), r * logi(t) * (1 - logi(t) / K), rtol=1e-6)
    assert th.gompertz(0.0, V0, K, a) == pytest.approx(V0, rel=1e-14)
    assert th.logistic(0.0, V0, K, r) == V0
    assert th.logistic(1e5, V0, K, r) == pytest.approx(K, rel=1e-15)


def test_unit_conversions():
    assert th.volume_doubling_time(np.log(2) / 180) == pytest.approx(180, rel=1e-14)
    assert th.diameter_from_cells(th.cells_from_diameter(3.5)) == pytest.approx(3.5, rel=1e-14)
    assert th.cells_from_diameter(1.0, cells_per_cm3=1e8) == pytest.approx(1e8 * np.pi / 6, rel=1e-15)
    assert th.ctdna_genome_equivalents(1e9, 0.13, r=0.01) == pytest.approx(
        1e9 * 1.4e-4 * 0.13 / 33.01, rel=1e-15)


# --------------------------------------------------------------------------- validation

@pytest.mark.parametrize("call, name", [
    (lambda: th.birth_death_alpha_beta(-0.1, 0.1, 1.0), "b"),
    (lambda: th.birth_death_alpha_beta(0.1, np.nan, 1.0), "d"),
    (lambda: th.birth_death_pmf(1, 0.1, 0.1, -1.0), "t"),
    (lambda: th.birth_death_pmf(-1, 0.1, 0.1, 1.0), "k"),
    (lambda: th.birth_death_pmf(1.5, 0.1, 0.1, 1.0), "k"),
    (lambda: th.birth_death_cdf(1, 0.1, 0.1, 1.0, n0=-2), "n0"),
    (lambda: th.bnb_parameters(0.1, 0.1, -1e-3, 1.0), "mu"),
    (lambda: th.hitting_time_mean(0.1, 0.2, 1e9), "b must exceed d"),
    (lambda: th.hitting_time_quantile(1.0, 0.2, 0.1, 1e9), "q"),
    (lambda: th.prob_no_preexisting_resistance(1e9, 1.5, 0.2, 0.1), "u"),
    (lambda: th.expected_preexisting_resistant(1e9, 1e-9, 0.2, 0.1, r_resistant=0.2), "r_resistant"),
    (lambda: th.cure_probability_no_resistance(1e9, 0.1, 0.2, 1e-8, -0.1), "s_R"),
    (lambda: th.cure_probability_approx(1e9, 0.2, 0.1, 1e-8, 0.1), "d must exceed b"),
    (lambda: th.cure_probability(1e9, 0.1, 0.2, 1e-8, 0.1, 0.05, R0_pmf=[0.7, 0.7]), "R0_pmf"),
    (lambda: th.deterministic_nadir_time(1e9, 0.0, 1e3, 0.01), "l_S"),
    (lambda: th.gompertz(1.0, 0.0, 1e9, 0.1), "V0"),
    (lambda: th.logistic(1.0, 1.0, 1e9, -0.1), "r"),
    (lambda: th.volume_doubling_time(0.0), "r"),
    (lambda: th.diameter_from_cells(-1.0), "n"),
    (lambda: th.ctdna_genome_equivalents(1e9, 0.1, r=-40.0), "r"),
])
def test_bad_arguments_raise(call, name):
    with pytest.raises(ValueError, match=name):
        call()
