"""Exact and asymptotic results used to verify the simulation engine.

These closed forms (docs/model.md, section B) are what the stochastic engine is held to:
the linear birth-death process (Kendall 1948), the binomial-negative-binomial interval
update with mutation (Mather, Hasty & Tsimring 2012), resistance arising before therapy
(Iwasa, Nowak & Michor 2006; Bozic et al. 2013), the Luria-Delbruck distribution
(Luria & Delbruck 1943, evaluated by the Ma-Sandri-Sarkar recursion), cure under a
declining sensitive population (Bozic et al. 2013), and deterministic growth laws.
Rates are per day, times in days and population sizes in cells unless stated otherwise.
Array arguments broadcast against each other; 0-d results are returned as numpy scalars.
"""

import numpy as np
from scipy.special import betainc, gammaln, logsumexp, xlogy

__all__ = [
    "birth_death_alpha_beta",
    "birth_death_pmf",
    "birth_death_cdf",
    "birth_death_mean",
    "birth_death_variance",
    "extinction_probability",
    "ultimate_extinction_probability",
    "hitting_time_mean",
    "hitting_time_quantile",
    "bnb_parameters",
    "prob_no_preexisting_resistance",
    "expected_preexisting_resistant",
    "luria_delbruck_pmf",
    "cure_probability_no_resistance",
    "cure_probability_approx",
    "cure_probability",
    "deterministic_nadir_time",
    "deterministic_two_population",
    "gompertz",
    "logistic",
    "volume_doubling_time",
    "cells_from_diameter",
    "diameter_from_cells",
    "ctdna_genome_equivalents",
]

# Below this |r| t the first-order series of expm1(r t) / r is exact to double precision.
_CRITICAL_RT = 1e-8


# --------------------------------------------------------------------------- validation

def _at_least(name, value, low, strict=False):
    arr = np.asarray(value, dtype=float)
    # Written as "not ok" so that NaN is rejected too.
    ok = arr > low if strict else arr >= low
    if np.any(~ok):
        bracket = "(" if strict else "["
        raise ValueError(f"{name} must be in {bracket}{low:g}, inf), got {value!r}")
    return arr


def _nonnegative(name, value):
    return _at_least(name, value, 0.0)


def _positive(name, value):
    return _at_least(name, value, 0.0, strict=True)


def _probability(name, value, open_interval=False):
    arr = np.asarray(value, dtype=float)
    ok = (arr > 0) & (arr < 1) if open_interval else (arr >= 0) & (arr <= 1)
    if np.any(~ok):
        interval = "(0, 1)" if open_interval else "[0, 1]"
        raise ValueError(f"{name} must be in {interval}, got {value!r}")
    return arr


def _counts(name, value):
    arr = np.asarray(value)
    if arr.dtype.kind not in "iu":
        as_float = np.asarray(arr, dtype=float)
        if np.any(as_float != np.round(as_float)):
            raise ValueError(f"{name} must be integers in [0, inf), got {value!r}")
    arr = np.asarray(arr, dtype=np.int64)
    if np.any(arr < 0):
        raise ValueError(f"{name} must be integers in [0, inf), got {value!r}")
    return arr


def _scalar_count(name, value):
    arr = _counts(name, value)
    if arr.ndim != 0:
        raise ValueError(f"{name} must be a single integer in [0, inf), got {value!r}")
    return int(arr)


def _out(x):
    return np.asarray(x)[()]


# --------------------------------------------------------------------------- B1 Kendall

def _growth_integral(r, t):
    """(exp(r t) - 1) / r, equal to t when r == 0, without cancellation near r == 0."""
    rt = r * t
    near_critical = np.abs(rt) < _CRITICAL_RT
    safe_r = np.where(near_critical, 1.0, r)
    with np.errstate(over="ignore"):
        return np.where(near_critical, t * (1.0 + 0.5 * rt), np.expm1(rt) / safe_r)


