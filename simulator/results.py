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

from simulator.engine.kernel import EVENT_NAMES, Buffers
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
        Table of what happened when: ``time``, ``kind``, ``lesion``, ``clone``, ``value``.
    final_cells
        Cells per lesion and clone type at ``end_time``, shape (lesions, clone types).
    provenance
        Version, resolved scenario, seed and replicate index: enough to reproduce the run.
    """

    trajectory: pd.DataFrame
    lesions: pd.DataFrame
    clones: pd.DataFrame
    events: pd.DataFrame
    final_cells: np.ndarray
    end_time: float
    provenance: dict = field(repr=False)

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
        return "\n".join(lines)

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


def _format_table(table: pd.DataFrame) -> str:
    formatted = table.map(lambda n: f"{n:.3e}" if n >= 1e6 else str(n))
    return "\n".join("  " + line for line in formatted.to_string().splitlines())


def build_result(scenario: Scenario, buffers: Buffers, provenance: dict) -> PatientResult:
    """Turn the engine's raw buffers into tidy tables."""
    n_lesions, n_records, n_events, _ = (int(x) for x in buffers.counters)
    clone_names = np.array(list(scenario.clones), dtype=object)
    sites = np.array(scenario.sites, dtype=object)
    lesion_names = _lesion_names(scenario, sites[buffers.lesion_site[:n_lesions]])

    times = buffers.record_time[:n_records]
    existing = buffers.record_lesions[:n_records]
    blocks = []
    for index in range(n_records):
        cells = buffers.records[index, : existing[index], :]
        lesion_idx, clone_idx = np.indices(cells.shape)
        blocks.append(pd.DataFrame({
            "time": times[index],
            "lesion": lesion_names[lesion_idx.ravel()],
            "clone": clone_names[clone_idx.ravel()],
            "cells": cells.ravel(),
        }))
    trajectory = pd.concat(blocks, ignore_index=True)
    for column in ("lesion", "clone"):
        trajectory[column] = pd.Categorical(
            trajectory[column], categories=lesion_names if column == "lesion" else clone_names
        )

    parents = buffers.lesion_parent[:n_lesions]
    lesions = pd.DataFrame({
        "lesion": lesion_names,
        "site": sites[buffers.lesion_site[:n_lesions]],
        "parent": [lesion_names[p] if p >= 0 else None for p in parents],
        "born": buffers.lesion_born[:n_lesions],
        "carrying_capacity": buffers.lesion_capacity[:n_lesions],
    })
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
    kinds = buffers.event_kind[:n_events]
    lesion_of = buffers.event_lesion[:n_events]
    clone_of = buffers.event_clone[:n_events]
    events = pd.DataFrame({
        "time": buffers.event_time[:n_events],
        "kind": [EVENT_NAMES[k] for k in kinds],
        "lesion": [lesion_names[i] if i >= 0 else None for i in lesion_of],
        "clone": [clone_names[i] if i >= 0 else None for i in clone_of],
        "value": buffers.event_value[:n_events],
    })
    return PatientResult(
        trajectory=trajectory,
        lesions=lesions,
        clones=clones,
        events=events,
        final_cells=buffers.cells[:n_lesions].copy(),
        end_time=float(times[-1]),
        provenance=provenance,
    )


def _lesion_names(scenario: Scenario, lesion_sites: np.ndarray) -> np.ndarray:
    """Named lesions keep their names; seeded ones are called site#n in order of founding."""
    named = list(scenario.lesions)
    seeded = [f"{site}#{i + 1}" for i, site in enumerate(lesion_sites[len(named):])]
    return np.array(named + seeded, dtype=object)
