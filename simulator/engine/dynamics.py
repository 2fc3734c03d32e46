"""Exact stochastic updates of birth-death compartments, and density dependence.

A compartment of ``n0`` cells with constant birth rate ``b`` and death rate ``d`` advances over
``dt`` by the binomial-negative-binomial update (Mather, Hasty & Tsimring 2012): the number of
ancestors with surviving progeny is Binomial(n0, 1 - alpha) and each surviving ancestor leaves
1 + Geometric progeny, so the sum is m + NegativeBinomial(m, 1 - beta). The draw costs the
same for 10 cells as for 1e12.

Cells that also *emit* at rate ``m`` (a division giving a mutant daughter, a cell leaving to
found a lesion; the emitting cell stays) are advanced exactly too (``docs/model.md``, "Exact
steps with mutation and seeding"): one founder's lineage avoids emitting over ``t`` with
probability pM(t), and given that, it is extinct with probability pE/pM or else 1 + Geometric(pB) cells (model B2).
The first emission of ``n`` cells comes at the time where pM(t)^n equals a uniform draw; at
that moment the emitting cell's lineage is size-biased, 1 + NegativeBinomial(2, 1 - pB), and
the other n - 1 lineages are conditioned on not emitting. Repeating from there gives the
joint law of survivors and emission times exactly, at the cost of one round per emission.
"""

import math

from simulator.engine.jit import jit

EXPONENTIAL = 0
LOGISTIC = 1
GOMPERTZ = 2
GROWTH_LAW_CODES = {"exponential": EXPONENTIAL, "logistic": LOGISTIC, "gompertz": GOMPERTZ}

# Below this |b - d| dt the critical formulas are exact to double precision.
_CRITICAL_TOLERANCE = 1e-12


@jit
def alpha_beta(birth, death, dt):
    """Kendall's alpha (extinction by dt) and beta (geometric ratio) for one cell."""
    net = birth - death
    if abs(net) * dt < _CRITICAL_TOLERANCE:
        x = birth * dt
        return x / (1.0 + x), x / (1.0 + x)
    growth_minus_one = math.expm1(net * dt)
    denominator = birth * growth_minus_one + net
    return death * growth_minus_one / denominator, birth * growth_minus_one / denominator


@jit
def bnb_advance(rng, n0, birth, death, dt):
    """Cells after ``dt`` days from ``n0`` cells with constant rates (exact in distribution)."""
    if n0 <= 0:
        return 0
    if birth == 0.0 and death == 0.0:
        return n0
    alpha, beta = alpha_beta(birth, death, dt)
    survivors = rng.binomial(n0, 1.0 - alpha)
    if survivors == 0 or beta <= 0.0:
        return survivors
    return survivors + rng.negative_binomial(survivors, 1.0 - beta)


@jit
def density_factor(law, cells, capacity):
    """Fraction of the intrinsic net growth rate left at this lesion size.

    Logistic: 1 - N/K. Gompertz: ln(K/N) / ln(K), which is 1 for a single cell, so a clone's
    intrinsic rate b - d is its growth rate when alone and small. Negative above capacity.
    """
    if law == EXPONENTIAL or cells <= 0.0:
        return 1.0
    if law == LOGISTIC:
        return 1.0 - cells / capacity
    return math.log(capacity / cells) / math.log(capacity)


@jit
def density_adjusted(birth, death, factor):
    """Scale a growing clone's net rate by ``factor``: births slow towards deaths, and above
    capacity deaths exceed births. Declining clones are left as they are."""
    net = birth - death
    if net <= 0.0 or factor >= 1.0:
        return birth, death
    if factor >= 0.0:
        return death + net * factor, death
    return death, death - net * factor


@jit
def exact_held_factor(law, cells, capacity, birth, death, scale, add, dt):
    """The density factor to hold over ``dt`` days for a lesion of ONE clone type: its
    average along the deterministic path of the density law, in closed form. NaN where the
    form does not hold (the path leaves 1 <= N <= K for Gompertz, N <= K for logistic), and
    the factor at the start where it does not matter (a declining clone, or births stopped).

    Within those bounds the clone's growth rate is linear in the factor ``f``:
    ``(d + (b - d) f) s - (d + a) = A f + C`` with the drug's birth scale ``s`` and added death
    ``a`` (``_rates``). Gompertz (``f = 1 - ln N / ln K``) makes ``ln N`` relax linearly,
    ``d ln N/dt = g0 - k (ln N - ln N0)`` with ``k = A / ln K``; logistic (``f = 1 - N/K``)
    is the logistic equation with ``r = A + C``, ``q = A / K``. The held factor is the one whose
    constant rate gives the same growth: ``(ln(N1/N0) / dt - C) / A``.
    """
    start = density_factor(law, cells, capacity)
    net = birth - death
    slope = net * scale
    if net <= 0.0 or slope <= 0.0 or law == EXPONENTIAL:
        return start
    offset = death * (scale - 1.0) - add
    if law == GOMPERTZ:
        log_capacity = math.log(capacity)
        if cells < 1.0 or cells > capacity:
            return math.nan
        rate = slope / log_capacity
        growth = (slope * start + offset) * -math.expm1(-rate * dt) / rate
        end = math.log(cells) + growth
        if end < 0.0 or end > log_capacity:
            return math.nan
    else:
        if cells > capacity:
            return math.nan
        r = slope + offset
        ratio = dt if r == 0.0 else math.expm1(r * dt) / r
        crowding = slope / capacity * cells * ratio
        growth = r * dt - math.log1p(crowding)
        if cells * math.exp(growth) > capacity:
            return math.nan
    return (growth / dt - offset) / slope


