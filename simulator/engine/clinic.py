"""The clinic inside the engine: visits, what they measure, RECIST, and the built-in rules.

A visit sees only observations: CT diameters with noise and a detection limit, a noisy tumour
marker and a ctDNA blood draw. Rules read those observations (never the cell counts) and
write actions; the kernel applies actions, from the built-in rules or from a Python policy,
in one place (``apply_actions``). The only look at the truth is the re-biopsy, which is what a
biopsy is.
"""

import math

import numpy as np

from simulator.engine.jit import jit, jit_inline
from simulator.engine.therapy import apply_local_therapy

# RECIST 1.1 responses (codes stored in the observations).
RESPONSE_BASELINE = 0
RESPONSE_CR = 1
RESPONSE_PR = 2
RESPONSE_SD = 3
RESPONSE_PD = 4
RESPONSE_NON_CR_NON_PD = 5  # no target lesions, nothing progressing
RESPONSE_NAMES = {
    RESPONSE_BASELINE: "baseline",
    RESPONSE_CR: "CR",
    RESPONSE_PR: "PR",
    RESPONSE_SD: "SD",
    RESPONSE_PD: "PD",
    RESPONSE_NON_CR_NON_PD: "non-CR/non-PD",
}
# Relative slack for "exactly -30%" and "exactly +20%" in floating point.
_RELATIVE_SLACK = 1e-9

# Actions (from the built-in rules or a Python policy).
ACTION_LOCAL_THERAPY = 0  # a = lesion, b = modality
ACTION_SWITCH_LINE = 1  # a = line (-1: no further line, stop systemic therapy)
ACTION_STOP_DRUG = 2  # a = reason
ACTION_START_DRUG = 3  # a = reason
ACTION_REBASELINE = 4  # a = REBASELINE_NOW or REBASELINE_NEXT_VISIT
# Why systemic therapy ends (b of ACTION_SWITCH_LINE to -1; value of the therapy_exhausted event).
EXHAUSTED_NO_LINE = 0
EXHAUSTED_UNFIT = 1
ACTION_NAMES = {
    ACTION_LOCAL_THERAPY: "local_therapy",
    ACTION_SWITCH_LINE: "switch_line",
    ACTION_STOP_DRUG: "stop_drug",
    ACTION_START_DRUG: "start_drug",
    ACTION_REBASELINE: "rebaseline",
}

# Where a new RECIST baseline comes from.
REBASELINE_NEXT_VISIT = 0  # after local therapy: the next scan
REBASELINE_NOW = 1  # a new line: the scan that led to it

# Why a drug stopped or restarted (event detail).
REASON_POLICY = 0
REASON_HOLIDAY = 1
REASON_ADAPTIVE = 2
REASON_PROGRESSION = 3
REASON_MARKER_RISE = 4
REASON_CTDNA = 5
REASON_NAMES = {
    REASON_POLICY: "policy",
    REASON_HOLIDAY: "holiday",
    REASON_ADAPTIVE: "adaptive",
    REASON_PROGRESSION: "progression",
    REASON_MARKER_RISE: "marker rise",
    REASON_CTDNA: "ctDNA positive",
}

# Slots of the integer clinic state (``out.clock``).
STEP = 0  # next step to run
PHASE = 1  # 0 ready, 1 waiting for a decision, 2 actions ready to apply
LINE = 2  # current line, -1 before the first and after the last
DRUG_ON = 3
DOSE_CLOCK = 4  # step from which the current line's doses are counted
BASELINE_PENDING = 5
HOLIDAY_VISITS = 6  # consecutive visits meeting the holiday criteria
OFF_REASON = 7  # why the drug is off (REASON_*), -1 when on
CONSOLIDATED = 8
NEXT_SCHEDULED = 9  # index of the next scheduled local therapy
DONE = 10
THERAPY_STARTED = 11
OLIGO_ROUNDS = 12  # rounds of local therapy for oligoprogression on the current line
LINES_RECEIVED = 13
BAD_CLONE = 14  # where a non-finite rate was found (for the error message)
BAD_SITE = 15
N_CLOCK = 16

