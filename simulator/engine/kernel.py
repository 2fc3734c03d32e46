"""The simulation loop: lesions x clone types advanced step by step, with mutation and seeding.

State is a handful of flat arrays (struct of arrays). Each step, every living (lesion, clone)
compartment advances by the exact BNB update with its rates held constant over the step;
divisions that give a mutant daughter and cells that leave to found a new lesion are Poisson
given the path (its integral taken by the trapezoid rule), and each new cell is born at a
time drawn within the step and lives out the rest of the step stochastically.

The kernel never raises a user-facing error: capacity problems come back as a status code.
"""

import math
from typing import NamedTuple

import numpy as np

from simulator.engine.dynamics import (
    EXPONENTIAL,
    bnb_advance,
    density_adjusted,
    density_factor,
    linear_density_fraction,
)
from simulator.engine.jit import jit

STATUS_OK = 0
STATUS_LESION_OVERFLOW = 1
STATUS_EVENT_OVERFLOW = 2

EVENT_CLONE_APPEARS = 0
EVENT_LESION_SEEDED = 1
EVENT_LESION_EXTINCT = 2
EVENT_DEATH = 3
EVENT_EXTINCTION = 4
EVENT_NAMES = {
    EVENT_CLONE_APPEARS: "clone_appears",
    EVENT_LESION_SEEDED: "lesion_seeded",
    EVENT_LESION_EXTINCT: "lesion_extinct",
    EVENT_DEATH: "death",
    EVENT_EXTINCTION: "extinction",
}

# New cells of one type born in one step are followed one by one up to this many; beyond it
# they are lumped and given half a step each, an O(dt^2) approximation that only matters
# when so many arise that their sum is nearly deterministic anyway.
_INDIVIDUAL_NEW_CELLS = 16


class ModelArrays(NamedTuple):
    """Everything the engine needs, as numbers and flat arrays (see ``lowering``)."""

    birth: np.ndarray  # [K] per day
    death: np.ndarray  # [K] per day
    mutation_total: np.ndarray  # [K] probability per division of any mutant daughter
    edge_start: np.ndarray  # [K + 1] CSR offsets of each source's mutation edges
    edge_target: np.ndarray  # [E]
    edge_probability: np.ndarray  # [E] per division
    initial_cells: np.ndarray  # [L0, K] int64
    lesion_site: np.ndarray  # [L0] site index
    lesion_capacity: np.ndarray  # [L0] cells
    lesion_law: np.ndarray  # [L0] growth-law code
    seeding_rate: float  # per cell per day
    site_cumulative_weight: np.ndarray  # [S] normalised cumulative weights
    seeding_capacity: float
    seeding_law: int
    dt: float
    n_steps: int
    record_every: int  # steps
    lethal_burden: float


class Buffers(NamedTuple):
    """Preallocated outputs; their sizes are the capacities the kernel must respect."""

    cells: np.ndarray  # [Lmax, K] current counts
    lesion_site: np.ndarray  # [Lmax]
    lesion_capacity: np.ndarray  # [Lmax]
    lesion_law: np.ndarray  # [Lmax]
    lesion_parent: np.ndarray  # [Lmax], -1 for lesions present at time 0
    lesion_born: np.ndarray  # [Lmax] day of seeding
    record_time: np.ndarray  # [R]
    record_lesions: np.ndarray  # [R] lesions existing at that record
    records: np.ndarray  # [R, Lmax, K]
    event_time: np.ndarray  # [Emax]
    event_kind: np.ndarray  # [Emax]
    event_lesion: np.ndarray  # [Emax]
    event_clone: np.ndarray  # [Emax]
    event_value: np.ndarray  # [Emax]
    first_seen: np.ndarray  # [K] first day a type had cells, -1 if never
    counters: np.ndarray  # [4] n_lesions, n_records, n_events, seeding events


def allocate_buffers(model: ModelArrays, max_lesions: int, max_events: int) -> Buffers:
    n_clones = model.birth.size
    n_records = model.n_steps // model.record_every + 2
    return Buffers(
        cells=np.zeros((max_lesions, n_clones), np.int64),
        lesion_site=np.full(max_lesions, -1, np.int64),
        lesion_capacity=np.zeros(max_lesions),
        lesion_law=np.zeros(max_lesions, np.int64),
        lesion_parent=np.full(max_lesions, -1, np.int64),
        lesion_born=np.zeros(max_lesions),
        record_time=np.zeros(n_records),
        record_lesions=np.zeros(n_records, np.int64),
        records=np.zeros((n_records, max_lesions, n_clones), np.int64),
        event_time=np.zeros(max_events),
        event_kind=np.zeros(max_events, np.int64),
        event_lesion=np.zeros(max_events, np.int64),
        event_clone=np.zeros(max_events, np.int64),
        event_value=np.zeros(max_events),
        first_seen=np.full(n_clones, -1.0),
        counters=np.zeros(4, np.int64),
    )