def _kendall(b, d, t):
    """alpha, beta, 1 - alpha and 1 - beta, each computed without cancellation."""
    b = _nonnegative("b", b)
    d = _nonnegative("d", d)
    t = _nonnegative("t", t)
    r = b - d
    g = _growth_integral(r, t)
    with np.errstate(over="ignore", invalid="ignore"):
        denom = 1.0 + b * g
        alpha = d * g / denom
        beta = b * g / denom
        survival = np.exp(r * t) / denom  # 1 - alpha = (1 + r g) / (1 + b g), and 1 + r g = e^{rt}
        one_minus_beta = 1.0 / denom
    # exp(r t) overflowed: the t -> infinity limits of a supercritical process.
    overflow = np.isinf(g)
    if np.any(overflow):
        alpha = np.where(overflow, d / np.where(overflow, b, 1.0), alpha)
        beta = np.where(overflow, 1.0, beta)
        survival = np.where(overflow, r / np.where(overflow, b, 1.0), survival)
        one_minus_beta = np.where(overflow, 0.0, one_minus_beta)
    return alpha, beta, survival, one_minus_beta


def birth_death_alpha_beta(b, d, t):
    """Kendall's (1948) alpha and beta of the linear birth-death process.

    From one cell, P(N(t) = 0) = alpha and P(N(t) = k) = (1 - alpha)(1 - beta) beta^(k-1).

    Parameters
    ----------
    b, d : float or array_like
        Birth and death rates per cell per day, >= 0.
    t : float or array_like
        Elapsed time in days, >= 0.

    Returns
    -------
    alpha, beta : ndarray or float
        alpha = d (E - 1) / (b E - d) and beta = b (E - 1) / (b E - d) with E = exp((b - d) t),
        evaluated as d g / (1 + b g) and b g / (1 + b g) with g = expm1(r t) / r, which is
        accurate for |b - d| t arbitrarily small and gives the critical case
        alpha = beta = b t / (1 + b t) when b == d.
    """
    alpha, beta, _, _ = _kendall(b, d, t)
    return _out(alpha), _out(beta)


def _log_pmf_from_n0(k, n0, alpha, beta, survival, one_minus_beta):
    """log P(N = k) from n0 cells as a binomial mixture of negative binomials.

    m ~ Binomial(n0, 1 - alpha) lineages survive and N = m + NegBin(m, 1 - beta) failures
    (docs/model.md B2): P(N = k) = sum_m C(n0, m) (1-alpha)^m alpha^(n0-m)
    C(k-1, m-1) (1-beta)^m beta^(k-m). Every term is positive, so the log-sum is exact to
    rounding, unlike the alternating-sign closed form.
    """
    k, alpha, beta, survival, one_minus_beta = np.broadcast_arrays(
        k, alpha, beta, survival, one_minus_beta)
    k_max = int(k.max()) if k.size else 0
    m = np.arange(min(n0, k_max) + 1)
    k_, a_, be_, s_, omb_ = (x[..., None] for x in (k, alpha, beta, survival, one_minus_beta))
    failures = k_ - m
    log_surviving = (gammaln(n0 + 1) - gammaln(m + 1) - gammaln(n0 - m + 1)
                     + xlogy(m, s_) + xlogy(n0 - m, a_))
    # Clamp the gammaln arguments; the invalid (m, k) pairs are masked just below.
    m_pos, k_pos = np.maximum(m, 1), np.maximum(k_, 1)
    log_negbin = (gammaln(k_pos) - gammaln(m_pos) - gammaln(np.maximum(failures, 0) + 1)
                  + xlogy(m, omb_) + xlogy(failures, be_))
    log_negbin = np.where(m == 0, np.where(k_ == 0, 0.0, -np.inf), log_negbin)
    log_terms = np.where(failures < 0, -np.inf, log_surviving + log_negbin)
    return logsumexp(log_terms, axis=-1)


