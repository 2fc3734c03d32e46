"""The disease before diagnosis (``[history]``).

The scenario's lesions, typically one founding cell in the primary, grow with mutation and
metastatic seeding, without therapy or visits, until the total tumour reaches
``history.diagnosis_cells``. Which lesion holds how many resistant cells is then a consequence
of the history, not an input. The state at that moment is the patient on day 0.

Histories are conditioned on the tumour surviving by rejection: an extinct history is redrawn
from the next random stream, which is exact conditioning. Attempt ``a`` of replicate ``i`` of
seed ``s`` draws from ``SeedSequence(s, spawn_key=(i, HISTORY_STREAM, a))``, a stream apart
from the one the patient's course after diagnosis draws from, so a history is reproducible
alone and independent of the number of workers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from simulator.engine.events import EVENT_CLONE_APPEARS, EVENT_LESION_SEEDED, EVENT_SIZE_REACHED
from simulator.engine.kernel import Buffers, ModelArrays
from simulator.errors import EngineError
from simulator.scenario import Scenario

HISTORY_STREAM = 1


@dataclass(frozen=True)
class Diagnosis:
    """The tumour at diagnosis, as the initial state of the course after it.

    Lesions extinct by diagnosis are dropped, except the scenario's named lesions, which
    keep their places (the first rows). ``lesion_born`` is in days before diagnosis
    (negative); ``lesion_parent`` indexes these rows (-1: none, or a parent extinct by then).
    """

    cells: np.ndarray
    lesion_site: np.ndarray
    lesion_capacity: np.ndarray
    lesion_law: np.ndarray
    lesion_born: np.ndarray
    lesion_parent: np.ndarray
    days: float
    attempts: int
    buffers: Buffers
    kept: np.ndarray  # history lesion index of each row


def history_model(scenario: Scenario, model: ModelArrays) -> ModelArrays:
    """The patient's model with no therapy, no visits and no death, stopping at diagnosis."""
    history = scenario.history
    dt = float(history.step_days)
    n_steps = int(math.ceil(history.max_days / dt))
    record_every = (max(1, int(round(scenario.simulation.record_every_days / dt)))
                    if history.keep_in_tables else n_steps)
    n_sites = model.dynamics.site_cumulative_weight.size
    empty = np.zeros(0, np.int64)
    rules = model.rules._replace(
        therapy_start_step=n_steps + 1, visit_every_steps=0, external_policy=False,
        scheduled_step=empty, scheduled_lesion=empty, scheduled_modality=empty,
        consolidation_enabled=False,
    )
    mortality = model.mortality._replace(
        lethal_burden=math.inf, site_lethal_cells=np.full(n_sites, math.inf),
        stop_cells=float(history.diagnosis_cells), stop_clone=-1, hazard_per_day=0.0,
    )
    dynamics = model.dynamics._replace(dt=dt, max_block=scenario.simulation.block_steps(dt))
    return model._replace(dynamics=dynamics, rules=rules,
                          mortality=mortality, n_steps=n_steps, record_every=record_every)


def grow_to_diagnosis(scenario: Scenario, model: ModelArrays, seed: int, replicate: int) -> Diagnosis:
    """Run histories until one reaches diagnosis."""
    from simulator.runner import run_model  # the runner starts its courses from here

    grown = history_model(scenario, model)
    history = scenario.history
    for attempt in range(history.max_attempts):
        buffers = run_model(grown, seed, replicate, scenario.simulation.max_lesions,
                            stream=(HISTORY_STREAM, attempt))
        n_events = int(buffers.counters[2])
        if n_events and buffers.event_kind[n_events - 1] == EVENT_SIZE_REACHED:
            return _diagnosis(scenario, buffers, attempt + 1)
        if buffers.cells[:int(buffers.counters[0])].sum() > 0:
            raise EngineError(
                f"history.max_days: the tumour did not reach history.diagnosis_cells "
                f"({history.diagnosis_cells:g}) in {history.max_days:g} days; raise max_days "
                "or lower diagnosis_cells")
    raise EngineError(f"history.max_attempts: all {history.max_attempts} histories went extinct "
                      "before diagnosis; start from more cells or raise max_attempts")


