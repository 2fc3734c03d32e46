"""The simulation loop: lesions x clone types advanced step by step, with therapy and the clinic.

State is a handful of flat arrays (struct of arrays). Each step, every living (lesion, clone)
compartment advances by the exact BNB update with its rates held constant over the step;
divisions that give a mutant daughter and cells that leave to found a new lesion are Poisson
given the path (its integral taken by the trapezoid rule), and each new cell is born at a
time drawn within the step and lives out the rest of the step stochastically.

A step runs in this order: a visit if one is due (measure, assess, decide), the actions
decided, scheduled local therapy, the first line's start, the doses due, the drug effects
averaged over the step, the cell dynamics, pharmacokinetics, and the death check. Between the
clinic's events, steps of ``dt`` are joined into one where the rates allow (``_plan_block``):
doses and pharmacokinetics still go step by step, the cells advance once at the average rates. Everything
the loop needs to go on lives in ``Buffers``, so the kernel can stop at a visit, let a Python
policy decide, and resume where it stopped.

The kernel never raises a user-facing error: capacity problems come back as a status code.
"""

import math
from typing import NamedTuple

import numpy as np

from simulator.engine import clinic as cl
from simulator.engine.dynamics import (
    EXPONENTIAL,
    advance_without_emission,
    bnb_advance,
    density_adjusted,
    density_factor,
    emission_interval,
    emission_root,
    exact_held_factor,
    exponential_path_integral,
    exponential_path_share,
    exponential_path_time,
    first_emission_time,
    size_biased_lineage,
)
from simulator.engine.events import (
    EVENT_BIOPSY,
    EVENT_CLONE_APPEARS,
    EVENT_DEATH,
    EVENT_DRUG_RESTART,
    EVENT_DRUG_STOP,
    EVENT_EXTINCTION,
    EVENT_LESION_EXTINCT,
    EVENT_LESION_SEEDED,
    EVENT_LINE_START,
    EVENT_LOCAL_THERAPY,
    EVENT_NAMES,
    EVENT_LESION_PROGRESSING,
    EVENT_PROGRESSION,
    EVENT_SIZE_REACHED,
    EVENT_THERAPY_EXHAUSTED,
    log_event,
)
from simulator.engine.jit import jit, jit_inline
from simulator.engine.records import as_record
from simulator.engine.therapy import advance_pk, give_due_doses, step_drug_effects, step_switch_rates

STATUS_OK = 0
STATUS_LESION_OVERFLOW = 1
STATUS_EVENT_OVERFLOW = 2
STATUS_VISIT = 3  # stopped at a visit for a Python policy to decide
STATUS_STACK_OVERFLOW = 4
STATUS_NON_FINITE = 5  # a rate was not a finite number (clone and site in clock slots)
STATUS_POPULATION_OVERFLOW = 6  # a count left the range int64 holds safely
# Counts stay below this (2^62) so that a step's growth cannot wrap around int64.
MAX_CELLS = 4.6e18

# Causes of death (event detail of EVENT_DEATH); a site index >= 0 is death from that organ.
DEATH_BURDEN = -1
DEATH_HAZARD = -2
_ALIVE = -3

# Slots of ``counters``.
COUNT_LESIONS = 0  # lesions listed
COUNT_RECORDS = 1
COUNT_EVENTS = 2
COUNT_SEEDING = 3  # cells that left to found a lesion, including founders that died at once
COUNT_VISITS = 4
COUNT_ACTIONS = 5
COUNT_STACK = 6  # lineages queued within the current step
COUNT_PROVISIONAL = 7  # lesions founded this step, not yet listed
COUNT_STEPS = 8  # steps taken (a joined step counts once)
COUNT_COMPARTMENT_STEPS = 9  # (lesion, clone) compartments advanced, summed over steps
COUNT_LINEAGES = 10  # groups of cells advanced: compartments and the cells born within steps
N_COUNTERS = 11

__all__ = ["EVENT_NAMES", "ModelArrays", "Dynamics", "DrugArrays", "Buffers",
           "run_kernel", "simulate_kernel"]

# Near a stopping size, sub-steps let a population grow by at most this fraction each, which
# bounds the overshoot of the size (for populations large enough to grow near-deterministically).
STOP_RESOLUTION = 0.01
_MAX_SUBSTEPS = 4096
# A joined step is not taken if a stop could come within this factor of the sizes (or the
# hazard) every compartment would reach at its current rate (an upper envelope of expected
# growth: density only slows it); the margin covers the noise of the lesions that matter.
_STOP_MARGIN = 1.05
_DAYS_PER_YEAR = 365.25

# A compartment expecting more emissions than this in the rest of a step (P(none) < 1e-7)
# is advanced in bulk: survivors by one BNB update, emissions Poisson along its path.
_BULK_EMISSIONS = 16.0
# In bulk, new cells of one type are followed one by one up to this many; beyond it they are
# queued in groups by birth time, each group born at its bin's midpoint (an error of order
# (dt / bins)^2 in their growth, where so many arise that their sum is nearly deterministic).
_INDIVIDUAL_NEW_CELLS = 16
_BULK_BINS = 8


class Dynamics(NamedTuple):
    """Cell dynamics: rates, the mutation graph (CSR by source) and seeding."""

    birth: np.ndarray  # [K] per day
    death: np.ndarray  # [K] per day
    mutation_total: np.ndarray  # [K] probability per division of any mutant daughter
    edge_start: np.ndarray  # [K + 1] CSR offsets of each source's mutation edges
    edge_target: np.ndarray  # [E]
    edge_probability: np.ndarray  # [E] per division
    switch_start: np.ndarray  # [K + 1] CSR offsets of each source's phenotype switches
    switch_target: np.ndarray  # [Es]
    site_cumulative_weight: np.ndarray  # [S] normalised cumulative weights
    seeding_rate: float  # per cell per day
    seeding_capacity: float
    seeding_law: int
    dt: float
    max_block: int  # the most steps joined into one (1: fixed steps; see ``_plan_block``)
    step_tolerance: float  # log cells (see ``scenario.Simulation.step_tolerance``)
    residual_fraction: float  # of the volume of cells a drug kills, left as residual tissue
    residual_clearance: float  # per day


class DrugArrays(NamedTuple):
    """Drugs (PK and Hill effects, CSR by drug) and each line's dosing items (CSR by line).

    Exposures are relative to standard dosing; counts of steps are in steps of ``dt``.
    """

    drug_absorption: np.ndarray  # [D] per day (0: instantaneous)
    drug_elimination: np.ndarray  # [D] per day
    drug_normalisation: np.ndarray  # [D] exposure per unit amount
    drug_penetration: np.ndarray  # [D, S]
    effect_start: np.ndarray  # [D + 1]
    effect_clone: np.ndarray
    effect_birth: np.ndarray  # maximal fractional birth inhibition
    effect_death: np.ndarray  # maximal added death, per day
    effect_ec50: np.ndarray
    effect_hill: np.ndarray
    line_item_start: np.ndarray  # [N + 1]
    item_drug: np.ndarray
    item_dose: np.ndarray
    item_every: np.ndarray  # steps
    item_cycle: np.ndarray  # steps, 0 for no cycle
    item_active: np.ndarray  # steps
    switch_source: np.ndarray  # [Es] phenotype switches, in Dynamics' CSR order
    switch_off: np.ndarray  # [Es] per day without drug
    switch_on: np.ndarray  # [Es] per day at full effect of the edge's drug
    switch_drug: np.ndarray  # [Es] -1: no drug dependence
    switch_ec50: np.ndarray  # [Es]
    switch_hill: np.ndarray  # [Es]


class Mortality(NamedTuple):
    """When the patient dies (see ``scenario.Mortality``)."""

    lethal_burden: float  # total cells
    site_lethal_cells: np.ndarray  # [S] cells at one site that kill (inf: no limit)
    stop_cells: float  # the run stops when the total (or stop_clone) reaches it (inf: never)
    stop_clone: int  # -1: the total
    growth_bound: float  # fastest intrinsic net growth rate b - d of any clone type, per day
    hazard_per_day: float  # at the reference burden (0: no burden hazard)
    hazard_reference_cells: float
    hazard_exponent: float


class ModelArrays(NamedTuple):
    """Everything the engine needs, grouped as its helpers take it (see ``lowering``).

    ``simulate_kernel`` turns each group into a record (``records.as_record``) once per call,
    so a helper receives one pointer per group instead of every array in it.
    """

    dynamics: Dynamics
    drugs: DrugArrays
    rules: tuple  # lowering.Rules: the clinic's numbers, one field per row of lowering.RULE_FIELDS
    mortality: Mortality
    initial_cells: np.ndarray  # [L0, K] int64
    lesion_site: np.ndarray  # [L0] site index
    lesion_capacity: np.ndarray  # [L0] cells
    lesion_law: np.ndarray  # [L0] growth-law code
    n_steps: int
    record_every: int  # steps


