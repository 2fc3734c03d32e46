"""A plain-NumPy, step-by-step implementation of the engine's drug-free model.

This is the yardstick for "how much does Numba buy us": the obvious vectorised program a
scientist would write without a compiler. Each step, every (lesion, clone) compartment advances
by one binomial plus one negative-binomial draw (the BNB update), drawn for the whole
compartment array at once with ``numpy.random.Generator``. Mutation and seeding follow the
engine's logic, simplified:

- dividing cells leave as mutants or seeds by a Poisson with the trapezoid-rule integral of the
  path (as the engine does), split over seeding and the mutation edges by binomials;
- new mutant cells of one step are lumped and live half a step (the engine follows up to 16
  one by one, each born at its own time);
- density dependence, when not exponential, is evaluated at the start of the step (the engine
  uses the predicted midpoint).

It reads a validated :class:`simulator.Scenario` (therapy sections are ignored) and returns the
end state only. It is for benchmarks, not for science: the engine is the reference.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_CRITICAL_TOLERANCE = 1e-12


def alpha_beta(birth, death, dt):
    """Kendall's alpha (extinction by ``dt``) and beta (geometric ratio) for one cell; arrays."""
    birth, death, dt = np.broadcast_arrays(*(np.asarray(x, np.float64) for x in (birth, death, dt)))
    net = birth - death
    critical = np.abs(net) * dt < _CRITICAL_TOLERANCE
    growth_minus_one = np.expm1(net * dt)
    denominator = birth * growth_minus_one + net
    with np.errstate(divide="ignore", invalid="ignore"):
        alpha = np.where(critical, 0.0, death * growth_minus_one / denominator)
        beta = np.where(critical, 0.0, birth * growth_minus_one / denominator)
    x = birth * dt
    alpha = np.where(critical, x / (1.0 + x), alpha)
    beta = np.where(critical, x / (1.0 + x), beta)
    return alpha, beta


def bnb(rng, n0, birth, death, dt):
    """Vectorised binomial-negative-binomial update of compartments of ``n0`` cells."""
    return bnb_from(rng, n0, *alpha_beta(birth, death, dt))


def bnb_from(rng, n0, alpha, beta):
    """The BNB update with Kendall's alpha and beta already computed."""
    survivors = rng.binomial(n0, 1.0 - alpha)
    out = survivors.copy()
    # numpy's negative_binomial wants n > 0 and p < 1; those compartments gain nothing.
    grow = (survivors > 0) & (beta > 0.0)
    if grow.all():
        out += rng.negative_binomial(survivors, 1.0 - beta)
    elif grow.any():
        out[grow] += rng.negative_binomial(survivors[grow], (1.0 - beta)[grow])
    return out


def density_factor(law, cells, capacity):
    """Fraction of the intrinsic net growth left, per lesion (see the engine's dynamics)."""
    cells = np.asarray(cells, np.float64)
    factor = np.ones_like(cells)
    positive = cells > 0
    logistic = (law == "logistic") & positive
    gompertz = (law == "gompertz") & positive
    factor[logistic] = 1.0 - cells[logistic] / capacity[logistic]
    factor[gompertz] = np.log(capacity[gompertz] / cells[gompertz]) / np.log(capacity[gompertz])
    return factor


def density_adjusted(birth, death, factor):
    """Growing clones slow towards their death rate; above capacity deaths exceed births."""
    net = birth - death
    factor = factor[:, None]
    slow = (net > 0) & (factor < 1.0)
    below = slow & (factor >= 0.0)
    above = slow & (factor < 0.0)
    b = np.where(below, death + net * factor, birth)
    b = np.where(above, death, b)
    d = np.where(above, death - net * factor, death)
    return b, d


@dataclass
class NumpyResult:
    cells: np.ndarray  # [lesions, clones] at the end
    end_time: float  # day the run ended
    steps: int  # steps taken
    compartment_steps: int  # living compartments advanced, summed over steps


