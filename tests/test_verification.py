"""Statistical verification of the engine against exact theory (docs/model.md, section B)
and against the event-by-event reference in ``tests/reference.py``.

Every test runs with a fixed seed and is a significance test at alpha = 0.001 (see
``verification_checks``): a correct engine fails a given test with probability at most
0.001, and the tolerance comes from the test's null distribution, never from tuning. Where
one test looks at several statistics, their p-values are Bonferroni-combined (k * min p).
Replicate counts are modest so the file runs in well under a minute; ``scripts/verify.py``
runs the same checks with many more replicates and draws QQ plots.
"""

import pytest

import verification_checks as vc


def assert_passes(result: vc.CheckResult) -> None:
    assert result.passed, str(result)


# --------------------------------------------------------------------------- B1


@pytest.mark.parametrize("b, d, t, seed", [
    (0.14, 0.13, 30.0, 101),
    (0.14, 0.13, 100.0, 102),
    (0.14, 0.14, 50.0, 103),  # critical: alpha = beta = bt / (1 + bt)
])
def test_kendall_pmf_from_one_cell(b, d, t, seed):
    """The whole distribution of N(t) from one cell (dt = 1) against Kendall's pmf (B1).

    Tolerance: Pearson chi-square over bins of k merged to >= 5 expected replicates,
    chi-square((bins - 1) df) null distribution, pass if p > 0.001. n = 2000.
    """
    assert_passes(vc.check_kendall_pmf(2000, seed, b, d, t))


@pytest.mark.parametrize("b, d", [(0.14, 0.13), (0.14, 0.14)], ids=["supercritical", "critical"])
@pytest.mark.parametrize("n0", [10**3, 10**9])
def test_mean_and_variance(b, d, n0):
    """Mean and variance of N(100 days) from n0 = 1e3 and 1e9 cells, b > d and b = d (B1).

    Tolerance: z-scores of the sample mean (variance sigma^2/n) and of the sample variance
    (variance mu4/n - sigma^4 (n-3)/(n(n-1)), mu4 from the exact single-cell cumulants),
    two-sided, Bonferroni over the pair, pass if p > 0.001. n = 600.
    """
    seed = 200 + (n0 > 1000) + 2 * (b == d)
    assert_passes(vc.check_moments(600, seed, b, d, n0, 100.0))


@pytest.mark.parametrize("n0, seed", [(1, 301), (2, 302), (5, 303)])
def test_extinction_probability(n0, seed):
    """P(extinct by 400 days) from n0 = 1, 2, 5 cells against alpha(T)^n0 = (d/b)^n0 (B1).

    Tolerance: exact two-sided binomial test (scipy.stats.binomtest), pass if p > 0.001,
    i.e. the theoretical value lies in the 99.9% Clopper-Pearson interval. n = 2000.
    """
    assert_passes(vc.check_extinction(2000, seed, n0))


# --------------------------------------------------------------------------- B2


@pytest.mark.parametrize("dt, seed", [(1.0, 401), (10.0, 403), (30.0, 402)])
def test_bnb_joint_law_with_mutation(dt, seed):
    """(Any mutation?, parent lineage size) over 30 days, in steps of 1, 10 and 30 days
    (one step), against B2's pM, pE, pB: the update is exact whatever the step.

    pE is the joint probability of no mutation and extinction, so it is compared with the
    joint category, with B2 evaluated at the parent's mutation-free birth rate b (1 - u).
    Tolerance: chi-square over merged categories, pass if p > 0.001. n = 2000.
    """
    assert_passes(vc.check_bnb_joint(2000, seed, dt=dt))


# --------------------------------------------------------------------------- B3


@pytest.mark.parametrize("dt, seed", [(1.0, 501), (41.0, 503)])
def test_luria_delbruck_mutant_counts(dt, seed):
    """Mutant counts under pure birth (d = 0, m ~ 0.97) against the Luria-Delbruck pmf (B3),
    in daily steps and in two steps of 41 days (growth e^5.7 per step).

    Mutants grow at the wild type's rate b (1 - u), the engine's mutation-free marginal.
    Tolerance: chi-square over merged bins (tail bin X > 200), pass if p > 0.001; the LD
    limit's finite-size corrections are bounded in the check's docstring far below the
    resolution of n = 1500.
    """
    assert_passes(vc.check_luria_delbruck(1500, seed, dt=dt))


def test_preexisting_resistance_near_one_half():
    """P(no resistant cell when the sensitive clone reaches 1e5 cells) ~ 0.5 (B3).

    Tolerance: z = (X - sum p_i)/sqrt(sum p_i (1 - p_i)) with p_i the formula at each
    replicate's own size at the stop, two-sided, pass if p > 0.001. n = 2000 (about half
    reach M).
    """
    assert_passes(vc.check_preexisting_resistance(2000, 502))


# --------------------------------------------------------------------------- B4


@pytest.mark.parametrize("r0, dt, seed", [(0, 1.0, 601), (2, 1.0, 602), (0, 10.0, 603),
                                          (0, 40.0, 604)])