class Population(NamedTuple):
    cells: np.ndarray
    lesion_site: np.ndarray
    lesion_capacity: np.ndarray
    lesion_law: np.ndarray
    lesion_parent: np.ndarray
    lesion_born: np.ndarray
    lesion_alive: np.ndarray
    lesion_founder: np.ndarray
    residual: np.ndarray
    held_factor: np.ndarray
    site_cells: np.ndarray
    lesion_remap: np.ndarray
    stack_lesion: np.ndarray
    stack_clone: np.ndarray
    stack_cells: np.ndarray
    stack_time: np.ndarray
    first_seen: np.ndarray
    counters: np.ndarray
    event_time: np.ndarray
    event_kind: np.ndarray
    event_lesion: np.ndarray
    event_detail: np.ndarray
    event_value: np.ndarray
    record_time: np.ndarray
    record_lesions: np.ndarray
    records: np.ndarray


class DrugState(NamedTuple):
    gut: np.ndarray
    central: np.ndarray
    dose_given: np.ndarray
    scale: np.ndarray  # [S, K] scratch
    switch_rate: np.ndarray  # [S, Es] per day over the current step
    leave_rate: np.ndarray  # [S, K] total switching away, per day
    # Scratch of ``_plan_block``: each step's averaged effects, and the state it starts from.
    day_birth: np.ndarray  # [B, S, K]
    day_death: np.ndarray  # [B, S, K]
    day_leave: np.ndarray  # [B, S, K]
    day_switch: np.ndarray  # [B, S, Es]
    saved: np.ndarray  # [3, D] gut, central, dose_given
    site_bound: np.ndarray  # [S] cells a site could hold at the end of the step


class ClinicView(NamedTuple):
    """The buffers visits, rules and actions read and write."""

    counters: np.ndarray
    cells: np.ndarray
    residual: np.ndarray
    lesion_site: np.ndarray
    clock: np.ndarray
    level: np.ndarray
    death_add: np.ndarray
    birth_scale: np.ndarray
    found: np.ndarray
    biopsy_lesion: np.ndarray
    is_target: np.ndarray
    seen_at_baseline: np.ndarray
    lesion_nadir: np.ndarray
    lesion_courses: np.ndarray
    progressing: np.ndarray
    obs_time: np.ndarray
    obs_lesions: np.ndarray
    obs_diameter: np.ndarray
    obs_target: np.ndarray
    obs_marker: np.ndarray
    obs_tumour_copies: np.ndarray
    obs_copies: np.ndarray
    obs_sld: np.ndarray
    obs_response: np.ndarray
    obs_line: np.ndarray
    obs_drug_on: np.ndarray
    action_kind: np.ndarray
    action_a: np.ndarray
    action_b: np.ndarray
    event_time: np.ndarray
    event_kind: np.ndarray
    event_lesion: np.ndarray
    event_detail: np.ndarray
    event_value: np.ndarray


class Buffers(NamedTuple):
    """Preallocated state and outputs; their sizes are the capacities the kernel respects."""

    cells: np.ndarray  # [Lmax, K] current counts
    lesion_site: np.ndarray  # [Lmax]
    lesion_capacity: np.ndarray  # [Lmax]
    lesion_law: np.ndarray  # [Lmax]
    lesion_parent: np.ndarray  # [Lmax], -1 for lesions present at time 0
    lesion_born: np.ndarray  # [Lmax] day of seeding
    lesion_alive: np.ndarray  # [Lmax] had cells at the end of the last step
    lesion_founder: np.ndarray  # [Lmax] clone type of the founding cell (-1: initial lesion)
    residual: np.ndarray  # [Lmax] residual tissue seen on CT, in volumes of one cell
    held_factor: np.ndarray  # [Lmax] scratch: density factors of a joined step (``_plan_block``)
    site_cells: np.ndarray  # [S] cells at each site at the end of the last step
    lesion_remap: np.ndarray  # [Lmax] scratch: where each lesion founded this step was listed
    stack_lesion: np.ndarray  # [Q] lineages queued within a step (see ``_advance_lesion``)
    stack_clone: np.ndarray
    stack_cells: np.ndarray
    stack_time: np.ndarray  # days into the step
    record_time: np.ndarray  # [R]
    record_lesions: np.ndarray  # [R] lesions existing at that record
    records: np.ndarray  # [R, Lmax, K]
    event_time: np.ndarray  # [Emax]
    event_kind: np.ndarray  # [Emax]
    event_lesion: np.ndarray  # [Emax]
    event_detail: np.ndarray  # [Emax] meaning depends on the kind (see ``events``)
    event_value: np.ndarray  # [Emax]
    first_seen: np.ndarray  # [K] first day a type had cells, -1 if never
    counters: np.ndarray  # [N_COUNTERS] (slots COUNT_*)
    clock: np.ndarray  # [N_CLOCK] integer clinic state (see ``clinic``)
    level: np.ndarray  # [N_LEVEL] float clinic state
    gut: np.ndarray  # [D] drug amounts awaiting absorption
    central: np.ndarray  # [D] drug amounts in the body
    dose_given: np.ndarray  # [D] cumulative dose
    birth_scale: np.ndarray  # [S, K] drug factor on birth over the current step
    death_add: np.ndarray  # [S, K] drug-added death over the current step
    found: np.ndarray  # [M] scratch: mechanism fractions found at biopsy
    biopsy_lesion: np.ndarray  # [1] lesion biopsied at this visit, -1 for none
    is_target: np.ndarray  # [Lmax] RECIST target lesion at the current baseline
    seen_at_baseline: np.ndarray  # [Lmax]
    lesion_nadir: np.ndarray  # [Lmax] smallest diameter since baseline, mm
    lesion_courses: np.ndarray  # [Lmax, Q] courses of each local therapy received
    progressing: np.ndarray  # [Lmax] progressing on its own at this visit
    obs_time: np.ndarray  # [V]
    obs_lesions: np.ndarray  # [V] lesions existing (in truth) at the visit
    obs_diameter: np.ndarray  # [V, Lmax] CT diameter, mm (0: not seen)
    obs_target: np.ndarray  # [V, Lmax]
    obs_marker: np.ndarray  # [V]
    obs_tumour_copies: np.ndarray  # [V] tumour genome copies in the blood draw
    obs_copies: np.ndarray  # [V, M + 1] copies by mechanism (last: no mechanism)
    obs_sld: np.ndarray  # [V] sum of target diameters, mm
    obs_response: np.ndarray  # [V] RECIST code
    obs_line: np.ndarray  # [V] line at the visit (before its decisions)
    obs_drug_on: np.ndarray  # [V]
    action_kind: np.ndarray  # [A] pending actions
    action_a: np.ndarray
    action_b: np.ndarray
    # The same arrays, grouped as the loop's helpers take them (built once per run).
    population: "Population"
    clinic_view: "ClinicView"
    drug_state: "DrugState"


MAX_ACTIONS = 64


def visit_capacity(model: ModelArrays) -> int:
    every = model.rules.visit_every_steps
    return 1 if every <= 0 else max(model.n_steps - model.rules.therapy_start_step, 0) // every + 2


