"""Statistical checks of the engine against exact theory and against the reference.

Each ``check_*`` function runs the jitted engine (``simulator.run_replicates``) or the
plain-Python reference (``tests/reference.py``) with a fixed seed, compares the outcome with
an exact or controlled result of docs/model.md section B (via ``simulator.theory``) and
returns a :class:`CheckResult`. The fast tests (``tests/test_verification.py``) call them
with modest replicate counts; ``scripts/verify.py`` calls the same functions with many more
replicates and draws the QQ panels they return.

Tolerances are never tuned: every check is a significance test at ``ALPHA = 0.001``
(binomial, chi-square, normal z from the theoretical variance, or a two-sample chi-square),
with a Bonferroni correction when one check tests several statistics, so a correct engine
fails a check with probability at most 0.001. The only non-statistical tolerance is the 1%
relative error allowed for the deterministic growth laws, where the stochastic error is
orders of magnitude smaller (see :func:`check_growth_law`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import integrate, stats

from simulator import load_scenario, run_replicates
from simulator.runner import CapacityError  # noqa: F401  (re-exported for the tests)
from simulator.scenario import scenario_to_dict
from simulator import theory as th

from reference import run_reference_replicates

ALPHA = 1e-3
MIN_EXPECTED = 5.0  # smallest expected count per chi-square bin (Cochran's rule)
QQ_POINTS = 400


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Panel:
    """Data for one QQ (or observed-versus-expected) panel."""

    title: str
    expected: np.ndarray
    observed: np.ndarray
    xlabel: str = "theoretical quantile"
    ylabel: str = "engine quantile"
    log: bool = False


@dataclass(frozen=True)
class CheckResult:
    """Outcome of one check.

    ``p_value`` is the Bonferroni-adjusted smallest p-value of the check's statistics (NaN
    for the deterministic growth-law check); ``passed`` is ``p_value > ALPHA`` or, for the
    growth laws, relative error below 1%.
    """

    name: str
    passed: bool
    p_value: float
    summary: str
    panels: list[Panel] = field(default_factory=list)

    def __str__(self) -> str:
        verdict = "PASS" if self.passed else "FAIL"
        return f"{verdict} {self.name}: {self.summary}"


def _statistical(name: str, p_values: dict[str, float], summary: str, panels=()) -> CheckResult:
    """Combine the p-values of one check by Bonferroni: min(1, k * min p)."""
    p_adjusted = min(1.0, len(p_values) * min(p_values.values()))
    details = ", ".join(f"p[{key}]={value:.3g}" for key, value in p_values.items())
    return CheckResult(name, bool(p_adjusted > ALPHA), p_adjusted,
                       f"{summary}; {details}; Bonferroni p={p_adjusted:.3g}", list(panels))


# --------------------------------------------------------------------------- scenarios


def make_scenario(clones: dict, lesions: dict, *, duration: float, dt: float = 1.0,
                  mutations=(), seeding: dict | None = None, growth_law: str = "exponential",
                  lethal_burden: float = 1e12, seed: int = 1, stop_at_cells: float | None = None,
                  max_step_days: float = 42.0):
    """A scenario with the clinic switched off (no visits, hence no policy actions); the engine
    joins steps of ``dt`` up to ``max_step_days`` (its default) where the rates allow."""
    raw = {
        "id": "verification",
        "clones": clones,
        "mutations": [dict(m) for m in mutations],
        "lesions": lesions,
        "monitoring": {"enabled": False, "visit_every_days": dt},
        "simulation": {
            "duration_days": duration,
            "dt_days": dt,
            "record_every_days": duration,
            "seed": seed,
            "growth_law": growth_law,
            "lethal_burden": lethal_burden,
            "stop_at_cells": stop_at_cells,
            "max_step_days": max_step_days,
        },
    }
    if seeding is not None:
        raw["seeding"] = seeding
    return load_scenario(raw)


def single_clone(b: float, d: float, n0: int, duration: float, dt: float = 1.0, **kwargs):
    return make_scenario({"A": {"birth": b, "death": d}},
                         {"primary": {"site": "lung", "cells": {"A": n0}}},
                         duration=duration, dt=dt, **kwargs)


# --------------------------------------------------------------------------- statistics


def chi2_goodness_of_fit(sample, pmf, min_expected: float = MIN_EXPECTED):
    """Pearson chi-square of integer ``sample`` against ``pmf[k] = P(X = k)``, k = 0..K.

    The mass 1 - sum(pmf) is the bin X > K. Consecutive values are merged from the left
    until each bin expects at least ``min_expected`` counts; a short last bin is merged
    into its neighbour. Returns (statistic, degrees of freedom, p-value).
    """
    sample = np.asarray(sample, dtype=np.int64)
    pmf = np.asarray(pmf, dtype=float)
    n = sample.size
    big_k = pmf.size - 1
    probabilities = np.append(pmf, max(0.0, 1.0 - pmf.sum()))
    observed = np.bincount(np.minimum(sample, big_k + 1), minlength=big_k + 2).astype(float)
    groups_e, groups_o = [], []
    e_acc = o_acc = 0.0
    for e, o in zip(probabilities * n, observed):
        e_acc += e
        o_acc += o
        if e_acc >= min_expected:
            groups_e.append(e_acc)
            groups_o.append(o_acc)
            e_acc = o_acc = 0.0
    if e_acc > 0 or o_acc > 0:
        if groups_e:
            groups_e[-1] += e_acc
            groups_o[-1] += o_acc
        else:
            groups_e.append(e_acc)
            groups_o.append(o_acc)
    e = np.array(groups_e)
    o = np.array(groups_o)
    if e.size < 2:
        return 0.0, 0, 1.0
    statistic = float(np.sum((o - e) ** 2 / e))
    dof = e.size - 1
    return statistic, dof, float(stats.chi2.sf(statistic, dof))


def two_sample_chi2(x, y, max_bins: int = 25, min_expected: float = MIN_EXPECTED):
    """Chi-square test that two integer samples come from one distribution.

    Bins are cut at quantiles of the pooled sample (a choice symmetric in the two samples,
    so the test keeps its level) and merged until every expected cell count is at least
    ``min_expected``. Returns (statistic, degrees of freedom, p-value).
    """
    x = np.asarray(x)
    y = np.asarray(y)
    pooled = np.concatenate([x, y])
    cuts = np.unique(np.quantile(pooled, np.linspace(0, 1, max_bins + 1)[1:-1],
                                 method="inverted_cdf"))
    x_counts = np.bincount(np.searchsorted(cuts, x, side="left"), minlength=cuts.size + 1)
    y_counts = np.bincount(np.searchsorted(cuts, y, side="left"), minlength=cuts.size + 1)
    share = min(x.size, y.size) / pooled.size
    rows_x, rows_y = [], []
    acc_x = acc_y = 0
    for cx, cy in zip(x_counts, y_counts):
        acc_x += cx
        acc_y += cy
        if (acc_x + acc_y) * share >= min_expected:
            rows_x.append(acc_x)
            rows_y.append(acc_y)
            acc_x = acc_y = 0
    if acc_x or acc_y:
        if rows_x:
            rows_x[-1] += acc_x
            rows_y[-1] += acc_y
        else:
            rows_x.append(acc_x)
            rows_y.append(acc_y)
    if len(rows_x) < 2:
        return 0.0, 0, 1.0
    table = np.array([rows_x, rows_y])
    result = stats.chi2_contingency(table, correction=False)
    return float(result.statistic), int(result.dof), float(result.pvalue)


def z_p_value(z: float) -> float:
    """Two-sided normal p-value."""
    return float(2.0 * stats.norm.sf(abs(z)))


def _plotting_probabilities(n: int, points: int = QQ_POINTS) -> np.ndarray:
    m = min(n, points)
    return (np.arange(1, m + 1) - 0.5) / m


def qq_against_pmf(title: str, sample, pmf, log: bool = False) -> Panel:
    """QQ panel of an integer sample against a pmf on 0..K (quantiles beyond K dropped)."""
    probabilities = _plotting_probabilities(len(sample))
    cdf = np.cumsum(pmf)
    theoretical = np.searchsorted(cdf, probabilities, side="left").astype(float)
    theoretical[theoretical >= len(pmf)] = np.nan
    observed = np.quantile(sample, probabilities, method="inverted_cdf").astype(float)
    keep = ~np.isnan(theoretical)
    return Panel(title, theoretical[keep], observed[keep], log=log)


def qq_two_sample(title: str, x, y, xlabel: str, ylabel: str, log: bool = False) -> Panel:
    probabilities = _plotting_probabilities(min(len(x), len(y)))
    return Panel(title, np.quantile(x, probabilities, method="inverted_cdf").astype(float),
                 np.quantile(y, probabilities, method="inverted_cdf").astype(float),
                 xlabel, ylabel, log)


def qq_normal(title: str, standardised) -> Panel:
    probabilities = _plotting_probabilities(len(standardised))
    return Panel(title, stats.norm.ppf(probabilities),
                 np.quantile(standardised, probabilities), "standard normal quantile",
                 "standardised engine quantile")


# --------------------------------------------------------------------------- B1: Kendall


def kendall_tail_index(b: float, d: float, t: float, n: int) -> int:
    """A K beyond which n P(N(t) > K) < 1 (the geometric tail of N(t) from one cell)."""
    alpha, beta = th.birth_death_alpha_beta(b, d, t)
    if beta <= 0:
        return 1
    return max(1, int(math.ceil(math.log(1.0 / (n * (1.0 - alpha))) / math.log(beta))))


def check_kendall_pmf(n: int, seed: int, b: float, d: float, t: float,
                      dt: float = 1.0) -> CheckResult:
    """N(t) from one cell against Kendall's exact pmf (docs/model.md B1), chi-square over bins.

    Bins over k = 0, 1, 2, ... are merged until each expects >= 5 replicates, so the
    statistic is chi-square with (bins - 1) degrees of freedom under the null.
    """
    scenario = single_clone(b, d, 1, t, dt)
    cells = run_replicates(scenario, n, seed=seed).cells[:, 0]
    big_k = kendall_tail_index(b, d, t, n)
    pmf = th.birth_death_pmf(np.arange(big_k + 1), b, d, t)
    statistic, dof, p = chi2_goodness_of_fit(cells, pmf)
    alpha, _ = th.birth_death_alpha_beta(b, d, t)
    summary = (f"b={b} d={d} t={t} dt={dt} n={n}: P(0) {np.mean(cells == 0):.4f} vs "
               f"{alpha:.4f}, mean {cells.mean():.3f} vs {th.birth_death_mean(b, d, t):.3f}, "
               f"chi2={statistic:.1f} on {dof} df")
    panel = qq_against_pmf(f"N({t:g}) from one cell, b={b}, d={d}", cells, pmf)
    return _statistical(f"kendall_pmf[b={b},d={d},t={t:g}]", {"chi2": p}, summary, [panel])


# --------------------------------------------------------------------------- B1: moments


def single_cell_moments(b: float, d: float, t: float) -> tuple[float, float, float]:
    """Mean, variance and fourth cumulant of N(t) from one cell (exact, from B1).

    N = I G with I ~ Bernoulli(1 - alpha) and G ~ Geometric(1 - beta) on 1, 2, ...;
    E[G^j] for j = 1..4 are (1, 1 + beta, 1 + 4 beta + beta^2, 1 + 11 beta + 11 beta^2 +
    beta^3) / (1 - beta)^j (Eulerian numbers).
    """
    alpha, beta = (float(x) for x in th.birth_death_alpha_beta(b, d, t))
    q = 1.0 - beta
    survival = 1.0 - alpha
    raw = [survival * c / q ** j for j, c in enumerate(
        (1.0, 1.0 + beta, 1.0 + 4 * beta + beta ** 2, 1.0 + 11 * beta + 11 * beta ** 2 + beta ** 3),
        start=1)]
    m1, m2, m3, m4 = raw
    mu2 = m2 - m1 ** 2
    mu4 = m4 - 4 * m1 * m3 + 6 * m1 ** 2 * m2 - 3 * m1 ** 4
    return m1, mu2, mu4 - 3 * mu2 ** 2


def check_moments(n: int, seed: int, b: float, d: float, n0: int, t: float,
                  dt: float = 1.0) -> CheckResult:
    """Sample mean and variance of N(t) from n0 cells against B1, as z-scores.

    Under the null, the mean has variance sigma^2 / n and the sample variance s^2 has
    variance mu4 / n - sigma^4 (n - 3) / (n (n - 1)) (exact for iid samples), with
    sigma^2 = n0 Var_1 and mu4 = n0 kappa4_1 + 3 sigma^4 from the single-cell cumulants.
    N(t) is a sum of n0 >= 1e3 iid lineages, so both statistics are normal to high
    accuracy; each z is two-sided and the pair is Bonferroni-combined.
    """
    mean_1, var_1, kappa4_1 = single_cell_moments(b, d, t)
    mean = n0 * mean_1
    variance = n0 * var_1
    # The cumulants must agree with theory.py's closed forms (a check of this code).
    assert math.isclose(mean, float(th.birth_death_mean(b, d, t, n0)), rel_tol=1e-9)
    assert math.isclose(variance, float(th.birth_death_variance(b, d, t, n0)), rel_tol=1e-7)
    mu4 = n0 * kappa4_1 + 3.0 * variance ** 2
    scenario = single_clone(b, d, n0, t, dt)
    cells = run_replicates(scenario, n, seed=seed).cells[:, 0]
    # Subtract in integers first: at n0 = 1e9 the spread is 1e-4 of the values.
    centred = (cells - int(round(mean))).astype(float) - (mean - round(mean))
    sample_mean = centred.mean()  # minus the theoretical mean
    sample_var = centred.var(ddof=1)
    z_mean = sample_mean / math.sqrt(variance / n)
    var_of_var = mu4 / n - variance ** 2 * (n - 3) / (n * (n - 1))
    z_var = (sample_var - variance) / math.sqrt(var_of_var)
    summary = (f"b={b} d={d} n0={n0:.0e} t={t:g} n={n}: mean rel. dev. "
               f"{sample_mean / mean:+.2e} (z={z_mean:+.2f}), variance ratio "
               f"{sample_var / variance:.4f} (z={z_var:+.2f})")
    panel = qq_normal(f"(N - mean)/sd, n0={n0:.0e}, b={b}, d={d}", centred / math.sqrt(variance))
    return _statistical(f"moments[b={b},d={d},n0={n0:.0e}]",
                        {"mean": z_p_value(z_mean), "variance": z_p_value(z_var)},
                        summary, [panel])


# --------------------------------------------------------------------------- B1: extinction


def check_extinction(n: int, seed: int, n0: int, b: float = 0.14, d: float = 0.07,
                     horizon: float = 400.0, dt: float = 5.0,
                     stop_at: float = 1000.0) -> CheckResult:
    """Extinction from n0 cells by a long horizon, exact binomial test against alpha^n0.

    alpha(T)^n0 is exact at the horizon T; at T = 400 days with r = 0.07/day it equals the
    ultimate extinction probability (d/b)^n0 to 1e-9, asserted below. To save time a run
    stops once it holds ``stop_at`` = 1000 cells (``lethal_burden``): such a population
    dies out later with probability (d/b)^1000 < 1e-300, so stopping it changes nothing.
    Without mutation the BNB update is exact for any step, so dt = 5 days is used (the
    multi-step dt = 1 case is covered by the Kendall pmf checks).
    """
    expected = float(th.extinction_probability(b, d, horizon, n0))
    ultimate = float(th.ultimate_extinction_probability(b, d, n0))
    assert abs(expected - ultimate) < 1e-9
    scenario = single_clone(b, d, n0, horizon, dt, lethal_burden=stop_at)
    cells = run_replicates(scenario, n, seed=seed).cells[:, 0]
    extinct = int(np.sum(cells == 0))
    test = stats.binomtest(extinct, n, expected)
    low, high = test.proportion_ci(1 - ALPHA, method="exact")
    summary = (f"n0={n0} b={b} d={d} T={horizon:g} dt={dt:g} n={n}: extinct {extinct / n:.4f} "
               f"(99.9% CI {low:.4f}-{high:.4f}) vs {expected:.4f}")
    return _statistical(f"extinction[n0={n0}]", {"binomial": test.pvalue}, summary)


# --------------------------------------------------------------------------- B3: Luria-Delbruck


def check_luria_delbruck(n: int, seed: int, b: float = 0.14, n0: int = 1000, u: float = 1e-8,
                         horizon: float = 82.0, dt: float = 1.0) -> CheckResult:
    """Mutant counts under pure birth (d = 0) against the Luria-Delbruck pmf (B3).

    Wild-type cells divide at rate b; a division gives a mutant daughter with probability u
    and leaves the parent unchanged, so the wild type grows at b (1 - u) (the engine's
    mutation-free marginal) and mutants arise at rate b u per wild-type cell. Mutants are
    given birth rate b (1 - u), equal to the wild type's growth rate, as Lea-Coulson assume.
    m = b u E[integral of the wild type] = u n0 (exp(b (1 - u) T) - 1) / (1 - u) exactly.

    The LD pmf is the limit of a deterministic wild type grown over infinitely many
    doublings; the corrections here are far below what n replicates resolve: clone sizes are
    truncated near exp(bT) ~ 1e5 (relative change of P(X = k) about k exp(-bT) < 3e-3 over
    the bins), and the wild type's random size (relative sd 1/sqrt(n0) = 3%) mixes m, which
    moves P(X = 0) by a relative m^2 var / 2 ~ 5e-4.
    """
    growth = b * (1.0 - u)
    m = u * n0 * math.expm1(growth * horizon) / (1.0 - u)
    scenario = make_scenario(
        {"wild": {"birth": b, "death": 0.0}, "mutant": {"birth": growth, "death": 0.0}},
        {"primary": {"site": "lung", "cells": {"wild": n0}}},
        mutations=[{"from": "wild", "to": "mutant", "probability": u}],
        duration=horizon, dt=dt)
    mutants = run_replicates(scenario, n, seed=seed).cells[:, 1]
    pmf = th.luria_delbruck_pmf(m, 200)
    statistic, dof, p = chi2_goodness_of_fit(mutants, pmf)
    summary = (f"m={m:.4f} n={n}: P(0) {np.mean(mutants == 0):.4f} vs {pmf[0]:.4f}, "
               f"P(1) {np.mean(mutants == 1):.4f} vs {pmf[1]:.4f}, median {np.median(mutants):g}, "
               f"chi2={statistic:.1f} on {dof} df")
    panel = qq_against_pmf(f"Luria-Delbruck mutant count, m={m:.3f}", mutants, pmf, log=True)
    return _statistical("luria_delbruck", {"chi2": p}, summary, [panel])


# --------------------------------------------------------------------------- B3: pre-existing


def check_preexisting_resistance(n: int, seed: int, b: float = 0.14, d: float = 0.07,
                                 size: float = 1e5, dt: float = 1.0) -> CheckResult:
    """P(no resistant cell when a sensitive clone reaches M) ~ 0.5 against B3.

    From one sensitive cell; the run stops at the end of the first step with burden >= M
    (``lethal_burden = M``). Replicates that died out are dropped: the formula is about a
    clone that reaches M. Because a step overshoots M, each replicate i is compared with
    the formula at its own sensitive count N_i: p_i = exp(-N_i u (b/d) ln(b/(b - d))). The
    number without resistant cells is then a sum of independent Bernoulli(p_i), tested
    with z = (X - sum p_i) / sqrt(sum p_i (1 - p_i)), normal for hundreds of replicates.
    u is chosen so that p = 0.5 at M. The formula is the large-M limit; corrections are of
    relative order 1/M from the early stochastic phase. The horizon is the 1 - 1e-6 quantile
    of the hitting time of M given survival, so surviving replicates that have not reached M
    are rare (their count is reported, and they are dropped).
    """
    factor = (b / d) * math.log(b / (b - d))
    u = math.log(2.0) / (size * factor)
    horizon = math.ceil(float(th.hitting_time_quantile(1 - 1e-6, b, d, size)) / dt) * dt
    scenario = make_scenario(
        {"sensitive": {"birth": b, "death": d}, "resistant": {"birth": b, "death": d}},
        {"primary": {"site": "lung", "cells": {"sensitive": 1}}},
        mutations=[{"from": "sensitive", "to": "resistant", "probability": u}],
        duration=horizon, dt=dt, lethal_burden=size)
    cells = run_replicates(scenario, n, seed=seed).cells
    reached = cells.sum(axis=1) >= size
    stalled = int(np.sum((cells.sum(axis=1) > 0) & ~reached))
    sensitive = cells[reached, 0]
    p_i = th.prob_no_preexisting_resistance(sensitive, u, b, d)
    none = int(np.sum(cells[reached, 1] == 0))
    expected = float(p_i.sum())
    z = (none - expected) / math.sqrt(float(np.sum(p_i * (1 - p_i))))
    k = int(reached.sum())
    summary = (f"M={size:.0e} u={u:.3e} b={b} d={d}: {k} of {n} reached M ({stalled} stalled); "
               f"no resistant cell in {none / k:.4f} vs {expected / k:.4f} (z={z:+.2f})")
    return _statistical("preexisting_resistance", {"z": z_p_value(z)}, summary)


# --------------------------------------------------------------------------- B4: cure


def finite_horizon_cure(M: int, b: float, d: float, u: float, b_r: float, d_r: float,
                        r0: int, horizon: float) -> float:
    """P(no cell left at the horizon) from M sensitive and r0 resistant cells.

    f(t) = P(the lineage of one sensitive cell is extinct at t) solves the backward equation
    f' = b (1 - u) f^2 + b u f g + d - (b + d) f, f(0) = 0, with g = alpha_R(t) (Kendall)
    the extinction probability of a resistant lineage; the answer is f(T)^M g(T)^r0.
    """
    def rhs(t, y):
        g = float(th.extinction_probability(b_r, d_r, t))
        f = y[0]
        return [b * (1 - u) * f * f + b * u * f * g + d - (b + d) * f]

    solution = integrate.solve_ivp(rhs, (0.0, horizon), [0.0], method="LSODA",
                                   rtol=1e-12, atol=1e-14)
    f = float(solution.y[0, -1])
    g = float(th.extinction_probability(b_r, d_r, horizon))
    return math.exp(M * math.log(f)) * g ** r0


def check_cure(n: int, seed: int, r0: int = 0, M: int = 1000, b: float = 0.14,
               d: float = 0.28, b_r: float = 0.28, d_r: float = 0.14,
               horizon: float = 200.0, dt: float = 1.0, stop_at: float = 1e6) -> CheckResult:
    """Cure (no cell left) under a declining sensitive population, against B4.

    M sensitive cells decline (b < d) and mutate to resistance with probability u per
    division; r0 resistant cells may be present at the start. Theory:
    E[(d_R/b_R)^R0] q^M (``theory.cure_probability``), u chosen so q^M ~ 0.5. The horizon
    effect is computed exactly with the backward equation (``finite_horizon_cure``) and
    asserted below 1e-6, so the exact binomial test is against the infinite-horizon value.
    Runs stop once they hold ``stop_at`` = 1e6 cells (``lethal_burden``), which only
    resistant growth reaches (M < 1e6); such a population is never cured (probability
    (d_R/b_R)^1e6), so stopping it changes nothing.
    """
    s_r = 1.0 - d_r / b_r
    u = math.log(2.0) * (d - b) / (M * s_r * b)
    pmf = np.zeros(r0 + 1)
    pmf[r0] = 1.0
    expected = float(th.cure_probability(M, b, d, u, b_r, d_r, R0_pmf=pmf))
    at_horizon = finite_horizon_cure(M, b, d, u, b_r, d_r, r0, horizon)
    assert abs(at_horizon - expected) < 1e-6, (at_horizon, expected)
    cells = {"sensitive": M}
    if r0:
        cells["resistant"] = r0
    scenario = make_scenario(
        {"sensitive": {"birth": b, "death": d}, "resistant": {"birth": b_r, "death": d_r}},
        {"primary": {"site": "lung", "cells": cells}},
        mutations=[{"from": "sensitive", "to": "resistant", "probability": u}],
        duration=horizon, dt=dt, lethal_burden=stop_at)
    result = run_replicates(scenario, n, seed=seed).cells
    cured = int(np.sum(result.sum(axis=1) == 0))
    test = stats.binomtest(cured, n, expected)
    low, high = test.proportion_ci(1 - ALPHA, method="exact")
    summary = (f"M={M} R0={r0} u={u:.3e} b={b} d={d} bR={b_r} dR={d_r} n={n}: cured "
               f"{cured / n:.4f} (99.9% CI {low:.4f}-{high:.4f}) vs {expected:.4f}")
    return _statistical(f"cure[R0={r0}]", {"binomial": test.pvalue}, summary)


# --------------------------------------------------------------------------- B5: growth laws


def check_growth_law(law: str, start: float, seed: int = 11, b: float = 0.14, d: float = 0.04,
                     capacity: float = 1e11, times=None, dt: float = 1.0,
                     tolerance: float = 0.01) -> CheckResult:
    """A large population follows the closed-form logistic or Gompertz curve (B5).

    Engine density: logistic net rate r (1 - N/K), Gompertz r ln(K/N)/ln(K), i.e. the
    Gompertz curve with a = r / ln K. One replicate is run to each time (same seed and
    replicate index, so the runs share one random path). The tolerance is the required 1%
    relative error; the stochastic part of the error is far smaller: the relative sd of N
    is about sqrt((b + d) / (r N0)) < 1e-4 for N0 >= 1e9.
    """
    r = b - d
    if times is None:
        times = np.arange(10, 151, 10) if law == "logistic" else np.arange(50, 1001, 50)
    if law == "logistic":
        curve = th.logistic(times, start, capacity, r)
    else:
        curve = th.gompertz(times, start, capacity, r / math.log(capacity))
    observed = []
    for t in times:
        scenario = make_scenario({"A": {"birth": b, "death": d}},
                                 {"primary": {"site": "lung", "cells": {"A": int(start)},
                                              "carrying_capacity": capacity}},
                                 duration=float(t), dt=dt, growth_law=law)
        observed.append(float(run_replicates(scenario, 1, seed=seed).cells[0, 0]))
    observed = np.array(observed)
    relative = np.abs(observed / curve - 1.0)
    worst = int(np.argmax(relative))
    passed = bool(relative.max() < tolerance)
    summary = (f"N0={start:.0e} K={capacity:.0e} r={r:g} dt={dt}: max rel. error "
               f"{relative.max():.2e} at t={times[worst]:g} (tolerance {tolerance:g})")
    panel = Panel(f"{law} from {start:.0e} (engine vs closed form)", curve, observed,
                  "closed form, cells", "engine, cells", log=True)
    return CheckResult(f"growth_law[{law},N0={start:.0e}]", passed, float("nan"), summary,
                       [panel])


# --------------------------------------------------------------------------- seeding


def check_seeding(n: int, seed: int, case: str = "events") -> CheckResult:
    """Number of seeded lesions against its expected value (Poisson count and mean z).

    Every cell seeds at rate s and the emitting cell stays, so with all lesions growing
    alike the total is a birth-death process with birth b + s: E[N(t)] = n0 e^{(r+s)t} and
    the expected number of seeding events by T is lambda = s n0 (e^{(r+s)T} - 1)/(r + s).
    Given the path the count is Poisson; the path's randomness adds s^2 Var(int N dt) <=
    s^2 (int sd(N_t) dt)^2 to the variance (Cauchy-Schwarz), asserted below 1% of lambda,
    and added to the variance of the z-test. Tests: chi-square of the counts against
    Poisson(lambda) and z of the mean, Bonferroni-combined.

    case 'events': b = 0.14, d = 0.13, the count is ``seeding_events`` (founders sent out);
    case 'lesions': d = 0 so every founder survives and ``lesions - 1`` is the number of
    seeded lesions the engine lists.
    """
    if case == "events":
        b, d, n0, horizon, target = 0.14, 0.13, 1_000_000, 100.0, 8.0
    else:
        b, d, n0, horizon, target = 0.05, 0.0, 100_000, 50.0, 8.0
    r = b - d
    s = target / (n0 * math.expm1(r * horizon) / r)  # approximately lambda = target
    growth = r + s
    lam = s * n0 * math.expm1(growth * horizon) / growth
    sd_integral = integrate.quad(
        lambda t: math.sqrt(float(th.birth_death_variance(b + s, d, t, n0))), 0.0, horizon)[0]
    extra = s * s * sd_integral ** 2
    assert extra < 0.01 * lam, (extra, lam)
    scenario = make_scenario(
        {"A": {"birth": b, "death": d}},
        {"primary": {"site": "lung", "cells": {"A": n0}}},
        seeding={"rate": s, "site_weights": {"brain": 1.0, "bone": 1.0}},
        duration=horizon)
    result = run_replicates(scenario, n, seed=seed)
    counts = result.seeding_events if case == "events" else result.lesions - 1
    if case == "lesions":
        # With d = 0 no founder dies, so both counts must agree exactly.
        assert np.array_equal(result.lesions - 1, result.seeding_events)
    k_max = int(stats.poisson.ppf(1 - 1e-9, lam))
    pmf = stats.poisson.pmf(np.arange(k_max + 1), lam)
    statistic, dof, p_chi2 = chi2_goodness_of_fit(counts, pmf)
    z = (counts.mean() - lam) / math.sqrt((lam + extra) / n)
    summary = (f"{case}: s={s:.3e} n0={n0:.0e} T={horizon:g} n={n}: mean {counts.mean():.3f} vs "
               f"lambda {lam:.3f} (z={z:+.2f}), variance {counts.var(ddof=1):.3f}, "
               f"chi2={statistic:.1f} on {dof} df")
    panel = qq_against_pmf(f"seeding {case}: count vs Poisson({lam:.2f})", counts, pmf)
    return _statistical(f"seeding[{case}]", {"poisson_chi2": p_chi2, "mean": z_p_value(z)},
                        summary, [panel])


def check_seeding_sites(seed: int, expected_lesions: float = 800.0) -> CheckResult:
    """Sites of seeded lesions against the normalised site weights (organotropism).

    Each founder's site is an independent draw with probabilities w_s / sum w, whatever its
    source or time, so one patient with ~800 seeded lesions (pure birth, d = 0, so every
    founder survives and is listed) gives a multinomial sample. Tolerance: chi-square with
    (sites - 1) df, pass if p > 0.001. Uses ``simulate`` (lesion table) for one replicate.
    Kept below ~1000 lesions: beyond that the engine misreports a full event log as a
    lesion overflow (see ``test_many_seeded_lesions``).
    """
    from simulator import simulate

    weights = {"brain": 0.3, "bone": 0.3, "liver": 0.2, "adrenal": 0.2}
    b, n0, horizon = 0.05, 100_000, 50.0
    s = expected_lesions / (n0 * math.expm1(b * horizon) / b)
    scenario = make_scenario(
        {"A": {"birth": b, "death": 0.0}},
        {"primary": {"site": "lung", "cells": {"A": n0}}},
        seeding={"rate": s, "site_weights": weights}, duration=horizon)
    lesions = simulate(scenario, seed=seed).lesions
    seeded = lesions["site"].iloc[len(scenario.lesions):]
    observed = np.array([np.sum(seeded == site) for site in weights])
    expected = np.array(list(weights.values())) / sum(weights.values()) * observed.sum()
    statistic, p = stats.chisquare(observed, expected)
    summary = (f"{observed.sum()} seeded lesions: " + ", ".join(
        f"{site} {o}/{e:.0f}" for site, o, e in zip(weights, observed, expected))
        + f"; chi2={statistic:.2f} on {len(weights) - 1} df")
    return _statistical("seeding_sites", {"chi2": float(p)}, summary)


# --------------------------------------------------------------------------- B2: BNB with mutation


def check_bnb_joint(n: int, seed: int, dt: float = 1.0, b: float = 0.14, d: float = 0.13,
                    u: float = 0.1, horizon: float = 30.0) -> CheckResult:
    """Joint law of (any mutation?, parent lineage size) over T against B2 (pM, pE, pB).

    One cell; a division gives a mutant daughter with probability u. Mutants are frozen
    (birth = death = 0), so the mutant count at T is exactly the number of mutation events.
    In B2's form the parent divides at b (1 - u) and emits mutants at rate mu = b u, so
    ``bnb_parameters(b (1 - u), d, b u, T)``. pE is the *joint* probability of no mutation
    and extinction (not the parent's extinction probability, which is alpha(b (1 - u), d)):
    categories are 'some mutation' (1 - pM), 'none and parent extinct' (pE) and 'none and
    parent = k' ((pM - pE)(1 - pB) pB^(k-1)); chi-square over merged bins.
    """
    p_m, p_e, p_b = (float(x) for x in th.bnb_parameters(b * (1 - u), d, b * u, horizon))
    scenario = make_scenario(
        {"parent": {"birth": b, "death": d}, "mutant": {"birth": 0.0, "death": 0.0}},
        {"primary": {"site": "lung", "cells": {"parent": 1}}},
        mutations=[{"from": "parent", "to": "mutant", "probability": u}],
        duration=horizon, dt=dt)
    cells = run_replicates(scenario, n, seed=seed).cells
    mutated = cells[:, 1] > 0
    # Code 'some mutation' as category 0 and 'no mutation, parent = k' as k + 1.
    codes = np.where(mutated, 0, cells[:, 0] + 1)
    big_k = max(1, int(math.ceil(math.log(1.0 / (n * (p_m - p_e))) / math.log(p_b))))
    parent_pmf = np.empty(big_k + 1)
    parent_pmf[0] = p_e
    parent_pmf[1:] = (p_m - p_e) * (1 - p_b) * p_b ** np.arange(big_k)
    pmf = np.concatenate([[1.0 - p_m], parent_pmf])
    statistic, dof, p = chi2_goodness_of_fit(codes, pmf)
    summary = (f"b={b} d={d} u={u} T={horizon:g} dt={dt} n={n}: P(no mutation) "
               f"{1 - mutated.mean():.4f} vs pM {p_m:.4f}; P(none, extinct) "
               f"{np.mean(codes == 1):.4f} vs pE {p_e:.4f}; chi2={statistic:.1f} on {dof} df")
    panel = qq_against_pmf(f"B2 joint code (0: mutated, k+1: parent k), dt={dt:g}", codes, pmf)
    return _statistical(f"bnb_joint[dt={dt:g}]", {"chi2": p}, summary, [panel])


# --------------------------------------------------------------------------- step independence


def step_scenario(dt: float, duration: float = 30.0):
    """Three clones, two lesions, mutation and seeding, all rates constant (exponential)."""
    return make_scenario(
        {"S": {"birth": 0.30, "death": 0.10},
         "R": {"birth": 0.25, "death": 0.15},
         "Q": {"birth": 0.20, "death": 0.05}},
        {"primary": {"site": "lung", "cells": {"S": 50}},
         "node": {"site": "lymph", "cells": {"S": 10, "R": 3}}},
        mutations=[{"from": "S", "to": "R", "probability": 0.01},
                   {"from": "S", "to": "Q", "probability": 0.005},
                   {"from": "R", "to": "Q", "probability": 0.02}],
        seeding={"rate": 2e-4, "site_weights": {"brain": 1.0, "liver": 2.0}},
        duration=duration, dt=dt)


def _compare_samples(name, first, second, labels, statistics, summary_prefix):
    """Two-sample chi-square for each named statistic, Bonferroni-combined."""
    p_values, panels, parts = {}, [], []
    for key, (x, y) in statistics.items():
        statistic, dof, p = two_sample_chi2(x, y)
        p_values[key] = p
        parts.append(f"{key} mean {np.mean(x):.3g}/{np.mean(y):.3g}")
        panels.append(qq_two_sample(key, x, y, labels[0], labels[1],
                                    log=bool(np.max(x, initial=0) > 1000)))
    return _statistical(name, p_values, f"{summary_prefix}: " + "; ".join(parts), panels)


def check_step_independence(n: int, seed: int, coarse: float = 1.0,
                            fine: float = 0.25) -> CheckResult:
    """dt = 1 and dt = 0.25 give the same end-state distribution when rates are constant.

    Statistics: total cells of each clone and seeding events at T = 30 days; each compared
    by a two-sample chi-square (bins at pooled quantiles), Bonferroni over the four.
    The two runs use different seeds, so the samples are independent.
    """
    a = run_replicates(step_scenario(coarse), n, seed=seed)
    c = run_replicates(step_scenario(fine), n, seed=seed + 1)
    clones = ["S", "R", "Q"]
    statistics = {clone: (a.cells[:, k], c.cells[:, k]) for k, clone in enumerate(clones)}
    statistics["seeding_events"] = (a.seeding_events, c.seeding_events)
    return _compare_samples("step_independence", a, c, (f"dt={coarse:g}", f"dt={fine:g}"),
                            statistics, f"dt={coarse:g} vs dt={fine:g}, n={n} each")


# --------------------------------------------------------------------------- engine vs reference


def reference_scenario(case: str, dt: float):
    """Small multi-clone, multi-lesion scenarios cheap enough for the Python reference."""
    clones = {"A": {"birth": 0.30, "death": 0.10},
              "B": {"birth": 0.20, "death": 0.15},
              "C": {"birth": 0.25, "death": 0.05}}
    mutations = [{"from": "A", "to": "B", "probability": 0.05},
                 {"from": "A", "to": "C", "probability": 0.02},
                 {"from": "B", "to": "C", "probability": 0.03}]
    if case == "exponential":
        return make_scenario(
            clones,
            {"primary": {"site": "lung", "cells": {"A": 10}},
             "node": {"site": "lymph", "cells": {"A": 3, "B": 2}}},
            mutations=mutations,
            seeding={"rate": 3e-3, "site_weights": {"brain": 2.0, "bone": 1.0}},
            duration=15.0, dt=dt)
    # Density dependence: a small logistic primary near its capacity, a Gompertz node.
    return make_scenario(
        clones,
        {"primary": {"site": "lung", "cells": {"A": 20}, "carrying_capacity": 150,
                     "growth_law": "logistic"},
         "node": {"site": "lymph", "cells": {"A": 5, "B": 5}, "carrying_capacity": 100,
                  "growth_law": "gompertz"}},
        mutations=mutations,
        seeding={"rate": 1e-3, "site_weights": {"brain": 1.0}, "carrying_capacity": 100},
        growth_law="logistic", duration=20.0, dt=dt)


def check_engine_vs_reference(n: int, seed: int, case: str = "exponential",
                              dt: float = 1.0, joined: bool = False) -> CheckResult:
    """The jitted engine against the event-by-event reference (two-sample chi-squares).

    Statistics at T: total cells of clones A, B, C, seeding events and lesions as the engine
    lists them (the reference applies the engine's rule that a founder must survive the rest
    of its step); Bonferroni over the five. 'exponential' has constant rates, where the
    engine's update is exact at any step; 'density' has logistic and Gompertz lesions whose rates change with
    every event, which the engine holds at their predicted average over the step.

    The lesions listed depend on the steps taken (a lesion founded and extinct within one step
    is never listed), so they are compared with fixed steps of ``dt``, the reference's grid.
    With ``joined`` the engine joins steps as it would by default, and the cells and seeding
    events alone are compared (Bonferroni over four).
    """
    scenario = reference_scenario(case, dt)
    fixed = load_scenario(scenario_to_dict(scenario)
                          | {"simulation": {**scenario_to_dict(scenario)["simulation"], "max_step_days": dt}})
    engine = run_replicates(scenario if joined else fixed, n, seed=seed)
    reference = run_reference_replicates(fixed, n, seed=seed + 1)
    statistics = {clone: (reference.cells[:, k], engine.cells[:, k])
                  for k, clone in enumerate(["A", "B", "C"])}
    statistics["seeding_events"] = (reference.seeding_events, engine.seeding_events)
    if not joined:
        statistics["lesions"] = (reference.lesions, engine.lesions)
    return _compare_samples(f"engine_vs_reference[{case},dt={dt:g}{',joined' if joined else ''}]", reference, engine,
                            ("reference", "engine"), statistics,
                            f"{case} dt={dt:g}, n={n} each, reference/engine")


def check_reference_kendall(n: int, seed: int, b: float = 1.0, d: float = 0.5,
                            t: float = 2.0) -> CheckResult:
    """The reference itself against Kendall's pmf (B1), so that it is a trustworthy yardstick."""
    cells = run_reference_replicates(single_clone(b, d, 1, t), n, seed=seed).cells[:, 0]
    big_k = kendall_tail_index(b, d, t, n)
    pmf = th.birth_death_pmf(np.arange(big_k + 1), b, d, t)
    statistic, dof, p = chi2_goodness_of_fit(cells, pmf)
    summary = (f"reference b={b} d={d} t={t:g} n={n}: mean {cells.mean():.3f} vs "
               f"{th.birth_death_mean(b, d, t):.3f}, chi2={statistic:.1f} on {dof} df")
    panel = Panel(f"reference N({t:g}) from one cell",
                  *_pmf_qq_arrays(cells, pmf), ylabel="reference quantile")
    return _statistical("reference_kendall", {"chi2": p}, summary, [panel])


def _pmf_qq_arrays(sample, pmf):
    panel = qq_against_pmf("", sample, pmf)
    return panel.expected, panel.observed


def run_many_seeded_lesions(expected_lesions: float, seed: int) -> dict:
    """One pure-birth patient expected to seed ``expected_lesions`` lesions (a capacity probe).

    Returns the lesions the engine lists and lambda = s n0 (e^{(b+s)T} - 1)/(b + s).
    """
    b, n0, horizon = 0.05, 100_000, 50.0
    s = expected_lesions / (n0 * math.expm1(b * horizon) / b)
    scenario = make_scenario(
        {"A": {"birth": b, "death": 0.0}},
        {"primary": {"site": "lung", "cells": {"A": n0}}},
        seeding={"rate": s, "site_weights": {"brain": 1.0}}, duration=horizon)
    result = run_replicates(scenario, 1, seed=seed)
    lam = s * n0 * math.expm1((b + s) * horizon) / (b + s)
    return {"lesions": int(result.lesions[0]), "lambda": lam}