def birth_death_pmf(k, b, d, t, n0=1):
    """P(N(t) = k) for the linear birth-death process started from n0 cells.

    Parameters
    ----------
    k : int or array_like of int
        Cell counts, >= 0.
    b, d : float or array_like
        Birth and death rates per cell per day, >= 0.
    t : float or array_like
        Time in days, >= 0.
    n0 : int
        Initial number of cells, >= 0.

    Returns
    -------
    ndarray or float
        For n0 = 1 Kendall's closed form. For n0 > 1 the exact n0-fold convolution, written as
        the mixture sum_m Binomial(m; n0, 1 - alpha) NegBin(k - m; m, 1 - beta) over the
        number m of surviving founder lineages and summed in log space; the cost is
        O(size(k) * min(n0, max(k))).
    """
    k = _counts("k", k)
    n0 = _scalar_count("n0", n0)
    alpha, beta, survival, one_minus_beta = _kendall(b, d, t)
    if n0 == 1:
        tail = survival * one_minus_beta * beta ** np.maximum(k - 1, 0)
        return _out(np.where(k == 0, alpha, tail))
    return _out(np.exp(_log_pmf_from_n0(k, n0, alpha, beta, survival, one_minus_beta)))


def birth_death_cdf(k, b, d, t, n0=1):
    """P(N(t) <= k) for the linear birth-death process started from n0 cells.

    Parameters are as for :func:`birth_death_pmf`.

    Returns
    -------
    ndarray or float
        For n0 = 1: alpha + (1 - alpha)(1 - beta^k). For n0 > 1 the same mixture as the pmf
        with negative-binomial cdfs in closed form:
        alpha^n0 + sum_{m>=1} Binomial(m; n0, 1 - alpha) I_{1-beta}(m, k - m + 1),
        I the regularised incomplete beta function.
    """
    k = _counts("k", k)
    n0 = _scalar_count("n0", n0)
    alpha, beta, survival, one_minus_beta = _kendall(b, d, t)
    if n0 == 1:
        return _out(alpha + survival * -np.expm1(xlogy(k, beta)))
    k, alpha, beta, survival, one_minus_beta = np.broadcast_arrays(
        k, alpha, beta, survival, one_minus_beta)
    k_max = int(k.max()) if k.size else 0
    m = np.arange(1, min(n0, k_max) + 1)
    k_, a_, s_, omb_ = (x[..., None] for x in (k, alpha, survival, one_minus_beta))
    binomial = np.exp(gammaln(n0 + 1) - gammaln(m + 1) - gammaln(n0 - m + 1)
                      + xlogy(m, s_) + xlogy(n0 - m, a_))
    failures = k_ - m
    negbin_cdf = np.where(failures < 0, 0.0, betainc(m, np.maximum(failures, 0) + 1, omb_))
    return _out(alpha ** n0 + np.sum(binomial * negbin_cdf, axis=-1))


def birth_death_mean(b, d, t, n0=1):
    """E[N(t)] = n0 exp((b - d) t), in cells; b, d per day, t in days."""
    b, d, t = _nonnegative("b", b), _nonnegative("d", d), _nonnegative("t", t)
    n0 = _nonnegative("n0", n0)
    return _out(n0 * np.exp((b - d) * t))


def birth_death_variance(b, d, t, n0=1):
    """Var[N(t)] = n0 (b + d)/(b - d) E (E - 1), E = exp((b - d) t), in cells^2.

    Evaluated as n0 (b + d) E g with g = expm1(r t)/r, so b == d gives n0 * 2 b t.
    """
    b, d, t = _nonnegative("b", b), _nonnegative("d", d), _nonnegative("t", t)
    n0 = _nonnegative("n0", n0)
    r = b - d
    return _out(n0 * (b + d) * np.exp(r * t) * _growth_integral(r, t))


def extinction_probability(b, d, t, n0=1):
    """P(N(t) = 0) = alpha(t)^n0 for n0 founder cells; b, d per day, t in days."""
    alpha, _, _, _ = _kendall(b, d, t)
    return _out(alpha ** _nonnegative("n0", n0))


def ultimate_extinction_probability(b, d, n0=1):
    """P(extinction ever) = (d/b)^n0 if b > d, else 1; b, d per day."""
    b, d = _nonnegative("b", b), _nonnegative("d", d)
    n0 = _nonnegative("n0", n0)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(b > d, d / np.where(b > 0, b, 1.0), 1.0)
    return _out(ratio ** n0)