def allocate_buffers(model: ModelArrays, max_lesions: int, max_events: int,
                     max_stack: int = 1024) -> Buffers:
    n_clones = model.dynamics.birth.size
    n_records = model.n_steps // model.record_every + 2
    n_sites = model.dynamics.site_cumulative_weight.size
    n_drugs = model.drugs.drug_elimination.size
    n_mechanisms = model.rules.line_on_mechanism.shape[1]
    n_visits = visit_capacity(model)
    arrays = dict(
        cells=np.zeros((max_lesions, n_clones), np.int64),
        lesion_site=np.full(max_lesions, -1, np.int64),
        lesion_capacity=np.zeros(max_lesions),
        lesion_law=np.zeros(max_lesions, np.int64),
        lesion_parent=np.full(max_lesions, -1, np.int64),
        lesion_born=np.zeros(max_lesions),
        lesion_alive=np.zeros(max_lesions, np.bool_),
        lesion_founder=np.full(max_lesions, -1, np.int64),
        residual=np.zeros(max_lesions),
        held_factor=np.ones(max_lesions),
        site_cells=np.zeros(n_sites),
        lesion_remap=np.zeros(max_lesions, np.int64),
        stack_lesion=np.zeros(max_stack, np.int64),
        stack_clone=np.zeros(max_stack, np.int64),
        stack_cells=np.zeros(max_stack, np.int64),
        stack_time=np.zeros(max_stack),
        record_time=np.zeros(n_records),
        record_lesions=np.zeros(n_records, np.int64),
        records=np.zeros((n_records, max_lesions, n_clones), np.int64),
        event_time=np.zeros(max_events),
        event_kind=np.zeros(max_events, np.int64),
        event_lesion=np.zeros(max_events, np.int64),
        event_detail=np.zeros(max_events, np.int64),
        event_value=np.zeros(max_events),
        first_seen=np.full(n_clones, -1.0),
        counters=np.zeros(N_COUNTERS, np.int64),
        clock=np.zeros(cl.N_CLOCK, np.int64),
        level=np.zeros(cl.N_LEVEL),
        gut=np.zeros(n_drugs),
        central=np.zeros(n_drugs),
        dose_given=np.zeros(n_drugs),
        birth_scale=np.ones((n_sites, n_clones)),
        death_add=np.zeros((n_sites, n_clones)),
        found=np.zeros(n_mechanisms),
        biopsy_lesion=np.full(1, -1, np.int64),
        is_target=np.zeros(max_lesions, np.bool_),
        seen_at_baseline=np.zeros(max_lesions, np.bool_),
        lesion_nadir=np.zeros(max_lesions),
        lesion_courses=np.zeros((max_lesions, model.rules.modality_kill.shape[0]), np.int64),
        progressing=np.zeros(max_lesions, np.bool_),
        obs_time=np.zeros(n_visits),
        obs_lesions=np.zeros(n_visits, np.int64),
        obs_diameter=np.zeros((n_visits, max_lesions)),
        obs_target=np.zeros((n_visits, max_lesions), np.bool_),
        obs_marker=np.zeros(n_visits),
        obs_tumour_copies=np.zeros(n_visits, np.int64),
        obs_copies=np.zeros((n_visits, n_mechanisms + 1), np.int64),
        obs_sld=np.zeros(n_visits),
        obs_response=np.zeros(n_visits, np.int64),
        obs_line=np.zeros(n_visits, np.int64),
        obs_drug_on=np.zeros(n_visits, np.int64),
        action_kind=np.zeros(MAX_ACTIONS, np.int64),
        action_a=np.zeros(MAX_ACTIONS, np.int64),
        action_b=np.zeros(MAX_ACTIONS, np.int64),
    )
    population = Population(**{name: arrays[name] for name in Population._fields})
    view = ClinicView(**{name: arrays[name] for name in ClinicView._fields})
    n_block = model.dynamics.max_block
    n_switches = model.drugs.switch_off.size
    drug_state = DrugState(arrays["gut"], arrays["central"], arrays["dose_given"],
                           np.ones_like(arrays["birth_scale"]),
                           np.zeros((n_sites, n_switches)),
                           np.zeros((n_sites, n_clones)),
                           day_birth=np.ones((n_block, n_sites, n_clones)),
                           day_death=np.zeros((n_block, n_sites, n_clones)),
                           day_leave=np.zeros((n_block, n_sites, n_clones)),
                           day_switch=np.zeros((n_block, n_sites, n_switches)),
                           saved=np.zeros((3, n_drugs)),
                           site_bound=np.zeros(n_sites))
    return Buffers(**arrays, population=population, clinic_view=view, drug_state=drug_state)


# Arrays are copied element by element in the kernel, not by slice assignment: numba compiles
# a shape-checking error path for each kind of array-to-array assignment, several seconds of the
# cold compile for copies of a few numbers.

@jit
def _record(out, time):
    index = out.counters[1]
    n_lesions = out.counters[0]
    out.record_time[index] = time
    out.record_lesions[index] = n_lesions
    for lesion in range(n_lesions):
        for clone in range(out.cells.shape[1]):
            out.records[index, lesion, clone] = out.cells[lesion, clone]
    out.counters[1] = index + 1


@jit_inline
def _rates(birth, death, factor, scale, add):
    """A clone type's birth and death rates from its intrinsic ones: density first, then drugs."""
    birth, death = density_adjusted(birth, death, factor)
    return birth * scale, death + add


@jit_inline
def _clone_rates(model, clone, factor, birth_scale, death_add, site):
    """Birth and death rates of a clone type in a lesion at ``site`` (see ``_rates``)."""
    return _rates(model.birth[clone], model.death[clone], factor, birth_scale[site, clone],
                  death_add[site, clone])


# The density helpers below run several times per lesion and step, so each takes only the
# arrays it reads (birth, death, cells, drug factors): every array argument of a call is
# reference-counted on entry and exit, an atomic operation dearer than their arithmetic.

@jit_inline
def _path_size(birth, death, cells, lesion, site, birth_scale, death_add, first, first_days,
               second, second_days):
    """A lesion's expected size after ``first_days`` with its density factor held at ``first``
    and then ``second_days`` at ``second``."""
    size = 0.0
    for clone in range(birth.size):
        n = cells[lesion, clone]
        if n > 0:
            scale, add = birth_scale[site, clone], death_add[site, clone]
            b1, d1 = _rates(birth[clone], death[clone], first, scale, add)
            b2, d2 = _rates(birth[clone], death[clone], second, scale, add)
            size += n * math.exp((b1 - d1) * first_days + (b2 - d2) * second_days)
    return size


@jit
def _held_factor(birth, death, cells, lesion, site, law, capacity, birth_scale, death_add,
                 before, before_days, dt, start):
    """The density factor to hold over a step of ``dt`` days that starts ``before_days`` after
    the current state (grown at the factor ``before`` until then), where it is ``start``: the
    factor's average along the lesion's predicted expected path, by Simpson's rule. The
    midpoint is predicted with the trapezoid of the start and a first guess, the end with the
    factor at the midpoint."""

    def factor_after(held, days):
        size = _path_size(birth, death, cells, lesion, site, birth_scale, death_add, before,
                          before_days, held, days)
        return density_factor(law, size, capacity)

    first_guess = factor_after(start, 0.5 * dt)
    midpoint = factor_after(0.5 * (start + first_guess), 0.5 * dt)
    end = factor_after(midpoint, dt)
    return (start + 4.0 * midpoint + end) / 6.0


@jit_inline
def _current_factor(cells, lesion, law, capacity):
    """The density factor at the lesion's current size (its cells summed as floats, as
    ``_path_size`` sums them over no time)."""
    size = 0.0
    for clone in range(cells.shape[1]):
        n = cells[lesion, clone]
        if n > 0:
            size += n * 1.0
    return density_factor(law, size, capacity)


@jit_inline
def _sole_clone(cells, lesion):
    """The one clone type a lesion holds, or -1 if it holds several (or none)."""
    sole = -1
    for clone in range(cells.shape[1]):
        if cells[lesion, clone] > 0:
            if sole >= 0:
                return -1
            sole = clone
    return sole


@jit_inline
def _exact_factor(birth, death, cells, lesion, site, law, capacity, birth_scale, death_add, dt):
    """The held density factor in closed form (``exact_held_factor``) when the lesion holds one
    clone type and its path stays where the form holds; NaN otherwise."""
    clone = _sole_clone(cells, lesion)
    if clone < 0:
        return math.nan
    return exact_held_factor(law, float(cells[lesion, clone]), capacity, birth[clone],
                             death[clone], birth_scale[site, clone], death_add[site, clone], dt)


@jit_inline
def _lesion_density(model, out, lesion, total, birth_scale, death_add, dt):
    """Density factor held over the coming step: exact for one clone type
    (``exact_held_factor``); for a mix, the factor follows their total (``_held_factor``)."""
    law = out.lesion_law[lesion]
    if law == EXPONENTIAL:
        return 1.0
    capacity, site = out.lesion_capacity[lesion], out.lesion_site[lesion]
    exact = _exact_factor(model.birth, model.death, out.cells, lesion, site, law, capacity,
                          birth_scale, death_add, dt)
    if not math.isnan(exact):
        return exact
    start = _current_factor(out.cells, lesion, law, capacity)
    return _held_factor(model.birth, model.death, out.cells, lesion, site, law, capacity,
                        birth_scale, death_add, 1.0, 0.0, dt, start)


@jit
def _choose_site(rng, cumulative):
    u = rng.random()
    for site in range(cumulative.size):
        if u < cumulative[site]:
            return site
    return cumulative.size - 1


@jit_inline
def _push(out, lesion, clone, cells, time):
    """Queue ``cells`` new cells of ``clone`` in ``lesion``, born ``time`` days into the step."""
    top = out.counters[COUNT_STACK]
    if top >= out.stack_cells.size:
        return False
    out.stack_lesion[top] = lesion
    out.stack_clone[top] = clone
    out.stack_cells[top] = cells
    out.stack_time[top] = time
    out.counters[COUNT_STACK] = top + 1
    return True


@jit
def _found_lesion(model, out, rng, clone, parent, time, offset):
    """Open a provisional lesion for a founder cell born ``offset`` days into the step and
    queue the founder; it is listed if its lineage lives to the step's end (``_commit``)."""
    out.counters[COUNT_SEEDING] += 1
    lesion = out.counters[COUNT_LESIONS] + out.counters[COUNT_PROVISIONAL]
    if lesion >= out.cells.shape[0]:
        return STATUS_LESION_OVERFLOW
    out.counters[COUNT_PROVISIONAL] += 1
    out.lesion_site[lesion] = _choose_site(rng, model.site_cumulative_weight)
    out.lesion_capacity[lesion] = model.seeding_capacity
    out.lesion_law[lesion] = model.seeding_law
    out.lesion_parent[lesion] = parent
    out.lesion_born[lesion] = time + offset
    out.lesion_founder[lesion] = clone
    out.cells[lesion, :] = 0
    if not _push(out, lesion, clone, 1, offset):
        return STATUS_STACK_OVERFLOW
    return STATUS_OK


