"""Scenario -> flat arrays for the engine. Nothing here draws a random number."""

import numpy as np

from simulator.engine.dynamics import GROWTH_LAW_CODES
from simulator.engine.kernel import ModelArrays
from simulator.scenario import Scenario


def lower(scenario: Scenario) -> ModelArrays:
    """Translate a validated scenario into the engine's arrays (clone order as written)."""
    clone_names = list(scenario.clones)
    clone_index = {name: index for index, name in enumerate(clone_names)}
    site_names = scenario.sites
    site_index = {name: index for index, name in enumerate(site_names)}
    clones = scenario.clones.values()

    edges = sorted(
        (clone_index[m.source], clone_index[m.target], m.probability)
        for m in scenario.mutations
        if m.probability > 0
    )
    edge_source = np.array([e[0] for e in edges], np.int64)
    edge_start = np.searchsorted(edge_source, np.arange(len(clone_names) + 1)).astype(np.int64)
    mutation_total = np.zeros(len(clone_names))
    np.add.at(mutation_total, edge_source, [e[2] for e in edges])

    lesions = list(scenario.lesions.values())
    initial_cells = np.zeros((len(lesions), len(clone_names)), np.int64)
    for row, lesion in enumerate(lesions):
        for name, count in lesion.cells.items():
            initial_cells[row, clone_index[name]] = count

    weights = np.array([scenario.seeding.site_weights.get(site, 0.0) for site in site_names])
    cumulative = np.cumsum(weights) / weights.sum() if weights.sum() > 0 else np.ones(len(site_names))
    simulation = scenario.simulation
    return ModelArrays(
        birth=np.array([c.birth for c in clones], np.float64),
        death=np.array([c.death for c in clones], np.float64),
        mutation_total=mutation_total,
        edge_start=edge_start,
        edge_target=np.array([e[1] for e in edges], np.int64),
        edge_probability=np.array([e[2] for e in edges], np.float64),
        initial_cells=initial_cells,
        lesion_site=np.array([site_index[lesion.site] for lesion in lesions], np.int64),
        lesion_capacity=np.array([lesion.carrying_capacity for lesion in lesions], np.float64),
        lesion_law=np.array(
            [GROWTH_LAW_CODES[scenario.growth_law_of(lesion)] for lesion in lesions], np.int64
        ),
        seeding_rate=float(scenario.seeding.rate),
        site_cumulative_weight=cumulative,
        seeding_capacity=float(scenario.seeding.carrying_capacity),
        seeding_law=GROWTH_LAW_CODES[simulation.growth_law],
        dt=float(simulation.dt_days),
        n_steps=simulation.n_steps,
        record_every=simulation.record_every_steps,
        lethal_burden=float(simulation.lethal_burden),
    )
