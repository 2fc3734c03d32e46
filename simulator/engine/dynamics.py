"""Exact stochastic updates of birth-death compartments, and density dependence.

A compartment of ``n0`` cells with constant birth rate ``b`` and death rate ``d`` advances over
``dt`` by the binomial-negative-binomial update (Mather, Hasty & Tsimring 2012): the number of
ancestors with surviving progeny is Binomial(n0, 1 - alpha) and each surviving ancestor leaves
1 + Geometric progeny, so the sum is m + NegativeBinomial(m, 1 - beta). The draw costs the
same for 10 cells as for 1e12.
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
def linear_density_fraction(rng, n_start, n_end):
    """A time in [0, 1] drawn with density proportional to the population, interpolated
    linearly from ``n_start`` to ``n_end``: when in the step a division happened."""
    u = rng.random()
    if n_start == n_end:
        return u
    a = float(n_start)
    c = float(n_end) - a
    mass = u * (a + 0.5 * c)
    # Root of c/2 x^2 + a x - mass = 0 in the form that does not cancel.
    return 2.0 * mass / (a + math.sqrt(max(a * a + 2.0 * c * mass, 0.0)))