@jit
def _emit_one(model, out, rng, clone, lesion, time, offset, birth):
    """One emission by a cell of ``clone``: a founder of a new lesion, or a mutant daughter
    along one of the clone's mutation edges, chosen in proportion to their rates."""
    pick = rng.random() * (birth * model.mutation_total[clone] + model.seeding_rate)
    if pick < model.seeding_rate:
        return _found_lesion(model, out, rng, clone, lesion, time, offset)
    if model.edge_start[clone + 1] == model.edge_start[clone]:
        return STATUS_OK  # no mutation edge (reached only by rounding at the rates' edge)
    pick = (pick - model.seeding_rate) / birth if birth > 0.0 else 0.0
    last = model.edge_start[clone + 1] - 1
    edge = model.edge_start[clone]
    while edge < last and pick >= model.edge_probability[edge]:
        pick -= model.edge_probability[edge]
        edge += 1
    if not _push(out, lesion, model.edge_target[edge], 1, offset):
        return STATUS_STACK_OVERFLOW
    return STATUS_OK


@jit
def _emit_many(model, out, rng, clone, lesion, time, start, span, n_start, n_end, count, birth):
    """``count`` emissions spread over [start, start + span] with density following the
    population's exponential path from n_start to n_end (the bulk regime of ``_run_lineages``).

    Founders are each followed; mutants of one type are followed one by one up to
    ``_INDIVIDUAL_NEW_CELLS`` and beyond that queued in ``_BULK_BINS`` groups, each born at its
    time bin's midpoint.
    """
    n_seeds = 0
    if model.seeding_rate > 0.0:
        n_seeds = rng.binomial(count, model.seeding_rate / (birth * model.mutation_total[clone]
                                                             + model.seeding_rate))
    for _ in range(n_seeds):
        offset = start + exponential_path_time(rng, n_start, n_end, span)
        status = _found_lesion(model, out, rng, clone, lesion, time, offset)
        if status != STATUS_OK:
            return status
    remaining = count - n_seeds
    remaining_probability = model.mutation_total[clone]
    for edge in range(model.edge_start[clone], model.edge_start[clone + 1]):
        if remaining == 0:
            break
        share = min(1.0, model.edge_probability[edge] / remaining_probability)
        n_edge = rng.binomial(remaining, share)
        remaining -= n_edge
        remaining_probability -= model.edge_probability[edge]
        if not _push_spread(out, rng, lesion, model.edge_target[edge], n_edge, start, span,
                            n_start, n_end):
            return STATUS_STACK_OVERFLOW
    return STATUS_OK


@jit
def _push_spread(out, rng, lesion, target, count, start, span, n_start, n_end):
    """Queue ``count`` new cells of ``target`` born over [start, start + span] along the
    exponential path from n_start to n_end: one by one up to ``_INDIVIDUAL_NEW_CELLS``, else
    in ``_BULK_BINS`` groups born at their bin's midpoint. False when the stack is full."""
    if count <= _INDIVIDUAL_NEW_CELLS:
        for _ in range(count):
            offset = start + exponential_path_time(rng, n_start, n_end, span)
            if not _push(out, lesion, target, 1, offset):
                return False
        return True
    left = count
    left_share = 1.0
    for index in range(_BULK_BINS):
        low = span * index / _BULK_BINS
        high = span * (index + 1) / _BULK_BINS
        bin_share = exponential_path_share(n_start, n_end, span, low, high)
        in_bin = left if index == _BULK_BINS - 1 else rng.binomial(left, min(1.0, bin_share / left_share))
        left -= in_bin
        left_share -= bin_share
        if in_bin > 0 and not _push(out, lesion, target, in_bin, start + 0.5 * (low + high)):
            return False
    return True


@jit
def _switch_one(model, out, rng, clone, lesion, offset, leave, switch_rate):
    """A cell of ``clone`` switches phenotype along one of its switching edges, chosen in
    proportion to their rates; the switched cell is queued in its new type."""
    pick = rng.random() * leave
    last = model.switch_start[clone + 1] - 1
    edge = model.switch_start[clone]
    while edge < last and pick >= switch_rate[edge]:
        pick -= switch_rate[edge]
        edge += 1
    if not _push(out, lesion, model.switch_target[edge], 1, offset):
        return STATUS_STACK_OVERFLOW
    return STATUS_OK


@jit
def _switch_many(model, out, rng, clone, lesion, start, span, n_start, n_end, count, leave,
                 switch_rate):
    """``count`` switches of cells of ``clone`` over [start, start + span] (bulk regime)."""
    remaining, remaining_rate = count, leave
    for edge in range(model.switch_start[clone], model.switch_start[clone + 1]):
        if remaining == 0:
            break
        n_edge = rng.binomial(remaining, min(1.0, switch_rate[edge] / remaining_rate))
        remaining -= n_edge
        remaining_rate -= switch_rate[edge]
        if not _push_spread(out, rng, lesion, model.switch_target[edge], n_edge, start, span,
                            n_start, n_end):
            return STATUS_STACK_OVERFLOW
    return STATUS_OK


_DONE = -2.0  # ``_quiet_step`` settled the lineages itself
_BULK = -1.0  # bulk regime, nothing drawn yet


@jit_inline
def _quiet_step(rng, n, keep_birth, death, emission, left):
    """Settle the common case here: no emission at all in the ``left`` days (takes scalars
    only, so inlining it copies no tuple). Returns (cells at the end, ``_DONE``), or
    (0, the uniform draw or ``_BULK``) for ``_run_lineages`` to go on from."""
    if emission <= 0.0:
        return bnb_advance(rng, n, keep_birth, death, left), _DONE
    root = emission_root(keep_birth, death, emission)
    p_emit, p_extinct, p_geometric = emission_interval(keep_birth, death, emission, root, left)
    log_none = n * math.log1p(-p_emit)
    if -log_none > _BULK_EMISSIONS:
        return 0, _BULK
    u = rng.random()
    if u <= 0.0 or math.log(u) <= log_none:
        return advance_without_emission(rng, n, 1.0 - p_emit, p_extinct, p_geometric), _DONE
    return 0, u


@jit
def _run_lineages(model, out, rng, lesion, clone, n, offset, time, birth, death, u, dt, leave,
                  switch_rate):
    """Advance ``n`` cells of one type, born ``offset`` days into the step, to its end, once
    ``_quiet_step`` found that they emit; ``u`` is its uniform draw (``_BULK``: none drawn).

    Exact (module docstring of ``dynamics``): emission by emission while fewer than
    ``_BULK_EMISSIONS`` are expected in what is left of the step. Beyond that, P(no emission)
    is below exp(-_BULK_EMISSIONS), and the rest of the step is one BNB update of the
    survivors with Poisson emissions along the exponential path between its ends.
    """
    keep_birth = birth * (1.0 - model.mutation_total[clone])
    emission = birth * model.mutation_total[clone] + model.seeding_rate + leave
    root = emission_root(keep_birth, death, emission)
    t = offset
    while n > 0:
        left = dt - t
        p_emit, p_extinct, p_geometric = emission_interval(keep_birth, death, emission, root, left)
        log_none = n * math.log1p(-p_emit)
        if -log_none > _BULK_EMISSIONS:
            # Switching away removes the cell, like a death, for the survivors' count.
            n_end = bnb_advance(rng, n, keep_birth, death + leave, left)
            count = rng.poisson(emission * exponential_path_integral(n, n_end, left))
            n_leave = rng.binomial(count, leave / emission) if leave > 0.0 else 0
            # Called only with something to place (the common case is nothing).
            status = STATUS_OK
            if n_leave > 0:
                status = _switch_many(model, out, rng, clone, lesion, t, left, n, n_end, n_leave,
                                      leave, switch_rate)
            if status == STATUS_OK and count > n_leave:
                status = _emit_many(model, out, rng, clone, lesion, time, t, left, n, n_end,
                                    count - n_leave, birth)
            return n_end if status == STATUS_OK else -status
        if u == _BULK:
            u = rng.random()
        if u <= 0.0 or math.log(u) <= log_none:
            return advance_without_emission(rng, n, 1.0 - p_emit, p_extinct, p_geometric)
        wait = min(first_emission_time(keep_birth, death, emission, root,
                                       -math.expm1(math.log(u) / n)), left)
        u = _BULK
        p_emit, p_extinct, p_geometric = emission_interval(keep_birth, death, emission, root, wait)
        n = (advance_without_emission(rng, n - 1, 1.0 - p_emit, p_extinct, p_geometric)
             + size_biased_lineage(rng, p_geometric))
        t += wait
        if leave > 0.0 and rng.random() * emission < leave:
            n -= 1  # the emitting cell switched phenotype: it leaves this compartment
            status = _switch_one(model, out, rng, clone, lesion, t, leave, switch_rate)
        else:
            status = _emit_one(model, out, rng, clone, lesion, time, t, birth)
        if status != STATUS_OK:
            return -status
    return 0


