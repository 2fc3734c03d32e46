"""Results of a simulated patient: tidy tables, endpoints and provenance, and their files."""

from __future__ import annotations

import base64
import functools
import io
import json
import math
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from simulator.endpoints import doubling_days, log_of, patient_endpoints
from simulator.engine.clinic import diameter_mm
from simulator.engine.clinic import REASON_NAMES, RESPONSE_NAMES
from simulator.engine.events import (
    EVENT_BIOPSY,
    EVENT_CLONE_APPEARS,
    EVENT_DRUG_RESTART,
    EVENT_DRUG_STOP,
    EVENT_LESION_SEEDED,
    EVENT_LINE_START,
    EVENT_LOCAL_THERAPY,
    EVENT_NAMES,
)
from simulator.engine.kernel import Buffers
from simulator.scenario import Scenario


@dataclass(frozen=True)
class PatientResult:
    """One simulated patient.

    Attributes
    ----------
    trajectory
        Tidy table: ``time`` (days), ``lesion`` (name), ``clone`` (type), ``cells``; one row per
        record time, existing lesion and clone type.
    lesions
        One row per lesion that ever existed: name, site, parent lesion, day founded, capacity.
    clones
        One row per clone type: rates, labels and ``first_seen`` (day it first had cells, NaN
        if never).
    events
        What happened when: ``time``, ``kind``, ``lesion``, ``clone``, ``detail`` (line, modality,
        mechanism or reason, by kind) and ``value``; see ``simulator.engine.events``.
    final_cells
        Cells per lesion and clone type at ``end_time``, shape (lesions, clone types).
    provenance
        Version, resolved scenario, seed and replicate index: enough to reproduce the run.
    visits
        What the clinic saw at each visit: RECIST response, sum of target diameters, visible
        lesions, marker, ctDNA copies and variant allele fractions, line and drug status.
    observations
        One row per visit and lesion seen on CT: ``diameter_mm``, ``target``, with the visit's
        marker, ctDNA and response.
    endpoints
        PFS, OS, time to treatment failure, time on each line, local therapies, holiday days,
        relative dose and mechanisms at progression (see :func:`simulator.endpoints.patient_endpoints`).
    """

    trajectory: pd.DataFrame
    lesions: pd.DataFrame
    clones: pd.DataFrame
    events: pd.DataFrame
    final_cells: np.ndarray
    end_time: float
    provenance: dict = field(repr=False)
    visits: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)
    observations: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)
    endpoints: dict = field(default_factory=dict)

    @property
    def burden(self) -> pd.Series:
        """Total cells at each record time."""
        return self.trajectory.groupby("time")["cells"].sum()

    def __repr__(self) -> str:
        ends = self.endpoints
        return (f"PatientResult(scenario={self.provenance['scenario']['id']!r}, seed={self.provenance['seed']}, "
                f"replicate={self.provenance['replicate']}, end_day={self.end_time:g}, "
                f"lesions={len(self.lesions)}, pfs_days={_format_value(ends.get('pfs_days', float('nan')))}, "
                f"os_days={_format_value(ends.get('os_days', float('nan')))})")

    def summary(self) -> pd.DataFrame:
        """One row: who this patient is (scenario, seed, replicate), its final burden and its
        endpoints, with lists as lists and time on each line as ``days_on_LINE`` columns."""
        final = self.trajectory[self.trajectory["time"] == self.trajectory["time"].max()]
        lines = list(self.provenance["scenario"].get("therapy", {}).get("lines", {}))
        row = {"scenario": self.provenance["scenario"]["id"], "seed": self.provenance["seed"],
               "replicate": self.provenance["replicate"], "end_day": self.end_time,
               "final_cells": int(final["cells"].sum()), "lesions_ever": len(self.lesions),
               **endpoint_columns(self.endpoints, lines)}
        return text_columns_as_strings(pd.DataFrame([row]))

    def _repr_html_(self) -> str:
        from simulator.plots import burden_timeline

        return _html_card(repr(self), self.summary().T.rename(columns={0: "value"}),
                          lambda: burden_timeline(self))

    def summary_text(self) -> str:
        """A short human-readable summary (final burden per lesion and clone, extinctions),
        then the clinical timeline: what the command line prints."""
        lines = [
            f"scenario {self.provenance['scenario']['id']}  seed {self.provenance['seed']}  "
            f"replicate {self.provenance['replicate']}  end day {self.end_time:g}",
        ]
        final = self.trajectory[self.trajectory["time"] == self.trajectory["time"].max()]
        table = final.pivot_table(index="lesion", columns="clone", values="cells", aggfunc="sum")
        table = table.reindex(index=self.lesions["lesion"], columns=self.clones["clone"]).fillna(0)
        table = table[table.sum(axis=1) > 0]
        lines.append(f"total burden {int(final['cells'].sum()):.3e} cells "
                     f"in {len(table)} living lesion(s) of {len(self.lesions)}")
        living = len(table)
        if living > SUMMARY_LESIONS:  # the largest lesions; the rest are in the tables
            table = table.loc[table.sum(axis=1).sort_values(ascending=False).index[:SUMMARY_LESIONS]]
        if len(table):
            lines.append(_format_table(table.astype(np.int64)))
        if living > SUMMARY_LESIONS:
            lines.append(f"  (the {SUMMARY_LESIONS} largest of {living} living lesions; all are in "
                         "trajectory.parquet)")
        for row in self.clones.itertuples():
            seen = "present at start" if row.first_seen == 0 else (
                "never" if np.isnan(row.first_seen) else f"first seen day {row.first_seen:g}")
            lines.append(f"  {row.clone}: {seen}")
        ends = self.events[self.events["kind"].isin(["death", "extinction"])]
        for row in ends.itertuples():
            lines.append(f"{row.kind} on day {row.time:g}")
        extinct = self.events[self.events["kind"] == "lesion_extinct"]
        lines.append(f"lesions extinct: {len(extinct)}; lesions seeded: "
                     f"{int((self.events['kind'] == 'lesion_seeded').sum())}")
        if len(self.visits) or self.endpoints.get("lines_used"):
            lines.append(self.timeline())
        return "\n".join(lines)

    def timeline(self) -> str:
        """The clinical course as the clinic lived it: visits, responses and decisions."""
        entries = []
        mechanisms = [m for m in dict.fromkeys(self.clones["resistance"]) if m]
        detected_columns = [f"detected_{column_name(m)}" for m in mechanisms]
        detected_columns = [c for c in detected_columns if c in self.visits.columns]
        label = {f"detected_{column_name(m)}": m for m in mechanisms}
        for row, detected_row in zip(self.visits.itertuples(), self.visits[detected_columns].to_numpy()):
            ctdna = "ctDNA+" if row.ctdna_positive else "ctDNA-"
            detected = [label[c] for c, hit in zip(detected_columns, detected_row) if hit]
            found = f" ({', '.join(detected)})" if detected else ""
            line = None if pd.isna(row.line) else row.line
            drug = "no drug" if line is None else (line if row.drug_on else f"{line} paused")
            entries.append((row.time, 0, f"visit   {row.response:<13} SLD {row.sum_diameters_mm:5.1f} mm  "
                                          f"{row.visible_lesions} seen  marker {row.marker:6.1f}  "
                                          f"{ctdna}{found}  [{drug}]"))
        for row in self.events[self.events["kind"].isin(CLINICAL_EVENTS)].itertuples():
            where = "" if pd.isna(row.lesion) else f" {row.lesion}"
            what = "" if pd.isna(row.detail) else f" {row.detail}"
            if row.kind == "local_therapy":
                what += f" ({row.value:.1e} of cells survive)"
            if row.kind == "biopsy" and row.detail != "none":
                what += f" at {row.value:.0%}"
            if row.kind == "progression":
                what += f" ({int(row.value)} lesion(s) progressing alone)"
            entries.append((row.time, 1, f"  -> {row.kind}{where}{what}"))
        text = ["clinical timeline (day):"]
        text += [f"  {time:6g}  {entry}" for time, _, entry in sorted(entries, key=lambda e: e[:2])]
        text.append("endpoints: " + ", ".join(f"{k} {_format_value(v)}" for k, v in self.endpoints.items()))
        return "\n".join(text)

    def write(self, directory: str | Path, figures: bool = True, report: bool = False,
              figure_format: str = "png", dpi: int = 120) -> Path:
        """Write the tables (Parquet), ``provenance.json``, with ``figures`` the pictures
        (``figure_format`` png, svg or pdf at ``dpi``) and with ``report`` a self-contained
        ``report.html`` (see :mod:`simulator.report`).

        Everything goes to a staging directory beside ``directory`` that replaces it whole
        once complete (see :func:`write_atomically`): an interrupted write leaves the earlier
        result, and a rewrite leaves no file of the earlier result behind.
        """
        lines = list(self.provenance["scenario"].get("therapy", {}).get("lines", {}))
        tables = {
            "trajectory": self.trajectory,
            "lesions": self.lesions,
            "clones": self.clones,
            "events": self.events,
            "visits": self.visits,
            "observations": self.observations,
            "endpoints": text_columns_as_strings(pd.DataFrame([endpoint_columns(self.endpoints, lines)])),
        }

        def draw(staging: Path) -> None:
            from simulator.plots import save_patient_figures

            if figures:
                save_patient_figures(self, staging, figure_format, dpi)
            if report:
                from simulator.report import REPORT_NAME, patient_report

                (staging / REPORT_NAME).write_text(patient_report(self), encoding="utf-8")

        return write_atomically(directory, tables, self.provenance, draw if figures or report else None)


