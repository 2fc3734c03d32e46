"""A slow, plain-Python reference implementation of the engine's cell dynamics.

Every division, death, mutation and seeding event is simulated one at a time with the
Gillespie direct method, so the process is exact in distribution for the model below, with
no time step at all. It shares no code with ``simulator.engine``: the rules are written out
again from docs/model.md (section 1) so that the jitted engine can be compared with it
statistically. It is meant for small populations (up to some thousands of cells); its cost
is a few microseconds per event.

The model, per lesion and clone type with ``n`` cells (rates per cell per day):

- a cell divides at the density-adjusted birth rate ``b'``; the division gives one mutant
  daughter of type ``j`` with probability ``p_ij`` (the parent stays), otherwise two cells of
  the parent's type;
- a cell dies at the density-adjusted death rate ``d'``;
- a cell sends out a founder of a new lesion at the seeding rate ``s`` (the emitting cell
  stays where it is, as in the engine); the site is drawn with the seeding site weights, the
  new lesion has the seeding carrying capacity and the scenario's growth law;
- density: the lesion's factor ``f`` is 1 (exponential), ``1 - N/K`` (logistic) or
  ``ln(K/N)/ln(K)`` (Gompertz), with ``N`` the lesion's total; a growing clone (b > d) gets
  ``b' = d + (b - d) f`` for ``0 <= f < 1`` and ``b' = d, d' = d - (b - d) f`` for ``f < 0``,
  so the net rate is ``(b - d) f``; a declining clone keeps its rates;
- the run ends at ``duration_days``, at extinction of every cell, or as soon as the total
  reaches ``lethal_burden`` (the engine checks that only at the end of its steps).

Therapy sections of a scenario are ignored (the reference has no drugs or clinic).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import numpy as np

_LAWS = ("exponential", "logistic", "gompertz")


def density_factor(law: str, cells: float, capacity: float) -> float:
    """Fraction of a clone's intrinsic net growth rate left at lesion size ``cells``."""
    if law == "exponential" or cells <= 0:
        return 1.0
    if law == "logistic":
        return 1.0 - cells / capacity
    return math.log(capacity / cells) / math.log(capacity)


def density_adjusted(birth: float, death: float, factor: float) -> tuple[float, float]:
    """Birth and death rates whose difference is the net rate scaled by ``factor``."""
    net = birth - death
    if net <= 0.0 or factor >= 1.0:
        return birth, death
    if factor >= 0.0:
        return death + net * factor, death
    return death, death - net * factor


@dataclass(frozen=True)
class ReferenceModel:
    """The scenario as plain Python lists (clone order and site order as in the scenario)."""

    clones: tuple[str, ...]
    birth: tuple[float, ...]
    death: tuple[float, ...]
    edges: tuple[tuple[tuple[int, float], ...], ...]  # per source clone: (target, probability)
    sites: tuple[str, ...]
    initial: tuple[tuple[int, float, str, tuple[int, ...]], ...]  # (site, capacity, law, cells)
    seeding_rate: float
    site_weights: tuple[float, ...]
    seeding_capacity: float
    seeding_law: str
    duration: float
    lethal_burden: float
    dt: float

    @classmethod
    def from_scenario(cls, scenario) -> ReferenceModel:
        clones = tuple(scenario.clones)
        index = {name: i for i, name in enumerate(clones)}
        edges: list[list[tuple[int, float]]] = [[] for _ in clones]
        for mutation in scenario.mutations:
            if mutation.probability > 0:
                edges[index[mutation.source]].append((index[mutation.target], mutation.probability))
        sites = tuple(scenario.sites)
        site_index = {name: i for i, name in enumerate(sites)}
        initial = []
        for lesion in scenario.lesions.values():
            cells = [0] * len(clones)
            for name, count in lesion.cells.items():
                cells[index[name]] = int(count)
            law = lesion.growth_law or scenario.simulation.growth_law
            initial.append((site_index[lesion.site], float(lesion.carrying_capacity), law,
                            tuple(cells)))
        simulation = scenario.simulation
        return cls(
            clones=clones,
            birth=tuple(float(c.birth) for c in scenario.clones.values()),
            death=tuple(float(c.death) for c in scenario.clones.values()),
            edges=tuple(tuple(e) for e in edges),
            sites=sites,
            initial=tuple(initial),
            seeding_rate=float(scenario.seeding.rate),
            site_weights=tuple(float(scenario.seeding.site_weights.get(s, 0.0)) for s in sites),
            seeding_capacity=float(scenario.seeding.carrying_capacity),
            seeding_law=simulation.growth_law,
            duration=float(simulation.duration_days),
            lethal_burden=float(simulation.lethal_burden),
            dt=float(simulation.dt_days),
        )