def _supercritical(b, d):
    b, d = _nonnegative("b", b), _nonnegative("d", d)
    if np.any(~(b > d)):
        raise ValueError(f"b must exceed d (net growth rate r = b - d in (0, inf)), "
                         f"got b={b!r}, d={d!r}")
    return b, d


def hitting_time_mean(b, d, size):
    """Mean time (days) for a lineage from one cell, given survival, to reach `size` cells.

    Given survival exp(-r t) N(t) tends to an exponential with mean b/r, so the time to
    reach M is (ln(r M / b) + G)/r with G standard Gumbel, whose mean is Euler's gamma.
    Asymptotic in large M; requires b > d >= 0 (per day) and size > 0.
    """
    b, d = _supercritical(b, d)
    size = _positive("size", size)
    r = b - d
    return _out((np.log(r * size / b) + np.euler_gamma) / r)


def hitting_time_quantile(q, b, d, size):
    """q-quantile (days) of the time for a surviving lineage from one cell to reach `size`.

    (ln(r M / b) - ln(-ln q))/r, the Gumbel form of :func:`hitting_time_mean`;
    q in (0, 1), b > d >= 0 per day, size > 0 cells.
    """
    q = _probability("q", q, open_interval=True)
    b, d = _supercritical(b, d)
    size = _positive("size", size)
    r = b - d
    return _out((np.log(r * size / b) - np.log(-np.log(q))) / r)


# --------------------------------------------------------------------------- B2 BNB

def bnb_parameters(b, d, mu, dt):
    """Parameters (pM, pE, pB) of the exact BNB interval update of Mather et al. (2012).

    A cell divides at rate b, dies at rate d and emits a mutant at rate mu without changing
    its own count. Over an interval dt, for one founder cell:

    - pM = P(no mutation in the lineage during dt); pM^n0 for n0 founders.
    - pE = P(no mutation and lineage extinct at dt) (the joint probability, as in Mather
      et al.; pE / pM is the extinction probability given no mutation).
    - pB: given no mutation and survival, the lineage size is geometric,
      P(N = k) proportional to pB^(k-1).

    Together they give the generating function
    F(s) = E[s^N; no mutation] = pE + (pM - pE)(1 - pB) s / (1 - pB s). With W = b + d + mu, R = sqrt((b - d)^2 + (2 (b + d) + mu) mu) and
    tau = tanh(R dt / 2) / R, the formulas of docs/model.md B2 become
    pM = (1 + (2 d - W) tau) / (1 + (W - 2 b) tau) = 1 - 2 mu tau / (1 + (W - 2 b) tau),
    pE = 2 d tau / (1 + W tau),
    pB = 2 b tau / (1 + W tau) = b pE / d,
    which stay finite at R -> 0 and do not overflow for large R dt. For mu = 0:
    pM = 1, pE = alpha, pB = beta.

    Parameters
    ----------
    b, d, mu : float or array_like
        Birth, death and mutation rates per cell per day, >= 0.
    dt : float or array_like
        Interval length in days, >= 0.

    Returns
    -------
    pM, pE, pB : ndarray or float
    """
    b, d = _nonnegative("b", b), _nonnegative("d", d)
    mu, dt = _nonnegative("mu", mu), _nonnegative("dt", dt)
    w = b + d + mu
    root = np.sqrt((b - d) ** 2 + (2.0 * (b + d) + mu) * mu)
    half = 0.5 * root * dt
    small = half < 1e-6
    tanh_ratio = np.where(small, 1.0 - half ** 2 / 3.0, np.tanh(half) / np.where(small, 1.0, half))
    tau = 0.5 * dt * tanh_ratio
    # 1 - pM written out, so that pM is exactly 1 when mu = 0.
    p_no_mutation = 1.0 - 2.0 * mu * tau / (1.0 + (w - 2.0 * b) * tau)
    p_extinct = 2.0 * d * tau / (1.0 + w * tau)
    p_geometric = 2.0 * b * tau / (1.0 + w * tau)
    return _out(p_no_mutation), _out(p_extinct), _out(p_geometric)