@jit
def _commit_new_lesions(out, time):
    """List the lesions founded during the step whose lineage is alive at its end, in order
    of founding, and forget the others. Returns False when the event log is full."""
    first = out.counters[COUNT_LESIONS]
    for provisional in range(first, first + out.counters[COUNT_PROVISIONAL]):
        total = 0
        for clone in range(out.cells.shape[1]):
            total += out.cells[provisional, clone]
        parent = out.lesion_parent[provisional]
        if parent >= first:  # founded by a lesion of this step: it has been placed already
            parent = out.lesion_remap[parent - first]
        if total == 0:
            out.lesion_remap[provisional - first] = parent  # its children trace to its parent
            continue
        lesion = out.counters[COUNT_LESIONS]
        out.lesion_remap[provisional - first] = lesion
        out.counters[COUNT_LESIONS] = lesion + 1
        if lesion != provisional:
            for clone in range(out.cells.shape[1]):
                out.cells[lesion, clone] = out.cells[provisional, clone]
                out.cells[provisional, clone] = 0
            out.lesion_site[lesion] = out.lesion_site[provisional]
            out.lesion_capacity[lesion] = out.lesion_capacity[provisional]
            out.lesion_law[lesion] = out.lesion_law[provisional]
            out.lesion_born[lesion] = out.lesion_born[provisional]
            out.lesion_founder[lesion] = out.lesion_founder[provisional]
        out.lesion_parent[lesion] = parent
        out.lesion_alive[lesion] = True
        if not log_event(out, out.lesion_born[lesion], EVENT_LESION_SEEDED, lesion,
                         out.lesion_founder[lesion], float(parent)):
            return False
    out.counters[COUNT_PROVISIONAL] = 0
    return True


@jit_inline
def _advance_lesion(model, out, rng, lesion, time, birth_scale, death_add, dt, switch_rate,
                    leave_rate, planned):
    """Advance every clone of one lesion, and all cells born in it, by one step.

    Cells present at the step's start run to its end first; each cell or group born during
    the step is queued on a stack and then run from its birth to the end in the lesion that
    holds it (lineages are independent within a step, where rates are constant). Returns a
    status code.
    """
    n_clones = model.birth.size
    total = 0
    for clone in range(n_clones):
        total += out.cells[lesion, clone]
    if total == 0:
        factor = 1.0
    elif planned and out.lesion_law[lesion] != EXPONENTIAL:
        factor = out.held_factor[lesion]  # what _lesion_density gives, found by _plan_block
    else:
        factor = _lesion_density(model, out, lesion, total, birth_scale, death_add, dt)
    if model.residual_fraction > 0.0:
        _accrue_residual(model, out, lesion, factor, birth_scale, death_add, dt)
    if total == 0:
        return STATUS_OK
    for clone in range(n_clones):
        n = out.cells[lesion, clone]
        if n > 0:
            out.counters[COUNT_COMPARTMENT_STEPS] += 1
            out.cells[lesion, clone] = 0
            if not _push(out, lesion, clone, n, 0.0):
                return STATUS_STACK_OVERFLOW
    while out.counters[COUNT_STACK] > 0:
        top = out.counters[COUNT_STACK] - 1
        out.counters[COUNT_STACK] = top
        out.counters[COUNT_LINEAGES] += 1
        where, clone = out.stack_lesion[top], out.stack_clone[top]
        n, offset = out.stack_cells[top], out.stack_time[top]
        # Founders of new lesions grow free of density: they are single cells.
        where_factor = factor if where == lesion else 1.0
        site = out.lesion_site[where]
        birth, death = _clone_rates(model, clone, where_factor, birth_scale, death_add, site)
        mutation = model.mutation_total[clone]
        leave = leave_rate[site, clone]
        n_end, handoff = _quiet_step(rng, n, birth * (1.0 - mutation), death,
                                     birth * mutation + model.seeding_rate + leave, dt - offset)
        if handoff != _DONE:
            n_end = _run_lineages(model, out, rng, where, clone, n, offset, time, birth, death,
                                  handoff, dt, leave, switch_rate[site])
            if n_end < 0:
                return -n_end
        out.cells[where, clone] += n_end
    if out.counters[COUNT_PROVISIONAL] > 0 and not _commit_new_lesions(out, time):
        return STATUS_EVENT_OVERFLOW
    return STATUS_OK


@jit
def _note_changes(model, out, time):
    """Log first appearances and lesion extinctions, sum cells by site; returns the total
    burden (-1: log full, -2: a count wrapped around int64)."""
    total = 0.0
    out.site_cells[:] = 0.0
    for lesion in range(out.counters[0]):
        lesion_total = 0
        for clone in range(model.birth.size):
            n = out.cells[lesion, clone]
            if n < 0:  # wrapped around int64
                return -2.0
            lesion_total += n
            if n > 0 and out.first_seen[clone] < 0.0:
                out.first_seen[clone] = time
                if not log_event(out, time, EVENT_CLONE_APPEARS, lesion, clone, float(n)):
                    return -1.0
        if out.lesion_alive[lesion] and lesion_total == 0:
            if not log_event(out, time, EVENT_LESION_EXTINCT, lesion, -1, 0.0):
                return -1.0
        out.lesion_alive[lesion] = lesion_total > 0
        out.site_cells[out.lesion_site[lesion]] += lesion_total
        total += lesion_total
    return total


@jit
def _initialise(dyn, pop, clock, initial_cells, lesion_site, lesion_capacity, lesion_law):
    n_initial = initial_cells.shape[0]
    if n_initial > pop.cells.shape[0]:
        return STATUS_LESION_OVERFLOW
    for lesion in range(n_initial):
        for clone in range(initial_cells.shape[1]):
            pop.cells[lesion, clone] = initial_cells[lesion, clone]
        pop.lesion_site[lesion] = lesion_site[lesion]
        pop.lesion_capacity[lesion] = lesion_capacity[lesion]
        pop.lesion_law[lesion] = lesion_law[lesion]
        pop.lesion_alive[lesion] = True
    pop.counters[0] = n_initial
    clock[cl.LINE] = -1
    clock[cl.OFF_REASON] = -1
    clock[cl.BASELINE_PENDING] = 1
    if _note_changes(dyn, pop, 0.0) < 0.0:
        return STATUS_EVENT_OVERFLOW
    _record(pop, 0.0)
    return STATUS_OK


@jit
def _visit(dyn, clinic, rng, out, step, time):
    """Measure, assess and (with the built-in rules) decide. Returns a status code."""
    visit = cl.observe(dyn, clinic, out, rng, time)
    response = cl.assess(clinic, out, visit)
    for lesion in range(out.obs_lesions[visit]):
        out.obs_target[visit, lesion] = out.is_target[lesion]
    if response == cl.RESPONSE_PD:
        n_progressing = 0
        for lesion in range(out.obs_lesions[visit]):
            n_progressing += out.progressing[lesion]
        if not log_event(out, time, EVENT_PROGRESSION, -1, -1, float(n_progressing)):
            return STATUS_EVENT_OVERFLOW
        for lesion in range(out.obs_lesions[visit]):
            if out.progressing[lesion] and not log_event(
                    out, time, EVENT_LESION_PROGRESSING, lesion, 0 if out.seen_at_baseline[lesion] else 1,
                    out.obs_diameter[visit, lesion]):
                return STATUS_EVENT_OVERFLOW
    if clinic.external_policy:
        out.clock[cl.PHASE] = cl.PHASE_DECIDING
        return STATUS_VISIT
    out.biopsy_lesion[0] = -1
    cl.builtin_rules(clinic, out, rng, visit, response, step, out.found)
    if out.biopsy_lesion[0] >= 0 and not _log_biopsy(out, time, out.biopsy_lesion[0], out.found):
        return STATUS_EVENT_OVERFLOW
    out.clock[cl.PHASE] = cl.PHASE_ACTING
    return STATUS_OK


@jit
def _log_biopsy(out, time, lesion, found):
    """One event per mechanism found at a re-biopsy, or one saying none was."""
    any_found = False
    for mechanism in range(found.size):
        if found[mechanism] > 0.0:
            any_found = True
            if not log_event(out, time, EVENT_BIOPSY, lesion, mechanism, found[mechanism]):
                return False
    if not any_found:
        return log_event(out, time, EVENT_BIOPSY, lesion, -1, 0.0)
    return True


@jit
def _start_line(out, line, step, time, why_exhausted):
    out.clock[cl.LINE] = line
    out.clock[cl.DRUG_ON] = 1 if line >= 0 else 0
    out.clock[cl.DOSE_CLOCK] = step
    out.clock[cl.OFF_REASON] = -1
    out.clock[cl.HOLIDAY_VISITS] = 0
    out.clock[cl.OLIGO_ROUNDS] = 0
    if line < 0:
        return log_event(out, time, EVENT_THERAPY_EXHAUSTED, -1, -1, float(why_exhausted))
    out.clock[cl.LINES_RECEIVED] += 1
    return log_event(out, time, EVENT_LINE_START, -1, line, 0.0)


