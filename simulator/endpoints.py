"""Clinical endpoints of one patient, from the engine's event log and visits.

Times are in days from the start of therapy (``therapy.start_day``). An endpoint whose event
did not happen by the end of the run is censored there: ``pfs_days`` is then the follow-up
time and ``progressed`` is False, as in a trial's data set. The PFS event is the first RECIST
progression or death, whichever comes first.

Per line (``LINE`` a line of the scenario, first time it is taken): ``pfs_LINE_days`` runs
from the line's start to its first progression or death (censored at the line's end if the
line ends otherwise, e.g. an unfit patient's best supportive care, or at follow-up), and
``best_response_LINE`` is the best RECIST response from its baseline to that progression.
``pfs2_days`` runs from the start of therapy to progression on the next line or death
(EMA's PFS2). Each progression has a pattern: how many lesions progress, how many of them are
new, and whether the brain is among them (list columns, one entry per progression).

A patient who dies before the first line starts (the tumour was lethal before therapy) is
counted as in an intention-to-treat analysis whose origin is the planned start of therapy:
progression, death and treatment failure all happen at time 0 (``pfs_days = os_days =
ttf_days = 0``, with the events), never at a negative time. A run that ends before therapy
starts without a death has follow-up 0 and every endpoint censored at 0.

The endpoints read the engine's arrays directly (no table per patient), so a cohort pays for
them only in Python's scalar work.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from simulator.engine import clinic as cl
from simulator.engine.dynamics import GROWTH_LAW_CODES
from simulator.engine.events import (
    EVENT_BIOPSY,
    EVENT_DEATH,
    EVENT_DRUG_RESTART,
    EVENT_DRUG_STOP,
    EVENT_EXTINCTION,
    EVENT_LESION_PROGRESSING,
    EVENT_LINE_START,
    EVENT_LOCAL_THERAPY,
    EVENT_PROGRESSION,
    EVENT_SIZE_REACHED,
    EVENT_THERAPY_EXHAUSTED,
)
from simulator.scenario import Scenario

RESPONSE_RANK = {"CR": 0, "PR": 1, "SD": 2, "non-CR/non-PD": 3, "PD": 4}
_RANKED = {cl.RESPONSE_CR: 0, cl.RESPONSE_PR: 1, cl.RESPONSE_SD: 2, cl.RESPONSE_NON_CR_NON_PD: 3,
           cl.RESPONSE_PD: 4}
STOP_REASONS = {EVENT_DEATH: "death", EVENT_EXTINCTION: "extinction", EVENT_SIZE_REACHED: "size_reached"}
_LINE_ENDS = (EVENT_LINE_START, EVENT_THERAPY_EXHAUSTED, EVENT_DEATH)
_PAUSE_ENDS = (EVENT_DRUG_RESTART, EVENT_LINE_START, EVENT_THERAPY_EXHAUSTED, EVENT_DEATH)


class Log(NamedTuple):
    """What the endpoints read: the event log, the visits and the doses, as arrays."""

    time: np.ndarray
    kind: np.ndarray
    lesion: np.ndarray
    detail: np.ndarray
    value: np.ndarray
    visit_time: np.ndarray
    visit_response: np.ndarray
    lesion_site: np.ndarray
    dose_given: np.ndarray
    end_time: float


def log_of(buffers) -> Log:
    """The arrays of a run's buffers the endpoints need."""
    n_events, n_visits = int(buffers.counters[2]), int(buffers.counters[4])
    return Log(buffers.event_time[:n_events], buffers.event_kind[:n_events],
               buffers.event_lesion[:n_events], buffers.event_detail[:n_events],
               buffers.event_value[:n_events], buffers.obs_time[:n_visits],
               buffers.obs_response[:n_visits], buffers.lesion_site[:int(buffers.counters[0])],
               buffers.dose_given, float(buffers.record_time[int(buffers.counters[1]) - 1]))