# --------------------------------------------------------------------------- B3 resistance

def prob_no_preexisting_resistance(size, u, b, d, n_positions=1):
    """P(no resistant cell present when a neutral sensitive clone first reaches `size`).

    exp(-M u n (b/d) ln(b / (b - d))) (Iwasa, Nowak & Michor 2006; Bozic et al. 2013),
    with u the resistance mutation probability per division and position, n the number
    of resistance positions, b > d >= 0 per day (d = 0 gives the limit exp(-M u n)).
    """
    size = _nonnegative("size", size)
    u = _probability("u", u)
    b, d = _supercritical(b, d)
    n_positions = _nonnegative("n_positions", n_positions)
    ratio = d / b
    # (b/d) ln(b/(b-d)) = -log1p(-x)/x with x = d/b, which tends to 1 as d -> 0.
    factor = np.where(ratio > 0, -np.log1p(-ratio) / np.where(ratio > 0, ratio, 1.0), 1.0)
    return _out(np.exp(-size * u * n_positions * factor))


def expected_preexisting_resistant(size, u, b, d, n_positions=1, r_resistant=None):
    """Expected number of resistant cells when the sensitive clone reaches `size` cells.

    Neutral resistance (r_resistant None or equal to r = b - d): M u n (b / r) ln M.
    Resistant cells growing at r_resistant < r (a fitness cost): u n b M / (r - r_resistant).
    Both are large-M approximations; rates per day, u per division and position.
    """
    size = _at_least("size", size, 1.0)
    u = _probability("u", u)
    b, d = _supercritical(b, d)
    n_positions = _nonnegative("n_positions", n_positions)
    r = b - d
    rate = size * u * n_positions * b
    if r_resistant is None:
        return _out(rate / r * np.log(size))
    r_resistant = np.asarray(r_resistant, dtype=float)
    if np.any(~(r_resistant <= r)):
        raise ValueError(f"r_resistant must be in (-inf, r] with r = b - d = {r!r}, "
                         f"got {r_resistant!r}")
    neutral = r_resistant == r
    gap = np.where(neutral, 1.0, r - r_resistant)
    return _out(np.where(neutral, rate / r * np.log(size), rate / gap))


def luria_delbruck_pmf(m, n_max):
    """Luria-Delbruck distribution p_0 .. p_n_max of mutant counts (pure birth, m mutations).

    Ma-Sandri-Sarkar recursion: p_0 = exp(-m), p_n = (m/n) sum_{i<n} p_i / (n - i + 1).
    The tail P(X >= n) decays like m/n, so the returned array sums to less than one.

    Parameters
    ----------
    m : float
        Expected number of mutations, >= 0.
    n_max : int
        Largest count returned, >= 0. Cost O(n_max^2).

    Returns
    -------
    ndarray, shape (n_max + 1,)
    """
    m = float(_nonnegative("m", m))
    n_max = _scalar_count("n_max", n_max)
    p = np.zeros(n_max + 1)
    p[0] = np.exp(-m)
    inverse_lengths = 1.0 / np.arange(2, n_max + 2)  # 1/(n - i + 1) for n - i = 1, 2, ...
    for n in range(1, n_max + 1):
        p[n] = m / n * np.dot(p[:n], inverse_lengths[n - 1::-1])
    return p


# --------------------------------------------------------------------------- B4 cure

def _log_no_resistant_lineage(b, d, u, s_r):
    """log q, q the smaller root of b(1-u) q^2 - (b + d - b u (1 - s_R)) q + d = 0.

    With q = 1 - e the quadratic becomes b(1-u) e^2 + (d - b + b u (1 + s_R)) e - b u s_R = 0;
    its positive root is taken in whichever form avoids cancellation, then log q = log1p(-e).
    """
    b, d = _nonnegative("b", b), _nonnegative("d", d)
    u, s_r = _probability("u", u), _probability("s_R", s_r)
    if np.any(~(b + d > 0)):
        raise ValueError(f"b + d must be in (0, inf), got b={b!r}, d={d!r}")
    a = b * (1.0 - u)
    lin = d - b + b * u * (1.0 + s_r)
    c = b * u * s_r
    disc = np.sqrt(lin ** 2 + 4.0 * a * c)
    with np.errstate(divide="ignore", invalid="ignore"):
        e_decline = 2.0 * c / (lin + disc)
        e_growth = (disc - lin) / (2.0 * a)
    e = np.where(lin > 0, e_decline, e_growth)
    e = np.where(c == 0, np.where(lin >= 0, 0.0, -lin / np.where(a > 0, a, 1.0)), e)
    return np.log1p(-np.minimum(e, 1.0))