@jit
def exponential_path_integral(n_start, n_end, t):
    """Integral over ``t`` days of a population going exponentially from n_start to n_end
    (the logarithmic mean times t); the trapezoid if either end is empty."""
    a, c = float(n_start), float(n_end)
    if a <= 0.0 or c <= 0.0:
        return 0.5 * (a + c) * t
    if a == c:
        return a * t
    return t * (c - a) / math.log(c / a)


@jit
def exponential_path_time(rng, n_start, n_end, t):
    """A time in [0, t] drawn with density proportional to a population going exponentially
    from n_start to n_end (uniform if they are equal or either is empty)."""
    u = rng.random()
    a, c = float(n_start), float(n_end)
    if a <= 0.0 or c <= 0.0 or a == c:
        return u * t
    growth = math.log(c / a)
    return t * math.log1p(u * math.expm1(growth)) / growth


@jit
def exponential_path_share(n_start, n_end, t, start, end):
    """Share of ``exponential_path_integral`` that falls in [start, end] of [0, t]."""
    a, c = float(n_start), float(n_end)
    if a <= 0.0 or c <= 0.0 or a == c:
        return (end - start) / t
    growth = math.log(c / a) / t
    return (math.exp(growth * end) - math.exp(growth * start)) / math.expm1(growth * t)


@jit
def _tanh_ratio(root, t):
    """tanh(R t / 2) / R, finite as R -> 0 (where it tends to t / 2)."""
    half = 0.5 * root * t
    if half < 1e-6:
        return 0.5 * t * (1.0 - half * half / 3.0)
    return math.tanh(half) / root


@jit
def emission_root(birth, death, emission):
    """R = sqrt((b - d)^2 + (2 (b + d) + m) m), the rate that sets the emission laws' time scale."""
    net = birth - death
    return math.sqrt(net * net + (2.0 * (birth + death) + emission) * emission)


@jit
def emission_interval(birth, death, emission, root, t):
    """For one cell over ``t`` days: (P(some emission), pE, pB) of ``docs/model.md`` B2.

    pE is the joint probability of no emission and extinction; given no emission and
    survival the lineage holds 1 + Geometric(pB) cells. Written with tanh(R t / 2) / R so the
    values stay finite for R -> 0 and for long intervals.
    """
    total = birth + death + emission
    tau = _tanh_ratio(root, t)
    # Rounding can put a near-certain emission a hair above 1.
    p_emit = min(2.0 * emission * tau / (1.0 + (total - 2.0 * birth) * tau), 1.0)
    denominator = 1.0 + total * tau
    return p_emit, 2.0 * death * tau / denominator, 2.0 * birth * tau / denominator


@jit
def first_emission_time(birth, death, emission, root, p_emit):
    """The time t at which one cell has emitted with probability ``p_emit`` (inverse of
    ``emission_interval``'s first value); infinite beyond the probability of ever emitting."""
    total = birth + death + emission
    denominator = 2.0 * emission - p_emit * (total - 2.0 * birth)
    if denominator <= 0.0:
        return math.inf
    tau = p_emit / denominator
    x = root * tau
    if x >= 1.0:
        return math.inf
    if x < 1e-6:
        return 2.0 * tau * (1.0 + x * x / 3.0)
    return math.log1p(2.0 * x / (1.0 - x)) / root


@jit
def advance_without_emission(rng, n0, p_none, p_extinct, p_geometric):
    """Cells at the end of an interval from ``n0`` cells whose lineages did not emit."""
    if n0 <= 0:
        return 0
    survivors = rng.binomial(n0, max(0.0, 1.0 - p_extinct / p_none))
    if survivors == 0 or p_geometric <= 0.0:
        return survivors
    return survivors + rng.negative_binomial(survivors, 1.0 - p_geometric)


@jit
def size_biased_lineage(rng, p_geometric):
    """The lineage of the cell that emits at a given moment: 1 + NegativeBinomial(2, 1 - pB)
    cells, the size-biased law of a lineage that did not emit before (it has >= 1 cell)."""
    if p_geometric <= 0.0:
        return 1
    return 1 + rng.negative_binomial(2, 1.0 - p_geometric)