def patient_endpoints(scenario: Scenario, log: Log) -> dict:
    """PFS, OS, TTF, per-line PFS and response, PFS2, time on each line, local therapies,
    holidays, dose, mechanisms and patterns at progression, why the run stopped.

    ``relative_dose`` is the dose taken over what continuous standard dosing would have given
    while each line was current (1 for standard continuous dosing; NaN without a drug).
    """
    start = float(scenario.therapy.start_day)
    follow_up = max(log.end_time - start, 0.0)
    times, kinds = log.time.tolist(), log.kind.tolist()
    lines = list(scenario.therapy.lines)
    deaths = [t for t, k in zip(times, kinds) if k == EVENT_DEATH]
    progressions = [t for t, k in zip(times, kinds) if k == EVENT_PROGRESSION]
    periods = _line_periods(times, kinds, log.detail.tolist(), log.end_time)
    death = deaths[0] if deaths else math.nan
    failure = _treatment_failure(periods, times, kinds, death, start, bool(lines))
    time_on_line: dict[str, float] = {}
    for line, begin, end, _ in periods:
        time_on_line[lines[line]] = time_on_line.get(lines[line], 0.0) + end - begin
    first_pd_or_death = min(progressions[:1] + deaths[:1], default=math.nan)
    endpoints = {
        "pfs_days": _since(first_pd_or_death, start, follow_up),
        "progressed": not math.isnan(first_pd_or_death),
        "os_days": _since(death, start, follow_up),
        "died": bool(deaths),
        "death_cause": _death_cause(scenario, log, kinds) if deaths else None,
        "stop_reason": STOP_REASONS.get(kinds[-1], "end") if kinds else "end",
        "ttf_days": max(failure - start, 0.0) if not math.isnan(failure) else follow_up,
        "treatment_failed": not math.isnan(failure),
        "best_response": _best_response(log, 0.0, math.inf),
        "lines_used": sum(1 for k in kinds if k == EVENT_LINE_START),
        "time_on_line": time_on_line,
        "local_therapies": sum(1 for k in kinds if k == EVENT_LOCAL_THERAPY),
        "holiday_days": _days_off(times, kinds, log.end_time),
        "relative_dose": _relative_dose(scenario, time_on_line, log.dose_given),
        "mechanisms_at_progression": _mechanisms(scenario, times, kinds, log.detail.tolist()),
        "end_days": follow_up,
    }
    endpoints.update(_pfs2(periods, progressions, death, start, follow_up))
    endpoints["per_line"] = _per_line(lines, periods, progressions, death, log)
    endpoints.update(_patterns(scenario, log, times, kinds))
    return endpoints


def _since(time: float, start: float, follow_up: float) -> float:
    """Days from the start of therapy to ``time`` (0 if before it), or the follow-up if NaN."""
    return follow_up if math.isnan(time) else max(time - start, 0.0)


def _line_periods(times, kinds, details, end_time) -> list[tuple[int, float, float, bool]]:
    """(line, start, end, ended by another line) of each line taken, in order."""
    periods = []
    for index, (time, kind) in enumerate(zip(times, kinds)):
        if kind != EVENT_LINE_START:
            continue
        end, switched = end_time, False
        for later in range(index + 1, len(kinds)):
            if kinds[later] in _LINE_ENDS:
                end, switched = times[later], kinds[later] == EVENT_LINE_START
                break
        periods.append((details[index], time, end, switched))
    return periods


def _treatment_failure(periods, times, kinds, death, start, has_lines) -> float:
    """The end of the first line (a switch, no line left, or death), NaN if it never ended."""
    if not math.isnan(death) and death < start and has_lines:
        return death  # died before the first line: it failed at once
    if not periods:
        return math.nan
    ends = [t for t, k in zip(times, kinds)
            if k in (EVENT_LINE_START, EVENT_THERAPY_EXHAUSTED) and t > periods[0][1]]
    candidates = ends[:1] + ([death] if not math.isnan(death) else [])
    return min(candidates) if candidates else math.nan


def _line_progression(begin: float, end: float, progressions, death: float) -> float:
    """The first progression while a line is current (a switch at a progression happens at
    the same visit, so the progression belongs to the line before), or death on it."""
    for time in progressions:
        if begin < time <= end:
            return time
    return death if not math.isnan(death) and begin <= death <= end else math.nan


def _per_line(lines, periods, progressions, death, log: Log) -> dict[str, dict]:
    """PFS and best response of each line, the first time it is taken."""
    result: dict[str, dict] = {}
    for line, begin, end, _ in periods:
        name = lines[line]
        if name in result:
            continue
        event = _line_progression(begin, end, progressions, death)
        result[name] = {
            "pfs_days": (end if math.isnan(event) else event) - begin,
            "progressed": not math.isnan(event),
            "best_response": _best_response(log, begin, event if not math.isnan(event) else end),
        }
    return result


def _pfs2(periods, progressions, death, start, follow_up) -> dict:
    """PFS2: start of therapy to progression on the next line, or death."""
    event = math.nan
    if len(periods) > 1:
        event = _line_progression(periods[1][1], periods[1][2], progressions, math.nan)
    if not math.isnan(death) and (math.isnan(event) or death < event):
        event = death
    return {"pfs2_days": _since(event, start, follow_up), "progressed2": not math.isnan(event)}