def cure_probability_no_resistance(M, b, d, u, s_R):
    """Probability that M sensitive cells on therapy leave no surviving resistant lineage.

    q^M, q the smaller root of b (1 - u) q^2 - (b + d - b u (1 - s_R)) q + d = 0 (docs/model.md
    B4), computed as exp(M log q) with q = 1 - e found without cancellation, so M = 1e9
    and u = 1e-8 are handled.

    Parameters
    ----------
    M : float or array_like
        Sensitive cells at the start of therapy, >= 0.
    b, d : float or array_like
        Birth and death rates of sensitive cells on therapy, per day, b + d > 0.
    u : float or array_like
        Probability per division of producing a resistant daughter, in [0, 1].
    s_R : float or array_like
        Survival probability of a new resistant lineage, 1 - d_R / b_R, in [0, 1].
    """
    M = _nonnegative("M", M)
    return _out(np.exp(M * _log_no_resistant_lineage(b, d, u, s_R)))


def cure_probability_approx(M, b, d, u, s_R):
    """Small-u approximation exp(-M u s_R b / (d - b)) of :func:`cure_probability_no_resistance`.

    Requires d > b >= 0 (per day); u and s_R in [0, 1]; M >= 0 cells.
    """
    M, b, d = _nonnegative("M", M), _nonnegative("b", b), _nonnegative("d", d)
    u, s_R = _probability("u", u), _probability("s_R", s_R)
    if np.any(~(d > b)):
        raise ValueError(f"d must exceed b (decline rate d - b in (0, inf)), got b={b!r}, d={d!r}")
    return _out(np.exp(-M * u * s_R * b / (d - b)))


def cure_probability(M, b, d, u, b_R, d_R, R0_pmf=None):
    """Cure probability E[(d_R/b_R)^R0] q^M including pre-existing resistant cells R0.

    Parameters
    ----------
    M, b, d, u
        As for :func:`cure_probability_no_resistance`.
    b_R, d_R : float
        Birth and death rates of resistant cells on therapy, per day; b_R > 0, d_R >= 0.
        A resistant lineage dies out with probability min(1, d_R / b_R).
    R0_pmf : array_like, optional
        P(R0 = 0), P(R0 = 1), ... of the resistant cells present at the start; None means
        R0 = 0. Mass missing from a truncated pmf (sum < 1) is counted as never cured, so
        the result is then a lower bound.
    """
    b_R, d_R = _positive("b_R", b_R), _nonnegative("d_R", d_R)
    resistant_extinction = np.minimum(1.0, d_R / b_R)
    p = cure_probability_no_resistance(M, b, d, u, 1.0 - resistant_extinction)
    if R0_pmf is None:
        return p
    R0_pmf = _probability("R0_pmf", R0_pmf)
    if R0_pmf.ndim != 1 or R0_pmf.sum() > 1.0 + 1e-9:
        raise ValueError("R0_pmf must be a 1-d array of probabilities with sum in [0, 1]")
    generating = np.sum(R0_pmf * resistant_extinction ** np.arange(R0_pmf.size))
    return _out(generating * p)


def deterministic_nadir_time(S0, l_S, R0, l_R):
    """Time (days) of the minimum over t >= 0 of S0 exp(-l_S t) + R0 exp(l_R t).

    ln(l_S S0 / (l_R R0)) / (l_S + l_R), or 0 when that is negative (the course rises from
    the start). S0, R0 > 0 cells; l_S, l_R > 0 per day.
    """
    S0, R0 = _positive("S0", S0), _positive("R0", R0)
    l_S, l_R = _positive("l_S", l_S), _positive("l_R", l_R)
    return _out(np.maximum(0.0, np.log(l_S * S0 / (l_R * R0)) / (l_S + l_R)))


