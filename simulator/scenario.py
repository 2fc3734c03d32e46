"""Scenarios: validated, documented, immutable descriptions of a simulated patient.

A scenario is written in TOML (or built in Python) and validated here, before anything is
lowered to arrays for the engine. Every field documents its unit; the JSON Schema printed by
``simulator schema`` is generated from these classes.

Conventions: time in days, rates per cell per day, probabilities per division, cells as
counts. Clone types, lesions and drugs are tables keyed by name, so any parameter has a
dotted path such as ``clones.T790M.birth`` or ``lesions.primary.cells.sensitive``.
"""

from __future__ import annotations

import difflib
import json
import math
import re
import tomllib
import types
import typing
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

GrowthLaw = Literal["exponential", "logistic", "gompertz"]
GROWTH_LAWS: tuple[str, ...] = typing.get_args(GrowthLaw)
MAX_CELLS = 10**15
MAX_NET_GROWTH_PER_STEP = 20.0

# Resource bounds: every scenario that validates runs to completion within them.
MAX_DAYS = 36_525.0  # 100 years: every day value and interval
MIN_DT_DAYS = 1e-4
MAX_STEPS = 1_000_000
MAX_RATE = 100.0  # per cell per day: a division every 15 minutes
MAX_RUN_BYTES = 2 * 1024**3  # buffers of one run, before any lesion-room growth
MAX_INTEGER = 10**9
# Lesions founded by seeding, expected over a run: a quarter of the engine's room (2^20), so
# chance fluctuations never reach it.
MAX_SEEDED_LESIONS = 2**18
# Counts are int64 (exact to 9.2e18): the largest burden a step can reach must stay below this.
INT64_HEADROOM = 2.0**62
# (exposure / ec50) ** hill is evaluated directly; it must stay below floating-point overflow.
MAX_HILL_RATIO_LOG = math.log(1e300)
EXTREME_QUANTILE = 1e-9


class ScenarioError(ValueError):
    """A scenario is malformed; the message names the field path and what is allowed."""


