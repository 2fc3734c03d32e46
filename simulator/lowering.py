"""Scenario -> flat arrays for the engine. Nothing here draws a random number."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Callable, NamedTuple

import numpy as np

from simulator.engine.dynamics import GROWTH_LAW_CODES
from simulator.engine.kernel import DrugArrays, Dynamics, ModelArrays, Mortality
from simulator.scenario import Scenario

LN2 = math.log(2.0)


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
    switches = sorted(
        ((clone_index[w.source], clone_index[w.target], w.rate_per_day, w.drug, w.on_drug_rate_per_day)
         for w in scenario.switching), key=lambda w: (w[0], w[1]))
    switch_source = np.array([w[0] for w in switches], np.int64)
    dynamics = Dynamics(
        birth=np.array([c.birth for c in clones], np.float64),
        death=np.array([c.death for c in clones], np.float64),
        mutation_total=mutation_total,
        edge_start=edge_start,
        edge_target=np.array([e[1] for e in edges], np.int64),
        edge_probability=np.array([e[2] for e in edges], np.float64),
        switch_start=np.searchsorted(switch_source, np.arange(len(clone_names) + 1)).astype(np.int64),
        switch_target=np.array([w[1] for w in switches], np.int64),
        site_cumulative_weight=cumulative,
        seeding_rate=float(scenario.seeding.rate),
        seeding_capacity=float(scenario.seeding.carrying_capacity),
        seeding_law=GROWTH_LAW_CODES[simulation.growth_law],
        dt=float(simulation.dt_days),
        max_block=simulation.block_steps(),
        step_tolerance=float(simulation.step_tolerance),
        residual_fraction=float(scenario.monitoring.residual_fraction),
        residual_clearance=LN2 / scenario.monitoring.residual_half_life_days,
    )
    drugs, rules = lower_clinic(scenario, list(site_names),
                                lambda days: int(round(days / simulation.dt_days)))
    drug_index = {name: i for i, name in enumerate(scenario.drugs)}
    drug_of = [scenario.drugs[w[3]] if w[3] else None for w in switches]
    drugs = drugs._replace(
        switch_source=switch_source,
        switch_off=np.array([w[2] for w in switches], np.float64),
        switch_on=np.array([w[4] if w[4] is not None else w[2] for w in switches], np.float64),
        switch_drug=np.array([drug_index[w[3]] if w[3] else -1 for w in switches], np.int64),
        switch_ec50=np.array([d.ec50 if d else 1.0 for d in drug_of], np.float64),
        switch_hill=np.array([d.hill if d else 1.0 for d in drug_of], np.float64),
    )
    mortality = scenario.mortality
    lowered_mortality = Mortality(
        lethal_burden=float(simulation.lethal_burden),
        site_lethal_cells=np.array([mortality.organ_lethal_cells.get(site, math.inf)
                                    for site in site_names], np.float64),
        stop_cells=float(simulation.stop_at_cells or math.inf),
        stop_clone=clone_index[simulation.stop_clone] if simulation.stop_clone else -1,
        growth_bound=max(0.0, max(c.birth - c.death for c in clones)),
        hazard_per_day=float(mortality.hazard_per_day),
        hazard_reference_cells=float(mortality.hazard_reference_cells),
        hazard_exponent=float(mortality.hazard_exponent),
    )
    return ModelArrays(
        dynamics=dynamics,
        drugs=drugs,
        rules=rules,
        mortality=lowered_mortality,
        initial_cells=initial_cells,
        lesion_site=np.array([site_index[lesion.site] for lesion in lesions], np.int64),
        lesion_capacity=np.array([lesion.carrying_capacity for lesion in lesions], np.float64),
        lesion_law=np.array(
            [GROWTH_LAW_CODES[scenario.growth_law_of(lesion)] for lesion in lesions], np.int64
        ),
        n_steps=simulation.n_steps,
        record_every=simulation.record_every_steps,
    )


def lower_clinic(scenario: Scenario, sites: list[str], steps) -> tuple[DrugArrays, Rules]:
    """Drugs, lines, local therapy, monitoring and rules as arrays and numbers."""
    clone_names = list(scenario.clones)
    clone_index = {name: i for i, name in enumerate(clone_names)}
    drug_names = list(scenario.drugs)
    drug_index = {name: i for i, name in enumerate(drug_names)}
    line_names = list(scenario.therapy.lines)
    line_index = {name: i for i, name in enumerate(line_names)}
    mechanisms = scenario.mechanisms
    modality_names = list(scenario.local_therapy)
    modality_index = {name: i for i, name in enumerate(modality_names)}
    drugs = list(scenario.drugs.values())

    elimination = np.array([LN2 / d.half_life_days for d in drugs], np.float64)
    absorption = np.array(
        [LN2 / d.absorption_half_life_days if d.absorption_half_life_days > 0 else 0.0 for d in drugs],
        np.float64,
    )
    # Average amount at steady state of the standard regimen is dose / (k_e * interval).
    normalisation = np.array(
        [k * d.standard_interval_days / d.standard_dose for k, d in zip(elimination, drugs)], np.float64
    )
    penetration = np.array([[d.penetration.get(site, 1.0) for site in sites] for d in drugs],
                           np.float64).reshape(len(drugs), len(sites))
    effects = [
        (drug_index[drug_name], clone_index[clone], effect.birth_inhibition, effect.death_increase,
         effect.ec50 or drug.ec50, effect.hill or drug.hill)
        for drug_name, drug in scenario.drugs.items()
        for clone, effect in drug.effects.items()
    ]
    effects.sort(key=lambda e: e[0])
    effect_drug = np.array([e[0] for e in effects], np.int64)

    items = [
        (line_index[line_name], drug_index[d.drug], d.dose, steps(d.every_days),
         steps(d.cycle_days) if d.cycle_days else 0, steps(d.active_days) if d.active_days else 0)
        for line_name, line in scenario.therapy.lines.items()
        for d in line.dosing
    ]
    item_line = np.array([i[0] for i in items], np.int64)
    drug_arrays = DrugArrays(
        drug_absorption=absorption,
        drug_elimination=elimination,
        drug_normalisation=normalisation,
        drug_penetration=penetration,
        effect_start=np.searchsorted(effect_drug, np.arange(len(drugs) + 1)).astype(np.int64),
        effect_clone=np.array([e[1] for e in effects], np.int64),
        effect_birth=np.array([e[2] for e in effects], np.float64),
        effect_death=np.array([e[3] for e in effects], np.float64),
        effect_ec50=np.array([e[4] for e in effects], np.float64),
        effect_hill=np.array([e[5] for e in effects], np.float64),
        line_item_start=np.searchsorted(item_line, np.arange(len(line_names) + 1)).astype(np.int64),
        item_drug=np.array([i[1] for i in items], np.int64),
        item_dose=np.array([i[2] for i in items], np.float64),
        item_every=np.array([i[3] for i in items], np.int64),
        item_cycle=np.array([i[4] for i in items], np.int64),
        item_active=np.array([i[5] for i in items], np.int64),
        # Phenotype switches are filled in by ``lower`` (they belong with the clone types).
        switch_source=np.zeros(0, np.int64),
        switch_off=np.zeros(0),
        switch_on=np.zeros(0),
        switch_drug=np.zeros(0, np.int64),
        switch_ec50=np.zeros(0),
        switch_hill=np.zeros(0),
    )
    context = RulesContext(scenario, sites, steps, line_names, line_index, mechanisms, modality_index)
    rules = Rules(**{name: lower_field(context) for name, lower_field in RULE_FIELDS.items()})
    return drug_arrays, rules


def _line_mask(named: list[str], line_names: list[str], first_line: str | None) -> np.ndarray:
    """Which lines a rule applies on: those it names, or else the first line given."""
    chosen = named or [first_line or (line_names[0] if line_names else None)]
    return np.array([name in chosen for name in line_names], np.bool_)


# --- the clinic's rules: one record, each field lowered in one place -------------------------


@dataclass(frozen=True)
class RulesContext:
    """What the rules' fields are lowered from: the scenario and its names as indices."""

    scenario: Scenario
    sites: list[str]
    steps: Callable[[float], int]  # days -> steps of dt
    line_names: list[str]
    line_index: dict[str, int]
    mechanisms: list[str]
    modality_index: dict[str, int]

    @property
    def modalities(self) -> list:
        return list(self.scenario.local_therapy.values())

    @property
    def monitoring(self):
        return self.scenario.monitoring

    @property
    def policy(self):
        return self.scenario.policy

    @cached_property
    def _scheduled_rows(self) -> list[tuple[int, int, int]]:
        lesions = list(self.scenario.lesions)
        return sorted((self.steps(item.day), lesions.index(item.lesion), self.modality_index[item.modality])
                      for item in self.scenario.scheduled_local_therapy)

    def scheduled(self, column: int) -> np.ndarray:
        """Scheduled local therapy sorted by step: 0 step, 1 lesion, 2 modality."""
        return np.array([row[column] for row in self._scheduled_rows], np.int64)

    def lines(self, rule_lines: list[str]) -> np.ndarray:
        return _line_mask(rule_lines, self.line_names, self.scenario.therapy.first_line)