def deterministic_two_population(t, S0, l_S, R0, l_R):
    """Deterministic course S0 exp(-l_S t) + R0 exp(l_R t) in cells, t in days.

    l_S is the decline rate of sensitive cells and l_R the growth rate of resistant cells,
    both per day (either may be negative).
    """
    t = _nonnegative("t", t)
    S0, R0 = _nonnegative("S0", S0), _nonnegative("R0", R0)
    return _out(S0 * np.exp(-np.asarray(l_S, float) * t) + R0 * np.exp(np.asarray(l_R, float) * t))


# --------------------------------------------------------------------------- B5 growth laws

def gompertz(t, V0, K, a):
    """Gompertz curve V(t) = K exp(ln(V0/K) exp(-a t)), solving dV/dt = a V ln(K/V).

    t in days, V0 and K > 0 in any common unit (cells or cm^3), a >= 0 per day.
    """
    t = _nonnegative("t", t)
    V0, K, a = _positive("V0", V0), _positive("K", K), _nonnegative("a", a)
    return _out(K * np.exp(np.log(V0 / K) * np.exp(-a * t)))


def logistic(t, V0, K, r):
    """Logistic curve V(t) = K V0 e^{rt} / (K + V0 (e^{rt} - 1)), solving dV/dt = r V (1 - V/K).

    Evaluated as K V0 / (V0 + (K - V0) exp(-r t)), which cannot overflow and, for V0 <= K,
    adds positive terms only (forms with e^{rt} - 1 lose digits near saturation).
    t in days, V0 and K > 0 in any common unit, r >= 0 per day.
    """
    t = _nonnegative("t", t)
    V0, K, r = _positive("V0", V0), _positive("K", K), _nonnegative("r", r)
    return _out(K * V0 / (V0 + (K - V0) * np.exp(-r * t)))


def volume_doubling_time(r):
    """Doubling time ln 2 / r in days for exponential growth at net rate r > 0 per day."""
    return _out(np.log(2.0) / _positive("r", r))


def cells_from_diameter(d_cm, cells_per_cm3=1e9):
    """Cells in a sphere of diameter d_cm (cm): cells_per_cm3 * pi/6 * D^3 (5.2e8 D^3 at 1e9)."""
    d_cm = _nonnegative("d_cm", d_cm)
    cells_per_cm3 = _positive("cells_per_cm3", cells_per_cm3)
    return _out(cells_per_cm3 * np.pi / 6.0 * d_cm ** 3)


def diameter_from_cells(n, cells_per_cm3=1e9):
    """Diameter (cm) of a sphere holding n cells at cells_per_cm3; inverse of cells_from_diameter."""
    n = _nonnegative("n", n)
    cells_per_cm3 = _positive("cells_per_cm3", cells_per_cm3)
    return _out(np.cbrt(6.0 * n / (np.pi * cells_per_cm3)))


def ctdna_genome_equivalents(cells, d, shed_per_death=1.4e-4, elimination_per_day=33.0, r=0.0):
    """Mean circulating tumour DNA, in haploid genome equivalents in the whole circulation.

    Quasi-steady state of shedding at death and first-order elimination (Avanzini 2020):
    cells * shed_per_death * d / (r + elimination_per_day), with d the death rate and r the
    net growth rate of the tumour per day, elimination_per_day the ctDNA clearance rate
    (33/day is a half-life of about 30 minutes).
    """
    cells, d = _nonnegative("cells", cells), _nonnegative("d", d)
    shed_per_death = _nonnegative("shed_per_death", shed_per_death)
    elimination = _positive("elimination_per_day", elimination_per_day)
    denom = elimination + np.asarray(r, dtype=float)
    if np.any(~(denom > 0)):
        raise ValueError(f"r must be in (-elimination_per_day, inf), got {r!r}")
    return _out(cells * shed_per_death * d / denom)