def _finite(value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"must be a number, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"must be finite, got {value!r}")
    return float(value)


def _cell_count(value: Any) -> int:
    """Accept 1e9 as well as 1000000000, but never a fractional or negative count."""
    number = _finite(value)
    if number < 0:
        raise ValueError(f"must be >= 0 cells, got {value!r}")
    if number > MAX_CELLS:
        raise ValueError(f"must be <= {MAX_CELLS:.0e} cells, got {value!r}")
    if number != int(number):
        raise ValueError(f"must be a whole number of cells, got {value!r}")
    return int(number)


def _integer(value: Any) -> int:
    """A whole number (1e5 as well as 100000), never a bool or a string."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"must be a whole number, got {value!r}")
    if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
        raise ValueError(f"must be a whole number, got {value!r}")
    return int(value)


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"must be true or false, got {value!r}")
    return value


# A number (an int is taken as a float), never a bool, a string, inf or nan: checked by
# pydantic's core, so the bounds below are checked there too, not in Python.
Finite = Annotated[float, Field(strict=True, allow_inf_nan=False)]
Rate = Annotated[Finite, Field(ge=0, le=MAX_RATE)]
PositiveFinite = Annotated[Finite, Field(gt=0)]
Probability = Annotated[Finite, Field(ge=0, le=1)]
CellCount = Annotated[int, BeforeValidator(_cell_count)]
Integer = Annotated[int, BeforeValidator(_integer)]
Boolean = Annotated[bool, BeforeValidator(_boolean)]
Day = Annotated[Finite, Field(ge=0, le=MAX_DAYS)]
Interval = Annotated[Finite, Field(gt=0, le=MAX_DAYS)]


class Strict(BaseModel):
    """Base of every scenario table: immutable, and unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Citation(Strict):
    """A source and what it supports in this scenario."""

    reference: str = Field(description="Authors, year, journal.")
    doi: str = Field("", description="DOI, without the https://doi.org/ prefix.")
    supports: str = Field("", description="Which parameter or behaviour the source supports.")


class Clone(Strict):
    """A clone type (genotype or phenotype) with its drug-free rates."""

    birth: Rate = Field(description="Division rate without drug, per cell per day (0 to 100).")
    death: Rate = Field(description="Death rate without drug, per cell per day (0 to 100).")
    label: str = Field("", description="Human-readable label, e.g. 'EGFR L858R + T790M'.")
    subtype: str = Field("", description="Histologic subtype, e.g. 'solid' or 'acinar'.")
    resistance: str = Field(
        "", description="Resistance mechanism this type carries ('' for none), e.g. 'T790M'."
    )


class Mutation(Strict):
    """An edge of the mutation graph: a division of `source` yields one `target` daughter."""

    source: str = Field(alias="from", description="Clone type that divides.")
    target: str = Field(alias="to", description="Clone type of the mutant daughter.")
    probability: Probability = Field(description="Probability per division (0 to 1).")


class Switching(Strict):
    """A reversible phenotype switch at a rate per day (not per division): the cell changes
    type and leaves its own. With a ``drug``, the rate moves from ``rate_per_day`` towards
    ``on_drug_rate_per_day`` with the drug's Hill effect (its ``ec50``, ``hill`` and site
    penetration), so drug-tolerant persisters can be induced by a drug and revert without it
    (Sharma 2010: reversion after about nine doublings off drug)."""

    source: str = Field(alias="from", description="Clone type that switches.")
    target: str = Field(alias="to", description="Clone type it becomes.")
    rate_per_day: Annotated[Finite, Field(ge=0, le=10)] = Field(
        description="Switching rate without drug, per cell per day (0 to 10)."
    )
    drug: str | None = Field(None, description="Drug whose exposure changes the rate.")
    on_drug_rate_per_day: Annotated[Finite, Field(ge=0, le=10)] | None = Field(
        None, description="Rate at full effect of the drug, per cell per day (0 to 10; needs drug)."
    )


class Lesion(Strict):
    """A tumour lesion at an anatomical site, with its initial cells per clone type."""

    site: str = Field(description="Anatomical site, e.g. lung, brain, liver, bone, adrenal.")
    cells: dict[str, CellCount] = Field(description="Initial cells per clone type.")
    carrying_capacity: Annotated[Finite, Field(gt=1, le=1e18)] = Field(
        1e11, description="Carrying capacity, cells (> 1, at most 1e18)."
    )
    growth_law: GrowthLaw | None = Field(
        None, description="Density dependence; defaults to simulation.growth_law."
    )


class Seeding(Strict):
    """Metastatic seeding: each cell sends out a founder of a new lesion at a constant rate."""

    rate: Rate = Field(
        0.0, description="Seeding events per cell per day (0 to 100); the lesions a run could found "
        "(rate x the expected cell-days before simulation.lethal_burden) must be at most 262,144."
    )
    site_weights: dict[str, Annotated[Finite, Field(ge=0, le=1e12)]] = Field(
        default_factory=lambda: {"lung": 1.0},
        description="Relative weight of each destination site (organotropism), 0 to 1e12.",
    )
    carrying_capacity: Annotated[Finite, Field(gt=1, le=1e18)] = Field(
        1e10, description="Carrying capacity of a seeded lesion, cells (> 1, at most 1e18)."
    )

    @model_validator(mode="after")
    def _some_site(self) -> Seeding:
        if self.rate > 0 and sum(self.site_weights.values()) <= 0:
            raise ValueError("site_weights: at least one weight must be > 0 when rate > 0")
        return self


# The most steps joined into one (bounds the engine's per-step scratch arrays).
MAX_BLOCK_STEPS = 256


class Simulation(Strict):
    """How long, how finely and with which seed to simulate."""

    duration_days: Interval = Field(
        730.0, description="Simulated time, days (> 0, at most 36525: 100 years; at most "
        "1,000,000 steps of dt_days)."
    )
    dt_days: Annotated[Finite, Field(ge=MIN_DT_DAYS, le=MAX_DAYS)] = Field(
        1.0, description="Engine step, days (1e-4 to 36525); rates that change are held constant "
        "within it. Every interval (visits, doses, records) is a whole number >= 1 of steps."
    )
    record_every_days: Interval = Field(
        7.0, description="Trajectory sampling, days (> 0, at most 36525): a whole multiple of dt_days, "
        "at least one step."
    )
    max_step_days: Annotated[Finite, Field(ge=0, le=MAX_DAYS)] = Field(
        42.0, description="Longest step the engine may take, days (0 to 36525): between the clinic's "
        "events it joins up to this many days of dt_days steps (at most 256) into one where "
        "step_tolerance allows; at most dt_days gives fixed steps of dt_days."
    )
    step_tolerance: Annotated[Finite, Field(gt=0, le=1)] = Field(
        0.01, description="Error allowed in joined steps, log cells (> 0, at most 1): the largest "
        "deviation of a cell's expected growth within a step from the one the step assumes (drug "
        "exposure), and the density rule's error summed over a year of steps; no stopping size, "
        "lethal size or death threshold may be reachable within a joined step."
    )
    seed: Integer = Field(1, ge=0, le=2**63 - 1, description="Seed of the random numbers (0 to 2^63 - 1).")
    growth_law: GrowthLaw = Field("exponential", description="Default density dependence.")
    lethal_burden: Annotated[Finite, Field(gt=0, le=MAX_CELLS)] = Field(
        1e12, description="Total cells at which the patient dies and the simulation stops (> 0, at "
        "most 1e15; with one step of the fastest growth it must stay below 2^62 cells, the int64 count range)."
    )
    max_lesions: Integer = Field(
        64, ge=1, le=100_000, description="Initial room for lesions (1 to 100000); grows automatically. "
        "The run's buffers (room x clone types x records, and visits) must fit in 2 GiB."
    )
    stop_at_cells: PositiveFinite | None = Field(
        None, description=(
            "Stop when the total tumour (or stop_clone) reaches this many cells (> 0). Near it the "
            "engine cuts steps so that a growing population overshoots by at most about 1%."
        ),
    )
    stop_clone: str | None = Field(None, description="Clone type whose size stop_at_cells is.")

    @model_validator(mode="after")
    def _consistent_steps(self) -> Simulation:
        if self.dt_days > self.duration_days:
            raise ValueError(
                f"dt_days: must be <= duration_days ({self.duration_days}), got {self.dt_days}"
            )
        if self.record_every_days < self.dt_days * (1 - 1e-9):
            raise ValueError(
                f"record_every_days: must be >= dt_days ({self.dt_days:g}, one step), got {self.record_every_days:g}"
            )
        for name in ("duration_days", "record_every_days"):
            ratio = getattr(self, name) / self.dt_days
            if abs(ratio - round(ratio)) > 1e-9 * max(1.0, ratio):
                raise ValueError(
                    f"{name}: must be a whole multiple of dt_days ({self.dt_days}), "
                    f"got {getattr(self, name)}"
                )
        if self.n_steps > MAX_STEPS:
            raise ValueError(
                f"dt_days: duration_days / dt_days must be <= {MAX_STEPS:,} steps, got "
                f"{self.duration_days:g} / {self.dt_days:g} = {self.n_steps:,}"
            )
        return self

    @property
    def n_steps(self) -> int:
        return int(round(self.duration_days / self.dt_days))

    @property
    def record_every_steps(self) -> int:
        return max(1, int(round(self.record_every_days / self.dt_days)))

    def block_steps(self, dt_days: float | None = None) -> int:
        """The most steps of ``dt_days`` the engine joins into one (1: fixed steps)."""
        dt = self.dt_days if dt_days is None else dt_days
        return int(min(MAX_BLOCK_STEPS, max(1, math.floor(self.max_step_days / dt + 1e-9))))


EC50 = Annotated[Finite, Field(ge=1e-6, le=1e6)]
Hill = Annotated[Finite, Field(ge=0.01, le=100)]
HalfLife = Annotated[Finite, Field(ge=1e-3, le=MAX_DAYS)]
DoseAmount = Annotated[Finite, Field(ge=0, le=1e9)]


class DrugEffect(Strict):
    """How full exposure to a drug changes one clone type's rates (Emax/Hill in exposure)."""

    birth_inhibition: Probability = Field(
        0.0, description="Maximal fractional reduction of the birth rate (0..1)."
    )
    death_increase: Rate = Field(0.0, description="Maximal added death rate, per cell per day (0 to 100).")
    ec50: EC50 | None = Field(
        None, description="Exposure at half-maximal effect, relative to the standard regimen's "
        "average steady state (1e-6 to 1e6); defaults to the drug's ec50."
    )
    hill: Hill | None = Field(None, description="Hill coefficient (0.01 to 100); defaults to the drug's.")


class Drug(Strict):
    """A drug: one-compartment oral pharmacokinetics and its effect on each clone type.

    Exposure is the concentration relative to the average steady state of the standard regimen
    (``standard_dose`` every ``standard_interval_days``), so exposure 1 is standard dosing.
    """

    kind: Literal["targeted", "chemotherapy", "immunotherapy"] = "targeted"
    half_life_days: HalfLife = Field(description="Elimination half-life, days (1e-3 to 36525).")
    absorption_half_life_days: Annotated[Finite, Field(ge=0, le=MAX_DAYS)] = Field(
        0.0, description="Absorption half-life from the gut, days (0: instantaneous; at most 36525)."
    )
    standard_dose: Annotated[Finite, Field(ge=1e-9, le=1e9)] = Field(
        1.0, description="Standard dose (mg or relative units; 1e-9 to 1e9)."
    )
    standard_interval_days: Interval = Field(
        1.0, description="Standard dosing interval, days (> 0, at most 36525)."
    )
    ec50: EC50 = Field(
        0.3, description="Exposure at half-maximal effect, relative to the standard regimen's "
        "average steady state (1e-6 to 1e6). (peak exposure / ec50) ^ hill must stay below 1e300."
    )
    hill: Hill = Field(1.0, description="Hill coefficient of the exposure-effect curve (0.01 to 100).")
    penetration: dict[str, Annotated[Finite, Field(ge=0, le=10)]] = Field(
        default_factory=dict, description="Exposure factor by site (default 1; 0 to 10), e.g. brain = 0.3."
    )
    effects: dict[str, DrugEffect] = Field(
        default_factory=dict, description="Effect by clone type; types not listed are unaffected."
    )


class Dosing(Strict):
    """Doses of one drug: ``dose`` every ``every_days``, optionally only in the first
    ``active_days`` of each ``cycle_days`` (pulses, intermittent schedules)."""

    drug: str
    dose: DoseAmount = Field(description="Dose, in the drug's dose unit (0 to 1e9).")
    every_days: Interval = Field(
        1.0, description="Interval between doses, days (> 0, at most 36525): a whole multiple of "
        "simulation.dt_days, at least one step."
    )
    cycle_days: Interval | None = Field(
        None, description="Length of a dosing cycle, days (> 0, at most 36525; a whole multiple of "
        "dt_days, at least one step)."
    )
    active_days: Interval | None = Field(
        None, description="Days at the start of each cycle on which doses are given (> 0, at most "
        "36525 and cycle_days; a whole multiple of dt_days, at least one step)."
    )

    @model_validator(mode="after")
    def _cycle_complete(self) -> Dosing:
        if (self.cycle_days is None) != (self.active_days is None):
            raise ValueError("active_days: give both cycle_days and active_days, or neither")
        if self.cycle_days is not None and self.active_days > self.cycle_days:
            raise ValueError(
                f"active_days: must be <= cycle_days ({self.cycle_days}), got {self.active_days}"
            )
        return self


class Line(Strict):
    """A line of therapy: what is given, and where to go at systemic progression."""

    dosing: list[Dosing] = Field(default_factory=list, description="Empty: no systemic drug.")
    next: str | None = Field(None, description="Next line at progression (default: the next listed).")
    on_mechanism: dict[str, str] = Field(
        default_factory=dict,
        description="Next line by resistance mechanism found at re-biopsy, e.g. T790M = 'osimertinib'.",
    )


class Therapy(Strict):
    """Systemic therapy: lines in order; the first starts on ``start_day``."""

    start_day: Day = Field(
        0.0, description="Day the first line starts (0 to 36525; a whole multiple of simulation.dt_days)."
    )
    first_line: str | None = Field(None, description="The line given first (default: the first listed).")
    lines: dict[str, Line] = Field(default_factory=dict, description="Lines of therapy, in order.")


class Modality(Strict):
    """A local therapy of one lesion: kills a fraction of its cells; survivors regrow."""

    kill_fraction: Probability = Field(description="Fraction of the lesion's cells killed (0 to 1).")
    failure_probability: Probability = Field(0.0, description="Chance of a local failure (0 to 1).")
    kill_fraction_on_failure: Probability = Field(0.5, description="Fraction killed on failure (0 to 1).")
    site_kill_fraction: dict[str, Probability] = Field(
        default_factory=dict, description="Kill fraction by site (0 to 1), overriding kill_fraction."
    )
    max_courses_per_lesion: Integer = Field(
        1, ge=0, le=100, description=(
            "Courses of this therapy one lesion can receive (0 to 100; 0: no limit). Normal tissue around "
            "an irradiated lesion limits re-irradiation, so 1 is the default for every modality."
        ),
    )
    removes_tissue: Boolean = Field(
        False, description="The treated tissue leaves the body (surgery): the lesion keeps no residual "
        "tissue of the cells killed, and loses that share of what it had (see monitoring.residual_fraction)."
    )


def _default_modalities() -> dict[str, Modality]:
    # Gan 2014: high-dose SBRT controls 85-100% of treated lesions at 12 months.
    return {
        "surgery": Modality(kill_fraction=0.99999, failure_probability=0.05, removes_tissue=True),
        "radiotherapy": Modality(kill_fraction=0.9999, failure_probability=0.1),
        "ablation": Modality(kill_fraction=0.9999, failure_probability=0.15),
    }


class ScheduledLocalTherapy(Strict):
    day: Day = Field(description="Day of the treatment (0 to 36525; rounded to the nearest step).")
    lesion: str
    modality: str


class Monitoring(Strict):
    """What the clinic measures, and how well. The rules see only these observations."""

    enabled: Boolean = Field(True, description="Visits with CT, marker and ctDNA.")
    visit_every_days: Interval = Field(
        56.0, description="Days between visits (> 0, at most 36525): a whole multiple of "
        "simulation.dt_days, at least one step."
    )
    cells_per_cm3: Annotated[Finite, Field(ge=1e3, le=1e13)] = Field(
        1e9, description="Cell density to turn counts into size, cells per cm^3 (1e3 to 1e13)."
    )
    detection_limit_mm: Annotated[Finite, Field(ge=0, le=1e4)] = Field(
        5.0, description="Smallest lesion CT shows, mm (0 to 1e4)."
    )
    measurable_mm: Annotated[Finite, Field(ge=0, le=1e4)] = Field(
        10.0, description="RECIST measurable size, mm (0 to 1e4)."
    )
    measurement_sd_mm: Annotated[Finite, Field(ge=0, le=1e3)] = Field(
        1.0, description="CT measurement noise (SD), mm (0 to 1000)."
    )
    marker_per_1e9_cells: Annotated[Finite, Field(ge=0, le=1e6)] = Field(
        2.0, description="Tumour marker (CEA-like, ng/mL) per 1e9 tumour cells (0 to 1e6)."
    )
    marker_background: Annotated[Finite, Field(ge=0, le=1e6)] = Field(
        1.5, description="Marker without tumour, ng/mL (0 to 1e6)."
    )
    marker_cv: Annotated[Finite, Field(ge=0, le=10)] = Field(
        0.1, description="Marker measurement noise, coefficient of variation (0 to 10)."
    )
    ctdna_shed_per_death: Annotated[Finite, Field(ge=0, le=10)] = Field(
        1.4e-4, description="Genome equivalents released per dying cell (Avanzini 2020; 0 to 10)."
    )
    ctdna_elimination_per_day: Annotated[Finite, Field(ge=0.01, le=1e4)] = Field(
        33.0, description="ctDNA clearance, per day (0.01 to 1e4)."
    )
    blood_fraction_sampled: Probability = Field(
        0.003, description="Fraction of circulating DNA in one draw (0 to 1; 15 mL of 5 L is 0.003)."
    )
    normal_cfdna_copies: Annotated[Finite, Field(ge=0, le=1e12)] = Field(
        3000.0, description="Genome equivalents of normal cell-free DNA in one draw (0 to 1e12)."
    )
    ctdna_min_copies: Integer = Field(
        2, ge=1, le=MAX_INTEGER, description="Mutant copies needed to call a variant (1 to 1e9)."
    )
    biopsy_min_fraction: Probability = Field(
        0.05, description="Fraction of a lesion a genotype needs to be found at re-biopsy (0 to 1)."
    )
    residual_fraction: Probability = Field(
        0.0, description="Fraction of the volume of cells killed by a drug or by local therapy that "
        "stays in the lesion as residual tissue (necrosis, fibrosis), seen on CT until it resolves "
        "(0 to 1; 0: a CT sees only living tumour cells)."
    )
    residual_half_life_days: HalfLife = Field(
        90.0, description="Half-life of residual tissue, days (1e-3 to 36525)."
    )


class Mortality(Strict):
    """Death from the organs lesions occupy and a hazard that grows with total burden, beside
    ``simulation.lethal_burden`` (a ceiling on total cells).

    The burden hazard is the tumour-size term of the tumour-growth-inhibition / overall-
    survival models of pharmacometrics (Wang 2009, Claret 2009):
    h(t) = hazard_per_day * (N(t) / hazard_reference_cells)^hazard_exponent per day, with N the
    total tumour cells; death comes when its integral passes an Exp(1) draw made at the start.
    """

    organ_lethal_cells: dict[str, PositiveFinite] = Field(
        default_factory=dict, description=(
            "Tumour cells at one site that kill (organ failure, mass effect), by site; e.g. "
            "brain = 5e10 (about 50 cm3 at 1e9 cells/cm3). Sites not named: no organ limit."
        ),
    )
    hazard_per_day: Annotated[Finite, Field(ge=0, le=1)] = Field(
        0.0, description="Hazard of death at the reference burden, per day (0 to 1; 0: none)."
    )
    hazard_reference_cells: PositiveFinite = Field(
        1e11, description="Total tumour cells at which the hazard is hazard_per_day (> 0)."
    )
    hazard_exponent: Annotated[Finite, Field(ge=0, le=10)] = Field(
        1.0, description="How steeply the hazard rises with burden (0 to 10, dimensionless)."
    )


class Fitness(Strict):
    """Whether a patient is fit for a next line when one is due.

    P(fit) = exp(-(unfit_per_line * lines received + N / unfit_burden_cells)), drawn at each
    switch; an unfit patient gets best supportive care (no further line). About a quarter to
    a third of patients never receive therapy after a first-line TKI (docs/model.md A2,
    real-world series), which exp(-0.3) = 0.74 after one line reproduces.
    """

    unfit_per_line: Annotated[Finite, Field(ge=0, le=50)] = Field(
        0.0, description="Fall in log P(fit) per line already received (0 to 50; 0: always fit)."
    )
    unfit_burden_cells: PositiveFinite = Field(
        1e300, description="Total tumour cells per unit fall in log P(fit) (1e300: no effect)."
    )


class History(Strict):
    """The disease before diagnosis: the scenario's lesions (e.g. one founding cell in the
    primary) grow with mutation and metastatic seeding, without therapy or visits, until the
    total tumour reaches ``diagnosis_cells``; that state is day 0. The history is conditioned
    on the tumour surviving (an extinct history is redrawn: exact rejection) and stops at the
    size with the stopping resolution of ``simulation.stop_at_cells`` (about 1%).
    """

    enabled: Boolean = Field(False, description="Grow the disease from the scenario's lesions until diagnosis.")
    diagnosis_cells: Annotated[Finite, Field(gt=0, le=1e13)] = Field(
        2e10, description=(
            "Total tumour cells at diagnosis (> 0, at most 1e13); median at diagnosis about 2e10 "
            "(a 3.5 cm primary, docs/model.md A). Draw it per patient with a cohort parameter."
        ),
    )
    step_days: Annotated[Finite, Field(ge=0.01, le=90)] = Field(
        7.0, description=(
            "Engine step before diagnosis, in days (0.01 to 90). Mutation and seeding are "
            "exact at any step; density-dependent growth is held at its start-of-step value."
        ),
    )
    max_days: Annotated[Finite, Field(gt=0, le=73000)] = Field(
        18250.0, description="Longest history in days (> 0, at most 73000); a tumour that has "
        "not reached diagnosis_cells by then is an error."
    )
    max_attempts: Integer = Field(
        1000, ge=1, le=1_000_000, description=(
            "Redraws of a history that goes extinct before diagnosis (1 to 1000000)."
        ),
    )
    keep_in_tables: Boolean = Field(
        False, description="Keep the history in the trajectory and events (negative days)."
    )


class Oligoprogression(Strict):
    enabled: Boolean = True
    max_lesions: Integer = Field(3, ge=1, le=5, description="Most progressing lesions treated locally (1 to 5).")
    modality: str = Field("radiotherapy", description="Local therapy of progressing lesions.")
    max_rounds: Integer = Field(
        2, ge=0, le=100, description=(
            "Rounds of local therapy for oligoprogression on one line before the next "
            "progression counts as systemic (0 to 100; 0: no limit)."
        ),
    )


class Holiday(Strict):
    """Stop the drug after a deep response with negative ctDNA; restart on a rise."""

    enabled: Boolean = False
    min_visits: Integer = Field(
        2, ge=1, le=MAX_INTEGER, description="Consecutive responding, ctDNA-negative visits (1 to 1e9)."
    )
    max_sum_mm: Annotated[Finite, Field(ge=0, le=1e5)] = Field(
        20.0, description="Largest target sum to stop, mm (0 to 1e5)."
    )
    restart_marker_rise: Annotated[Finite, Field(ge=0, le=1e6)] = Field(
        0.5, description="Restart when the marker exceeds its value at stopping by this fraction (0 to 1e6)."
    )
    lines: list[str] = Field(
        default_factory=list, description="Lines on which holidays are taken (default: the first line)."
    )


class Adaptive(Strict):
    """Adaptive therapy (Zhang 2017): stop below a fraction of the baseline marker, restart at it."""

    enabled: Boolean = False
    stop_fraction: Annotated[Finite, Field(gt=0, lt=1)] = Field(
        0.5, description="Stop below this fraction of the baseline marker (between 0 and 1)."
    )
    restart_fraction: Annotated[Finite, Field(gt=0, le=1e6)] = Field(
        1.0, description="Restart above this fraction of the baseline marker (> 0, at most 1e6)."
    )
    lines: list[str] = Field(
        default_factory=list, description="Lines given adaptively (default: the first line)."
    )


class Consolidation(Strict):
    """Local consolidative therapy of every residual lesion after a good systemic response."""

    enabled: Boolean = False
    max_lesions: Integer = Field(
        3, ge=1, le=MAX_INTEGER, description="Treat only if at most this many lesions are visible (1 to 1e9)."
    )
    after_days: Day = Field(
        90.0, description="Earliest day on therapy (0 to 36525; rounded to the nearest step)."
    )
    modality: str = "radiotherapy"
    primary_modality: str = Field("surgery", description="Modality for lesions at the first lesion's site.")


class Policy(Strict):
    """Built-in decision rules; they act on observations only."""

    oligoprogression: Oligoprogression = Field(default_factory=Oligoprogression)
    switch_on_progression: Boolean = Field(True, description="Switch line at systemic progression.")
    holiday: Holiday = Field(default_factory=Holiday)
    adaptive: Adaptive = Field(default_factory=Adaptive)
    consolidation: Consolidation = Field(default_factory=Consolidation)


DISTRIBUTIONS = ("fixed", "uniform", "loguniform", "normal", "lognormal", "poisson", "choice")
_DISTRIBUTION_PARAMETERS = {
    "fixed": ("value",),
    "uniform": ("low", "high"),
    "loguniform": ("low", "high"),
    "normal": ("mean", "sd"),
    "lognormal": ("median", "sigma"),
    "poisson": ("mean",),
    "choice": ("values",),
}


class Distribution(Strict):
    """A distribution of one patient parameter across a virtual cohort.

    ``normal`` may be truncated to [low, high]; ``choice`` picks one of ``values`` with
    ``weights`` (default equal). ``validate`` checks the patient scenario at the distribution's
    extreme quantiles (1e-9 and 1 - 1e-9; every value of a ``choice``), so a draw is refused
    before any patient runs, not while the cohort runs.
    """

    distribution: Literal[DISTRIBUTIONS]
    value: Finite | None = None
    low: Finite | None = None
    high: Finite | None = None
    mean: Finite | None = None
    sd: Annotated[Finite, Field(gt=0)] | None = None
    median: Annotated[Finite, Field(gt=0)] | None = None
    sigma: Annotated[Finite, Field(gt=0)] | None = None
    values: list[Any] | None = None
    weights: list[Annotated[Finite, Field(ge=0)]] | None = None

    @model_validator(mode="before")
    @classmethod
    def _only_its_parameters(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("distribution") in _DISTRIBUTION_PARAMETERS:
            kind = data["distribution"]
            allowed = _DISTRIBUTION_PARAMETERS[kind] + _DISTRIBUTION_OPTIONS.get(kind, ())
            for key in data:
                if key in cls.model_fields and key not in allowed and key != "distribution" \
                        and data[key] is not None:
                    raise ValueError(f"{key}: not a parameter of distribution '{kind}' "
                                     f"(it takes {', '.join(allowed)})")
        return data

    @model_validator(mode="after")
    def _parameters_complete(self) -> Distribution:
        needed = _DISTRIBUTION_PARAMETERS[self.distribution]
        for name in needed:
            if getattr(self, name) is None:
                raise ValueError(f"{name}: required by distribution '{self.distribution}' "
                                 f"(needs {', '.join(needed)})")
        if self.distribution in ("uniform", "loguniform") and not self.low < self.high:
            raise ValueError(f"high: must be > low ({self.low}), got {self.high}")
        if self.distribution == "loguniform" and self.low <= 0:
            raise ValueError(f"low: must be > 0 for a loguniform, got {self.low}")
        if self.distribution == "poisson" and not 0 <= self.mean <= MAX_CELLS:
            raise ValueError(f"mean: must be in [0, {MAX_CELLS:.0e}] for a poisson, got {self.mean}")
        if self.distribution == "normal":
            if self.low is not None and self.high is not None and not self.low <= self.high:
                raise ValueError(f"high: must be >= low ({self.low}), got {self.high}")
            mass = _normal_mass(self.mean, self.sd, self.low, self.high)
            if mass < MIN_TRUNCATED_MASS:
                raise ValueError(f"low: a normal(mean={self.mean:g}, sd={self.sd:g}) has {mass:.2g} of its "
                                 f"mass in [low, high]; at least {MIN_TRUNCATED_MASS:g} is needed")
        for label, value in distribution_extremes(self):
            if isinstance(value, float) and not math.isfinite(value):
                name = {"lognormal": "sigma", "normal": "sd"}.get(self.distribution, "value")
                raise ValueError(f"{name}: the {label} of this {self.distribution} is not finite")
        if self.distribution == "choice":
            if not self.values:
                raise ValueError("values: must list at least one value")
            if self.weights is not None and (len(self.weights) != len(self.values) or sum(self.weights) <= 0):
                raise ValueError(f"weights: need {len(self.values)} non-negative weights with a positive sum")
        return self


_DISTRIBUTION_OPTIONS = {"normal": ("low", "high"), "choice": ("weights",)}
# Truncated normals are drawn by rejection (at most 10,000 tries per draw).
MIN_TRUNCATED_MASS = 0.01


def _normal_cdf(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def _normal_mass(mean: float, sd: float, low: float | None, high: float | None) -> float:
    upper = 1.0 if high is None else _normal_cdf((high - mean) / sd)
    lower = 0.0 if low is None else _normal_cdf((low - mean) / sd)
    return upper - lower


def distribution_extremes(d: Distribution) -> list[tuple[str, Any]]:
    """The values a draw of ``d`` practically never goes beyond: its 1e-9 and 1 - 1e-9
    quantiles (bounds of a uniform, every value of a choice), labelled for error messages."""
    from statistics import NormalDist

    z = -NormalDist().inv_cdf(EXTREME_QUANTILE)
    low_label, high_label = f"{EXTREME_QUANTILE:g} quantile", f"1 - {EXTREME_QUANTILE:g} quantile"
    kind = d.distribution
    if kind == "fixed":
        return [("value", d.value)]
    if kind in ("uniform", "loguniform"):
        return [("low", d.low), ("high", d.high)]
    if kind == "normal":
        low = d.mean - z * d.sd if d.low is None else max(d.low, d.mean - z * d.sd)
        high = d.mean + z * d.sd if d.high is None else min(d.high, d.mean + z * d.sd)
        return [(low_label, low), (high_label, high)]
    if kind == "lognormal":
        log_median = math.log(d.median)
        return [(label, math.exp(exponent) if exponent < 709 else math.inf)
                for label, exponent in ((low_label, log_median - z * d.sigma),
                                        (high_label, log_median + z * d.sigma))]
    if kind == "poisson":
        if d.mean <= 1e6:
            from scipy.stats import poisson

            low, high = poisson.ppf([EXTREME_QUANTILE, 1 - EXTREME_QUANTILE], d.mean)
        else:  # normal approximation, widened by z^2 for the skew
            spread = z * math.sqrt(d.mean) + z * z
            low, high = max(d.mean - spread, 0.0), d.mean + spread
        return [(low_label, int(max(low, 0))), (high_label, int(high))]
    return [(f"choice {index}", value) for index, value in enumerate(d.values)]


class Subtype(Strict):
    """A kind of patient (a histology, a primary-resistant tumour): its share and what differs."""

    probability: Probability = Field(description="Share of the cohort.")
    description: str = ""
    set: dict[str, Any] = Field(default_factory=dict, description="Scenario path -> value.")


class Cohort(Strict):
    """How virtual patients differ: subtypes, distributions over scenario parameters, and
    optional lesions. A patient's subtype is drawn first, then its parameters."""

    subtypes: dict[str, Subtype] = Field(
        default_factory=dict, description="Patient subtypes; the rest of the cohort is the base scenario."
    )

    parameters: dict[str, Distribution] = Field(
        default_factory=dict,
        description="Scenario path -> distribution, e.g. 'lesions.primary.cells.sensitive'.",
    )
    optional_lesions: dict[str, Probability] = Field(
        default_factory=dict, description="Lesion -> probability that a patient has it."
    )


class Arm(Strict):
    """A treatment strategy: overrides of scenario parameters (usually of the policy)."""

    description: str = ""
    set: dict[str, Any] = Field(default_factory=dict, description="Scenario path -> value.")


PRIOR_DISTRIBUTIONS = ("uniform", "loguniform", "normal", "lognormal")


class Prior(Distribution):
    """The prior of one calibrated parameter: ``uniform`` or ``loguniform`` on [low, high],
    ``normal`` (optionally truncated to [low, high]) or ``lognormal``."""

    @model_validator(mode="after")
    def _a_continuous_prior(self) -> Prior:
        if self.distribution not in PRIOR_DISTRIBUTIONS:
            raise ValueError(f"distribution: a prior must be one of {', '.join(PRIOR_DISTRIBUTIONS)}, "
                             f"got '{self.distribution}'")
        return self


class Calibration(Strict):
    """What ``simulator calibrate`` fits: priors of scenario parameters, and the reference
    metrics (ranges of ``[reference]``) a virtual cohort is compared with."""

    parameters: dict[str, Prior] = Field(
        default_factory=dict,
        description="Parameter path -> prior. Paths are those of --set (e.g. 'clones.T790M.birth'), or "
        "'cohort.parameters.PATH.FIELD' for a field of a cohort distribution (e.g. its median).",
    )
    targets: list[str] = Field(
        default_factory=list, description="Reference metrics to fit (default: every metric of [reference])."
    )
    arm: str | None = Field(None, description="Arm whose cohort is compared with the targets (default: the first).")


REFERENCE_METRICS = {
    "median_pfs_months": "median progression-free survival (Kaplan-Meier), months",
    "median_os_months": "median overall survival (Kaplan-Meier), months",
    "objective_response": "fraction with best response CR or PR",
    "complete_response": "fraction with best response CR (every lesion gone on CT)",
    "pd_best_response": "fraction with progression as best response",
    "progressed_by_3_months": "fraction progressed within 3 months",
    "t790m_at_progression": "fraction of first re-biopsies finding T790M",
    "t790m_before_treatment": "fraction of patients with T790M in at least 0.1% of tumour cells at diagnosis",
    "doubling_time_days": "median untreated volume doubling time, days",
    "brain_at_diagnosis": "fraction with a visible brain lesion at diagnosis",
    "brain_at_first_progression": "fraction whose first progression involves the brain",
    "no_second_line": "fraction of patients progressing on the first line who get no next line",
    "median_pfs_on_LINE_months": "median PFS of line LINE from its start (Kaplan-Meier), months",
}
LINE_PFS_METRIC = re.compile(r"median_pfs_on_(?P<line>.+)_months")


def reference_metric_description(metric: str) -> str | None:
    """What a reference metric means, or None if it is not one."""
    match = LINE_PFS_METRIC.fullmatch(metric)
    if match and metric != "median_pfs_on_LINE_months":
        return f"median PFS of line {match['line']} from its start (Kaplan-Meier), months"
    return REFERENCE_METRICS.get(metric) if metric != "median_pfs_on_LINE_months" else None


class Scenario(Strict):
    """A simulated patient: clone types, mutation graph, lesions, seeding and settings."""

    id: str = Field("scenario", description="Stable identifier.")
    description: str = Field("", description="One-line description.")
    long_description: str = Field("", description="What the scenario shows and how it was set.")
    citations: list[Citation] = Field(default_factory=list)
    clones: dict[str, Clone] = Field(description="Clone types by name, in a fixed order.")
    mutations: list[Mutation] = Field(default_factory=list)
    switching: list[Switching] = Field(
        default_factory=list, description="Reversible phenotype switches at rates per day."
    )
    lesions: dict[str, Lesion] = Field(description="Lesions present at time 0, by name.")
    seeding: Seeding = Field(default_factory=Seeding)
    drugs: dict[str, Drug] = Field(default_factory=dict, description="Drugs by name.")
    therapy: Therapy = Field(default_factory=Therapy)
    local_therapy: dict[str, Modality] = Field(
        default_factory=_default_modalities,
        description="Local therapy modalities by name; surgery, radiotherapy and ablation are "
        "built in and may be overridden.",
    )
    scheduled_local_therapy: list[ScheduledLocalTherapy] = Field(default_factory=list)
    monitoring: Monitoring = Field(default_factory=Monitoring)
    policy: Policy = Field(default_factory=Policy)
    simulation: Simulation = Field(default_factory=Simulation)
    mortality: Mortality = Field(default_factory=Mortality)
    fitness: Fitness = Field(default_factory=Fitness)
    history: History = Field(default_factory=History)
    cohort: Cohort = Field(default_factory=Cohort)
    arms: dict[str, Arm] = Field(default_factory=dict, description="Treatment strategies by name.")
    reference: dict[str, tuple[Finite, Finite]] = Field(
        default_factory=dict,
        description="Published ranges to compare a cohort with: metric -> [low, high]; metrics: "
        + ", ".join(REFERENCE_METRICS),
    )
    calibration: Calibration = Field(default_factory=Calibration)

    @field_validator("local_therapy", mode="after")
    @classmethod
    def _keep_default_modalities(cls, value: dict[str, Modality]) -> dict[str, Modality]:
        return {**_default_modalities(), **value}

    @model_validator(mode="after")
    def _references_resolve(self) -> Scenario:
        if not self.clones:
            raise ValueError("clones: at least one clone type is required")
        if not self.lesions:
            raise ValueError("lesions: at least one lesion is required")
        names = list(self.clones)
        for index, mutation in enumerate(self.mutations):
            for key, name in (("from", mutation.source), ("to", mutation.target)):
                _require_known(f"mutations[{index}].{key}", name, names, "clone type")
            if mutation.source == mutation.target:
                raise ValueError(f"mutations[{index}].to: must differ from 'from' ({mutation.source})")
        for clone in names:
            total = sum(m.probability for m in self.mutations if m.source == clone)
            if total > 1:
                raise ValueError(
                    f"mutations: probabilities out of '{clone}' must sum to <= 1, got {total}"
                )
        for lesion_name, lesion in self.lesions.items():
            for clone in lesion.cells:
                _require_known(f"lesions.{lesion_name}.cells.{clone}", clone, names, "clone type")
            if sum(lesion.cells.values()) == 0:
                raise ValueError(f"lesions.{lesion_name}.cells: a lesion needs at least one cell")
        if self.simulation.stop_clone is not None:
            _require_known("simulation.stop_clone", self.simulation.stop_clone, names, "clone type")
        for index, switch in enumerate(self.switching):
            for key, name in (("from", switch.source), ("to", switch.target)):
                _require_known(f"switching[{index}].{key}", name, names, "clone type")
            if switch.source == switch.target:
                raise ValueError(f"switching[{index}].to: must differ from 'from' ({switch.source})")
            if switch.drug is not None:
                _require_known(f"switching[{index}].drug", switch.drug, list(self.drugs), "drug")
            if (switch.drug is None) != (switch.on_drug_rate_per_day is None):
                raise ValueError(f"switching[{index}]: drug and on_drug_rate_per_day go together")
        self._check_therapy_references(names)
        self._check_step_growth()
        self._check_count_range()
        self._check_exposure_effect()
        self._check_seeding()
        self._check_memory()
        self._check_history()
        for metric, (low, high) in self.reference.items():
            line = LINE_PFS_METRIC.fullmatch(metric)
            if line and metric != "median_pfs_on_LINE_months":
                _require_known(f"reference.{metric}", line["line"], list(self.therapy.lines), "line")
            else:
                _require_known(f"reference.{metric}", metric, [m for m in REFERENCE_METRICS
                                                               if m != "median_pfs_on_LINE_months"], "metric")
            if not low <= high:
                raise ValueError(f"reference.{metric}: must be [low, high] with low <= high, got [{low:g}, {high:g}]")
        for index, metric in enumerate(self.calibration.targets):
            if metric in self.reference:  # a known metric: the reference's ranges are checked above
                continue
            if reference_metric_description(metric) is None:
                _require_known(f"calibration.targets[{index}]", metric, list(REFERENCE_METRICS), "metric")
            if metric not in self.reference:
                raise ValueError(f"calibration.targets[{index}]: '{metric}' has no range in [reference]; "
                                 f"ranges given: {', '.join(self.reference) or '(none)'}")
        if self.calibration.arm is not None:
            _require_known("calibration.arm", self.calibration.arm, list(self.arms), "arm")
        for lesion in self.cohort.optional_lesions:
            _require_known(f"cohort.optional_lesions.{lesion}", lesion, list(self.lesions), "lesion")
        share = sum(subtype.probability for subtype in self.cohort.subtypes.values())
        if share > 1 + 1e-12:
            raise ValueError(f"cohort.subtypes: probabilities must sum to <= 1, got {share}")
        if set(self.cohort.optional_lesions) >= set(self.lesions):
            raise ValueError("cohort.optional_lesions: at least one lesion must always be present")
        return self

    def _check_therapy_references(self, clone_names: list[str]) -> None:
        drugs, lines, modalities = list(self.drugs), list(self.therapy.lines), list(self.local_therapy)
        mechanisms = sorted({c.resistance for c in self.clones.values() if c.resistance})
        for drug_name, drug in self.drugs.items():
            for clone in drug.effects:
                _require_known(f"drugs.{drug_name}.effects.{clone}", clone, clone_names, "clone type")
        for line_name, line in self.therapy.lines.items():
            for index, dosing in enumerate(line.dosing):
                _require_known(f"therapy.lines.{line_name}.dosing[{index}].drug", dosing.drug, drugs, "drug")
            if line.next is not None:
                _require_known(f"therapy.lines.{line_name}.next", line.next, lines, "line")
            for mechanism, target in line.on_mechanism.items():
                _require_known(f"therapy.lines.{line_name}.on_mechanism.{mechanism}", mechanism,
                               mechanisms, "resistance mechanism")
                _require_known(f"therapy.lines.{line_name}.on_mechanism.{mechanism}", target, lines, "line")
        if self.therapy.first_line is not None:
            _require_known("therapy.first_line", self.therapy.first_line, lines, "line")
        for index, item in enumerate(self.scheduled_local_therapy):
            _require_known(f"scheduled_local_therapy[{index}].lesion", item.lesion, list(self.lesions), "lesion")
            _require_known(f"scheduled_local_therapy[{index}].modality", item.modality, modalities, "modality")
        policy = self.policy
        _require_known("policy.oligoprogression.modality", policy.oligoprogression.modality, modalities, "modality")
        _require_known("policy.consolidation.modality", policy.consolidation.modality, modalities, "modality")
        _require_known("policy.consolidation.primary_modality", policy.consolidation.primary_modality,
                       modalities, "modality")
        for rule in ("holiday", "adaptive"):
            for index, line_name in enumerate(getattr(policy, rule).lines):
                _require_known(f"policy.{rule}.lines[{index}]", line_name, lines, "line")
        courses: dict[tuple[str, str], int] = {}
        for index, item in enumerate(self.scheduled_local_therapy):
            key = (item.lesion, item.modality)
            courses[key] = courses.get(key, 0) + 1
            limit = self.local_therapy[item.modality].max_courses_per_lesion
            if limit and courses[key] > limit:
                raise ValueError(
                    f"scheduled_local_therapy[{index}]: lesion '{item.lesion}' would get course "
                    f"{courses[key]} of {item.modality}; local_therapy.{item.modality}."
                    f"max_courses_per_lesion allows {limit}")
        if policy.adaptive.enabled and policy.holiday.enabled:
            raise ValueError("policy.adaptive.enabled: cannot be combined with policy.holiday.enabled")
        dt = self.simulation.dt_days
        _require_multiple("therapy.start_day", self.therapy.start_day, dt)
        if self.monitoring.enabled:
            _require_multiple("monitoring.visit_every_days", self.monitoring.visit_every_days, dt, interval=True)
        for line_name, line in self.therapy.lines.items():
            for index, dosing in enumerate(line.dosing):
                for key in ("every_days", "cycle_days", "active_days"):
                    value = getattr(dosing, key)
                    if value is not None:
                        _require_multiple(f"therapy.lines.{line_name}.dosing[{index}].{key}", value, dt,
                                          interval=True)

    def _check_history(self) -> None:
        """A history must start below its diagnosis size and stop before death."""
        if not self.history.enabled:
            return
        start = sum(sum(lesion.cells.values()) for lesion in self.lesions.values())
        if start >= self.history.diagnosis_cells:
            raise ValueError(f"history.diagnosis_cells: must be above the lesions' starting cells "
                             f"({start:g}), got {self.history.diagnosis_cells:g}")
        if self.history.diagnosis_cells >= self.simulation.lethal_burden:
            raise ValueError(f"history.diagnosis_cells: must be below simulation.lethal_burden "
                             f"({self.simulation.lethal_burden:g}), got {self.history.diagnosis_cells:g}")
        present = {name for lesion in self.lesions.values() for name, n in lesion.cells.items() if n > 0}
        growth = max((self.clones[name].birth - self.clones[name].death for name in present), default=0.0)
        if growth <= 0:
            raise ValueError("history.enabled: no clone type in the lesions' starting cells grows "
                             "(birth > death) without drug, so no history reaches diagnosis")
        room = max(math.inf if self.growth_law_of(lesion) == "exponential" else lesion.carrying_capacity
                   for lesion in self.lesions.values())
        if room <= self.history.diagnosis_cells:
            raise ValueError(f"history.diagnosis_cells: must be below the largest starting lesion's "
                             f"carrying_capacity ({room:g}), got {self.history.diagnosis_cells:g}")
        fastest = math.log(self.history.diagnosis_cells / start) / growth
        if self.history.max_days < fastest:
            raise ValueError(f"history.max_days: growing at most {growth:g}/day, the tumour needs at "
                             f"least {fastest:.0f} days to reach diagnosis_cells, got {self.history.max_days:g}")

    def _check_step_growth(self) -> None:
        # exp((b - d) dt) must stay far from floating-point overflow in the exact update.
        dt = self.simulation.dt_days
        for name, clone in self.clones.items():
            if abs(clone.birth - clone.death) * dt > MAX_NET_GROWTH_PER_STEP:
                raise ValueError(
                    f"simulation.dt_days: must be <= {MAX_NET_GROWTH_PER_STEP / abs(clone.birth - clone.death):.3g} "
                    f"for clone type '{name}' (|birth - death| x dt <= {MAX_NET_GROWTH_PER_STEP:g}), got {dt}"
                )

    def _check_count_range(self) -> None:
        # The engine stops a patient once the burden reaches lethal_burden; one more step of
        # the fastest growth, or of a step's divisions, must still fit in an int64 count.
        dt = self.simulation.dt_days
        start = sum(sum(lesion.cells.values()) for lesion in self.lesions.values())
        burden = max(self.simulation.lethal_burden, float(start))
        name, clone = max(self.clones.items(),
                          key=lambda item: max((item[1].birth - item[1].death) * dt, math.log1p(item[1].birth * dt)))
        reach = math.log(burden) + max((clone.birth - clone.death) * dt, math.log1p(clone.birth * dt))
        if reach > math.log(INT64_HEADROOM):
            raise ValueError(
                f"simulation.lethal_burden: a burden of {burden:.3g} cells grows within one step "
                f"(dt_days {dt:g}; clone type '{name}': birth {clone.birth:g}, death {clone.death:g}) "
                f"to about {math.exp(min(reach, 700)):.3g}, beyond the int64 count range "
                f"({INT64_HEADROOM:.3g}); lower lethal_burden, the initial cells, the rates or dt_days"
            )

    def _check_exposure_effect(self) -> None:
        # The engine evaluates (exposure / ec50) ** hill directly: bound its largest value.
        for drug_name, drug in self.drugs.items():
            peak = peak_exposure(self, drug_name)
            if peak <= 0:
                continue
            reach = peak * max([1.0, *drug.penetration.values()])
            for clone, effect in drug.effects.items():
                ec50 = effect.ec50 or drug.ec50
                hill = effect.hill or drug.hill
                size = hill * math.log(reach / ec50)
                if size > MAX_HILL_RATIO_LOG:
                    field = f"drugs.{drug_name}.effects.{clone}.hill" if effect.hill else f"drugs.{drug_name}.hill"
                    raise ValueError(
                        f"{field}: (peak exposure / ec50) ^ hill must stay below 1e300; with peak "
                        f"exposure up to {reach:.3g} (the therapy lines' dosing), ec50 {ec50:g} and hill "
                        f"{hill:g} it reaches 1e{size / math.log(10):.0f}; lower hill or raise ec50"
                    )

    def _check_seeding(self) -> None:
        expected = expected_seeded_lesions(self)
        if expected > MAX_SEEDED_LESIONS:
            raise ValueError(
                f"seeding.rate: a run could found about {expected:.3g} lesions (rate {self.seeding.rate:g} "
                f"x up to {expected / self.seeding.rate:.3g} cell-days before lethal_burden); at most "
                f"{MAX_SEEDED_LESIONS:,}; lower seeding.rate, lethal_burden or duration_days"
            )

    def _check_memory(self) -> None:
        need, detail = run_bytes(self)
        if need > MAX_RUN_BYTES:
            raise ValueError(
                f"simulation.max_lesions: a run would need {need / 1024**3:.1f} GiB ({detail}); at most "
                f"{MAX_RUN_BYTES / 1024**3:.0f} GiB; lower max_lesions, the clone types or duration_days, "
                "or raise record_every_days"
            )

    def growth_law_of(self, lesion: Lesion) -> str:
        return lesion.growth_law or self.simulation.growth_law

    @property
    def mechanisms(self) -> list[str]:
        """Resistance mechanisms carried by some clone type, sorted."""
        return sorted({c.resistance for c in self.clones.values() if c.resistance})

    @property
    def sites(self) -> list[str]:
        """Every site named by a lesion or a seeding weight, in first-seen order."""
        seen = [lesion.site for lesion in self.lesions.values()] + list(self.seeding.site_weights)
        seen += [site for drug in self.drugs.values() for site in drug.penetration]
        seen += list(self.mortality.organ_lethal_cells)
        return list(dict.fromkeys(seen))


def _require_multiple(path: str, value: float, dt: float, interval: bool = False) -> None:
    ratio = value / dt
    if interval and round(ratio) < 1:
        raise ValueError(f"{path}: must be >= simulation.dt_days ({dt:g}, one step), got {value:g}")
    if abs(ratio - round(ratio)) > 1e-9 * max(1.0, ratio):
        raise ValueError(f"{path}: must be a whole multiple of simulation.dt_days ({dt}), got {value}")


def peak_exposure(scenario: Scenario, drug_name: str) -> float:
    """An upper bound of the drug's exposure (relative to the standard regimen's average
    steady state) under any course of the scenario's lines: every dosing of the drug in every
    line given at once, at steady state. 0 if no line doses it.

    With instantaneous absorption the central amount peaks below ``dose / (1 - exp(-k tau))``
    per schedule; with first-order absorption at rate ``ka`` the gut holds at most
    ``dose / (1 - exp(-ka tau))``, so the central amount stays below ``ka / k`` times that.
    """
    drug = scenario.drugs[drug_name]
    k = math.log(2.0) / drug.half_life_days
    rate = math.log(2.0) / drug.absorption_half_life_days if drug.absorption_half_life_days > 0 else k
    amount = 0.0
    for line in scenario.therapy.lines.values():
        for dosing in line.dosing:
            if dosing.drug == drug_name and dosing.dose > 0:
                amount += dosing.dose / -math.expm1(-rate * dosing.every_days)
    amount *= rate / k
    return amount * k * drug.standard_interval_days / drug.standard_dose


def expected_seeded_lesions(scenario: Scenario) -> float:
    """An upper bound of the expected number of lesions seeding founds in a run.

    A founder is a new cell (its source keeps its own), so seeding adds to growth: the expected
    burden never exceeds ``N0 exp(g t)`` with ``g`` the fastest drug-free net growth rate plus
    the seeding rate (drugs and density only slow it; each new lesion has its own capacity),
    nor the lethal burden. The expected seeding events are at most ``rate`` times the integral
    of ``min(lethal, N0 exp(g t))`` over the run.
    """
    rate = scenario.seeding.rate
    if rate <= 0:
        return 0.0
    sim = scenario.simulation
    start = float(sum(sum(lesion.cells.values()) for lesion in scenario.lesions.values()))
    lethal, days = sim.lethal_burden, sim.duration_days
    if start >= lethal:
        return rate * start * sim.dt_days  # the patient dies at the end of the first step
    growth = max(c.birth - c.death for c in scenario.clones.values()) + rate
    if growth <= 0:
        return rate * start * days
    reach = min(days, math.log(lethal / start) / growth)
    return rate * ((start * math.exp(growth * reach) - start) / growth + lethal * (days - reach))


def run_bytes(scenario: Scenario) -> tuple[int, str]:
    """Bytes the engine's buffers of one run take (with the trajectory recorded), and how:
    the initial lesion room x clone types x records, and visits x lesion room."""
    sim = scenario.simulation
    room = sim.max_lesions
    while room < len(scenario.lesions) + expected_seeded_lesions(scenario):
        room *= 2  # the engine doubles its room until the lesions fit
    clones = len(scenario.clones)
    records = sim.n_steps // sim.record_every_steps + 2
    visits = 1
    if scenario.monitoring.enabled:
        every = max(1, int(round(scenario.monitoring.visit_every_days / sim.dt_days)))
        start = int(round(scenario.therapy.start_day / sim.dt_days))
        visits = max(sim.n_steps - start, 0) // every + 2
    need = 8 * records * room * clones + 9 * visits * room + 8 * (records + visits) * 4
    detail = (f"{room:,} lesions x {clones} clone types x {records:,} records x 8 bytes"
              f" + {visits:,} visits x {room:,} lesions x 9 bytes")
    return need, detail


def _require_known(path: str, name: str, known: list[str], what: str) -> None:
    if name not in known:
        raise ValueError(f"{path}: unknown {what} '{name}'{_suggestion(name, known)}")


def _suggestion(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return f"{hint}; allowed: {', '.join(known)}"


# --- loading ---------------------------------------------------------------------------------


def load_scenario(source: str | Path | dict, overrides: dict[str, Any] | None = None) -> Scenario:
    """Load and validate a scenario.

    Parameters
    ----------
    source
        Path of a TOML file, the id of a catalog scenario, or a dict of the same shape.
    overrides
        Dotted paths and values applied before validation, e.g. ``{"clones.T790M.birth": 0.1}``.

    Raises
    ------
    ScenarioError
        One line naming the field path, the value and what is allowed.
    """
    raw = _read_raw(source)
    for path, value in (overrides or {}).items():
        set_path(raw, path, value)
    return validate_scenario(raw)


def validate_scenario(raw: dict) -> Scenario:
    """Validate a dict into a Scenario, turning pydantic's report into one clear line.

    Paths named by cohort distributions and arms must exist, every arm and every subtype must
    give a valid scenario, and so must every distribution at its extreme quantiles (in the base
    scenario and in each subtype), so that no draw fails once a cohort runs.
    """
    scenario = _validate_one(raw)
    if scenario.cohort.parameters or scenario.cohort.subtypes or scenario.arms:
        resolved = scenario_to_dict(scenario)
        for path in scenario.cohort.parameters:
            _require_path(resolved, path, f"cohort.parameters.{path}")
        for name, subtype in scenario.cohort.subtypes.items():
            _check_settings(resolved, subtype.set, f"cohort.subtypes.{name}.set")
        for name, arm in scenario.arms.items():
            _check_settings(resolved, arm.set, f"arms.{name}.set")
        _check_extremes(scenario, resolved)
    if scenario.calibration.parameters:
        resolved = scenario_to_dict(scenario)
        for path in scenario.calibration.parameters:
            calibration_path(resolved, path)
    return scenario


COHORT_FIELD_PREFIX = "cohort.parameters."


def calibration_path(resolved: dict, path: str, field: str | None = None) -> tuple[str, str] | tuple[None, str]:
    """Where a calibrated (or swept) parameter lives: ``(cohort_key, field)`` for a field of a
    cohort distribution (``cohort.parameters.lesions.primary.cells.T790M.median``: the
    distribution of ``lesions.primary.cells.T790M``, its ``median``), else ``(None, path)`` for
    a path of ``--set``. A path that names nothing is refused, naming ``field`` (by default
    ``calibration.parameters.PATH``)."""
    field = field or f"calibration.parameters.{path}"
    prefix = COHORT_FIELD_PREFIX
    if path.startswith(prefix):
        key, _, name = path.removeprefix(prefix).rpartition(".")
        distributions = resolved.get("cohort", {}).get("parameters", {})
        if key not in distributions:
            raise ScenarioError(f"{field}: no cohort distribution '{key}'{_suggestion(key, list(distributions))}")
        spec = distributions[key]
        allowed = [k for k, v in spec.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
        if name not in allowed:
            raise ScenarioError(f"{field}: '{name}' is not a number of this distribution{_suggestion(name, allowed)}")
        return key, name
    if path.split(".")[0] in ("cohort", "arms", "reference", "calibration"):
        raise ScenarioError(f"{field}: a calibrated parameter is a patient parameter or "
                            "cohort.parameters.PATH.FIELD, not a path in this section")
    _require_path(patient_raw(resolved), path, field)
    value = get_path(resolved, path)
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise ScenarioError(f"{field}: must name a number, got {value!r}")
    return None, path


def is_cohort_field(path: str) -> bool:
    """A field of a cohort distribution (``cohort.parameters.PATH.FIELD``, e.g. its median): it
    moves the population patients are drawn from, not each patient's value."""
    return path.startswith(COHORT_FIELD_PREFIX)


def parameter_value(resolved: dict, path: str) -> Any:
    """The value a calibrated or swept ``path`` has in ``resolved`` (see :func:`calibration_path`)."""
    key, name = calibration_path(resolved, path)
    return get_path(resolved, path) if key is None else resolved["cohort"]["parameters"][key][name]


def with_cohort_fields(resolved: dict, values: dict) -> dict:
    """``resolved`` with the cohort-distribution fields among ``values`` set (``resolved``
    itself, not a copy, when there are none); other paths are left to the patients' settings."""
    fields = {path: value for path, value in values.items() if is_cohort_field(path)}
    if not fields:
        return resolved
    raw = json.loads(json.dumps(resolved))
    for path, value in fields.items():
        key, name = calibration_path(resolved, path)
        raw["cohort"]["parameters"][key][name] = value
    return raw


def _check_extremes(scenario: Scenario, resolved: dict) -> None:
    """Each distribution at its extreme quantiles, the others at their base values."""
    base = patient_raw(resolved)
    settings = [("", {})] + [(f" in subtype '{name}'", subtype.set)
                             for name, subtype in scenario.cohort.subtypes.items()]
    for path, distribution in scenario.cohort.parameters.items():
        field = f"cohort.parameters.{path}"
        is_int = isinstance(get_path(base, path), int) and not isinstance(get_path(base, path), bool)
        for where, subtype_set in settings:
            if path in subtype_set:
                continue  # the subtype's value replaces the draw
            for label, value in distribution_extremes(distribution):
                if is_int and isinstance(value, float):
                    value = int(round(value))
                patient = _deep_copy(base)
                for other, setting in subtype_set.items():
                    set_path(patient, other, setting)
                set_path(patient, path, value)
                try:
                    Scenario.model_validate(patient)
                except ValidationError as error:
                    shown = f"{value:.6g}" if isinstance(value, float) else repr(value)
                    raise ScenarioError(f"{field}: a draw at its {label} ({shown}){where} is refused: "
                                        f"{_first_error_line(error)}") from None


def _check_settings(resolved: dict, settings: dict[str, Any], field: str) -> None:
    """Settings (path -> value) must name existing parameters and give a valid scenario."""
    patient = patient_raw(resolved)
    for path, value in settings.items():
        _require_path(resolved, path, f"{field}.{path}")
        set_path(patient, path, value)
    try:
        Scenario.model_validate(patient)
    except ValidationError as error:
        raise ScenarioError(f"{field}: {_first_error_line(error)}") from None


def _validate_one(raw: dict) -> Scenario:
    try:
        return Scenario.model_validate(raw)
    except ValidationError as error:
        raise ScenarioError(_first_error_line(error)) from None


def patient_raw(resolved: dict) -> dict:
    """A resolved scenario without its cohort, arms, reference and calibration: one patient's
    scenario."""
    return {key: _deep_copy(value) for key, value in resolved.items()
            if key not in ("cohort", "arms", "reference", "calibration")}


def _require_path(raw: dict, path: str, field: str) -> None:
    try:
        get_path(raw, path)
    except (KeyError, IndexError, TypeError, ValueError, ScenarioError):
        parent, _, last = path.rpartition(".")
        try:
            node = get_path(raw, parent) if parent else raw
            known = list(node) if isinstance(node, dict) else []
        except Exception:
            known = []
        hint = _suggestion(last, known) if known else ""
        raise ScenarioError(f"{field}: no scenario parameter '{path}'{hint}") from None


def _read_raw(source: str | Path | dict) -> dict:
    if isinstance(source, dict):
        return _deep_copy(source)
    path = Path(source)
    if not path.exists():
        from simulator.catalog import catalog_path

        found = catalog_path(str(source))
        if found is None:
            raise ScenarioError(f"scenario: no file or catalog id '{source}'")
        path = found
    return _resolve_extends(_read_toml(path, "scenario"), path, depth=0)


def _read_toml(path: Path, field: str) -> dict:
    """A TOML file as a dict; any failure is one line naming the file."""
    if path.is_dir():
        raise ScenarioError(f"{field}: '{path}' is a directory, not a scenario file")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as error:
        raise ScenarioError(f"{path}: malformed TOML: {error}") from None
    except UnicodeDecodeError as error:
        raise ScenarioError(f"{path}: not UTF-8 text (byte {error.start}); a scenario is a UTF-8 TOML file") from None
    except OSError as error:
        raise ScenarioError(f"{path}: cannot read: {error.strerror or error}") from None


def _resolve_extends(raw: dict, path: Path, depth: int) -> dict:
    """``extends = "id"``: start from another catalog scenario (or a file beside this one)
    and change what this file sets; tables merge key by key (``arms``, ``reference`` and
    ``calibration`` are replaced whole; a new ``reference`` drops the base's ``calibration``),
    anything else is replaced."""
    base_name = raw.pop("extends", None)
    if base_name is None:
        return raw
    if depth > 8:
        raise ScenarioError(f"{path}: extends: chain too long (a cycle?)")
    if not isinstance(base_name, str):
        raise ScenarioError(f"extends: must be a scenario id or file name, got {base_name!r}")
    sibling = path.parent / (base_name if base_name.endswith(".toml") else f"{base_name}.toml")
    from simulator.catalog import catalog_path

    base_path = sibling if sibling.exists() else catalog_path(base_name)
    if base_path is None:
        raise ScenarioError(f"extends: no scenario '{base_name}' beside {path.name} or in the catalog")
    base = _read_toml(base_path, f"{path}: extends '{base_name}'")
    base = _resolve_extends(base, base_path, depth + 1)
    for key in _REPLACED_WHOLE:
        if key in raw:
            base.pop(key, None)
    if "reference" in raw:
        base.pop("calibration", None)  # its targets are ranges of the reference replaced
    return _merge(base, raw)


# Tables a scenario that extends another replaces whole: its own strategies and targets.
_REPLACED_WHOLE = ("arms", "reference", "calibration")


def _merge(base: dict, changes: dict) -> dict:
    merged = dict(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _deep_copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _deep_copy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_deep_copy(item) for item in value]
    return value


def parse_value(text: str) -> Any:
    """Parse a command-line value as TOML (numbers, booleans, lists), else keep it a string."""
    try:
        return tomllib.loads(f"value = {text}")["value"]
    except tomllib.TOMLDecodeError:
        return text


def set_path(raw: dict, path: str, value: Any) -> None:
    """Set ``raw[a][b][c] = value`` for ``path = 'a.b.c'``; list items as ``mutations.0.probability``."""
    keys = path.split(".")
    node: Any = raw
    for depth, key in enumerate(keys[:-1]):
        node = _child(node, key, ".".join(keys[: depth + 1]), create=True)
    last = keys[-1]
    if isinstance(node, list):
        node[_list_index(node, last, path)] = value
    elif isinstance(node, dict):
        node[last] = value
    else:
        parent = ".".join(keys[:-1])
        raise ScenarioError(f"{path}: '{parent}' is a value ({node!r}), not a table; cannot set '{last}' in it")


def get_path(raw: dict, path: str) -> Any:
    node: Any = raw
    keys = path.split(".")
    for depth, key in enumerate(keys):
        node = _child(node, key, ".".join(keys[: depth + 1]), create=False)
    return node


def _child(node: Any, key: str, path: str, create: bool) -> Any:
    if isinstance(node, list):
        return node[_list_index(node, key, path)]
    if not isinstance(node, dict):
        parent = path.rpartition(".")[0]
        raise ScenarioError(f"{path}: '{parent}' is a value ({node!r}), not a table")
    if key not in node:
        if not create:
            raise ScenarioError(f"{path}: not set in this scenario")
        node[key] = {}
    return node[key]


def _list_index(node: list, key: str, path: str) -> int:
    if not key.isdigit() or int(key) >= len(node):
        raise ScenarioError(f"{path}: must be an index from 0 to {len(node) - 1}, got '{key}'")
    return int(key)


# --- error messages --------------------------------------------------------------------------


def _first_error_line(error: ValidationError) -> str:
    errors = error.errors()
    # A misspelt key also makes its correct spelling "missing": name the misspelling.
    first = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    loc = tuple(first["loc"])
    path = _format_loc(loc)
    kind = first["type"]
    given = first.get("input")
    context = first.get("ctx") or {}
    if kind == "extra_forbidden":
        allowed = _allowed_keys(loc[:-1])
        return f"{path}: unknown key{_suggestion(str(loc[-1]), allowed)}"
    if kind == "missing" and loc and isinstance(loc[-1], int):
        return f"{_format_loc(loc[:-1])}: too few values, item [{loc[-1]}] is missing"
    if kind == "missing":
        return f"{path}: required field is missing"
    bounds = {
        "greater_than_equal": ">=",
        "greater_than": ">",
        "less_than_equal": "<=",
        "less_than": "<",
    }
    if kind in bounds:
        limit = next(iter(context.values()))
        shown = f"{limit:g}" if isinstance(limit, (int, float)) and not isinstance(limit, bool) else limit
        return f"{path}: must be {bounds[kind]} {shown}, got {given!r}"
    if kind == "finite_number":
        return f"{path}: must be finite, got {given!r}"
    shapes = {"float_type": "a number", "string_type": "a string", "dict_type": "a table",
              "model_type": "a table", "model_attributes_type": "a table", "list_type": "a list",
              "tuple_type": "a list", "too_short": "a longer list", "too_long": "a shorter list"}
    if kind in shapes:
        shown = given if not isinstance(given, (dict, list)) or len(repr(given)) < 60 else type(given).__name__
        return f"{path}: must be {shapes[kind]}, got {shown!r}"
    if kind == "literal_error":
        return f"{path}: must be one of {context.get('expected')}, got {given!r}"
    message = str(first["msg"]).removeprefix("Value error, ")
    if _RELATIVE_PATH.match(message):
        # A table-level check names the field inside its table; prefix the table's path.
        return f"{path}.{message}" if path else message
    return f"{path}: {message}" if path else message


_RELATIVE_PATH = re.compile(r"^[\w.\[\]-]+: ")


def _format_loc(loc: tuple) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        else:
            parts.append(("." if parts else "") + str(item))
    return "".join(parts)


def _allowed_keys(loc: tuple) -> list[str]:
    """The field names (as written in TOML) of the table at ``loc``."""
    model: Any = Scenario
    for item in loc:
        model = _descend(model, item)
        if model is None:
            return []
    if isinstance(model, type) and issubclass(model, BaseModel):
        return [field.alias or name for name, field in model.model_fields.items()]
    return []


def _descend(annotation: Any, item: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        for name, field in annotation.model_fields.items():
            if item in (name, field.alias):
                return _unwrap(field.annotation)
        return None
    origin = typing.get_origin(annotation)
    if origin in (dict, list):
        return _unwrap(typing.get_args(annotation)[-1])
    return None


def _unwrap(annotation: Any) -> Any:
    """Strip Optional/Annotated wrappers down to the model or container type."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            options = [a for a in typing.get_args(annotation) if a is not type(None)]
            annotation = options[0]
        else:
            return annotation


def scenario_json_schema() -> dict:
    """JSON Schema of a scenario file (the TOML maps one to one onto JSON)."""
    return _standard_bounds(Scenario.model_json_schema(by_alias=True))


# Bounds on validated numbers reach the schema under pydantic's names; JSON Schema has its own.
_BOUND_KEYWORDS = {"ge": "minimum", "le": "maximum", "gt": "exclusiveMinimum", "lt": "exclusiveMaximum"}


def _standard_bounds(node: Any) -> Any:
    if isinstance(node, list):
        return [_standard_bounds(item) for item in node]
    if not isinstance(node, dict):
        return node
    numeric = node.get("type") in ("number", "integer")
    return {(_BOUND_KEYWORDS[key] if numeric and key in _BOUND_KEYWORDS else key): _standard_bounds(value)
            for key, value in node.items()}


def scenario_to_dict(scenario: Scenario) -> dict:
    """The scenario as resolved (defaults filled in), in the shape of its TOML."""
    return scenario.model_dump(mode="json", by_alias=True)