PHASE_READY = 0
PHASE_DECIDING = 1
PHASE_ACTING = 2

# Slots of the float clinic state (``out.level``).
BASELINE_SLD = 0
NADIR_SLD = 1
STOP_MARKER = 2
ADAPTIVE_BASELINE = 3
CUMULATIVE_HAZARD = 4  # integral of the burden hazard of death so far
DEATH_THRESHOLD = 5  # Exp(1) draw: death when the cumulative hazard passes it
N_LEVEL = 6


@jit
def diameter_mm(cells, cells_per_cm3):
    """Diameter of a sphere holding ``cells`` at ``cells_per_cm3``, in mm."""
    volume = cells / cells_per_cm3
    return 20.0 * (3.0 * volume / (4.0 * math.pi)) ** (1.0 / 3.0)


@jit
def recist_response(sld, baseline, nadir, n_targets, targets_gone, new_lesion, non_target_progression):
    """RECIST 1.1 response of the target sum ``sld`` (mm) against ``baseline`` and ``nadir``.

    Progression: the sum up >= 20% from the nadir and >= 5 mm, an unequivocal new lesion, or
    unequivocal progression of non-target disease (``non_target_progression``, see
    :func:`non_target_unequivocal`).
    """
    if new_lesion or non_target_progression:
        return RESPONSE_PD
    if n_targets == 0:
        return RESPONSE_NON_CR_NON_PD
    if sld >= 1.2 * nadir * (1.0 - _RELATIVE_SLACK) and sld - nadir >= 5.0 - _RELATIVE_SLACK:
        return RESPONSE_PD
    if targets_gone:
        return RESPONSE_CR
    if sld <= 0.7 * baseline * (1.0 + _RELATIVE_SLACK):
        return RESPONSE_PR
    return RESPONSE_SD


@jit
def non_target_unequivocal(n_targets, any_progressing, non_target_growth_mm, target_nadir_mm):
    """Unequivocal progression of non-target disease (RECIST 1.1, Eisenhauer 2009, 4.3.3).

    Without target lesions, any progressing lesion. With targets, the worsening must be
    substantial against the whole burden: the growth of the progressing non-target lesions
    (mm over their own nadirs) at least 20% of the target sum's nadir, the growth that would be
    progression had it happened in the targets. A small non-target lesion that grows by 20%
    while the targets shrink is not progression.
    """
    if n_targets == 0:
        return any_progressing
    return non_target_growth_mm > 0.0 and non_target_growth_mm >= 0.2 * target_nadir_mm


@jit
def lesion_progressing(diameter, nadir, seen_at_baseline, new_lesion_mm):
    """Does one lesion progress: a new lesion, or +20% and +5 mm above its own nadir."""
    if not seen_at_baseline:
        return diameter >= new_lesion_mm
    return diameter > 0.0 and diameter >= 1.2 * nadir and diameter - nadir >= 5.0


@jit
def _measure_lesions(clinic, out, rng, visit):
    """CT of every lesion, tumour cells and residual tissue alike: noisy diameters, zero for
    what the scan cannot see."""
    n_lesions = out.counters[0]
    for lesion in range(n_lesions):
        total = out.residual[lesion]
        for clone in range(out.cells.shape[1]):
            total += out.cells[lesion, clone]
        seen = 0.0
        if total > 0.0:
            seen = diameter_mm(total, clinic.cells_per_cm3)
            if clinic.measurement_sd_mm > 0.0:
                seen = max(seen + clinic.measurement_sd_mm * rng.standard_normal(), 0.0)
            if seen < clinic.detection_limit_mm:
                seen = 0.0
        out.obs_diameter[visit, lesion] = seen


@jit
def _marker(model, clinic, out, rng):
    """A CEA-like marker: background plus a term proportional to burden, log-normal noise."""
    burden = 0.0
    for lesion in range(out.counters[0]):
        for clone in range(out.cells.shape[1]):
            burden += out.cells[lesion, clone]
    level = clinic.marker_background + clinic.marker_per_cell * burden
    if clinic.marker_cv > 0.0:
        sigma2 = math.log(1.0 + clinic.marker_cv * clinic.marker_cv)
        level *= math.exp(math.sqrt(sigma2) * rng.standard_normal() - 0.5 * sigma2)
    return level