class OutputError(ValueError):
    """An output place that cannot be used (not creatable, not writable, foreign content)."""


RESULT_MARKER = "provenance.json"


def check_output_directory(directory: str | Path, marker: str = RESULT_MARKER) -> Path:
    """Refuse, before any work, an output directory that could not be written or replaced.

    ``directory`` may exist (empty, or holding an earlier result: a ``marker`` file) or not;
    its nearest existing ancestor must be a writable directory, since results are staged
    beside it and moved into place. Nothing is left behind by the check.

    Raises
    ------
    OutputError
        One line naming the directory and what is wrong.
    """
    directory = Path(directory)
    if directory.exists():
        if not directory.is_dir():
            raise OutputError(f"--out: '{directory}' exists and is not a directory")
        if any(directory.iterdir()) and not (directory / marker).exists():
            raise OutputError(f"--out: '{directory}' exists with other content; "
                              "choose an empty or new directory")
    parent = directory.absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise OutputError(f"--out: '{directory}' cannot be created: '{parent}' is not a directory")
    try:
        Path(tempfile.mkdtemp(prefix=".write-check.", dir=parent)).rmdir()
    except OSError as error:
        raise OutputError(f"--out: cannot write in '{parent}': {error.strerror or error}") from None
    return directory


def write_atomically(directory: str | Path, tables: dict[str, pd.DataFrame], provenance: dict,
                     draw: Callable[[Path], object] | None = None) -> Path:
    """Write ``tables`` (Parquet), ``provenance.json`` and what ``draw(staging)`` adds, all or
    nothing, replacing an earlier result in ``directory`` whole.

    The files go to a staging directory beside ``directory``; when all are written, an earlier
    ``directory`` is moved aside, the staging directory takes its name and the old one is
    deleted. On any failure the staging directory is removed and an earlier result stays.
    """
    check_output_directory(directory)
    # Replace what the path names: a link's target, not the link; never the bare name '.'.
    directory = Path(directory).resolve() if Path(directory).is_symlink() else Path(directory).absolute()
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.staging-", dir=directory.parent))
    previous = directory.with_name(f".{directory.name}.previous-{os.getpid()}")
    shutil.rmtree(previous, ignore_errors=True)  # left by a write killed between its two renames
    try:
        for name, table in tables.items():
            write_table(table, staging / f"{name}.parquet")
        if draw is not None:
            draw(staging)
        # Written last: a directory with provenance.json is a complete result.
        (staging / RESULT_MARKER).write_text(json.dumps(provenance, indent=2, default=str))
        _set_default_permissions(staging)
        if directory.exists():
            os.rename(directory, previous)
        os.rename(staging, directory)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if previous.exists() and not directory.exists():
            os.rename(previous, directory)
        raise
    shutil.rmtree(previous, ignore_errors=True)
    return directory


