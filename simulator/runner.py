"""Running patients: from a validated scenario to results, reproducibly.

Replicate ``i`` of seed ``s`` draws from ``SeedSequence(s, spawn_key=(i,))``, the same stream
``SeedSequence(s).spawn(n)[i]`` gives, so any replicate can be rerun alone and results do not
depend on how replicates are spread over workers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import simulator
from simulator.engine.kernel import (
    STATUS_EVENT_OVERFLOW,
    STATUS_LESION_OVERFLOW,
    STATUS_OK,
    ModelArrays,
    allocate_buffers,
    simulate_kernel,
)
from simulator.lowering import lower
from simulator.results import PatientResult, build_result
from simulator.scenario import Scenario, scenario_to_dict

MAX_LESIONS_LIMIT = 1 << 20
INITIAL_EVENTS = 256


class CapacityError(RuntimeError):
    """A run needed more room than the hard limit allows."""


def replicate_generator(seed: int, replicate: int = 0) -> np.random.Generator:
    """The random stream of one replicate."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(replicate,))))


def run_model(model: ModelArrays, seed: int, replicate: int, max_lesions: int):
    """Run the kernel, enlarging its buffers and rerunning on overflow.

    A rerun draws the same random numbers (capacity never changes a draw), so the result is
    the one a run with ample room would have given.
    """
    max_events = INITIAL_EVENTS
    while True:
        buffers = allocate_buffers(model, max_lesions, max_events)
        status = simulate_kernel(model, replicate_generator(seed, replicate), buffers)
        if status == STATUS_OK:
            return buffers
        if status == STATUS_LESION_OVERFLOW:
            max_lesions *= 2
            if max_lesions > MAX_LESIONS_LIMIT:
                raise CapacityError(
                    f"more than {MAX_LESIONS_LIMIT} lesions; lower seeding.rate or the duration"
                )
        elif status == STATUS_EVENT_OVERFLOW:
            max_events *= 4
        else:  # pragma: no cover - the kernel has no other status
            raise RuntimeError(f"engine status {status}")


def simulate(scenario: Scenario, seed: int | None = None, replicate: int = 0) -> PatientResult:
    """Simulate one patient.

    Parameters
    ----------
    scenario
        A validated scenario (see :func:`simulator.load_scenario`).
    seed
        Seed of the random numbers; defaults to ``scenario.simulation.seed``.
    replicate
        Index of the replicate; replicate ``i`` is reproducible alone.
    """
    seed = scenario.simulation.seed if seed is None else int(seed)
    if seed < 0 or replicate < 0:
        raise ValueError(f"seed and replicate: must be >= 0, got {seed} and {replicate}")
    buffers = run_model(lower(scenario), seed, replicate, scenario.simulation.max_lesions)
    return build_result(scenario, buffers, provenance(scenario, seed, replicate))


def provenance(scenario: Scenario, seed: int, replicate: int) -> dict:
    return {
        "simulator_version": simulator.__version__,
        "numpy_version": np.__version__,
        "numba_version": _numba_version(),
        "seed": seed,
        "replicate": replicate,
        "scenario": scenario_to_dict(scenario),
    }


def _numba_version() -> str:
    import numba

    return numba.__version__


@dataclass(frozen=True)
class Replicates:
    """End states of many replicates, without trajectories (for verification and sweeps).

    ``cells[i, k]`` is clone type k's total over lesions at the end of replicate i;
    ``end_time[i]`` the day it ended (earlier than the duration after death or extinction);
    ``lesions[i]`` how many lesions ever existed; ``seeding_events[i]`` how many cells left
    to found a lesion (including founders that died at once).
    """

    cells: np.ndarray
    end_time: np.ndarray
    lesions: np.ndarray
    seeding_events: np.ndarray


def run_replicates(scenario: Scenario, n: int, seed: int | None = None, start: int = 0) -> Replicates:
    """Simulate replicates ``start .. start + n - 1`` and keep only their end states."""
    if n <= 0:
        raise ValueError(f"n: must be > 0, got {n}")
    seed = scenario.simulation.seed if seed is None else int(seed)
    model = lower(scenario)._replace(record_every=max(1, scenario.simulation.n_steps))
    n_clones = len(scenario.clones)
    cells = np.zeros((n, n_clones), np.int64)
    end_time = np.zeros(n)
    lesions = np.zeros(n, np.int64)
    seeding = np.zeros(n, np.int64)
    for row in range(n):
        buffers = run_model(model, seed, start + row, scenario.simulation.max_lesions)
        n_lesions, n_records = buffers.counters[0], buffers.counters[1]
        cells[row] = buffers.cells[:n_lesions].sum(axis=0)
        end_time[row] = buffers.record_time[n_records - 1]
        lesions[row] = n_lesions
        seeding[row] = buffers.counters[3]
    return Replicates(cells, end_time, lesions, seeding)