@jit
def _apply_action(clinic, rng, out, step, time, kind, a, b):
    """Carry out one action; False when the event log is full."""
    if kind == cl.ACTION_LOCAL_THERAPY:
        survived = cl.apply_local(clinic, out, rng, a, b)
        return log_event(out, time, EVENT_LOCAL_THERAPY, a, b, survived)
    if kind == cl.ACTION_SWITCH_LINE:
        # A new line's adaptive baseline is the marker at its own baseline visit.
        out.level[cl.ADAPTIVE_BASELINE] = 0.0
        return _start_line(out, a, step, time, b)
    if kind == cl.ACTION_STOP_DRUG and out.clock[cl.DRUG_ON] == 1:
        out.clock[cl.DRUG_ON] = 0
        out.clock[cl.OFF_REASON] = a
        return log_event(out, time, EVENT_DRUG_STOP, -1, a, 0.0)
    if kind == cl.ACTION_START_DRUG and out.clock[cl.DRUG_ON] == 0 and out.clock[cl.LINE] >= 0:
        out.clock[cl.DRUG_ON] = 1
        out.clock[cl.DOSE_CLOCK] = step
        out.clock[cl.OFF_REASON] = -1
        out.clock[cl.HOLIDAY_VISITS] = 0
        return log_event(out, time, EVENT_DRUG_RESTART, -1, a, 0.0)
    if kind == cl.ACTION_REBASELINE:
        if a == cl.REBASELINE_NOW and out.counters[COUNT_VISITS] > 0:
            cl.set_baseline(clinic, out, out.counters[COUNT_VISITS] - 1)
        else:
            out.clock[cl.BASELINE_PENDING] = 1
    return True


@jit
def _apply_actions(clinic, rng, out, step, time):
    for index in range(out.counters[5]):
        if not _apply_action(clinic, rng, out, step, time, out.action_kind[index],
                             out.action_a[index], out.action_b[index]):
            return STATUS_EVENT_OVERFLOW
    out.counters[5] = 0
    out.clock[cl.PHASE] = cl.PHASE_READY
    return STATUS_OK


@jit
def _scheduled_therapy(clinic, rng, out, step, time):
    """Local therapy the scenario schedules for this step, and the first line's start."""
    while (out.clock[cl.NEXT_SCHEDULED] < clinic.scheduled_step.size
           and clinic.scheduled_step[out.clock[cl.NEXT_SCHEDULED]] == step):
        index = out.clock[cl.NEXT_SCHEDULED]
        lesion = clinic.scheduled_lesion[index]
        modality = clinic.scheduled_modality[index]
        survived = cl.apply_local(clinic, out, rng, lesion, modality)
        out.clock[cl.NEXT_SCHEDULED] = index + 1
        if not log_event(out, time, EVENT_LOCAL_THERAPY, lesion, modality, survived):
            return STATUS_EVENT_OVERFLOW
    if (out.clock[cl.THERAPY_STARTED] == 0 and step >= clinic.therapy_start_step
            and clinic.line_next.size > 0):
        out.clock[cl.THERAPY_STARTED] = 1
        if not _start_line(out, clinic.first_line, step, time, cl.EXHAUSTED_NO_LINE):
            return STATUS_EVENT_OVERFLOW
    return STATUS_OK


@jit
def _advance_cells(dyn, pop, drugs, pk, rng, clock, birth_scale, death_add, step, mortality):
    """Doses, drug effects, cell dynamics and pharmacokinetics of one step.

    Near a stopping size (``_substeps``) the step is cut into sub-steps after each of which
    the size is checked; returns (status, the day the step's dynamics ended).
    """
    time = step * dyn.dt
    line = clock[cl.LINE]
    if line >= 0 and clock[cl.DRUG_ON] == 1:
        give_due_doses(drugs, pk, line, step - clock[cl.DOSE_CLOCK])
    n_sub = _substeps(dyn, drugs, pk, mortality, pop, birth_scale, death_add, dyn.dt)
    dt = dyn.dt / n_sub
    n_lesions = pop.counters[COUNT_LESIONS]
    for sub in range(n_sub):
        start = time + sub * dt
        step_drug_effects(drugs, pk, dt, birth_scale, death_add)
        step_switch_rates(drugs, pk, dt)
        status = _advance_lesions(dyn, pop, rng, clock, birth_scale, death_add, pk, start, dt,
                                  n_lesions, False)
        if status != STATUS_OK:
            return status, start + dt
        advance_pk(drugs, pk, dt)
        if n_sub > 1 and sub + 1 < n_sub and _stopping_size_reached(mortality, pop):
            return STATUS_OK, start + dt
    return STATUS_OK, time + dyn.dt