def _set_default_permissions(path: Path) -> None:
    # mkdtemp makes a private (0700) directory; a result should get the user's usual mode.
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(path, 0o777 & ~mask)


def write_table(table: pd.DataFrame, path: str | Path) -> None:
    """Write a table as Parquet with list columns typed ``list<string>`` even when empty,
    so every file of a data set has the same schema."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    arrow = pa.Table.from_pandas(table, preserve_index=False)
    for index, column in enumerate(arrow.schema):
        if pa.types.is_list(column.type) and not pa.types.is_string(column.type.value_type):
            arrow = arrow.set_column(index, column.name, arrow.column(index).cast(pa.list_(pa.string())))
    pq.write_table(arrow, path)


def column_name(label: str) -> str:
    """A label (mechanism, line) as part of a column name: letters, digits and underscores,
    e.g. ``'MET amplification'`` -> ``'MET_amplification'``."""
    return re.sub(r"[^0-9A-Za-z]+", "_", str(label)).strip("_")


SUMMARY_LESIONS = 12  # lesions listed in a run's printed summary
LIST_ENDPOINTS = ("mechanisms_at_progression", "progressing_lesions", "new_lesions_at_progression",
                  "brain_at_progression")


TEXT_ENDPOINTS = ("best_response", "death_cause", "stop_reason")


def text_columns_as_strings(table: pd.DataFrame) -> pd.DataFrame:
    """Text endpoints as strings (missing: NaN) whatever the patients in a chunk, so tables
    of any set of patients concatenate and compare alike."""
    for column in table.columns:
        if column in TEXT_ENDPOINTS or column.startswith("best_response_"):
            table[column] = table[column].astype(pd.StringDtype(na_value=np.nan))
    return table


def endpoint_columns(endpoints: dict, lines: list[str]) -> dict:
    """Endpoints as table columns: scalars as they are, the per-progression lists as lists,
    ``time_on_line`` as one ``days_on_LINE`` column per line of the scenario (0 for a line
    never taken), and the per-line endpoints as ``pfs_LINE_days``, ``progressed_LINE`` and
    ``best_response_LINE`` (NaN, False and None for a line never taken)."""
    row = {key: value for key, value in endpoints.items() if key not in ("time_on_line", "per_line")}
    for key in LIST_ENDPOINTS:
        row[key] = list(endpoints.get(key, []))
    taken = endpoints.get("time_on_line", {})
    per_line = endpoints.get("per_line", {})
    for line in lines:
        name = column_name(line)
        row[f"days_on_{name}"] = float(taken.get(line, 0.0))
        on_line = per_line.get(line, {})
        row[f"pfs_{name}_days"] = float(on_line.get("pfs_days", math.nan))
        row[f"progressed_{name}"] = bool(on_line.get("progressed", False))
        row[f"best_response_{name}"] = on_line.get("best_response")
    return row


def _html_card(title: str, table: pd.DataFrame, draw: Callable[[], object]) -> str:
    """A notebook card: a title, a table and a small picture (inline PNG)."""
    from html import escape

    picture = ""
    try:
        figure = draw()
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=60, bbox_inches="tight")
        picture = (f'<img style="max-width:480px" '
                   f'src="data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()}"/>')
    except Exception:  # a picture is a courtesy; the table must show even without it
        picture = ""
    return (f"<div><p><code>{escape(title)}</code></p>{table.to_html(max_rows=40)}{picture}</div>")


CLINICAL_EVENTS = ["progression", "biopsy", "line_start", "therapy_exhausted", "drug_stop",
                   "drug_restart", "local_therapy", "death", "extinction"]


def _format_value(value) -> str:
    if isinstance(value, float):
        return "-" if np.isnan(value) else f"{value:.4g}"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_format_value(v)}" for k, v in value.items()) + "}"
    return str(value)


def _format_table(table: pd.DataFrame) -> str:
    formatted = table.map(lambda n: f"{n:.3e}" if n >= 1e6 else str(n))
    return "\n".join("  " + line for line in formatted.to_string().splitlines())


def diagnosis_endpoints(scenario: Scenario, buffers: Buffers, history_days: float = 0.0) -> dict:
    """The tumour on day 0: its untreated doubling time, its lesions (alive, and visible
    on CT: at least ``monitoring.detection_limit_mm`` across) and the share of its cells that
    carry each resistance mechanism (``<mechanism>_fraction_at_diagnosis``)."""
    n0 = int(buffers.record_lesions[0])
    cells = buffers.records[0, :n0]
    totals = cells.sum(axis=1)
    burden = float(totals.sum())
    monitoring = scenario.monitoring
    diameters = [diameter_mm(float(n), monitoring.cells_per_cm3) for n in totals]
    birth = np.array([c.birth for c in scenario.clones.values()])
    death = np.array([c.death for c in scenario.clones.values()])
    return {
        "untreated_doubling_days": doubling_days(cells, birth, death, buffers.lesion_capacity[:n0],
                                                 buffers.lesion_law[:n0]),
        "lesions_at_diagnosis": int((totals > 0).sum()),
        "visible_lesions_at_diagnosis": int(sum(d >= monitoring.detection_limit_mm for d in diameters)),
        "brain_at_diagnosis": bool(any(d >= monitoring.detection_limit_mm and scenario.sites[site] == "brain"
                                       for d, site in zip(diameters, buffers.lesion_site[:n0]))),
        "history_days": history_days,
        **{f"{column_name(mechanism)}_fraction_at_diagnosis":
           float(cells[:, columns].sum()) / burden if burden > 0 else 0.0
           for mechanism, columns in _mechanism_columns(scenario).items()},
    }


def _mechanism_columns(scenario: Scenario) -> dict[str, list[int]]:
    """The clone types (column indices) carrying each resistance mechanism."""
    columns: dict[str, list[int]] = {}
    for index, clone in enumerate(scenario.clones.values()):
        if clone.resistance:
            columns.setdefault(clone.resistance, []).append(index)
    return columns


def build_result(scenario: Scenario, buffers: Buffers, provenance: dict, diagnosis=None) -> PatientResult:
    """Turn the engine's raw buffers into tidy tables (with the pre-diagnosis history's
    records and events when ``history.keep_in_tables`` asks for them)."""
    n_lesions, n_records = int(buffers.counters[0]), int(buffers.counters[1])
    clone_names = np.array(list(scenario.clones), dtype=object)
    sites = np.array(scenario.sites, dtype=object)
    lesion_names = lesion_names_of(scenario, sites[buffers.lesion_site[:n_lesions]])
    times = buffers.record_time[:n_records]
    first_seen = buffers.first_seen.copy()
    first_seen[first_seen < 0] = np.nan
    clones = pd.DataFrame({
        "clone": clone_names,
        "birth": [c.birth for c in scenario.clones.values()],
        "death": [c.death for c in scenario.clones.values()],
        "label": [c.label for c in scenario.clones.values()],
        "subtype": [c.subtype for c in scenario.clones.values()],
        "resistance": [c.resistance for c in scenario.clones.values()],
        "first_seen": first_seen,
    })
    parents = buffers.lesion_parent[:n_lesions]
    lesions = pd.DataFrame({
        "lesion": lesion_names,
        "site": sites[buffers.lesion_site[:n_lesions]],
        "parent": [lesion_names[p] if p >= 0 else None for p in parents],
        "born": buffers.lesion_born[:n_lesions],
        "carrying_capacity": buffers.lesion_capacity[:n_lesions],
    })
    events = _events_table(scenario, buffers, lesion_names, clone_names)
    trajectory = _trajectory_table(buffers, lesion_names, clone_names)
    visits, observations = observation_tables(scenario, buffers, lesion_names)
    end_time = float(times[-1])
    endpoints = endpoints_of(scenario, buffers, diagnosis)
    if diagnosis is not None and scenario.history.keep_in_tables:
        from simulator.history import history_events, history_trajectory

        trajectory = pd.concat([history_trajectory(diagnosis, lesion_names, clone_names), trajectory],
                               ignore_index=True)
        events = pd.concat([history_events(diagnosis, lesion_names, clone_names), events],
                           ignore_index=True)
    return PatientResult(
        trajectory=trajectory,
        lesions=lesions,
        clones=clones,
        events=events,
        final_cells=buffers.cells[:n_lesions].copy(),
        end_time=end_time,
        provenance=provenance,
        visits=visits,
        observations=observations,
        endpoints=endpoints,
    )


def _trajectory_table(buffers: Buffers, lesion_names, clone_names) -> pd.DataFrame:
    """Cells per record, lesion and clone type (long format), built in one go."""
    n_records = int(buffers.counters[1])
    n_clones = len(clone_names)
    existing = buffers.record_lesions[:n_records]
    record = np.repeat(np.arange(n_records), existing * n_clones)
    lesion = np.concatenate([np.repeat(np.arange(n), n_clones) for n in existing])
    clone = np.concatenate([np.tile(np.arange(n_clones), n) for n in existing])
    return pd.DataFrame({
        "time": buffers.record_time[record],
        "lesion": pd.Categorical.from_codes(lesion, categories=lesion_names),
        "clone": pd.Categorical.from_codes(clone, categories=clone_names),
        "cells": buffers.records[record, lesion, clone],
    })


def _detail_names(scenario: Scenario, clone_names) -> dict[int, list]:
    """What an event's integer detail means, by event kind."""
    lines = list(scenario.therapy.lines)
    reasons = [REASON_NAMES[code] for code in sorted(REASON_NAMES)]
    return {
        EVENT_CLONE_APPEARS: list(clone_names),
        EVENT_LESION_SEEDED: list(clone_names),
        EVENT_BIOPSY: scenario.mechanisms,
        EVENT_LINE_START: lines,
        EVENT_DRUG_STOP: reasons,
        EVENT_DRUG_RESTART: reasons,
        EVENT_LOCAL_THERAPY: list(scenario.local_therapy),
    }