@jit
def _ctdna(model, clinic, out, rng, visit):
    """One blood draw: tumour genome copies by resistance mechanism (slot M: no mechanism).

    Plasma holds ``cells * shed * d / (r + elimination)`` genome equivalents (Avanzini 2020);
    a draw samples a fraction of them, Poisson. Returns total tumour copies in the draw.
    """
    n_mechanisms = out.obs_copies.shape[1] - 1
    expected = np.zeros(n_mechanisms + 1)
    for lesion in range(out.counters[0]):
        site = out.lesion_site[lesion]
        for clone in range(out.cells.shape[1]):
            n = out.cells[lesion, clone]
            if n == 0:
                continue
            death = model.death[clone] + out.death_add[site, clone]
            net = model.birth[clone] * out.birth_scale[site, clone] - death
            plasma = n * clinic.ctdna_shed * death / max(net + clinic.ctdna_elimination, 1e-12)
            mechanism = clinic.clone_mechanism[clone]
            expected[n_mechanisms if mechanism < 0 else mechanism] += plasma
    total = 0
    for slot in range(n_mechanisms + 1):
        copies = rng.poisson(expected[slot] * clinic.blood_fraction)
        out.obs_copies[visit, slot] = copies
        total += copies
    return total


@jit
def observe(model, clinic, out, rng, time):
    """Hold a visit: measure everything the clinic measures. Returns the visit's index."""
    visit = out.counters[4]
    out.counters[4] = visit + 1
    out.obs_time[visit] = time
    out.obs_lesions[visit] = out.counters[0]
    _measure_lesions(clinic, out, rng, visit)
    out.obs_marker[visit] = _marker(model, clinic, out, rng)
    out.obs_tumour_copies[visit] = _ctdna(model, clinic, out, rng, visit)
    out.obs_line[visit] = out.clock[LINE]
    out.obs_drug_on[visit] = out.clock[DRUG_ON]
    return visit


@jit
def ctdna_positive(clinic, out, visit):
    return out.obs_tumour_copies[visit] >= clinic.ctdna_min_copies


@jit
def set_baseline(clinic, out, visit):
    """Choose target lesions (<= 5, <= 2 per site, >= measurable, largest first)."""
    n_lesions = out.obs_lesions[visit]
    out.seen_at_baseline[:] = False
    out.is_target[:] = False
    for lesion in range(n_lesions):
        diameter = out.obs_diameter[visit, lesion]
        out.seen_at_baseline[lesion] = diameter > 0.0
        out.lesion_nadir[lesion] = diameter
    # Each round takes the largest measurable lesion at a site with room (ties: the first
    # listed), which is what a pass over the lesions sorted by size would take next.
    per_site = np.zeros(out.death_add.shape[0], np.int64)
    n_targets = 0
    sld = 0.0
    while n_targets < 5:
        chosen, largest = -1, 0.0
        for lesion in range(n_lesions):
            diameter = out.obs_diameter[visit, lesion]
            if (diameter > largest and diameter >= clinic.measurable_mm
                    and not out.is_target[lesion] and per_site[out.lesion_site[lesion]] < 2):
                chosen, largest = lesion, diameter
        if chosen < 0:
            break
        per_site[out.lesion_site[chosen]] += 1
        out.is_target[chosen] = True
        n_targets += 1
        sld += largest
    out.level[BASELINE_SLD] = sld
    out.level[NADIR_SLD] = sld
    out.clock[BASELINE_PENDING] = 0
    out.clock[HOLIDAY_VISITS] = 0
    if out.level[ADAPTIVE_BASELINE] <= 0.0:
        out.level[ADAPTIVE_BASELINE] = out.obs_marker[visit]