def test_cure_probability(r0, dt, seed):
    """Cure of a declining sensitive population that mutates to resistance (B4), with
    r0 = 0 or 2 pre-existing resistant cells: E[(d_R/b_R)^R0] q^M; steps of 1, 10, 40 days.

    Tolerance: exact two-sided binomial test, pass if p > 0.001; the finite horizon's
    effect is computed exactly (backward equation) and asserted below 1e-6. n = 2000.
    """
    assert_passes(vc.check_cure(2000, seed, r0, dt=dt))


# --------------------------------------------------------------------------- B5


@pytest.mark.parametrize("law", ["logistic", "gompertz"])
@pytest.mark.parametrize("start", [1e9, 3e11], ids=["below_capacity", "above_capacity"])
def test_growth_law_closed_form(law, start):
    """A large population (K = 1e11) follows the closed-form logistic / Gompertz curve (B5).

    Tolerance: relative error < 1% at every sampled time, as required; the stochastic
    part is < 1e-4 (relative sd of N for N >= 1e9), so the test measures the step error.
    """
    assert_passes(vc.check_growth_law(law, start))


# --------------------------------------------------------------------------- seeding


@pytest.mark.parametrize("case, seed", [("events", 701), ("lesions", 702)])
def test_seeded_lesion_count(case, seed):
    """Number of seeded lesions (founders sent out; and, with d = 0, lesions listed) against
    lambda = s n0 (e^{(r+s)T} - 1)/(r + s).

    Tolerance: chi-square of the counts against Poisson(lambda) and z of the mean with the
    Poisson variance plus a Cauchy-Schwarz bound on the path's extra variance (asserted
    < 1% of lambda), Bonferroni over the pair, pass if p > 0.001. n = 1000.
    """
    assert_passes(vc.check_seeding(1000, seed, case))


# --------------------------------------------------------------------------- steps, reference


@pytest.mark.parametrize("coarse, seed", [(1.0, 801), (10.0, 806), (30.0, 807)])
def test_step_independence(coarse, seed):
    """dt = 1, 10 or 30 (one step) and dt = 0.25 give the same end-state distribution when
    rates are constant (three clones, mutation, two lesions, seeding).

    Tolerance: two-sample chi-square per statistic (clone totals, seeding events) with bins
    at pooled quantiles, Bonferroni over the four, pass if p > 0.001. n = 600 per dt.
    """
    assert_passes(vc.check_step_independence(600, seed, coarse=coarse))


def test_reference_matches_kendall():
    """The Python reference itself reproduces Kendall's pmf (B1), so it is a fair yardstick.

    Tolerance: chi-square over merged bins, pass if p > 0.001. n = 2000.
    """
    assert_passes(vc.check_reference_kendall(2000, 802))


@pytest.mark.parametrize("case, dt, seed, joined", [
    ("exponential", 1.0, 803, False), ("exponential", 15.0, 804, False), ("density", 1.0, 805, False),
    ("exponential", 1.0, 808, True), ("density", 1.0, 809, True)])
def test_engine_matches_reference(case, dt, seed, joined):
    """The jitted engine against the event-by-event reference on a three-clone, two-lesion
    scenario with mutation and seeding; exponential, and logistic + Gompertz lesions; with
    fixed steps and with the engine's joined steps.

    Tolerance: two-sample chi-square per statistic (clone totals, seeding events, lesions
    listed with fixed steps), Bonferroni over them, pass if p > 0.001. n = 500 per
    implementation.
    """
    assert_passes(vc.check_engine_vs_reference(500, seed, case, dt, joined))


def test_seeding_sites_follow_weights():
    """Sites of ~800 seeded lesions in one patient against the site weights.

    Tolerance: chi-square goodness of fit with (sites - 1) df, pass if p > 0.001.
    """
    assert_passes(vc.check_seeding_sites(703))


def test_many_seeded_lesions():
    """A patient seeding ~1100 lesions (d = 0, all founders survive) must run; the count is
    checked against its Poisson mean lambda with a z of 3.29 (two-sided alpha = 0.001)."""
    result = vc.run_many_seeded_lesions(1100.0, seed=704)
    z = (result["lesions"] - 1 - result["lambda"]) / result["lambda"] ** 0.5
    assert abs(z) < 3.29, result


# --------------------------------------------------------------------------- stopping size


@pytest.mark.parametrize("dt", [1.0, 10.0])
def test_stop_at_a_size_does_not_overshoot(dt):
    """From 1e3 cells (b = 0.14, d = 0.04) with a stop at 1e6: every replicate ends at
    1e6 <= N <= 1e6 (1 + 0.01 + 5 sd), sd = sqrt((b + d) h / (r N)) the relative spread of
    growth over one sub-step h (0.01 of growth at rate r), whatever the step."""
    import math

    from simulator.runner import run_replicates

    b, d, size = 0.14, 0.04, 1e6
    scenario = vc.make_scenario({"S": {"birth": b, "death": d}},
                                {"primary": {"site": "lung", "cells": {"S": 1000}}},
                                duration=200.0, dt=dt, stop_at_cells=size)
    ends = run_replicates(scenario, 200, seed=901).cells[:, 0]
    h = math.log1p(0.01) / (b - d)
    sd = math.sqrt((b + d) * h * (1 + 0.01) / size)
    assert ends.min() >= size, ends.min()
    assert ends.max() <= size * (1.01 + 5 * sd), ends.max() / size