def _event_columns(scenario: Scenario, buffers: Buffers, lesion_names, clone_names,
                   rows: np.ndarray) -> dict[str, list | np.ndarray]:
    """The columns of the events table for the engine's event ``rows``, names resolved."""
    kinds = buffers.event_kind[rows]
    details = buffers.event_detail[rows]
    meaning = _detail_names(scenario, clone_names)
    detail_text = []
    for kind, detail in zip(kinds, details):
        names = meaning.get(int(kind))
        detail_text.append(names[detail] if names is not None and detail >= 0 else
                           ("none" if kind == EVENT_BIOPSY else None))
    clone_kinds = (EVENT_CLONE_APPEARS, EVENT_LESION_SEEDED)
    return {
        "time": buffers.event_time[rows],
        "kind": [EVENT_NAMES[k] for k in kinds],
        "lesion": [lesion_names[i] if i >= 0 else None for i in buffers.event_lesion[rows]],
        "clone": [clone_names[d] if k in clone_kinds and d >= 0 else None
                  for k, d in zip(kinds, details)],
        "detail": detail_text,
        "value": buffers.event_value[rows],
    }


def _events_table(scenario: Scenario, buffers: Buffers, lesion_names, clone_names) -> pd.DataFrame:
    rows = np.arange(int(buffers.counters[2]))
    return pd.DataFrame(_event_columns(scenario, buffers, lesion_names, clone_names, rows))