@jit
def assess(clinic, out, visit):
    """RECIST response at a visit, and which lesions progress (``out.progressing``)."""
    if out.clock[BASELINE_PENDING] == 1:
        set_baseline(clinic, out, visit)
        out.obs_sld[visit] = out.level[BASELINE_SLD]
        out.obs_response[visit] = RESPONSE_BASELINE
        out.progressing[:] = False
        return RESPONSE_BASELINE
    n_lesions = out.obs_lesions[visit]
    sld = 0.0
    n_targets = 0
    targets_gone = True
    new_lesion = False
    any_progressing = False
    non_target_growth = 0.0
    for lesion in range(n_lesions):
        diameter = out.obs_diameter[visit, lesion]
        seen = out.seen_at_baseline[lesion]
        progressing = lesion_progressing(diameter, out.lesion_nadir[lesion], seen, clinic.measurable_mm)
        out.progressing[lesion] = progressing
        any_progressing = any_progressing or progressing
        if not seen:
            new_lesion = new_lesion or progressing
        else:
            if progressing and not out.is_target[lesion]:
                non_target_growth += diameter - out.lesion_nadir[lesion]
            out.lesion_nadir[lesion] = min(out.lesion_nadir[lesion], diameter)
        if out.is_target[lesion]:
            n_targets += 1
            sld += diameter
        # Complete response needs every lesion gone, targets and non-targets alike (RECIST 1.1).
        targets_gone = targets_gone and diameter == 0.0
    non_target = non_target_unequivocal(n_targets, any_progressing, non_target_growth, out.level[NADIR_SLD])
    response = recist_response(sld, out.level[BASELINE_SLD], out.level[NADIR_SLD], n_targets,
                               targets_gone, new_lesion, non_target)
    out.level[NADIR_SLD] = min(out.level[NADIR_SLD], sld)
    out.obs_sld[visit] = sld
    out.obs_response[visit] = response
    return response


@jit_inline
def _push_action(out, kind, a, b):
    index = out.counters[5]
    if index < out.action_kind.size:
        out.action_kind[index] = kind
        out.action_a[index] = a
        out.action_b[index] = b
        out.counters[5] = index + 1


@jit
def _biopsy_lesion(out, visit):
    """The largest progressing lesion (or the largest seen, if none progresses alone)."""
    best = -1
    best_diameter = 0.0
    for pass_ in range(2):
        for lesion in range(out.obs_lesions[visit]):
            diameter = out.obs_diameter[visit, lesion]
            if (pass_ == 1 or out.progressing[lesion]) and diameter > best_diameter:
                best = lesion
                best_diameter = diameter
        if best >= 0:
            return best
    return best


@jit
def biopsy(clinic, out, lesion, found):
    """Genotype fractions of one lesion: ``found[m]`` is the fraction of mechanism m's cells
    if at least ``biopsy_min_fraction``, else 0. Returns how many mechanisms were found."""
    found[:] = 0.0
    total = 0
    for clone in range(out.cells.shape[1]):
        total += out.cells[lesion, clone]
    if total == 0:
        return 0
    for clone in range(out.cells.shape[1]):
        mechanism = clinic.clone_mechanism[clone]
        if mechanism >= 0:
            found[mechanism] += out.cells[lesion, clone] / total
    n_found = 0
    for mechanism in range(found.size):
        if found[mechanism] < clinic.biopsy_min_fraction:
            found[mechanism] = 0.0
        else:
            n_found += 1
    return n_found


@jit
def choose_next_line(clinic, out, line, found, visit):
    """The line the mechanisms found point to (largest fraction first), else the next one."""
    best = -1
    best_fraction = 0.0
    for mechanism in range(found.size):
        if found[mechanism] > best_fraction and clinic.line_on_mechanism[line, mechanism] >= 0:
            best = clinic.line_on_mechanism[line, mechanism]
            best_fraction = found[mechanism]
    if best >= 0:
        return best
    # Nothing in the tissue: a resistance variant in the blood can still route the choice.
    for mechanism in range(found.size):
        if (out.obs_copies[visit, mechanism] >= clinic.ctdna_min_copies
                and clinic.line_on_mechanism[line, mechanism] >= 0):
            return clinic.line_on_mechanism[line, mechanism]
    return clinic.line_next[line]


