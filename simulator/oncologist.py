"""'Be the oncologist': the student decides at each visit, then sees the truth underneath.

The student is a Python policy (see :mod:`simulator.policy`): at every visit the kernel stops
(the runner's ``PolicyDriver`` hook, ``rules.external_policy``), :class:`StudentPolicy` shows
what the clinic knows (RECIST, the sum of diameters, each lesion seen and whether it is new or
progressing, the marker, ctDNA and any re-biopsy the student asks for) and asks for a choice:

- ``c`` continue, ``l`` local therapy of a lesion, ``s`` switch to another line,
  ``p`` pause the drug, ``r`` resume it, ``b`` re-biopsy a lesion (then choose again),
  ``a`` autopilot: continue without asking until the end.

Visits where nothing calls for a decision (no progression, no new or growing lesion, ctDNA
negative, the drug taken, not the first response) are shown in one line and pass by
(``every_visit=True`` asks at all). Answers are recorded: if the engine reruns the patient
from the start (a buffer grew), the recorded answers are replayed, so a student is never asked
twice. The policy never sees cell counts; :func:`truth_text` shows them at the end.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from simulator.policy import LocalTherapy, StartDrug, StopDrug, SwitchLine, Visit

CHOICES = {"c": "continue", "l": "local therapy of a lesion", "s": "switch line", "p": "pause the drug",
           "r": "resume the drug", "b": "re-biopsy a lesion", "a": "autopilot to the end"}


def _default_prompt(text: str, choices: list[str], default: str) -> str:
    import click

    return click.prompt(text, type=click.Choice(choices), default=default, show_choices=False)


def _default_echo(text: str) -> None:
    import click

    click.echo(text)


@dataclass
class StudentPolicy:
    """A policy that asks a person at each visit with a decision to make."""

    ask: Callable[[str, list[str], str], str] = _default_prompt
    say: Callable[[str], None] = _default_echo
    every_visit: bool = False
    answers: list = field(default_factory=list)      # per decision visit: (time, actions, biopsies)
    _position: int = 0
    _last_time: float = -1.0
    _autopilot: bool = False
    _responded: bool = False

    def __call__(self, visit: Visit) -> list:
        if visit.time <= self._last_time:          # the engine started the patient again: replay
            self._position, self._responded = 0, False
            self._autopilot = False
        self._last_time = visit.time
        if self._position < len(self.answers):
            time, actions, biopsies, autopilot = self.answers[self._position]
            if np.isclose(time, visit.time):
                self._position += 1
                self.needs_decision(visit)         # keeps its memory of the first response
                for lesion in biopsies:
                    visit.biopsy(lesion)
                self._autopilot = autopilot
                return list(actions)
        if self._autopilot:
            return []
        self.say(self.describe(visit))
        due = self.needs_decision(visit)
        if not (self.every_visit or due):
            return []
        actions, biopsies = self._decide(visit)
        self.answers.append((visit.time, actions, biopsies, self._autopilot))
        self._position = len(self.answers)
        return actions

    def needs_decision(self, visit: Visit) -> bool:
        first_response = visit.response in ("PR", "CR") and not self._responded
        if visit.response in ("PR", "CR"):
            self._responded = True
        lesions = visit.lesions
        return bool(visit.response == "PD" or lesions["progressing"].any() or lesions["new"].any()
                    or visit.ctdna_positive and any(v > 0 for v in visit.ctdna_vaf.values())
                    or (visit.line is not None and not visit.drug_on) or first_response)

    def describe(self, visit: Visit) -> str:
        drug = "no line" if visit.line is None else (visit.line if visit.drug_on else f"{visit.line} (paused)")
        found = [f"{m} VAF {v:.2%}" for m, v in visit.ctdna_vaf.items() if v > 0]
        ctdna = ("positive" + (f": {', '.join(found)}" if found else "")) if visit.ctdna_positive else "negative"
        head = (f"\nday {visit.time:g} (day {visit.day_on_therapy:g} of therapy) - on {drug}\n"
                f"  CT: RECIST {visit.response}, sum of target diameters {visit.sum_diameters_mm:.1f} mm "
                f"(baseline {visit.baseline_sum_mm:.1f}, nadir {visit.nadir_sum_mm:.1f})\n"
                f"  marker {visit.marker:.1f}; ctDNA {ctdna}")
        rows = []
        for row in visit.lesions.itertuples():
            flags = [name for name, on in (("target", row.target), ("NEW", row.new),
                                           ("PROGRESSING", row.progressing)) if on]
            rows.append(f"    {row.lesion:<12} {row.site:<10} {row.diameter_mm:6.1f} mm  {' '.join(flags)}")
        return head + ("\n  lesions seen:\n" + "\n".join(rows) if rows else "\n  no lesion seen on CT")

    def _decide(self, visit: Visit):
        biopsies: list[str] = []
        seen = [str(x) for x in visit.lesions["lesion"]]
        while True:
            allowed = ["c", "a"] + (["l", "b"] if seen else []) + ["s"]
            if visit.line is not None:
                allowed.append("r" if not visit.drug_on else "p")
            menu = ", ".join(f"{k}={CHOICES[k]}" for k in allowed)
            choice = self.ask(f"  decide ({menu})", allowed, "c")
            if choice == "c":
                return [], biopsies
            if choice == "a":
                self._autopilot = True
                return [], biopsies
            if choice == "b":
                lesion = self.ask("  biopsy which lesion", seen, self._largest(visit))
                found = visit.biopsy(lesion)
                biopsies.append(lesion)
                self.say("  biopsy of " + lesion + ": " + (", ".join(f"{m} in {f:.0%} of cells"
                                                                     for m, f in found.items()) or
                                                           "no resistance mechanism found"))
                continue
            if choice == "l":
                lesion = self.ask("  treat which lesion", seen, self._largest(visit))
                modality = self.ask("  with", list(visit.modalities), visit.modalities[0])
                return [LocalTherapy(lesion, modality)], biopsies
            if choice == "s":
                options = [line for line in visit.lines if line != visit.line] + ["none"]
                line = self.ask("  switch to", options, options[0])
                return [SwitchLine(None if line == "none" else line)], biopsies
            if choice == "p":
                return [StopDrug()], biopsies
            if choice == "r":
                return [StartDrug()], biopsies

    @staticmethod
    def _largest(visit: Visit) -> str:
        progressing = visit.lesions[visit.lesions["progressing"]]
        table = progressing if len(progressing) else visit.lesions
        return str(table.sort_values("diameter_mm").iloc[-1]["lesion"])


def truth_text(result) -> str:
    """The truth the student never saw: cells by clone type at each visit, and by lesion at
    the end."""
    trajectory = result.trajectory
    by_clone = trajectory.pivot_table(index="time", columns="clone", values="cells", aggfunc="sum",
                                      observed=True)
    times = by_clone.index.to_numpy()
    rows = []
    for day in result.visits["time"]:
        at = by_clone.iloc[min(np.searchsorted(times, day), len(times) - 1)]
        rows.append(f"  {day:6g}  " + "  ".join(f"{clone}={int(cells):.2e}" for clone, cells in at.items() if cells > 0))
    lines = ["\nThe truth underneath (cells by clone type at each visit):"] + rows
    lines.append(result.summary_text().split("clinical timeline")[0].rstrip())
    return "\n".join(lines)