_CLINICAL_CODES = np.array([code for code, name in EVENT_NAMES.items() if name in CLINICAL_EVENTS])


def clinical_event_columns(scenario: Scenario, buffers: Buffers) -> dict[str, list | np.ndarray]:
    """The clinical events (``CLINICAL_EVENTS``) of one patient as columns (time, kind, lesion,
    detail, value), without building the patient's tables: what a cohort keeps."""
    n_events = int(buffers.counters[2])
    rows = np.flatnonzero(np.isin(buffers.event_kind[:n_events], _CLINICAL_CODES))
    n_lesions = int(buffers.counters[0])
    sites = np.array(scenario.sites, dtype=object)
    lesion_names = lesion_names_of(scenario, sites[buffers.lesion_site[:n_lesions]])
    columns = _event_columns(scenario, buffers, lesion_names, list(scenario.clones), rows)
    del columns["clone"]
    return columns


def endpoints_of(scenario: Scenario, buffers: Buffers, diagnosis=None) -> dict:
    """One patient's endpoints, straight from the engine's arrays."""
    endpoints = patient_endpoints(scenario, log_of(buffers))
    endpoints.update(diagnosis_endpoints(scenario, buffers,
                                         diagnosis.days if diagnosis is not None else 0.0))
    return endpoints


