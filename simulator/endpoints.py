"""Clinical endpoints of one patient, from the events and visits the engine logged.

Times are in days from the start of therapy (``therapy.start_day``). An endpoint whose event
did not happen by the end of the run is censored there: ``pfs_days`` is then the follow-up
time and ``progressed`` is False, as in a trial's data set. The PFS event is the first RECIST
progression or death, whichever comes first.

A patient who dies before the first line starts (the tumour was lethal before therapy) is
counted as in an intention-to-treat analysis whose origin is the planned start of therapy:
progression, death and treatment failure all happen at time 0 (``pfs_days = os_days =
ttf_days = 0``, with the events), never at a negative time. A run that ends before therapy
starts without a death has follow-up 0 and every endpoint censored at 0.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from simulator.scenario import Scenario

RESPONSE_RANK = {"CR": 0, "PR": 1, "SD": 2, "non-CR/non-PD": 3, "PD": 4}


def patient_endpoints(scenario: Scenario, events: pd.DataFrame, visits: pd.DataFrame,
                      dose_given: np.ndarray, end_time: float) -> dict:
    """PFS, OS, TTF, time on each line, local therapies, holidays, dose and mechanisms.

    ``relative_dose`` is the dose taken over what continuous standard dosing would have given
    while each line was current (1 for standard continuous dosing; NaN without a drug).
    """
    start = float(scenario.therapy.start_day)
    follow_up = max(end_time - start, 0.0)
    kinds = events["kind"]
    death = events[kinds == "death"]
    # PFS ends at the first RECIST progression or death, whichever comes first.
    progression = events[kinds.isin(["progression", "death"])]
    lines = events[kinds.isin(["line_start", "therapy_exhausted"])]
    failures = lines[lines["time"] > lines["time"].min()] if len(lines) else lines
    failure = pd.concat([failures["time"], death["time"]]).min() if len(lines) else math.nan
    if len(death) and float(death["time"].iloc[0]) < start and scenario.therapy.lines:
        failure = float(death["time"].iloc[0])  # died before the first line: it failed at once
    time_on_line = _time_on_line(lines, end_time)
    endpoints = {
        "pfs_days": _first(progression, start, follow_up),
        "progressed": bool(len(progression)),  # the PFS event: progression or death
        "os_days": _first(death, start, follow_up),
        "died": bool(len(death)),
        "ttf_days": max(failure - start, 0.0) if not math.isnan(failure) else follow_up,
        "treatment_failed": not math.isnan(failure),
        "best_response": _best_response(visits),
        "lines_used": int((kinds == "line_start").sum()),
        "time_on_line": time_on_line,
        "local_therapies": int((kinds == "local_therapy").sum()),
        "holiday_days": _days_off(events, end_time),
        "relative_dose": _relative_dose(scenario, time_on_line, dose_given),
        "mechanisms_at_progression": _mechanisms(events),
        "end_days": follow_up,
    }
    return endpoints


def _first(table: pd.DataFrame, start: float, follow_up: float) -> float:
    """Days from the start of therapy to the first event of ``table`` (0 for an event before
    it), or the follow-up if there is none."""
    return max(float(table["time"].iloc[0] - start), 0.0) if len(table) else follow_up


def _best_response(visits: pd.DataFrame) -> str | None:
    """Best RECIST response on the first line, up to its first progression (so PD only when
    the first assessment already shows progression)."""
    seen = []
    for response in visits["response"] if len(visits) else []:
        if response in RESPONSE_RANK:
            seen.append(response)
            if response == "PD":
                break
    return min(seen, key=RESPONSE_RANK.get) if seen else None


def _time_on_line(lines: pd.DataFrame, end_time: float) -> dict[str, float]:
    """Days each line was current (summed if a line is taken twice)."""
    totals: dict[str, float] = {}
    times = list(lines["time"]) + [end_time]
    for index, row in enumerate(lines.itertuples()):
        if row.kind == "line_start":
            totals[row.detail] = totals.get(row.detail, 0.0) + times[index + 1] - row.time
    return totals


def _days_off(events: pd.DataFrame, end_time: float) -> float:
    """Days off the drug in holidays or adaptive pauses (not after the last line)."""
    total, stopped = 0.0, None
    for row in events.itertuples():
        if row.kind == "drug_stop" and stopped is None:
            stopped = row.time
        elif row.kind in ("drug_restart", "line_start", "therapy_exhausted", "death") and stopped is not None:
            total += row.time - stopped
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


def _mechanisms(events: pd.DataFrame) -> list[str]:
    """What each re-biopsy found: mechanisms joined by '+', or 'none'."""
    biopsies = events[events["kind"] == "biopsy"]
    return ["+".join(group["detail"]) for _, group in biopsies.groupby("time", sort=True)]


def untreated_doubling_days(scenario: Scenario) -> float:
    """Volume doubling time of the whole tumour at time 0 without therapy, in days.

    The burden-weighted net growth rate of every clone type in every lesion, slowed by the
    lesion's density law at its initial size (as the engine does): ln 2 over that rate.
    """
    law_default = scenario.simulation.growth_law
    total, growth = 0.0, 0.0
    for lesion in scenario.lesions.values():
        cells = float(sum(lesion.cells.values()))
        law = lesion.growth_law or law_default
        factor = 1.0
        if law == "logistic":
            factor = 1.0 - cells / lesion.carrying_capacity
        elif law == "gompertz":
            factor = math.log(lesion.carrying_capacity / cells) / math.log(lesion.carrying_capacity)
        for clone, count in lesion.cells.items():
            rates = scenario.clones[clone]
            net = rates.birth - rates.death
            growth += count * (net * factor if net > 0 else net)
        total += cells
    rate = growth / total
    return math.log(2.0) / rate if rate > 0 else math.inf
