"""Drugs and local therapy inside the engine: dosing, pharmacokinetics, effects, kills.

Pharmacokinetics is one-compartment with first-order absorption (or an instantaneous dose when
the absorption rate is 0), solved in closed form between doses. Exposure is the central amount
times a normalisation that makes the average steady state of the standard regimen equal 1.
Within a step the drug effect is averaged over two Gauss-Legendre points, so rates held
constant over the step are the step's average rates.
"""

import math

import numpy as np

from simulator.engine.jit import jit

# Gauss-Legendre nodes and weights on [0, 1], two points: exact for cubic exposure profiles.
_NODES = np.array([0.5 - 0.5 / math.sqrt(3.0), 0.5 + 0.5 / math.sqrt(3.0)])
_WEIGHTS = np.array([0.5, 0.5])


@jit
def central_amount(gut, central, absorption, elimination, elapsed):
    """Amount in the central compartment ``elapsed`` days after (gut, central)."""
    decay = math.exp(-elimination * elapsed)
    if absorption <= 0.0 or gut == 0.0:
        return central * decay
    if abs(absorption - elimination) < 1e-12:
        return central * decay + gut * absorption * elapsed * decay
    transfer = gut * absorption / (absorption - elimination)
    return central * decay + transfer * (decay - math.exp(-absorption * elapsed))


@jit
def advance_pk(clinic, state, dt):
    """Move every drug's gut and central amounts forward by ``dt`` days (exactly)."""
    for drug in range(state.gut.size):
        absorption = clinic.drug_absorption[drug]
        elimination = clinic.drug_elimination[drug]
        new_central = central_amount(state.gut[drug], state.central[drug], absorption, elimination, dt)
        if absorption > 0.0:
            state.gut[drug] *= math.exp(-absorption * dt)
        state.central[drug] = new_central


@jit
def give_due_doses(clinic, state, line, step_in_line):
    """Give the doses of ``line`` due at this step (step counted from the line's start)."""
    for item in range(clinic.line_item_start[line], clinic.line_item_start[line + 1]):
        if step_in_line % clinic.item_every[item] != 0:
            continue
        cycle = clinic.item_cycle[item]
        if cycle > 0 and step_in_line % cycle >= clinic.item_active[item]:
            continue
        drug = clinic.item_drug[item]
        dose = clinic.item_dose[item]
        if clinic.drug_absorption[drug] > 0.0:
            state.gut[drug] += dose
        else:
            state.central[drug] += dose
        state.dose_given[drug] += dose


@jit
def hill(exposure, ec50, coefficient):
    """Fractional effect E^h / (E^h + EC50^h), as a logistic of h ln(E / EC50) so that it stays
    finite for any positive exposure, EC50 and coefficient."""
    if exposure <= 0.0:
        return 0.0
    if coefficient == 1.0:
        return exposure / (exposure + ec50)
    x = coefficient * (math.log(exposure) - math.log(ec50))
    if x >= 0.0:
        return 1.0 / (1.0 + math.exp(-x))
    ratio = math.exp(x)
    return ratio / (1.0 + ratio)


@jit
def step_drug_effects(clinic, state, dt, birth_scale, death_add):
    """Average birth factor and added death per (site, clone) over the coming step."""
    birth_scale[:, :] = 0.0
    death_add[:, :] = 0.0
    n_sites, n_clones = birth_scale.shape
    any_drug = False
    for drug in range(state.gut.size):
        if state.gut[drug] > 0.0 or state.central[drug] > 0.0:
            any_drug = True
    if not any_drug:
        birth_scale[:, :] = 1.0
        return
    scale = state.scale
    for node in range(_NODES.size):
        weight = _WEIGHTS[node]
        elapsed = _NODES[node] * dt
        scale[:, :] = 1.0
        for drug in range(state.gut.size):
            amount = central_amount(state.gut[drug], state.central[drug],
                                    clinic.drug_absorption[drug], clinic.drug_elimination[drug], elapsed)
            if amount <= 0.0:
                continue
            exposure = amount * clinic.drug_normalisation[drug]
            for pair in range(clinic.effect_start[drug], clinic.effect_start[drug + 1]):
                clone = clinic.effect_clone[pair]
                for site in range(n_sites):
                    effect = hill(exposure * clinic.drug_penetration[drug, site],
                                  clinic.effect_ec50[pair], clinic.effect_hill[pair])
                    scale[site, clone] *= 1.0 - clinic.effect_birth[pair] * effect
                    death_add[site, clone] += weight * clinic.effect_death[pair] * effect
        for site in range(n_sites):
            for clone in range(n_clones):
                birth_scale[site, clone] += weight * scale[site, clone]


@jit
def step_switch_rates(clinic, state, dt):
    """Phenotype switching rates per (site, edge) averaged over the coming step, and each
    (site, clone)'s total rate of switching away (``state.leave_rate``).

    An edge switches at ``off`` per day without drug and moves towards ``on`` with the Hill
    effect of its drug's exposure (drug-induced tolerance, and its fading after withdrawal).
    """
    n_edges = clinic.switch_off.size
    if n_edges == 0:
        return
    n_sites = state.switch_rate.shape[0]
    state.leave_rate[:, :] = 0.0
    for edge in range(n_edges):
        drug = clinic.switch_drug[edge]
        for site in range(n_sites):
            effect = 0.0
            if drug >= 0 and (state.gut[drug] > 0.0 or state.central[drug] > 0.0):
                for node in range(_NODES.size):
                    amount = central_amount(state.gut[drug], state.central[drug],
                                            clinic.drug_absorption[drug],
                                            clinic.drug_elimination[drug], _NODES[node] * dt)
                    exposure = amount * clinic.drug_normalisation[drug] * clinic.drug_penetration[drug, site]
                    effect += _WEIGHTS[node] * hill(exposure, clinic.switch_ec50[edge],
                                                    clinic.switch_hill[edge])
            rate = clinic.switch_off[edge] + (clinic.switch_on[edge] - clinic.switch_off[edge]) * effect
            state.switch_rate[site, edge] = rate
            state.leave_rate[site, clinic.switch_source[edge]] += rate


@jit
def apply_local_therapy(clinic, cells, lesion, site, modality, rng):
    """Kill a fraction of a lesion's cells; returns the fraction of cells that survived."""
    kill = clinic.modality_kill[modality, site]
    if rng.random() < clinic.modality_failure[modality]:
        kill = clinic.modality_failure_kill[modality]
    before = 0
    after = 0
    for clone in range(cells.shape[1]):
        n = cells[lesion, clone]
        if n > 0:
            survivors = rng.binomial(n, 1.0 - kill)
            cells[lesion, clone] = survivors
            before += n
            after += survivors
    return after / before if before > 0 else 0.0