@jit
def _count_visible(out, visit):
    count = 0
    for lesion in range(out.obs_lesions[visit]):
        if out.obs_diameter[visit, lesion] > 0.0:
            count += 1
    return count


@jit
def builtin_rules(clinic, out, rng, visit, response, step, found):  # noqa: C901 - one rule per block
    """The built-in decision rules, as data in ``clinic``; they write actions into ``out``."""
    if response == RESPONSE_BASELINE:
        return
    line = out.clock[LINE]
    drug_on = out.clock[DRUG_ON] == 1
    n_progressing = 0
    for lesion in range(out.obs_lesions[visit]):
        if out.progressing[lesion]:
            n_progressing += 1
    if response == RESPONSE_PD or n_progressing > 0:
        if _on_progression(clinic, out, rng, visit, line, drug_on, response, n_progressing, found):
            return
    if line < 0:
        return
    positive = ctdna_positive(clinic, out, visit)
    marker = out.obs_marker[visit]
    if clinic.holiday_enabled and clinic.holiday_line[line]:
        if drug_on:
            deep = response == RESPONSE_CR or response == RESPONSE_PR
            if deep and out.obs_sld[visit] <= clinic.holiday_max_sum_mm and not positive:
                out.clock[HOLIDAY_VISITS] += 1
            else:
                out.clock[HOLIDAY_VISITS] = 0
            if out.clock[HOLIDAY_VISITS] >= clinic.holiday_min_visits:
                _push_action(out, ACTION_STOP_DRUG, REASON_HOLIDAY, 0)
                out.level[STOP_MARKER] = marker
        elif out.clock[OFF_REASON] == REASON_HOLIDAY:
            if positive:
                _push_action(out, ACTION_START_DRUG, REASON_CTDNA, 0)
            elif marker > out.level[STOP_MARKER] * (1.0 + clinic.holiday_restart_rise):
                _push_action(out, ACTION_START_DRUG, REASON_MARKER_RISE, 0)
    if clinic.adaptive_enabled and clinic.adaptive_line[line] and out.level[ADAPTIVE_BASELINE] > 0.0:
        if drug_on and marker < clinic.adaptive_stop * out.level[ADAPTIVE_BASELINE]:
            _push_action(out, ACTION_STOP_DRUG, REASON_ADAPTIVE, 0)
        elif not drug_on and out.clock[OFF_REASON] == REASON_ADAPTIVE and (
                marker >= clinic.adaptive_restart * out.level[ADAPTIVE_BASELINE]):
            _push_action(out, ACTION_START_DRUG, REASON_MARKER_RISE, 0)
    if (clinic.consolidation_enabled and out.clock[CONSOLIDATED] == 0
            and (response == RESPONSE_CR or response == RESPONSE_PR)
            and step - clinic.therapy_start_step >= clinic.consolidation_after_steps):
        visible = _count_visible(out, visit)
        if 0 < visible <= clinic.consolidation_max_lesions:
            out.clock[CONSOLIDATED] = 1
            for lesion in range(out.obs_lesions[visit]):
                if out.obs_diameter[visit, lesion] > 0.0:
                    modality = clinic.consolidation_modality
                    if out.lesion_site[lesion] == clinic.primary_site:
                        modality = clinic.consolidation_primary_modality
                    if courses_left(clinic, out, lesion, modality):
                        _push_action(out, ACTION_LOCAL_THERAPY, lesion, modality)
            _push_action(out, ACTION_REBASELINE, REBASELINE_NEXT_VISIT, 0)