def _line_next(c: RulesContext) -> np.ndarray:
    lines = list(c.scenario.therapy.lines.values())
    return np.array([c.line_index[line.next] if line.next else (i + 1 if i + 1 < len(lines) else -1)
                     for i, line in enumerate(lines)], np.int64)


def _line_on_mechanism(c: RulesContext) -> np.ndarray:
    table = np.full((len(c.line_names), len(c.mechanisms)), -1, np.int64)
    for i, line in enumerate(c.scenario.therapy.lines.values()):
        for mechanism, target in line.on_mechanism.items():
            table[i, c.mechanisms.index(mechanism)] = c.line_index[target]
    return table


# Every field of the engine's ``Rules`` record and how it is lowered; the record is built from
# this table, so a new rule parameter is a scenario field, a line here and its use in a rule.
# Counts of steps are in steps of ``dt``; [N] lines, [M] mechanisms, [K] clones, [Q] local
# therapy modalities, [S] sites, [P] scheduled local therapies.
RULE_FIELDS: dict[str, Callable[[RulesContext], Any]] = {
    "line_next": _line_next,  # [N] -1: none
    "line_on_mechanism": _line_on_mechanism,  # [N, M] -1: none
    "clone_mechanism": lambda c: np.array(  # [K] -1: none
        [c.mechanisms.index(k.resistance) if k.resistance else -1 for k in c.scenario.clones.values()], np.int64),
    "modality_kill": lambda c: np.array(  # [Q, S]
        [[m.site_kill_fraction.get(site, m.kill_fraction) for site in c.sites] for m in c.modalities],
        np.float64).reshape(len(c.modalities), len(c.sites)),
    "modality_failure": lambda c: np.array([m.failure_probability for m in c.modalities], np.float64),
    "modality_failure_kill": lambda c: np.array([m.kill_fraction_on_failure for m in c.modalities], np.float64),
    "modality_max_courses": lambda c: np.array(  # [Q] courses per lesion, 0: no limit
        [m.max_courses_per_lesion for m in c.modalities], np.int64),
    "modality_removes": lambda c: np.array([m.removes_tissue for m in c.modalities], np.bool_),  # [Q]
    "modality_residual": lambda c: np.array(  # [Q] share of the killed cells' volume left as residual tissue
        [0.0 if m.removes_tissue else c.monitoring.residual_fraction for m in c.modalities], np.float64),
    "scheduled_step": lambda c: c.scheduled(0),  # [P] sorted
    "scheduled_lesion": lambda c: c.scheduled(1),
    "scheduled_modality": lambda c: c.scheduled(2),
    "therapy_start_step": lambda c: c.steps(c.scenario.therapy.start_day),
    "first_line": lambda c: c.line_index.get(c.scenario.therapy.first_line, 0),
    "visit_every_steps": lambda c: c.steps(c.monitoring.visit_every_days) if c.monitoring.enabled else 0,
    "external_policy": lambda c: False,  # stop at each visit for a Python policy (set by the runner)
    "cells_per_cm3": lambda c: float(c.monitoring.cells_per_cm3),
    "detection_limit_mm": lambda c: float(c.monitoring.detection_limit_mm),
    "measurable_mm": lambda c: float(c.monitoring.measurable_mm),
    "measurement_sd_mm": lambda c: float(c.monitoring.measurement_sd_mm),
    "marker_per_cell": lambda c: float(c.monitoring.marker_per_1e9_cells) / 1e9,
    "marker_background": lambda c: float(c.monitoring.marker_background),
    "marker_cv": lambda c: float(c.monitoring.marker_cv),
    "ctdna_shed": lambda c: float(c.monitoring.ctdna_shed_per_death),
    "ctdna_elimination": lambda c: float(c.monitoring.ctdna_elimination_per_day),
    "blood_fraction": lambda c: float(c.monitoring.blood_fraction_sampled),
    "ctdna_min_copies": lambda c: int(c.monitoring.ctdna_min_copies),
    "biopsy_min_fraction": lambda c: float(c.monitoring.biopsy_min_fraction),
    "oligo_enabled": lambda c: bool(c.policy.oligoprogression.enabled),
    "oligo_max_lesions": lambda c: int(c.policy.oligoprogression.max_lesions),
    "oligo_modality": lambda c: c.modality_index[c.policy.oligoprogression.modality],
    "oligo_max_rounds": lambda c: int(c.policy.oligoprogression.max_rounds),  # 0: no limit
    # Fall in log P(fit for a next line) per line received, and cells per unit fall.
    "unfit_per_line": lambda c: float(c.scenario.fitness.unfit_per_line),
    "unfit_burden_cells": lambda c: float(c.scenario.fitness.unfit_burden_cells),
    "switch_enabled": lambda c: bool(c.policy.switch_on_progression),
    "holiday_enabled": lambda c: bool(c.policy.holiday.enabled),
    "holiday_min_visits": lambda c: int(c.policy.holiday.min_visits),
    "holiday_max_sum_mm": lambda c: float(c.policy.holiday.max_sum_mm),
    "holiday_restart_rise": lambda c: float(c.policy.holiday.restart_marker_rise),
    "holiday_line": lambda c: c.lines(c.policy.holiday.lines),  # [N] the rule applies on this line
    "adaptive_enabled": lambda c: bool(c.policy.adaptive.enabled),
    "adaptive_stop": lambda c: float(c.policy.adaptive.stop_fraction),
    "adaptive_restart": lambda c: float(c.policy.adaptive.restart_fraction),
    "adaptive_line": lambda c: c.lines(c.policy.adaptive.lines),  # [N]
    "consolidation_enabled": lambda c: bool(c.policy.consolidation.enabled),
    "consolidation_max_lesions": lambda c: int(c.policy.consolidation.max_lesions),
    "consolidation_after_steps": lambda c: c.steps(c.policy.consolidation.after_days),
    "consolidation_modality": lambda c: c.modality_index[c.policy.consolidation.modality],
    "consolidation_primary_modality": lambda c: c.modality_index[c.policy.consolidation.primary_modality],
    "primary_site": lambda c: c.sites.index(next(iter(c.scenario.lesions.values())).site),
}

# The record the kernel's rules read (``model.rules.NAME``): a named tuple of numbers and
# arrays, passed by value.
Rules = NamedTuple("Rules", [(name, Any) for name in RULE_FIELDS])
Rules.__doc__ = "Lines, local therapy, monitoring and the built-in rules, as numbers (see RULE_FIELDS)."
