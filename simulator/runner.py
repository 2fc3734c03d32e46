"""Running patients: from a validated scenario to results, reproducibly.

Replicate ``i`` of seed ``s`` draws from ``SeedSequence(s, spawn_key=(i,))``, the same stream
``SeedSequence(s).spawn(n)[i]`` gives, so any replicate can be rerun alone and results do not
depend on how replicates are spread over workers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulator.engine import clinic as cl
from simulator.engine.events import EVENT_BIOPSY, log_event
from simulator.engine.kernel import (
    STATUS_EVENT_OVERFLOW,
    STATUS_LESION_OVERFLOW,
    STATUS_NON_FINITE,
    STATUS_OK,
    STATUS_POPULATION_OVERFLOW,
    STATUS_STACK_OVERFLOW,
    STATUS_VISIT,
    Buffers,
    ModelArrays,
    MAX_CELLS,
    allocate_buffers,
    run_kernel,
)
from simulator.errors import CapacityError, EngineError
from simulator.history import Diagnosis, at_diagnosis, date_lesions, grow_to_diagnosis
from simulator.lowering import lower
from simulator.policy import (
    LocalTherapy,
    Policy,
    PolicyError,
    StartDrug,
    StopDrug,
    SwitchLine,
    Visit,
    check_actions,
    lesions_seen,
)
from simulator.results import (
    PatientResult,
    build_result,
    column_name,
    lesion_names_of,
    observation_tables,
    run_context,
)
from simulator.scenario import Scenario, scenario_to_dict

MAX_LESIONS_LIMIT = 1 << 20
INITIAL_EVENTS = 1024
INITIAL_STACK = 1024




def replicate_generator(seed: int, replicate: int = 0, stream: tuple[int, ...] = ()) -> np.random.Generator:
    """The random stream of one replicate (``stream``: a sub-stream, e.g. of its history)."""
    return np.random.Generator(np.random.PCG64(
        np.random.SeedSequence(seed, spawn_key=(replicate, *stream))))


def run_model(model: ModelArrays, seed: int, replicate: int, max_lesions: int,
              policy: "PolicyDriver | None" = None, scenario: Scenario | None = None,
              stream: tuple[int, ...] = ()):
    """Run the kernel, enlarging its buffers and rerunning on overflow.

    A rerun draws the same random numbers (capacity never changes a draw), so the result is
    the one a run with ample room would have given. With a ``policy``, the kernel stops at
    each visit and resumes once the policy has decided.
    """
    max_events = INITIAL_EVENTS
    max_stack = INITIAL_STACK
    if policy is not None:
        model = model._replace(rules=model.rules._replace(external_policy=True))
    while True:
        buffers = allocate_buffers(model, max_lesions, max_events, max_stack)
        rng = replicate_generator(seed, replicate, stream)
        status = run_kernel(model, rng, buffers)
        while status == STATUS_VISIT:
            policy.decide(model, buffers)
            status = run_kernel(model, rng, buffers)
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
        elif status == STATUS_STACK_OVERFLOW:
            max_stack *= 4
        elif status == STATUS_NON_FINITE:
            raise EngineError(_non_finite_message(model, buffers, scenario))
        elif status == STATUS_POPULATION_OVERFLOW:
            day = buffers.clock[cl.STEP] * model.dynamics.dt
            raise EngineError(f"population above {MAX_CELLS:.1e} cells on day {day:g} (the most "
                              "int64 counts hold safely); lower simulation.lethal_burden or the rates")
        else:  # pragma: no cover - the kernel has no other status
            raise RuntimeError(f"engine status {status}")


def _non_finite_message(model: ModelArrays, buffers: Buffers, scenario: Scenario | None = None) -> str:
    """Where the engine found a non-finite rate, by name when the scenario is known."""
    clone, site = int(buffers.clock[cl.BAD_CLONE]), int(buffers.clock[cl.BAD_SITE])
    day = buffers.clock[cl.STEP] * model.dynamics.dt
    lesions = [str(i) for i in np.flatnonzero(buffers.lesion_site[:buffers.counters[0]] == site)]
    clone_name, site_name = f"#{clone}", f"#{site}"
    if scenario is not None:
        clone_name, site_name = list(scenario.clones)[clone], scenario.sites[site]
        lesions = list(lesion_names_of(scenario, np.array(scenario.sites, dtype=object)[
            buffers.lesion_site[:buffers.counters[0]]])[[int(i) for i in lesions]])
    return (f"non-finite drug effect on clone '{clone_name}' at site '{site_name}' (lesions: "
            f"{', '.join(lesions) or 'none'}) on day {day:g}")


def simulate(scenario: Scenario, seed: int | None = None, replicate: int = 0,
             policy: Policy | None = None, keep_trajectory: bool = True) -> PatientResult:
    """Simulate one patient.

    Parameters
    ----------
    scenario
        A validated scenario (see :func:`simulator.load_scenario`).
    seed
        Seed of the random numbers; defaults to ``scenario.simulation.seed``.
    replicate
        Index of the replicate; replicate ``i`` is reproducible alone.
    policy
        A Python policy (see :mod:`simulator.policy`) deciding at each visit instead of the
        scenario's built-in rules.
    keep_trajectory
        Record cell counts every ``simulation.record_every_days``; False keeps only the start
        and the end (for cohorts, where only endpoints matter).
    """
    seed = scenario.simulation.seed if seed is None else int(seed)
    buffers, diagnosis = run_patient(scenario, seed, replicate, policy, keep_trajectory)
    return build_result(scenario, buffers, provenance(scenario, seed, replicate), diagnosis)


def run_patient(scenario: Scenario, seed: int, replicate: int = 0, policy: Policy | None = None,
                keep_trajectory: bool = True) -> tuple[Buffers, "Diagnosis | None"]:
    """The engine's arrays after one patient (see :func:`simulate`), and the history's state
    at diagnosis (None without a history): what cohorts read their endpoints from."""
    if seed < 0 or replicate < 0:
        raise ValueError(f"seed and replicate: must be >= 0, got {seed} and {replicate}")
    driver = PolicyDriver(scenario, policy) if policy is not None else None
    model = lower(scenario)
    diagnosis = None
    max_lesions = scenario.simulation.max_lesions
    if scenario.history.enabled:
        diagnosis = grow_to_diagnosis(scenario, model, seed, replicate)
        model = at_diagnosis(model, diagnosis)
        max_lesions = max(max_lesions, 2 * diagnosis.cells.shape[0])
    if not keep_trajectory:
        model = model._replace(record_every=max(1, scenario.simulation.n_steps))
    buffers = run_model(model, seed, replicate, max_lesions, driver, scenario)
    if diagnosis is not None:
        date_lesions(buffers, diagnosis)
    return buffers, diagnosis


class PolicyDriver:
    """Shows a Python policy each visit and turns its answer into kernel actions."""

    def __init__(self, scenario: Scenario, policy: Policy):
        self.scenario = scenario
        self.policy = policy
        self.lines = list(scenario.therapy.lines)
        self.modalities = list(scenario.local_therapy)
        self.sites = scenario.sites

    def decide(self, model: ModelArrays, out: Buffers) -> None:
        visit = self._visit(model, out)
        actions = check_actions(self.policy(visit), visit)
        names = list(visit.lesions["lesion"])
        index_of = {name: i for i, name in enumerate(self._names(out))}
        encoded = []
        for action in actions:
            if isinstance(action, LocalTherapy):
                lesion, modality = index_of[action.lesion], self.modalities.index(action.modality)
                if not cl.courses_left(model.rules, out, lesion, modality):
                    limit = int(model.rules.modality_max_courses[modality])
                    raise PolicyError(
                        f"LocalTherapy: lesion '{action.lesion}' has had {limit} course(s) of "
                        f"{action.modality}, the most local_therapy.{action.modality}."
                        f"max_courses_per_lesion allows")
                encoded.append((cl.ACTION_LOCAL_THERAPY, lesion, modality))
            elif isinstance(action, SwitchLine):
                line = -1 if action.line is None else self.lines.index(action.line)
                encoded += [(cl.ACTION_SWITCH_LINE, line, 0),
                            (cl.ACTION_REBASELINE, cl.REBASELINE_NOW, 0)]
            elif isinstance(action, StopDrug):
                encoded.append((cl.ACTION_STOP_DRUG, cl.REASON_POLICY, 0))
            elif isinstance(action, StartDrug):
                encoded.append((cl.ACTION_START_DRUG, cl.REASON_POLICY, 0))
        if any(kind == cl.ACTION_LOCAL_THERAPY for kind, _, _ in encoded) and names:
            encoded.append((cl.ACTION_REBASELINE, cl.REBASELINE_NEXT_VISIT, 0))
        if len(encoded) > out.action_kind.size:
            raise PolicyError(f"policy: at most {out.action_kind.size} actions per visit, got {len(encoded)}")
        for index, (kind, a, b) in enumerate(encoded):
            out.action_kind[index], out.action_a[index], out.action_b[index] = kind, a, b
        out.counters[5] = len(encoded)

    def _names(self, out: Buffers):
        n_lesions = int(out.counters[0])
        return lesion_names_of(self.scenario, np.array(self.sites, dtype=object)[out.lesion_site[:n_lesions]])

    def _visit(self, model: ModelArrays, out: Buffers) -> Visit:
        visit = int(out.counters[4]) - 1
        names = self._names(out)
        n = int(out.obs_lesions[visit])
        sites = np.array(self.sites, dtype=object)[out.lesion_site[:n]]
        history, _ = observation_tables(self.scenario, out, names)
        now = history.iloc[-1]
        mechanisms = self.scenario.mechanisms
        line = int(out.clock[cl.LINE])
        time = float(out.obs_time[visit])
        seen = lesions_seen(out.obs_diameter[visit, :n], names, sites, out.is_target[:n],
                            out.progressing[:n], out.seen_at_baseline[:n])

        def biopsy(lesion: str) -> dict[str, float]:
            if lesion not in set(seen["lesion"]):
                raise PolicyError(f"biopsy: no lesion '{lesion}' is seen on day {time:g}; "
                                  f"seen: {', '.join(seen['lesion']) or 'none'}")
            index = list(names).index(lesion)
            cl.biopsy(model.rules, out, index, out.found)
            found = {m: float(out.found[i]) for i, m in enumerate(mechanisms) if out.found[i] > 0}
            for mechanism, fraction in (found.items() or [(None, 0.0)]):
                detail = -1 if mechanism is None else mechanisms.index(mechanism)
                if not log_event(out, time, EVENT_BIOPSY, index, detail, fraction):
                    raise CapacityError("event log full during a policy's biopsy")
            return found

        return Visit(
            time=time,
            day_on_therapy=time - self.scenario.therapy.start_day,
            response=str(now["response"]),
            lesions=seen,
            sum_diameters_mm=float(now["sum_diameters_mm"]),
            baseline_sum_mm=float(out.level[cl.BASELINE_SLD]),
            nadir_sum_mm=float(out.level[cl.NADIR_SLD]),
            marker=float(now["marker"]),
            ctdna_positive=bool(now["ctdna_positive"]),
            ctdna_vaf={m: float(now[f"vaf_{column_name(m)}"]) if now[f"detected_{column_name(m)}"] else 0.0
                       for m in mechanisms},
            line=self.lines[line] if line >= 0 else None,
            drug_on=bool(out.clock[cl.DRUG_ON]),
            history=history.iloc[:-1].reset_index(drop=True),
            lines=self.lines,
            modalities=self.modalities,
            _biopsy=biopsy,
        )


def provenance(scenario: Scenario, seed: int, replicate: int) -> dict:
    """Enough to rerun the patient (``simulator run provenance.json``): the resolved scenario,
    seed and replicate, with versions, command line, time and commit (:func:`run_context`)."""
    return {
        **run_context(),
        "seed": seed,
        "replicate": replicate,
        "scenario": scenario_to_dict(scenario),
    }


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