def observation_tables(scenario: Scenario, buffers: Buffers, lesion_names):
    """Per visit (``visits``) and per visit and seen lesion (``observations``)."""
    n_visits = int(buffers.counters[4])
    monitoring = scenario.monitoring
    lines = list(scenario.therapy.lines)
    copies = buffers.obs_copies[:n_visits]
    tumour = buffers.obs_tumour_copies[:n_visits]
    columns = {
        "visit": np.arange(n_visits),
        "time": buffers.obs_time[:n_visits],
        "response": [RESPONSE_NAMES[r] for r in buffers.obs_response[:n_visits]],
        "sum_diameters_mm": buffers.obs_sld[:n_visits],
        "visible_lesions": (buffers.obs_diameter[:n_visits] > 0).sum(axis=1),
        "marker": buffers.obs_marker[:n_visits],
        "ctdna_copies": tumour,
        "ctdna_positive": tumour >= monitoring.ctdna_min_copies,
        "line": [lines[i] if i >= 0 else None for i in buffers.obs_line[:n_visits]],
        "drug_on": buffers.obs_drug_on[:n_visits].astype(bool),
    }
    denominator = tumour + monitoring.normal_cfdna_copies
    for index, mechanism in enumerate(scenario.mechanisms):
        with np.errstate(invalid="ignore", divide="ignore"):
            vaf = np.where(denominator > 0, copies[:, index] / denominator, 0.0)
        columns[f"vaf_{column_name(mechanism)}"] = vaf
        columns[f"detected_{column_name(mechanism)}"] = copies[:, index] >= monitoring.ctdna_min_copies
    visits = pd.DataFrame(columns)
    # Seen lesions: diameters above 0 among the lesions that existed at each visit.
    diameters = buffers.obs_diameter[:n_visits]
    existed = np.arange(diameters.shape[1]) < buffers.obs_lesions[:n_visits, None]
    visit, lesion = np.nonzero((diameters > 0) & existed)
    observations = pd.DataFrame({
        "visit": visit,
        "time": columns["time"][visit],
        "lesion": lesion_names[lesion] if len(lesion_names) else np.array([], dtype=object),
        "diameter_mm": diameters[visit, lesion],
        "target": buffers.obs_target[visit, lesion].astype(bool),
        "marker": columns["marker"][visit],
        "ctdna_copies": tumour[visit],
        "response": np.array(columns["response"], dtype=object)[visit],
    })
    return visits, observations