def _diagnosis(scenario: Scenario, buffers: Buffers, attempts: int) -> Diagnosis:
    n = int(buffers.counters[0])
    cells = buffers.cells[:n]
    alive = cells.sum(axis=1) > 0
    alive[:len(scenario.lesions)] = True
    kept = np.flatnonzero(alive)
    row_of = np.full(n, -1, np.int64)
    row_of[kept] = np.arange(kept.size)
    days = float(buffers.record_time[int(buffers.counters[1]) - 1])
    parent = buffers.lesion_parent[kept]
    return Diagnosis(
        cells=cells[kept].copy(),
        lesion_site=buffers.lesion_site[kept].copy(),
        lesion_capacity=buffers.lesion_capacity[kept].copy(),
        lesion_law=buffers.lesion_law[kept].copy(),
        lesion_born=buffers.lesion_born[kept] - days,
        lesion_parent=np.where(parent >= 0, row_of[np.maximum(parent, 0)], -1),
        days=days,
        attempts=attempts,
        buffers=buffers,
        kept=kept,
    )


def at_diagnosis(model: ModelArrays, diagnosis: Diagnosis) -> ModelArrays:
    """The patient's model starting from the tumour at diagnosis."""
    return model._replace(initial_cells=diagnosis.cells, lesion_site=diagnosis.lesion_site,
                          lesion_capacity=diagnosis.lesion_capacity,
                          lesion_law=diagnosis.lesion_law)


def date_lesions(buffers: Buffers, diagnosis: Diagnosis) -> None:
    """Give the lesions present at diagnosis their founding day and parent from the history."""
    rows = diagnosis.cells.shape[0]
    buffers.lesion_born[:rows] = diagnosis.lesion_born
    buffers.lesion_parent[:rows] = diagnosis.lesion_parent


def history_trajectory(diagnosis: Diagnosis, lesion_names, clone_names) -> pd.DataFrame:
    """The history's records (days before diagnosis, negative) for the lesions kept, in the
    trajectory's long format; the record at diagnosis itself is left to the course."""
    buffers = diagnosis.buffers
    n_records = int(buffers.counters[1]) - 1
    rows = diagnosis.kept.size
    n_clones = len(clone_names)
    record = np.repeat(np.arange(n_records), rows * n_clones)
    lesion = np.tile(np.repeat(np.arange(rows), n_clones), n_records)
    clone = np.tile(np.arange(n_clones), n_records * rows)
    cells = buffers.records[record, diagnosis.kept[lesion], clone]
    table = pd.DataFrame({
        "time": buffers.record_time[record] - diagnosis.days,
        "lesion": pd.Categorical.from_codes(lesion, categories=lesion_names),
        "clone": pd.Categorical.from_codes(clone, categories=clone_names),
        "cells": cells,
    })
    # Lesions not yet founded at a record hold no rows, as in the course's table.
    founded = buffers.record_lesions[record] > diagnosis.kept[lesion]
    return table[founded].reset_index(drop=True)


def history_events(diagnosis: Diagnosis, lesion_names, clone_names) -> pd.DataFrame:
    """Seeding of the lesions kept and the clone types appearing in them, before diagnosis,
    in the events table's format (a seeding's value: its parent's row, -1 if dropped)."""
    buffers = diagnosis.buffers
    n_events = int(buffers.counters[2])
    kinds = buffers.event_kind[:n_events]
    row_of = np.full(int(buffers.counters[0]), -1, np.int64)
    row_of[diagnosis.kept] = np.arange(diagnosis.kept.size)
    lesions = buffers.event_lesion[:n_events]
    rows = np.where(lesions >= 0, row_of[np.maximum(lesions, 0)], -1)
    index = np.flatnonzero(((kinds == EVENT_CLONE_APPEARS) | (kinds == EVENT_LESION_SEEDED))
                           & (rows >= 0))
    seeded = kinds[index] == EVENT_LESION_SEEDED
    values = buffers.event_value[index].copy()
    parents = values[seeded].astype(np.int64)
    values[seeded] = np.where(parents >= 0, row_of[np.maximum(parents, 0)], -1)
    clones = [clone_names[d] for d in buffers.event_detail[index]]
    return pd.DataFrame({
        "time": buffers.event_time[index] - diagnosis.days,
        "kind": np.where(seeded, "lesion_seeded", "clone_appears"),
        "lesion": [lesion_names[r] for r in rows[index]],
        "clone": clones,
        "detail": clones,
        "value": values,
    })