@dataclass
class ReferenceRun:
    """One replicate's end state.

    ``cells[l][k]`` cells of clone k in lesion l at ``end_time``; lesions in order of founding
    (initial ones first). ``born[l]`` the day lesion l was founded (0 for initial ones),
    ``extinct_at[l]`` the day it lost its last cell (inf if it never did), ``seeding_events``
    how many founders were sent out, ``status`` 'duration', 'extinction' or 'death'.
    """

    cells: list[list[int]]
    site: list[int]
    born: list[float]
    parent: list[int]
    extinct_at: list[float]
    end_time: float
    seeding_events: int
    n_events: int
    status: str
    n_initial: int

    def totals(self) -> np.ndarray:
        """Cells per clone summed over lesions."""
        return np.asarray(self.cells, dtype=np.int64).sum(axis=0)

    def lesions_alive(self) -> int:
        return sum(1 for row in self.cells if sum(row) > 0)

    def lesions_recorded(self, dt: float) -> int:
        """Lesions the engine would list: initial ones, and seeded ones whose founder's line
        still had a cell at the end of the step of ``dt`` days in which it was founded."""
        count = self.n_initial
        for lesion in range(self.n_initial, len(self.cells)):
            step_end = (math.floor(self.born[lesion] / dt) + 1) * dt
            if self.extinct_at[lesion] > step_end:
                count += 1
        return count


def _python_rng(seed: int, replicate: int) -> random.Random:
    """A per-replicate stream from the same SeedSequence layout the engine uses."""
    state = np.random.SeedSequence(seed, spawn_key=(replicate,)).generate_state(4, np.uint64)
    return random.Random(int.from_bytes(state.tobytes(), "little"))