@jit
def _log_event(out, time, kind, lesion, clone, value):
    index = out.counters[2]
    if index >= out.event_time.size:
        return False
    out.event_time[index] = time
    out.event_kind[index] = kind
    out.event_lesion[index] = lesion
    out.event_clone[index] = clone
    out.event_value[index] = value
    out.counters[2] = index + 1
    return True


@jit
def _record(out, time):
    index = out.counters[1]
    n_lesions = out.counters[0]
    out.record_time[index] = time
    out.record_lesions[index] = n_lesions
    out.records[index, :n_lesions, :] = out.cells[:n_lesions, :]
    out.counters[1] = index + 1


@jit
def _clone_rates(model, clone, factor, birth_scale, death_add, site):
    """Birth and death rates of a clone type in a lesion: density first, then drugs."""
    birth, death = density_adjusted(model.birth[clone], model.death[clone], factor)
    return birth * birth_scale[site, clone], death + death_add[site, clone]


@jit
def _lesion_density(model, out, lesion, total, birth_scale, death_add):
    """Density factor at the step's predicted midpoint (second order in dt)."""
    law = out.lesion_law[lesion]
    capacity = out.lesion_capacity[lesion]
    if law == EXPONENTIAL:
        return 1.0
    start = density_factor(law, float(total), capacity)
    site = out.lesion_site[lesion]
    midpoint = 0.0
    for clone in range(model.birth.size):
        n = out.cells[lesion, clone]
        if n > 0:
            birth, death = _clone_rates(model, clone, start, birth_scale, death_add, site)
            midpoint += n * math.exp(0.5 * (birth - death) * model.dt)
    return density_factor(law, midpoint, capacity)


@jit
def _new_cells(rng, count, n_start, n_end, birth, death, dt):
    """Cells at the end of the step from ``count`` cells born during it."""
    if count <= _INDIVIDUAL_NEW_CELLS:
        total = 0
        for _ in range(count):
            born = linear_density_fraction(rng, n_start, n_end) * dt
            total += bnb_advance(rng, 1, birth, death, dt - born)
        return total
    return bnb_advance(rng, count, birth, death, 0.5 * dt)


@jit
def _choose_site(rng, cumulative):
    u = rng.random()
    for site in range(cumulative.size):
        if u < cumulative[site]:
            return site
    return cumulative.size - 1


@jit
def _seed_lesion(model, out, rng, clone, parent, n_start, n_end, time, birth_scale, death_add):
    """Found a new lesion with one cell; returns False when out of room."""
    site = _choose_site(rng, model.site_cumulative_weight)
    born = linear_density_fraction(rng, n_start, n_end) * model.dt
    birth, death = _clone_rates(model, clone, 1.0, birth_scale, death_add, site)
    founders = bnb_advance(rng, 1, birth, death, model.dt - born)
    out.counters[3] += 1
    if founders == 0:
        return True
    lesion = out.counters[0]
    if lesion >= out.cells.shape[0]:
        return False
    out.counters[0] = lesion + 1
    out.lesion_site[lesion] = site
    out.lesion_capacity[lesion] = model.seeding_capacity
    out.lesion_law[lesion] = model.seeding_law
    out.lesion_parent[lesion] = parent
    out.lesion_born[lesion] = time + born
    out.cells[lesion, clone] = founders
    return _log_event(out, time + born, EVENT_LESION_SEEDED, lesion, clone, float(parent))