def simulate_numpy(scenario, seed: int = 1, replicate: int = 0) -> NumpyResult:
    """Run one patient of ``scenario`` (drug-free) step by step in NumPy."""
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(replicate,))))
    clone_names = list(scenario.clones)
    index = {name: k for k, name in enumerate(clone_names)}
    n_clones = len(clone_names)
    birth0 = np.array([c.birth for c in scenario.clones.values()], np.float64)
    death0 = np.array([c.death for c in scenario.clones.values()], np.float64)
    mutation_total = np.zeros(n_clones)
    edges: list[list[tuple[int, float]]] = [[] for _ in range(n_clones)]
    for m in sorted(scenario.mutations, key=lambda m: (index[m.source], index[m.target])):
        if m.probability > 0:
            edges[index[m.source]].append((index[m.target], m.probability))
            mutation_total[index[m.source]] += m.probability

    lesions = list(scenario.lesions.values())
    cells = np.zeros((len(lesions), n_clones), np.int64)
    for row, lesion in enumerate(lesions):
        for name, count in lesion.cells.items():
            cells[row, index[name]] = count
    capacity = np.array([lesion.carrying_capacity for lesion in lesions], np.float64)
    law = np.array([scenario.growth_law_of(lesion) for lesion in lesions], dtype=object)

    seeding = scenario.seeding
    sites = list(seeding.site_weights)
    weights = np.array([seeding.site_weights[s] for s in sites], np.float64)
    site_p = weights / weights.sum() if weights.sum() > 0 else None
    simulation = scenario.simulation
    dt, n_steps = simulation.dt_days, simulation.n_steps
    outflow = birth0 * mutation_total + seeding.rate
    any_outflow = bool(np.any(outflow > 0))
    exponential = bool(np.all(law == "exponential")) and seeding.rate == 0
    compartment_steps = 0
    if exponential:
        # Rates never change: a fair NumPy program computes alpha and beta once.
        fixed_birth = np.broadcast_to(birth0, cells.shape)
        fixed_death = np.broadcast_to(death0, cells.shape)
        fixed_alpha, fixed_beta = (
            np.ascontiguousarray(x)
            for x in alpha_beta(fixed_birth * (1.0 - mutation_total), fixed_death, dt)
        )

    time = 0.0
    step = 0
    for step in range(1, n_steps + 1):
        compartment_steps += int(np.count_nonzero(cells))
        start = cells
        if exponential:
            birth, death = fixed_birth, fixed_death
            end = bnb_from(rng, start, fixed_alpha, fixed_beta)
        else:
            birth, death = density_adjusted(birth0, death0, density_factor(law, cells.sum(1), capacity))
            end = bnb(rng, start, birth * (1.0 - mutation_total), death, dt)
        if any_outflow:
            rate = birth * mutation_total + seeding.rate
            n_out = rng.poisson(rate * 0.5 * (start + end) * dt)
            arrivals = np.zeros_like(end)
            if seeding.rate > 0:
                with np.errstate(divide="ignore", invalid="ignore"):
                    share = np.where(rate > 0, seeding.rate / rate, 0.0)
                n_seeds = rng.binomial(n_out, share)
                n_out = n_out - n_seeds
            else:
                n_seeds = None
            for source in range(n_clones):
                remaining = n_out[:, source]
                remaining_p = mutation_total[source]
                for target, p in edges[source]:
                    if not remaining.any():
                        break
                    n_edge = rng.binomial(remaining, min(1.0, p / remaining_p))
                    remaining = remaining - n_edge
                    remaining_p -= p
                    if n_edge.any():
                        arrivals[:, target] += bnb(
                            rng, n_edge, birth[:, target], death[:, target], 0.5 * dt
                        )
            end = end + arrivals
            if n_seeds is not None and n_seeds.any():
                end, capacity, law = _seed(rng, end, n_seeds, birth, death, dt, sites, site_p,
                                           seeding.carrying_capacity, simulation.growth_law,
                                           capacity, law)
        cells = end
        time = step * dt
        burden = float(cells.sum())
        if burden >= simulation.lethal_burden or burden == 0.0:
            break
    return NumpyResult(cells, time, step, compartment_steps)


def _seed(rng, cells, n_seeds, birth, death, dt, sites, site_p, seed_capacity, seed_law,
          capacity, law):
    """Found one new lesion per surviving single-cell founder (a rare, Python-level event)."""
    new_rows = []
    for lesion, clone in zip(*np.nonzero(n_seeds)):
        for _ in range(int(n_seeds[lesion, clone])):
            rng.choice(len(sites), p=site_p)  # the destination; kept for the same draw count
            lives = dt * (1.0 - rng.random())
            founders = bnb(rng, np.array([1]), birth[lesion, clone], death[lesion, clone], lives)[0]
            if founders > 0:
                row = np.zeros(cells.shape[1], np.int64)
                row[clone] = founders
                new_rows.append(row)
    if not new_rows:
        return cells, capacity, law
    cells = np.vstack([cells, *new_rows])
    capacity = np.concatenate([capacity, np.full(len(new_rows), seed_capacity)])
    law = np.concatenate([law, np.array([seed_law] * len(new_rows), dtype=object)])
    return cells, capacity, law
