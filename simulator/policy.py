"""Python policies: your own decision rules, called at every visit with what the clinic saw.

A policy is any callable ``policy(visit) -> list of actions``. It sees a :class:`Visit` (the
observations of this visit and the history of earlier ones) and never the cell counts; it may
ask for a re-biopsy, which is the one look into a lesion a clinician has. When a policy is
given, it replaces the scenario's built-in rules. Example, switching at the first progression
and treating a single progressing lesion with radiotherapy::

    from simulator.policy import LocalTherapy, SwitchLine

    def my_policy(visit):
        if visit.response != "PD":
            return []
        growing = visit.lesions.query("progressing")["lesion"].tolist()
        if len(growing) == 1:
            return [LocalTherapy(growing[0], "radiotherapy")]
        found = visit.biopsy(growing[0] if growing else visit.largest_lesion())
        return [SwitchLine("osimertinib" if "T790M" in found else "chemotherapy")]

    result = simulator.simulate(scenario, seed=1, policy=my_policy)

A policy should be a function of what it is given (no hidden state carried between patients):
a run that outgrows its buffers is repeated from the start, and the policy is called again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd


class PolicyError(ValueError):
    """A policy asked for something that cannot be done."""


@dataclass(frozen=True)
class LocalTherapy:
    """Treat one lesion seen at this visit with a modality of the scenario."""

    lesion: str
    modality: str = "radiotherapy"


@dataclass(frozen=True)
class SwitchLine:
    """Start a line of the scenario now; ``None`` stops systemic therapy for good."""

    line: str | None


@dataclass(frozen=True)
class StopDrug:
    """Pause the current line (a holiday); its doses stop, the drug washes out."""


@dataclass(frozen=True)
class StartDrug:
    """Resume the current line after a pause."""


Action = LocalTherapy | SwitchLine | StopDrug | StartDrug
Policy = Callable[["Visit"], list]


@dataclass(frozen=True)
class Visit:
    """What the clinic knows at one visit.

    Attributes
    ----------
    time
        Day of the visit; ``day_on_therapy`` counts from ``therapy.start_day``.
    response
        RECIST 1.1 response: baseline, CR, PR, SD, PD or non-CR/non-PD.
    lesions
        Lesions seen on CT: ``lesion``, ``site``, ``diameter_mm``, ``target``, ``progressing``
        (new, or +20% and +5 mm over its own nadir), ``new`` (not seen at baseline).
    sum_diameters_mm, baseline_sum_mm, nadir_sum_mm
        Sum of target diameters now, at baseline and at its smallest since baseline.
    marker, ctdna_positive, ctdna_vaf
        Tumour marker; whether tumour DNA was detected in the blood draw; variant allele
        fraction of each resistance mechanism (0 when not detected).
    line, drug_on
        The current line (None before the first and after the last) and whether it is taken.
    history
        Earlier visits, one row each (as ``PatientResult.visits``).
    lines, modalities
        Names the actions may use.
    """

    time: float
    day_on_therapy: float
    response: str
    lesions: pd.DataFrame
    sum_diameters_mm: float
    baseline_sum_mm: float
    nadir_sum_mm: float
    marker: float
    ctdna_positive: bool
    ctdna_vaf: dict[str, float]
    line: str | None
    drug_on: bool
    history: pd.DataFrame
    lines: list[str]
    modalities: list[str]
    _biopsy: Callable[[str], dict[str, float]] = field(repr=False, default=None)

    def biopsy(self, lesion: str) -> dict[str, float]:
        """Re-biopsy a lesion seen at this visit: mechanisms found and their fractions."""
        return self._biopsy(lesion)

    def largest_lesion(self) -> str | None:
        if self.lesions.empty:
            return None
        return str(self.lesions.sort_values("diameter_mm").iloc[-1]["lesion"])


def check_actions(actions, visit: Visit) -> list[Action]:
    """Refuse impossible actions with a message naming what is allowed."""
    if actions is None:
        return []
    if not isinstance(actions, (list, tuple)):
        raise PolicyError(f"policy: must return a list of actions, got {type(actions).__name__}")
    seen = list(visit.lesions["lesion"])
    for action in actions:
        if isinstance(action, LocalTherapy):
            if action.lesion not in seen:
                raise PolicyError(
                    f"LocalTherapy.lesion: no lesion '{action.lesion}' is seen on day {visit.time:g}; "
                    f"seen: {', '.join(seen) or 'none'}"
                )
            if action.modality not in visit.modalities:
                raise PolicyError(f"LocalTherapy.modality: unknown modality '{action.modality}'; "
                                  f"allowed: {', '.join(visit.modalities)}")
        elif isinstance(action, SwitchLine):
            if action.line is not None and action.line not in visit.lines:
                raise PolicyError(f"SwitchLine.line: unknown line '{action.line}'; "
                                  f"allowed: {', '.join(visit.lines) or 'none'} or None")
        elif isinstance(action, (StopDrug, StartDrug)):
            if visit.line is None:
                raise PolicyError(f"{type(action).__name__}: no line is current on day {visit.time:g}")
        else:
            raise PolicyError(
                f"policy: unknown action {action!r}; allowed: LocalTherapy, SwitchLine, StopDrug, StartDrug"
            )
    return list(actions)


def empty_lesions() -> pd.DataFrame:
    return pd.DataFrame({"lesion": pd.Series(dtype=object), "site": pd.Series(dtype=object),
                         "diameter_mm": pd.Series(dtype=float), "target": pd.Series(dtype=bool),
                         "progressing": pd.Series(dtype=bool), "new": pd.Series(dtype=bool)})


def lesions_seen(diameters: np.ndarray, names, sites, target, progressing, seen_at_baseline) -> pd.DataFrame:
    rows = np.flatnonzero(diameters > 0)
    if rows.size == 0:
        return empty_lesions()
    return pd.DataFrame({
        "lesion": [names[i] for i in rows],
        "site": [sites[i] for i in rows],
        "diameter_mm": diameters[rows],
        "target": target[rows],
        "progressing": progressing[rows],
        "new": ~seen_at_baseline[rows],
    })