@jit
def _advance_lesion(model, out, rng, lesion, time, birth_scale, death_add, arrivals):
    """Advance every clone of one lesion by one step. Returns a status code."""
    n_clones = model.birth.size
    total = 0
    for clone in range(n_clones):
        total += out.cells[lesion, clone]
    if total == 0:
        return STATUS_OK
    factor = _lesion_density(model, out, lesion, total, birth_scale, death_add)
    site = out.lesion_site[lesion]
    dt = model.dt
    arrivals[:] = 0
    for clone in range(n_clones):
        n_start = out.cells[lesion, clone]
        if n_start == 0:
            continue
        birth, death = _clone_rates(model, clone, factor, birth_scale, death_add, site)
        mutation = model.mutation_total[clone]
        # A division that yields a mutant daughter leaves the parent count unchanged.
        n_end = bnb_advance(rng, n_start, birth * (1.0 - mutation), death, dt)
        out.cells[lesion, clone] = n_end
        outflow = birth * mutation + model.seeding_rate
        if outflow <= 0.0:
            continue
        n_out = rng.poisson(outflow * 0.5 * (n_start + n_end) * dt)
        if n_out == 0:
            continue
        n_seeds = 0
        if model.seeding_rate > 0.0:
            n_seeds = rng.binomial(n_out, model.seeding_rate / outflow)
        for _ in range(n_seeds):
            if not _seed_lesion(
                model, out, rng, clone, lesion, n_start, n_end, time, birth_scale, death_add
            ):
                return STATUS_LESION_OVERFLOW
        remaining_mutants = n_out - n_seeds
        remaining_probability = mutation
        for edge in range(model.edge_start[clone], model.edge_start[clone + 1]):
            if remaining_mutants == 0:
                break
            share = min(1.0, model.edge_probability[edge] / remaining_probability)
            n_edge = rng.binomial(remaining_mutants, share)
            remaining_mutants -= n_edge
            remaining_probability -= model.edge_probability[edge]
            if n_edge == 0:
                continue
            target = model.edge_target[edge]
            t_birth, t_death = _clone_rates(model, target, factor, birth_scale, death_add, site)
            arrivals[target] += _new_cells(rng, n_edge, n_start, n_end, t_birth, t_death, dt)
    for clone in range(n_clones):
        out.cells[lesion, clone] += arrivals[clone]
    return STATUS_OK


@jit
def _note_changes(model, out, lesion_alive, time):
    """Log first appearances and lesion extinctions; returns the total burden."""
    total = 0.0
    for lesion in range(out.counters[0]):
        lesion_total = 0
        for clone in range(model.birth.size):
            n = out.cells[lesion, clone]
            lesion_total += n
            if n > 0 and out.first_seen[clone] < 0.0:
                out.first_seen[clone] = time
                if not _log_event(out, time, EVENT_CLONE_APPEARS, lesion, clone, float(n)):
                    return -1.0
        if lesion_alive[lesion] and lesion_total == 0:
            if not _log_event(out, time, EVENT_LESION_EXTINCT, lesion, -1, 0.0):
                return -1.0
        lesion_alive[lesion] = lesion_total > 0
        total += lesion_total
    return total


@jit
def simulate_kernel(model, rng, out):
    """Run one patient from time 0 to the end, to death or to extinction.

    Returns a status code; results are written into ``out``.
    """
    n_clones = model.birth.size
    n_initial = model.initial_cells.shape[0]
    if n_initial > out.cells.shape[0]:
        return STATUS_LESION_OVERFLOW
    out.cells[:n_initial, :] = model.initial_cells
    out.lesion_site[:n_initial] = model.lesion_site
    out.lesion_capacity[:n_initial] = model.lesion_capacity
    out.lesion_law[:n_initial] = model.lesion_law
    out.counters[0] = n_initial
    n_sites = model.site_cumulative_weight.size
    birth_scale = np.ones((n_sites, n_clones))
    death_add = np.zeros((n_sites, n_clones))
    arrivals = np.zeros(n_clones, np.int64)
    lesion_alive = np.zeros(out.cells.shape[0], np.bool_)
    for lesion in range(n_initial):
        lesion_alive[lesion] = True
    if _note_changes(model, out, lesion_alive, 0.0) < 0.0:
        return STATUS_EVENT_OVERFLOW
    _record(out, 0.0)
    time = 0.0
    for step in range(model.n_steps):
        time = step * model.dt
        for lesion in range(out.counters[0]):
            status = _advance_lesion(
                model, out, rng, lesion, time, birth_scale, death_add, arrivals
            )
            if status != STATUS_OK:
                return status
        time = (step + 1) * model.dt
        burden = _note_changes(model, out, lesion_alive, time)
        if burden < 0.0:
            return STATUS_EVENT_OVERFLOW
        finished = burden >= model.lethal_burden or burden == 0.0
        if finished:
            kind = EVENT_DEATH if burden > 0.0 else EVENT_EXTINCTION
            if not _log_event(out, time, kind, -1, -1, burden):
                return STATUS_EVENT_OVERFLOW
        if finished or (step + 1) % model.record_every == 0 or step + 1 == model.n_steps:
            _record(out, time)
        if finished:
            break
    return STATUS_OK