@jit
def _on_progression(clinic, out, rng, visit, line, drug_on, response, n_progressing, found):
    """Progression of the patient (RECIST) or of single lesions. Returns True if it acted.

    Off the drug (holiday, adaptive pause): take it again, keeping the line's baseline and
    nadir. A few lesions progressing on their own (oligoprogression, even while the sum still
    responds), each with a course of the modality left, and fewer rounds of it on this line
    than allowed: treat them locally and keep the drug. Systemic progression: re-biopsy and
    switch line; the scan that led to the switch is the new line's baseline.
    """
    if line >= 0 and not drug_on:
        _push_action(out, ACTION_START_DRUG, REASON_PROGRESSION, 0)
        return True
    if line >= 0 and _oligo_eligible(clinic, out, visit, n_progressing):
        out.clock[OLIGO_ROUNDS] += 1
        for lesion in range(out.obs_lesions[visit]):
            if out.progressing[lesion]:
                _push_action(out, ACTION_LOCAL_THERAPY, lesion, clinic.oligo_modality)
        _push_action(out, ACTION_REBASELINE, REBASELINE_NEXT_VISIT, 0)
        return True
    if response != RESPONSE_PD:
        return False
    if line >= 0 and clinic.switch_enabled:
        target = _biopsy_lesion(out, visit)
        if target >= 0:
            biopsy(clinic, out, target, found)
        else:
            found[:] = 0.0
        out.biopsy_lesion[0] = target
        next_line = choose_next_line(clinic, out, line, found, visit)
        if next_line >= 0 and not fit_for_next_line(clinic, out, rng):
            _push_action(out, ACTION_SWITCH_LINE, -1, EXHAUSTED_UNFIT)
        else:
            _push_action(out, ACTION_SWITCH_LINE, next_line, EXHAUSTED_NO_LINE)
    _push_action(out, ACTION_REBASELINE, REBASELINE_NOW, 0)
    return True


@jit
def fit_for_next_line(clinic, out, rng):
    """Is the patient fit for another line? P = exp(-(per line * lines received + N / scale)),
    with N the true total burden (performance status follows the disease, not the scan)."""
    if clinic.unfit_per_line <= 0.0 and clinic.unfit_burden_cells >= 1e299:
        return True
    burden = 0.0
    for lesion in range(out.counters[0]):
        for clone in range(out.cells.shape[1]):
            burden += out.cells[lesion, clone]
    log_fit = -(clinic.unfit_per_line * out.clock[LINES_RECEIVED] + burden / clinic.unfit_burden_cells)
    return rng.random() < math.exp(log_fit)


@jit
def courses_left(clinic, out, lesion, modality):
    """Can ``lesion`` receive another course of ``modality`` (0 in the limit: no limit)?"""
    limit = clinic.modality_max_courses[modality]
    return limit == 0 or out.lesion_courses[lesion, modality] < limit


@jit
def _oligo_eligible(clinic, out, visit, n_progressing):
    """Oligoprogression: 1..max_lesions progressing lesions (new ones among them), a round of
    local therapy left on this line, and a course of the modality left for each lesion."""
    if not clinic.oligo_enabled or n_progressing == 0 or n_progressing > clinic.oligo_max_lesions:
        return False
    if clinic.oligo_max_rounds > 0 and out.clock[OLIGO_ROUNDS] >= clinic.oligo_max_rounds:
        return False
    for lesion in range(out.obs_lesions[visit]):
        if out.progressing[lesion] and not courses_left(clinic, out, lesion, clinic.oligo_modality):
            return False
    return True


@jit
def apply_local(clinic, out, rng, lesion, modality):
    """Local therapy of one lesion; returns the fraction of its cells that survived.

    A share of the killed cells' volume stays as residual tissue (radiotherapy, ablation);
    surgery takes the lesion's residual tissue away in the proportion of the cells it removes.
    """
    out.lesion_courses[lesion, modality] += 1
    before = 0.0
    for clone in range(out.cells.shape[1]):
        before += out.cells[lesion, clone]
    survived = apply_local_therapy(clinic, out.cells, lesion, out.lesion_site[lesion], modality, rng)
    if clinic.modality_removes[modality]:
        out.residual[lesion] *= survived if before > 0.0 else 0.0
    else:
        out.residual[lesion] += clinic.modality_residual[modality] * before * (1.0 - survived)
    return survived