def lesion_names_of(scenario: Scenario, lesion_sites: np.ndarray) -> np.ndarray:
    """Named lesions keep their names; seeded ones are called site#n in order of founding."""
    named = list(scenario.lesions)
    seeded = [f"{site}#{i + 1}" for i, site in enumerate(lesion_sites[len(named):])]
    return np.array(named + seeded, dtype=object)


def run_context() -> dict:
    """Where a result came from: versions, the command line, the time (UTC) and, when the
    package runs from a git checkout, its commit and whether it had local changes."""
    import platform
    import shlex
    import sys
    from datetime import datetime, timezone

    import numba

    import simulator

    return {
        "simulator_version": simulator.__version__,
        "python_version": platform.python_version(),
        "numpy_version": np.__version__,
        "numba_version": numba.__version__,
        "pandas_version": pd.__version__,
        "command_line": shlex.join(sys.argv),
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **_git_state(),
    }


@functools.lru_cache(maxsize=1)
def _git_state() -> dict:
    import subprocess

    checkout = Path(__file__).resolve().parent.parent
    if not (checkout / ".git").exists():
        return {}
    try:
        commit = subprocess.run(["git", "-C", str(checkout), "rev-parse", "HEAD"], capture_output=True,
                                text=True, timeout=10, check=True).stdout.strip()
        changes = subprocess.run(["git", "-C", str(checkout), "status", "--porcelain", "--untracked-files=no"],
                                 capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return {}
    return {"git_commit": commit, "git_dirty": bool(changes)}
