"""Results of a simulated patient: tidy tables, endpoints and provenance, and their files."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from simulator.endpoints import patient_endpoints
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

    def summary(self) -> str:
        """A short human-readable summary (final burden per lesion and clone, extinctions)."""
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
        if len(table):
            lines.append(_format_table(table.astype(np.int64)))
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
        detected_columns = [c for c in self.visits.columns if c.startswith("detected_")]
        for row, detected_row in zip(self.visits.itertuples(), self.visits[detected_columns].to_numpy()):
            ctdna = "ctDNA+" if row.ctdna_positive else "ctDNA-"
            detected = [c[len("detected_"):] for c, hit in zip(detected_columns, detected_row) if hit]
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

    def write(self, directory: str | Path) -> Path:
        """Write trajectory, lesions, clones and events (Parquet) and provenance (JSON).

        Files are written to a temporary directory next to ``directory`` and moved into place
        only when all are complete, so an interrupted write leaves nothing half-written.
        """
        tables = {
            "trajectory": self.trajectory,
            "lesions": self.lesions,
            "clones": self.clones,
            "events": self.events,
            "visits": self.visits,
            "observations": self.observations,
            "endpoints": pd.DataFrame([{k: _flat(v) for k, v in self.endpoints.items()}]),
        }
        return write_atomically(directory, tables, self.provenance)


def write_atomically(directory: str | Path, tables: dict[str, pd.DataFrame], provenance: dict) -> Path:
    """Write ``tables`` as Parquet and ``provenance.json`` into ``directory`` all or nothing."""
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    try:
        for name, table in tables.items():
            table.to_parquet(staging / f"{name}.parquet", index=False)
        (staging / "provenance.json").write_text(json.dumps(provenance, indent=2, default=str))
        directory.mkdir(exist_ok=True)
        for item in staging.iterdir():
            os.replace(item, directory / item.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return directory


CLINICAL_EVENTS = ["progression", "biopsy", "line_start", "therapy_exhausted", "drug_stop",
                   "drug_restart", "local_therapy", "death", "extinction"]


def _format_value(value) -> str:
    if isinstance(value, float):
        return "-" if np.isnan(value) else f"{value:.4g}"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_format_value(v)}" for k, v in value.items()) + "}"
    return str(value)


def _flat(value):
    """Endpoints as Parquet-friendly scalars (dicts and lists become JSON text)."""
    return json.dumps(value) if isinstance(value, (dict, list)) else value


def _format_table(table: pd.DataFrame) -> str:
    formatted = table.map(lambda n: f"{n:.3e}" if n >= 1e6 else str(n))
    return "\n".join("  " + line for line in formatted.to_string().splitlines())


def build_result(scenario: Scenario, buffers: Buffers, provenance: dict) -> PatientResult:
    """Turn the engine's raw buffers into tidy tables."""
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
    visits, observations = observation_tables(scenario, buffers, lesion_names)
    end_time = float(times[-1])
    return PatientResult(
        trajectory=_trajectory_table(buffers, lesion_names, clone_names),
        lesions=lesions,
        clones=clones,
        events=events,
        final_cells=buffers.cells[:n_lesions].copy(),
        end_time=end_time,
        provenance=provenance,
        visits=visits,
        observations=observations,
        endpoints=patient_endpoints(scenario, events, visits, buffers.dose_given, end_time),
    )


def _trajectory_table(buffers: Buffers, lesion_names, clone_names) -> pd.DataFrame:
    n_records = int(buffers.counters[1])
    existing = buffers.record_lesions[:n_records]
    blocks = []
    for index in range(n_records):
        cells = buffers.records[index, : existing[index], :]
        lesion_idx, clone_idx = np.indices(cells.shape)
        blocks.append(pd.DataFrame({
            "time": buffers.record_time[index],
            "lesion": lesion_names[lesion_idx.ravel()],
            "clone": clone_names[clone_idx.ravel()],
            "cells": cells.ravel(),
        }))
    trajectory = pd.concat(blocks, ignore_index=True)
    trajectory["lesion"] = pd.Categorical(trajectory["lesion"], categories=lesion_names)
    trajectory["clone"] = pd.Categorical(trajectory["clone"], categories=clone_names)
    return trajectory


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


def _events_table(scenario: Scenario, buffers: Buffers, lesion_names, clone_names) -> pd.DataFrame:
    n_events = int(buffers.counters[2])
    kinds = buffers.event_kind[:n_events]
    details = buffers.event_detail[:n_events]
    meaning = _detail_names(scenario, clone_names)
    detail_text = []
    for kind, detail in zip(kinds, details):
        names = meaning.get(int(kind))
        detail_text.append(names[detail] if names is not None and detail >= 0 else
                           ("none" if kind == EVENT_BIOPSY else None))
    clone_kinds = (EVENT_CLONE_APPEARS, EVENT_LESION_SEEDED)
    return pd.DataFrame({
        "time": buffers.event_time[:n_events],
        "kind": [EVENT_NAMES[k] for k in kinds],
        "lesion": [lesion_names[i] if i >= 0 else None for i in buffers.event_lesion[:n_events]],
        "clone": [clone_names[d] if k in clone_kinds and d >= 0 else None
                  for k, d in zip(kinds, details)],
        "detail": detail_text,
        "value": buffers.event_value[:n_events],
    })


def observation_tables(scenario: Scenario, buffers: Buffers, lesion_names):
    """Per visit (``visits``) and per visit and seen lesion (``observations``)."""
    n_visits = int(buffers.counters[4])
    monitoring = scenario.monitoring
    lines = list(scenario.therapy.lines)
    copies = buffers.obs_copies[:n_visits]
    tumour = buffers.obs_tumour_copies[:n_visits]
    visits = pd.DataFrame({
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
    })
    denominator = tumour + monitoring.normal_cfdna_copies
    for index, mechanism in enumerate(scenario.mechanisms):
        with np.errstate(invalid="ignore", divide="ignore"):
            vaf = np.where(denominator > 0, copies[:, index] / denominator, 0.0)
        visits[f"vaf_{mechanism}"] = vaf
        visits[f"detected_{mechanism}"] = copies[:, index] >= monitoring.ctdna_min_copies
    rows = []
    for visit in range(n_visits):
        diameters = buffers.obs_diameter[visit, : buffers.obs_lesions[visit]]
        for lesion in np.flatnonzero(diameters > 0):
            rows.append((visit, lesion_names[lesion], diameters[lesion], bool(buffers.obs_target[visit, lesion])))
    per_lesion = pd.DataFrame(rows, columns=["visit", "lesion", "diameter_mm", "target"])
    observations = per_lesion.merge(
        visits[["visit", "time", "marker", "ctdna_copies", "response"]], on="visit", how="left"
    )[["visit", "time", "lesion", "diameter_mm", "target", "marker", "ctdna_copies", "response"]]
    return visits, observations


def lesion_names_of(scenario: Scenario, lesion_sites: np.ndarray) -> np.ndarray:
    """Named lesions keep their names; seeded ones are called site#n in order of founding."""
    named = list(scenario.lesions)
    seeded = [f"{site}#{i + 1}" for i, site in enumerate(lesion_sites[len(named):])]
    return np.array(named + seeded, dtype=object)