def simulate_reference(model, seed: int, replicate: int = 0,
                       max_events: int = 50_000_000) -> ReferenceRun:
    """Run one replicate of ``model`` (a ReferenceModel or a Scenario) event by event."""
    if not isinstance(model, ReferenceModel):
        model = ReferenceModel.from_scenario(model)
    rng = _python_rng(seed, replicate)
    n_clones = len(model.clones)
    seed_rate = model.seeding_rate
    mutation_total = [sum(p for _, p in edges) for edges in model.edges]
    weight_total = sum(model.site_weights)

    cells: list[list[int]] = []
    site: list[int] = []
    capacity: list[float] = []
    law: list[str] = []
    born: list[float] = []
    parent: list[int] = []
    extinct_at: list[float] = []
    lesion_total: list[int] = []
    # Per lesion: per-clone adjusted birth and death, and the lesion's total event rate.
    lesion_birth: list[list[float]] = []
    lesion_death: list[list[float]] = []
    lesion_rate: list[float] = []

    def refresh(lesion: int) -> None:
        factor = density_factor(law[lesion], lesion_total[lesion], capacity[lesion])
        rate = 0.0
        births = lesion_birth[lesion]
        deaths = lesion_death[lesion]
        row = cells[lesion]
        for k in range(n_clones):
            b, d = density_adjusted(model.birth[k], model.death[k], factor)
            births[k] = b
            deaths[k] = d
            if row[k]:
                rate += row[k] * (b + d + seed_rate)
        lesion_rate[lesion] = rate

    def add_lesion(site_id, cap, growth_law, row, time, parent_id) -> int:
        if growth_law not in _LAWS:
            raise ValueError(f"growth law: must be one of {_LAWS}, got {growth_law!r}")
        cells.append(list(row))
        site.append(site_id)
        capacity.append(cap)
        law.append(growth_law)
        born.append(time)
        parent.append(parent_id)
        total = sum(row)
        extinct_at.append(math.inf if total > 0 else time)
        lesion_total.append(total)
        lesion_birth.append([0.0] * n_clones)
        lesion_death.append([0.0] * n_clones)
        lesion_rate.append(0.0)
        refresh(len(cells) - 1)
        return len(cells) - 1

    for site_id, cap, growth_law, row in model.initial:
        add_lesion(site_id, cap, growth_law, row, 0.0, -1)
    n_initial = len(cells)

    burden = sum(lesion_total)
    time = 0.0
    seeding_events = 0
    n_events = 0
    status = "duration"
    if burden == 0:
        status = "extinction"
    elif burden >= model.lethal_burden:
        status = "death"
    while status == "duration":
        total_rate = math.fsum(lesion_rate)
        if total_rate <= 0.0:  # only cells that neither divide nor die are left
            time = model.duration
            break
        time += rng.expovariate(total_rate)
        if time >= model.duration:
            time = model.duration
            break
        n_events += 1
        if n_events > max_events:
            raise RuntimeError(f"more than {max_events} events; the reference is for small runs")
        # Which lesion, then which clone and which event.
        target = rng.random() * total_rate
        lesion = -1
        for index, rate in enumerate(lesion_rate):
            if rate <= 0.0:
                continue
            lesion = index
            if target < rate:
                break
            target -= rate
        else:  # rounding walked past the end: take the last event of the last lesion
            target = math.nextafter(lesion_rate[lesion], 0.0)
        row = cells[lesion]
        births = lesion_birth[lesion]
        deaths = lesion_death[lesion]
        clone = -1
        per_clone = 0.0
        for k in range(n_clones):
            n = row[k]
            rate = n * (births[k] + deaths[k] + seed_rate)
            if rate <= 0.0:
                continue
            clone, per_clone = k, rate
            if target < rate:
                break
            target -= rate
        else:
            target = math.nextafter(per_clone, 0.0)
        if clone < 0:  # pragma: no cover - a lesion with a positive rate has cells
            raise RuntimeError("event drawn in an empty lesion")
        n = row[clone]
        if target < n * births[clone]:
            daughter = clone
            if mutation_total[clone] > 0.0:
                u = rng.random()
                for mutant, probability in model.edges[clone]:
                    if u < probability:
                        daughter = mutant
                        break
                    u -= probability
            row[daughter] += 1
            lesion_total[lesion] += 1
            burden += 1
            refresh(lesion)
        elif target < n * (births[clone] + deaths[clone]):
            row[clone] -= 1
            lesion_total[lesion] -= 1
            burden -= 1
            if lesion_total[lesion] == 0:
                extinct_at[lesion] = time
            refresh(lesion)
        else:
            seeding_events += 1
            u = rng.random() * weight_total
            chosen = len(model.site_weights) - 1
            for site_id, weight in enumerate(model.site_weights):
                if u < weight:
                    chosen = site_id
                    break
                u -= weight
            new_row = [0] * n_clones
            new_row[clone] = 1
            add_lesion(chosen, model.seeding_capacity, model.seeding_law, new_row, time, lesion)
            burden += 1
        if burden == 0:
            status = "extinction"
        elif burden >= model.lethal_burden:
            status = "death"
    return ReferenceRun(
        cells=cells, site=site, born=born, parent=parent, extinct_at=extinct_at,
        end_time=time, seeding_events=seeding_events, n_events=n_events, status=status,
        n_initial=n_initial,
    )


@dataclass(frozen=True)
class ReferenceReplicates:
    """End states of many reference replicates, shaped like ``simulator.Replicates``.

    ``lesions`` follows the engine's bookkeeping (see ``ReferenceRun.lesions_recorded``);
    ``lesions_alive`` counts lesions with cells at the end.
    """

    cells: np.ndarray
    end_time: np.ndarray
    lesions: np.ndarray
    seeding_events: np.ndarray
    lesions_alive: np.ndarray
    n_events: np.ndarray


def run_reference_replicates(scenario, n: int, seed: int, start: int = 0) -> ReferenceReplicates:
    """Replicates ``start .. start + n - 1`` of the reference process."""
    model = ReferenceModel.from_scenario(scenario)
    cells = np.zeros((n, len(model.clones)), np.int64)
    end_time = np.zeros(n)
    lesions = np.zeros(n, np.int64)
    seeding = np.zeros(n, np.int64)
    alive = np.zeros(n, np.int64)
    events = np.zeros(n, np.int64)
    for row in range(n):
        run = simulate_reference(model, seed, start + row)
        cells[row] = run.totals()
        end_time[row] = run.end_time
        lesions[row] = run.lesions_recorded(model.dt)
        seeding[row] = run.seeding_events
        alive[row] = run.lesions_alive()
        events[row] = run.n_events
    return ReferenceReplicates(cells, end_time, lesions, seeding, alive, events)