def _best_response(log: Log, begin: float, until: float) -> str | None:
    """Best RECIST response at visits after ``begin`` up to ``until`` (a progression: PD only
    when the first assessment already shows progression). The visit at a line's start is its
    baseline (the first line's) or the scan that led to it (a later line's), never its response."""
    best = None
    for time, response in zip(log.visit_time.tolist(), log.visit_response.tolist()):
        if time <= begin or time > until or response not in _RANKED:
            continue
        if best is None or _RANKED[response] < _RANKED[best]:
            best = response
        if response == cl.RESPONSE_PD:
            break
    return cl.RESPONSE_NAMES[best] if best is not None else None


def _days_off(times, kinds, end_time: float) -> float:
    """Days off the drug in holidays or adaptive pauses (not after the last line)."""
    total, stopped = 0.0, None
    for time, kind in zip(times, kinds):
        if kind == EVENT_DRUG_STOP and stopped is None:
            stopped = time
        elif kind in _PAUSE_ENDS and stopped is not None:
            total += time - stopped
            stopped = None
    if stopped is not None:
        total += end_time - stopped
    return total


def _relative_dose(scenario: Scenario, time_on_line: dict[str, float], dose_given: np.ndarray) -> float:
    """Dose taken, in standard doses, over the standard doses of continuous standard dosing
    of every drug of each line while it was current."""
    drugs = scenario.drugs
    names = list(drugs)
    expected = 0.0
    for line_name, days in time_on_line.items():
        for drug in {dosing.drug for dosing in scenario.therapy.lines[line_name].dosing}:
            expected += days / drugs[drug].standard_interval_days
    if expected <= 0:
        return math.nan
    taken = sum(float(dose_given[i]) / drugs[name].standard_dose for i, name in enumerate(names))
    return taken / expected


def _mechanisms(scenario: Scenario, times, kinds, details) -> list[str]:
    """What each re-biopsy found: mechanisms joined by '+', or 'none'."""
    mechanisms = scenario.mechanisms
    found: dict[float, list[str]] = {}
    for time, kind, detail in zip(times, kinds, details):
        if kind == EVENT_BIOPSY:
            found.setdefault(time, []).append(mechanisms[detail] if detail >= 0 else "none")
    return ["+".join(found[time]) for time in sorted(found)]


def _death_cause(scenario: Scenario, log: Log, kinds) -> str:
    """'burden' (the lethal ceiling), 'hazard' (the burden hazard) or the organ's site."""
    detail = int(log.detail[kinds.index(EVENT_DEATH)])
    if detail == -1:
        return "burden"
    if detail == -2:
        return "hazard"
    return scenario.sites[detail]


def _patterns(scenario: Scenario, log: Log, times, kinds) -> dict[str, list]:
    """Per progression: lesions progressing, how many of them new, whether one is in the brain."""
    sites = scenario.sites
    brain = sites.index("brain") if "brain" in sites else -2
    counts, new, in_brain = [], [], []
    for index, kind in enumerate(kinds):
        if kind == EVENT_PROGRESSION:
            counts.append(0)
            new.append(0)
            in_brain.append(False)
        elif kind == EVENT_LESION_PROGRESSING and counts:
            counts[-1] += 1
            new[-1] += int(log.detail[index])
            lesion = int(log.lesion[index])
            in_brain[-1] = in_brain[-1] or bool(lesion < log.lesion_site.size and log.lesion_site[lesion] == brain)
    return {"progressing_lesions": counts, "new_lesions_at_progression": new,
            "brain_at_progression": in_brain}


def doubling_days(cells: np.ndarray, birth: np.ndarray, death: np.ndarray,
                  capacity: np.ndarray, law: np.ndarray) -> float:
    """Volume doubling time of the whole tumour without therapy, in days.

    The burden-weighted net growth rate of every clone type in every lesion (rows of
    ``cells``), slowed by the lesion's density law at its size (as the engine does): ln 2
    over that rate.
    """
    totals = cells.sum(axis=1).astype(np.float64)
    present = totals > 0
    factor = np.ones(totals.size)
    with np.errstate(divide="ignore", invalid="ignore"):
        logistic = law == GROWTH_LAW_CODES["logistic"]
        gompertz = law == GROWTH_LAW_CODES["gompertz"]
        factor[logistic] = 1.0 - totals[logistic] / capacity[logistic]
        factor[gompertz & present] = (np.log(capacity[gompertz & present] / totals[gompertz & present])
                                      / np.log(capacity[gompertz & present]))
    net = birth - death
    growth = np.where(net > 0, net[None, :] * factor[:, None], net[None, :])
    total = totals.sum()
    rate = float((cells * growth).sum() / total) if total > 0 else 0.0
    return math.log(2.0) / rate if rate > 0 else math.inf