@jit
def _block_end(rules, clock, step, n_steps, record_every):
    """The first step after ``step`` at which a record is due or the clinic may act (a visit,
    scheduled local therapy, the first line's start): a joined step ends there at the latest."""
    end = min(n_steps, (step // record_every + 1) * record_every)
    every, start = rules.visit_every_steps, rules.therapy_start_step
    if step < start and (every > 0 or (clock[cl.THERAPY_STARTED] == 0 and rules.line_next.size > 0)):
        end = min(end, start)
    elif every > 0:
        end = min(end, start + ((step - start) // every + 1) * every)
    following = clock[cl.NEXT_SCHEDULED]
    if following < rules.scheduled_step.size:
        end = min(end, max(step + 1, rules.scheduled_step[following]))
    return end


@jit
def _save_pk(pk):
    for drug in range(pk.gut.size):
        pk.saved[0, drug] = pk.gut[drug]
        pk.saved[1, drug] = pk.central[drug]
        pk.saved[2, drug] = pk.dose_given[drug]


@jit
def _restore_pk(pk):
    for drug in range(pk.gut.size):
        pk.gut[drug] = pk.saved[0, drug]
        pk.central[drug] = pk.saved[1, drug]
        pk.dose_given[drug] = pk.saved[2, drug]


@jit
def _run_pk(drugs, pk, clock, step, n_days, dt, dosing, keep_effects):
    """Doses and pharmacokinetics of ``n_days`` steps from ``step``; with ``keep_effects`` each
    step's averaged drug effects and switching rates go to the ``day_*`` scratch arrays."""
    line = clock[cl.LINE]
    for day in range(n_days):
        if dosing:
            give_due_doses(drugs, pk, line, step + day - clock[cl.DOSE_CLOCK])
        if keep_effects:
            step_drug_effects(drugs, pk, dt, pk.day_birth[day], pk.day_death[day])
            step_switch_rates(drugs, pk, dt)
            _copy_rows(pk.leave_rate, pk.day_leave[day])
            _copy_rows(pk.switch_rate, pk.day_switch[day])
        advance_pk(drugs, pk, dt)


@jit
def _steady(dyn, pk, n_days):
    """Whether each (site, clone)'s birth and death rates over ``n_days`` steps stay within
    ``step_tolerance`` of their average: the largest deviation of their running integrals
    (log cells per cell) from those of the average rates."""
    limit = dyn.step_tolerance / dyn.dt
    n_sites, n_clones = pk.day_birth.shape[1], pk.day_birth.shape[2]
    for site in range(n_sites):
        for clone in range(n_clones):
            birth = dyn.birth[clone]
            mean_birth, mean_death = 0.0, 0.0
            for day in range(n_days):
                mean_birth += birth * pk.day_birth[day, site, clone]
                mean_death += pk.day_death[day, site, clone] + pk.day_leave[day, site, clone]
            mean_birth /= n_days
            mean_death /= n_days
            drift_birth, drift_death = 0.0, 0.0
            for day in range(n_days):
                drift_birth += birth * pk.day_birth[day, site, clone] - mean_birth
                drift_death += pk.day_death[day, site, clone] + pk.day_leave[day, site, clone] - mean_death
                if abs(drift_birth) > limit or abs(drift_death) > limit:
                    return False
    return True


@jit
def _average_rates(pk, n_days, birth_scale, death_add):
    """The joined step's rates: the averages of its steps' rates."""
    _day_average(pk.day_birth, n_days, birth_scale)
    _day_average(pk.day_death, n_days, death_add)
    _day_average(pk.day_leave, n_days, pk.leave_rate)
    _day_average(pk.day_switch, n_days, pk.switch_rate)


@jit
def _day_average(by_day, n_days, average):
    """``average[i, j]``: the mean of ``by_day[:n_days, i, j]``, summed in day order."""
    for i in range(average.shape[0]):
        for j in range(average.shape[1]):
            total = 0.0
            for day in range(n_days):
                total += by_day[day, i, j]
            average[i, j] = total / n_days


@jit
def _copy_rows(source, target):
    for i in range(source.shape[0]):
        for j in range(source.shape[1]):
            target[i, j] = source[i, j]


@jit_inline
def _density_error(model, out, lesion, total, birth_scale, death_add, h):
    """Error of the held density factor over ``h`` days, in log cells: none for one clone
    type (``exact_held_factor``); for a mix (``_held_factor``), estimated by comparing one
    step with two half steps (Richardson: the rule's local error is O(h^5), so one step errs by
    16/15 of their difference). The factor of the one step is kept in ``held_factor``: if the
    joined step is taken, the lesion's cells are advanced at it."""
    birth, death, cells = model.birth, model.death, out.cells
    site, law, capacity = out.lesion_site[lesion], out.lesion_law[lesion], out.lesion_capacity[lesion]
    exact = _exact_factor(birth, death, cells, lesion, site, law, capacity, birth_scale,
                          death_add, h)
    if not math.isnan(exact):
        out.held_factor[lesion] = exact
        return 0.0
    start = _current_factor(cells, lesion, law, capacity)
    whole = _held_factor(birth, death, cells, lesion, site, law, capacity, birth_scale, death_add,
                         1.0, 0.0, h, start)
    one = _path_size(birth, death, cells, lesion, site, birth_scale, death_add, whole, h, whole,
                     0.0)
    first = _held_factor(birth, death, cells, lesion, site, law, capacity, birth_scale, death_add,
                         1.0, 0.0, 0.5 * h, start)
    halfway = density_factor(law, _path_size(birth, death, cells, lesion, site, birth_scale,
                                             death_add, first, 0.5 * h, 1.0, 0.0), capacity)
    second = _held_factor(birth, death, cells, lesion, site, law, capacity, birth_scale,
                          death_add, first, 0.5 * h, 0.5 * h, halfway)
    two = _path_size(birth, death, cells, lesion, site, birth_scale, death_add, first, 0.5 * h,
                     second, 0.5 * h)
    out.held_factor[lesion] = whole
    return 16.0 / 15.0 * abs(math.log(one / two))


@jit
def _bound_sizes(model, out, birth_scale, death_add, h, stop_clone, site_bound):
    """Sizes the tumour could reach in ``h`` days, each compartment growing at its current
    rate if positive (density only slows growth as a lesion grows): (total, the stop clone's
    total), with each site's in ``site_bound``."""
    site_bound[:] = 0.0
    total_bound, chosen_bound = 0.0, 0.0
    for lesion in range(out.counters[COUNT_LESIONS]):
        total = 0
        for clone in range(model.birth.size):
            total += out.cells[lesion, clone]
        if total == 0:
            continue
        site = out.lesion_site[lesion]
        factor = density_factor(out.lesion_law[lesion], float(total), out.lesion_capacity[lesion])
        for clone in range(model.birth.size):
            n = out.cells[lesion, clone]
            if n > 0:
                birth, death = _clone_rates(model, clone, factor, birth_scale, death_add, site)
                grown = n * math.exp(max(birth - death, 0.0) * h)
                site_bound[site] += grown
                total_bound += grown
                if clone == stop_clone:
                    chosen_bound += grown
    return total_bound, chosen_bound


@jit
def _densities_allow(model, out, birth_scale, death_add, h):
    """Whether every lesion's density error over a joined step of ``h`` days stays within
    ``step_tolerance`` per year of steps (these errors add up from step to step)."""
    allowed = model.step_tolerance * h / _DAYS_PER_YEAR
    for lesion in range(out.counters[COUNT_LESIONS]):
        if out.lesion_law[lesion] == EXPONENTIAL:
            continue
        total = 0
        for clone in range(model.birth.size):
            total += out.cells[lesion, clone]
        if total > 0 and _density_error(model, out, lesion, float(total), birth_scale, death_add,
                                        h) > allowed:
            return False
    return True


@jit
def _stops_out_of_reach(mortality, pk, level, total_bound, chosen_bound, h):
    """No stop within ``_STOP_MARGIN`` of being reached in the joined step, at the sizes of
    ``_bound_sizes``: lethal burden or organ size, stopping size, or the burden hazard's
    threshold of death (so each is found at the end of the plain step that reaches it)."""
    if _STOP_MARGIN * total_bound >= mortality.lethal_burden:
        return False
    for site in range(pk.site_bound.size):
        if _STOP_MARGIN * pk.site_bound[site] >= mortality.site_lethal_cells[site]:
            return False
    chosen = total_bound if mortality.stop_clone < 0 else chosen_bound
    if _STOP_MARGIN * chosen >= mortality.stop_cells:
        return False
    if mortality.hazard_per_day > 0.0:
        rate = mortality.hazard_per_day * (total_bound / mortality.hazard_reference_cells) ** mortality.hazard_exponent
        if level[cl.CUMULATIVE_HAZARD] + _STOP_MARGIN * rate * h >= level[cl.DEATH_THRESHOLD]:
            return False
    return True


@jit
def _plan_block(dyn, pop, drugs, pk, clock, birth_scale, death_add, level, mortality, step, k_cap):
    """How many steps of ``dt`` the coming step joins (1: a plain step, left to
    ``_advance_cells``). A joined step of k steps holds its rates at their average over them,
    so it is taken only where that changes a cell's expected growth at no time by more than
    ``step_tolerance`` (drug exposure: ``_steady``; density: ``_density_error``), and where no
    stop can come within it (``_stops_out_of_reach``); k halves until all hold. For k > 1 the
    rates are left in ``birth_scale``, ``death_add`` and ``pk``'s switching rates, and the
    drugs are moved (doses and pharmacokinetics, step by step) to the joined step's end."""
    if k_cap <= 1:
        return 1
    dt = dyn.dt
    dosing = clock[cl.LINE] >= 0 and clock[cl.DRUG_ON] == 1
    in_body = False
    for drug in range(pk.gut.size):
        in_body = in_body or pk.gut[drug] > 0.0 or pk.central[drug] > 0.0
    varying = dosing or in_body
    n_days = k_cap if varying else 1  # without drug, every step's rates are the same
    _save_pk(pk)
    _run_pk(drugs, pk, clock, step, n_days, dt, dosing, True)
    _restore_pk(pk)
    k = k_cap
    while k > 1:
        days = min(k, n_days)
        if days == 1 or _steady(dyn, pk, days):
            _average_rates(pk, days, birth_scale, death_add)
            h = k * dt
            total_bound, chosen_bound = _bound_sizes(dyn, pop, birth_scale, death_add, h,
                                                     mortality.stop_clone, pk.site_bound)
            if (_stops_out_of_reach(mortality, pk, level, total_bound, chosen_bound, h)
                    and _densities_allow(dyn, pop, birth_scale, death_add, h)):
                break
        k //= 2
    if k > 1 and varying:
        _run_pk(drugs, pk, clock, step, k, dt, dosing, False)
    return k


@jit
def _advance_lesions(dyn, pop, rng, clock, birth_scale, death_add, pk, start, h, n_lesions,
                     planned):
    """Cell dynamics of the first ``n_lesions`` lesions over ``h`` days from day ``start`` at
    the rates in ``birth_scale``, ``death_add`` and ``pk`` (lesions founded meanwhile are
    advanced from their founding by ``_advance_lesion``). ``planned``: a joined step that
    ``_plan_block`` accepted, which left each lesion's density factor in ``held_factor``."""
    if not _rates_finite(clock, birth_scale, death_add):
        return STATUS_NON_FINITE
    for lesion in range(n_lesions):
        status = _advance_lesion(dyn, pop, rng, lesion, start, birth_scale, death_add, h,
                                 pk.switch_rate, pk.leave_rate, planned)
        if status != STATUS_OK:
            return status
    return STATUS_OK


@jit_inline
def _accrue_residual(dyn, pop, lesion, factor, birth_scale, death_add, h):
    """Residual tissue of one lesion over ``h`` days: what there was resolves at
    ``residual_clearance``, and a share ``residual_fraction`` of the cells the drugs kill
    stays, itself resolving from when each cell died.

    The cells killed follow the expected path ``n e^(r s)`` of each compartment, with ``r`` the
    net rate the step gives it (the density ``factor`` held over the step, as the cells get it
    in ``_advance_lesion``: exact in the mean for a linear birth-death process), so the gain is
    ``add * n * (e^(r h) - e^(-k h)) / (r + k)`` per compartment. With the drug-free intrinsic
    rates instead, a crowded lesion's cells would be taken to decline more slowly than they do,
    and a long step would leave more tissue than the daily steps it joins.
    """
    k = dyn.residual_clearance
    decay = math.exp(-k * h)
    site = pop.lesion_site[lesion]
    killed = 0.0
    for clone in range(pop.cells.shape[1]):
        n = pop.cells[lesion, clone]
        add = death_add[site, clone]
        if n == 0 or add <= 0.0:
            continue
        birth, death = _clone_rates(dyn, clone, factor, birth_scale, death_add, site)
        r = birth - death
        rate = r + k
        weight = h * decay if abs(rate * h) < 1e-9 else (math.exp(r * h) - decay) / rate
        killed += add * n * weight
    pop.residual[lesion] = pop.residual[lesion] * decay + dyn.residual_fraction * killed


@jit
def _rates_finite(clock, birth_scale, death_add):
    """False, with the clone and site noted in ``clock``, if a drug effect is not finite."""
    for site in range(birth_scale.shape[0]):
        for clone in range(birth_scale.shape[1]):
            if not (math.isfinite(birth_scale[site, clone]) and math.isfinite(death_add[site, clone])):
                clock[cl.BAD_CLONE] = clone
                clock[cl.BAD_SITE] = site
                return False
    return True


@jit
def _stop_quantities(mortality, pop):
    """The cells a stop looks at: (the total, the stop clone's total)."""
    total = 0.0
    chosen = 0.0
    for lesion in range(pop.counters[COUNT_LESIONS]):
        for clone in range(pop.cells.shape[1]):
            n = pop.cells[lesion, clone]
            total += n
            if clone == mortality.stop_clone:
                chosen += n
    return total, chosen


@jit
def _stopping_size(mortality, pop):
    """How near the nearest stop is: the largest ratio of a size to its target, over the
    stop size (total or one clone) and the lethal burden; >= 1 means reached."""
    total, chosen = _stop_quantities(mortality, pop)
    ratio = total / mortality.lethal_burden
    if mortality.stop_clone < 0:
        ratio = max(ratio, total / mortality.stop_cells)
    else:
        ratio = max(ratio, chosen / mortality.stop_cells)
    return ratio


@jit
def _stopping_size_reached(mortality, pop):
    return _stopping_size(mortality, pop) >= 1.0


@jit
def _substeps(dyn, drugs, pk, mortality, pop, birth_scale, death_add, dt):
    """Sub-steps for the coming step: 1, or, where growth at the fastest intrinsic net rate
    could bring a stopping size within a factor 2 of its target, enough that each sub-step
    grows the stopping quantities by at most ``STOP_RESOLUTION`` (relative), bounded by every
    compartment growing at its current rate (``_bound_sizes``)."""
    g = mortality.growth_bound
    if g <= 0.0:
        return 1
    if _stopping_size(mortality, pop) * math.exp(g * dt) * 2.0 < 1.0:
        return 1
    step_drug_effects(drugs, pk, dt, birth_scale, death_add)
    total_bound, chosen_bound = _bound_sizes(dyn, pop, birth_scale, death_add, dt,
                                             mortality.stop_clone, pk.site_bound)
    total, chosen = _stop_quantities(mortality, pop)
    growth = total_bound / total if total > 0.0 else 1.0
    if chosen > 0.0:
        growth = max(growth, chosen_bound / chosen)
    if not growth > 1.0:
        return 1
    return min(_MAX_SUBSTEPS, max(1, math.ceil(math.log(growth) / math.log1p(STOP_RESOLUTION))))


@jit
def _mean_hazard_ratio(start_burden, burden, reference, exponent):
    """Average of (N / N_ref)^k over a step along the exponential path between its ends."""
    end = (burden / reference) ** exponent
    if start_burden <= 0.0:
        return end
    start = (start_burden / reference) ** exponent
    growth = math.log(end / start) if start > 0.0 and end > 0.0 else 0.0
    if abs(growth) < 1e-9:
        return 0.5 * (start + end)
    return (end - start) / growth


@jit
def _cause_of_death(mortality, pop, level, start_burden, burden, dt):
    """Why the patient dies at the end of this step (``DEATH_*``), or ``_ALIVE``.

    The burden hazard is integrated along the exponential path from the step's start burden
    to its end burden; its error is that of the path's shape within one step.
    """
    if burden >= mortality.lethal_burden:
        return DEATH_BURDEN
    for site in range(pop.site_cells.size):
        if pop.site_cells[site] >= mortality.site_lethal_cells[site]:
            return site
    if mortality.hazard_per_day > 0.0:
        ratio = _mean_hazard_ratio(start_burden, burden, mortality.hazard_reference_cells,
                                   mortality.hazard_exponent)
        level[cl.CUMULATIVE_HAZARD] += mortality.hazard_per_day * ratio * dt
        if level[cl.CUMULATIVE_HAZARD] >= level[cl.DEATH_THRESHOLD]:
            return DEATH_HAZARD
    return _ALIVE


@jit
def _site_total(pop):
    """Cells at the end of the last step."""
    total = 0.0
    for site in range(pop.site_cells.size):
        total += pop.site_cells[site]
    return total


@jit
def _end_of_step(dyn, pop, clock, level, mortality, step, time, span, start_burden,
                 record_every, n_steps):
    """Log changes, check for death, cure or the stopping size, record at the end of ``step``
    (the last of a joined step ``span`` days long). Returns a status."""
    burden = _note_changes(dyn, pop, time)
    if burden == -2.0 or burden > MAX_CELLS:
        return STATUS_POPULATION_OVERFLOW
    if burden < 0.0:
        return STATUS_EVENT_OVERFLOW
    cause = (_cause_of_death(mortality, pop, level, start_burden, burden, span)
             if burden > 0.0 else _ALIVE)
    size_reached = cause == _ALIVE and burden > 0.0 and _stopping_size_reached(mortality, pop)
    finished = cause != _ALIVE or burden == 0.0 or size_reached
    if finished:
        clock[cl.DONE] = 1
        kind = EVENT_DEATH if burden > 0.0 else EVENT_EXTINCTION
        if size_reached:
            kind = EVENT_SIZE_REACHED
        if not log_event(pop, time, kind, -1, cause if burden > 0.0 else -1, burden):
            return STATUS_EVENT_OVERFLOW
    if finished or (step + 1) % record_every == 0 or step + 1 == n_steps:
        _record(pop, time)
    return STATUS_OK


@jit
def _is_visit(every, start, step):
    since = step - start
    return every > 0 and since >= 0 and since % every == 0


@jit
def simulate_kernel(model, rng, population, clinic_view, drug_state):
    """Run one patient to the end, to death or to extinction, or until a visit needs a
    Python policy's decision (``STATUS_VISIT``); calling again resumes where it stopped.

    Returns a status code; results are written into the groups of a ``Buffers`` (see
    ``run_kernel``).
    """
    dyn, drugs, rules = as_record(model.dynamics), as_record(model.drugs), as_record(model.rules)
    mortality = as_record(model.mortality)
    pop, view, pk = as_record(population), as_record(clinic_view), as_record(drug_state)
    if pop.counters[COUNT_RECORDS] == 0:
        status = _initialise(dyn, pop, view.clock, model.initial_cells, model.lesion_site,
                             model.lesion_capacity, model.lesion_law)
        if status != STATUS_OK:
            return status
        if mortality.hazard_per_day > 0.0:
            view.level[cl.DEATH_THRESHOLD] = rng.exponential()
    clock = view.clock
    birth_scale, death_add = view.birth_scale, view.death_add
    visit_every, therapy_start = rules.visit_every_steps, rules.therapy_start_step
    scheduled = rules.scheduled_step
    has_lines = rules.line_next.size > 0
    record_every, n_steps = model.record_every, model.n_steps
    while clock[cl.DONE] == 0 and clock[cl.STEP] < n_steps:
        step = clock[cl.STEP]
        time = step * dyn.dt
        if clock[cl.PHASE] == cl.PHASE_READY and _is_visit(visit_every, therapy_start, step):
            status = _visit(dyn, rules, rng, view, step, time)
            if status != STATUS_OK:
                return status
        if clock[cl.PHASE] != cl.PHASE_READY:
            status = _apply_actions(rules, rng, view, step, time)
            if status != STATUS_OK:
                return status
        next_scheduled = clock[cl.NEXT_SCHEDULED]
        if ((next_scheduled < scheduled.size and scheduled[next_scheduled] == step)
                or (clock[cl.THERAPY_STARTED] == 0 and has_lines and step >= therapy_start)):
            status = _scheduled_therapy(rules, rng, view, step, time)
            if status != STATUS_OK:
                return status
        start_burden = _site_total(pop)
        k_cap = min(dyn.max_block, _block_end(rules, clock, step, n_steps, record_every) - step)
        span = _plan_block(dyn, pop, drugs, pk, clock, birth_scale, death_add, view.level,
                           mortality, step, k_cap)
        if span > 1:
            end = time + span * dyn.dt
            status = _advance_lesions(dyn, pop, rng, clock, birth_scale, death_add, pk, time,
                                      span * dyn.dt, pop.counters[COUNT_LESIONS], True)
        else:
            status, end = _advance_cells(dyn, pop, drugs, pk, rng, clock, birth_scale,
                                         death_add, step, mortality)
        if status != STATUS_OK:
            return status
        status = _end_of_step(dyn, pop, clock, view.level, mortality, step + span - 1,
                              end, span * dyn.dt, start_burden, record_every, n_steps)
        if status != STATUS_OK:
            return status
        clock[cl.STEP] = step + span
        pop.counters[COUNT_STEPS] += 1
    return STATUS_OK


def run_kernel(model: ModelArrays, rng: np.random.Generator, buffers: Buffers) -> int:
    """``simulate_kernel`` on ``buffers``: the kernel takes only their three groups, so that its
    entry does not unbox every array twice (once at the top level, once in its group)."""
    return simulate_kernel(model, rng, buffers.population, buffers.clinic_view, buffers.drug_state)
