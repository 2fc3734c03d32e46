"""Figures of a patient and of a cohort: Muller plot, burden timeline, swimmer plot, Kaplan-Meier.

Every function takes data (a :class:`~simulator.results.PatientResult`, or a cohort's endpoints
and clinical events tables) and optionally the axes to draw on, and returns the
:class:`matplotlib.figure.Figure`. Nothing here touches ``matplotlib.pyplot``: figures are made
with the object API, so plotting never changes global state or opens windows, and works on any
backend (Agg in tests and on servers).

Colours are fixed per clone type and per line of therapy (:func:`clone_colours`,
:func:`line_colours`), so the same clone or line looks the same in every figure.

Patient figures use days since the start of the simulation, as the trajectory does. Cohort
figures use months (days / 30.44) since the start of therapy, as endpoints do.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import ticker, transforms
from matplotlib.colors import to_rgb
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle

from simulator.survival import kaplan_meier, logrank, median_survival

DAYS_PER_MONTH = 30.44
DPI = 120

# Saturated colours for clone types (keyed by clone name or resistance mechanism, lower case).
KNOWN_CLONE_COLOURS = {
    "sensitive": "#1f77b4",
    "t790m": "#d62728",
    "c797s": "#8c1d1d",
    "met": "#2ca02c",
    "met amplification": "#2ca02c",
    "sclc": "#9467bd",
    "small-cell transformation": "#9467bd",
    "unknown": "#7f7f7f",
}
CLONE_PALETTE = ["#ff7f0e", "#17becf", "#bcbd22", "#e377c2", "#8c564b", "#393b79", "#637939",
                 "#843c39", "#7b4173", "#3182bd"]

# Pastel colours for lines of therapy, so they are never mistaken for clone types.
KNOWN_LINE_COLOURS = {
    "gefitinib": "#66c2a5",
    "erlotinib": "#8dd3c7",
    "afatinib": "#35978f",
    "dacomitinib": "#80cdc1",
    "osimertinib": "#fc8d62",
    "chemotherapy": "#8da0cb",
    "chemo": "#8da0cb",
    "immunotherapy": "#a6d854",
}
LINE_PALETTE = ["#ffd92f", "#e78ac3", "#e5c494", "#b3de69", "#bc80bd", "#fccde5", "#ccebc5",
                "#ffed6f", "#d9d9d9", "#fb8072"]

RESPONSE_COLOURS = {"baseline": "#000000", "CR": "#1a9850", "PR": "#91cf60", "SD": "#fdae61",
                    "non-CR/non-PD": "#bdbdbd", "PD": "#d73027"}

PROGRESSION_COLOUR = "#d73027"
NO_LINE_COLOUR = "#cccccc"
LOCAL_COLOUR = "#111111"
MODALITY_SHORT = {"radiotherapy": "RT", "surgery": "surg.", "ablation": "abl."}
ENDPOINT_TITLES = {"pfs_days": "Progression-free survival", "os_days": "Overall survival",
                   "ttf_days": "Time to treatment failure"}
THERAPY_KINDS = ["line_start", "therapy_exhausted", "drug_stop", "drug_restart", "death",
                 "extinction"]


# --- colours and therapy periods -------------------------------------------------------------


def clone_colours(names: Sequence[str], resistance: Sequence[str] | None = None) -> dict[str, str]:
    """A colour for each clone type.

    Well-known types (``sensitive``, ``T790M``, ``C797S``, ``MET``, ``SCLC``, ``unknown``, by
    name or by resistance mechanism) always get the same colour; others get the remaining
    palette colours in the order given.

    Parameters
    ----------
    names
        Clone type names, in scenario order.
    resistance
        Resistance mechanism of each type (same length as ``names``), used when the name is not
        a known one.

    Returns
    -------
    dict
        Clone name -> hex colour.
    """
    names = [str(name) for name in names]
    resistance = [str(r) if isinstance(r, str) else "" for r in (resistance or [""] * len(names))]
    colours: dict[str, str] = {}
    for name, mechanism in zip(names, resistance):
        known = KNOWN_CLONE_COLOURS.get(name.lower()) or KNOWN_CLONE_COLOURS.get(mechanism.lower())
        if known and known not in colours.values():
            colours[name] = known
    free = [c for c in CLONE_PALETTE if c not in colours.values()]
    for index, name in enumerate(n for n in names if n not in colours):
        colours[name] = free[index % len(free)]
    return colours


def line_colours(names) -> dict[str, str]:
    """A colour for each line of therapy, the same for a given name in every figure.

    Known drugs (gefitinib, erlotinib, afatinib, osimertinib, chemotherapy, immunotherapy) have
    fixed colours; other names get a palette colour chosen from a hash of the name (moving on
    to the next free colour if two names of ``names`` collide).

    Parameters
    ----------
    names
        Line names (repeats and missing values are ignored).

    Returns
    -------
    dict
        Line name -> hex colour.
    """
    unique = sorted({str(n) for n in names if isinstance(n, str)})
    colours: dict[str, str] = {}
    for name in unique:
        key = name.lower()
        known = KNOWN_LINE_COLOURS.get(key) or next(
            (c for drug, c in KNOWN_LINE_COLOURS.items() if drug in key), None)
        if known:
            colours[name] = known
    for name in unique:
        if name in colours:
            continue
        start = zlib.crc32(name.encode()) % len(LINE_PALETTE)
        for step in range(len(LINE_PALETTE)):
            colour = LINE_PALETTE[(start + step) % len(LINE_PALETTE)]
            if colour not in colours.values():
                break
        colours[name] = colour
    return colours


def therapy_periods(events: pd.DataFrame, end_time: float) -> pd.DataFrame:
    """The line of therapy in force over time, and whether its drug was being taken.

    Parameters
    ----------
    events
        Events of one patient with ``time`` (days), ``kind`` and ``detail`` (the line name for
        ``line_start``).
    end_time
        Day the follow-up ends (closes the last period).

    Returns
    -------
    pandas.DataFrame
        One row per period: ``start``, ``end`` (days), ``line`` and ``on_drug`` (False during a
        drug holiday or an adaptive pause). Time before the first line and after the last
        (``therapy_exhausted``, death) is not a period.
    """
    table = events[events["kind"].isin(THERAPY_KINDS)].sort_values("time", kind="stable")
    rows: list[tuple[float, float, str, bool]] = []
    line, on_drug, since = None, False, 0.0

    def close(time: float) -> None:
        if line is not None and time > since:
            if rows and rows[-1][1] == since and rows[-1][2:] == (line, on_drug):
                rows[-1] = (rows[-1][0], time, line, on_drug)
            else:
                rows.append((since, time, line, on_drug))

    for time, kind, detail in zip(table["time"], table["kind"], table["detail"]):
        time = float(time)
        if kind == "line_start":
            close(time)
            line, on_drug, since = str(detail), True, time
        elif kind in ("drug_stop", "drug_restart") and line is not None:
            close(time)
            on_drug, since = kind == "drug_restart", time
        elif kind == "therapy_exhausted":
            close(time)
            line = None
        elif kind in ("death", "extinction"):
            close(time)
            line = None
            break
    close(float(end_time))
    return pd.DataFrame(rows, columns=["start", "end", "line", "on_drug"]).astype(
        {"start": float, "end": float, "on_drug": bool})


# --- shared drawing helpers ------------------------------------------------------------------


def dosing_rests(periods: pd.DataFrame, lines: dict) -> pd.DataFrame:
    """The scheduled rests of cycled dosing within the on-drug periods: the days on which no
    drug of the line is given because each of its dosings is past the ``active_days`` of its
    ``cycle_days``. Cycles count from the start of each on-drug period, as the doses do (a
    line's start, or a restart after a pause).

    Parameters
    ----------
    periods
        From :func:`therapy_periods`.
    lines
        The scenario's ``therapy.lines`` as a dict (``{name: {"dosing": [...]}}``).

    Returns
    -------
    pandas.DataFrame
        One row per rest: ``start``, ``end`` (days) and ``line``.
    """
    rows = []
    for period in periods[periods["on_drug"]].itertuples():
        dosings = (lines.get(period.line) or {}).get("dosing") or []
        if not dosings or any(dosing.get("cycle_days") is None for dosing in dosings):
            continue  # a dosing without cycles covers the whole period
        given = sorted((start, min(start + dosing["active_days"], period.end))
                       for dosing in dosings
                       for start in np.arange(period.start, period.end, dosing["cycle_days"]))
        covered = period.start
        for start, end in given:
            if start > covered:
                rows.append((covered, start, period.line))
            covered = max(covered, end)
        if covered < period.end:
            rows.append((covered, period.end, period.line))
    return pd.DataFrame(rows, columns=["start", "end", "line"])


def _rest_colour(colour) -> tuple:
    """A line's colour faded towards white, for the rests of its dosing cycles."""
    return tuple(0.35 * channel + 0.65 for channel in to_rgb(colour))


def _events_of(events: pd.DataFrame, kind: str) -> pd.DataFrame:
    return events[events["kind"] == kind]


def _draw_periods(ax: Axes, periods: pd.DataFrame, colours: dict, y: float, height: float,
                  scale: float = 1.0, label_lines: bool = False, span: float | None = None,
                  rests: pd.DataFrame | None = None) -> None:
    """Bars for therapy periods at ``y``: solid while on drug, faded in the rests of cycled
    dosing (``rests``, from :func:`dosing_rests`), hatched during holidays."""
    for row in periods.itertuples():
        colour = colours[row.line]
        start, width = row.start / scale, (row.end - row.start) / scale
        if row.on_drug:
            ax.add_patch(Rectangle((start, y - height / 2), width, height, facecolor=colour,
                                   edgecolor="none", linewidth=0))
        else:
            ax.add_patch(Rectangle((start, y - height / 2), width, height, facecolor="white",
                                   edgecolor=colour, hatch="////", linewidth=0.8))
    for row in (rests.itertuples() if rests is not None else ()):
        ax.add_patch(Rectangle((row.start / scale, y - height / 2), (row.end - row.start) / scale,
                               height, facecolor=_rest_colour(colours[row.line]),
                               edgecolor="none", linewidth=0))
    if label_lines and span:
        # One label per stretch of a line, pauses included, where it is wide enough to read.
        stretch = (periods["line"] != periods["line"].shift()).cumsum()
        for _, rows in periods.groupby(stretch):
            start, end = rows["start"].iloc[0] / scale, rows["end"].iloc[-1] / scale
            if end - start > 0.07 * span:
                ax.text((start + end) / 2, y, rows["line"].iloc[0], ha="center", va="center",
                        fontsize=8, clip_on=True)


def _therapy_ribbon(ax: Axes, result, colours: dict, periods: pd.DataFrame) -> None:
    """Two rows above the time axis: lines of therapy (holidays hatched, rests of dosing
    cycles faded) and CT visits."""
    span = float(result.end_time)
    ax.add_patch(Rectangle((0, 0.88), span, 0.24, facecolor=NO_LINE_COLOUR, edgecolor="none"))
    _draw_periods(ax, periods, colours, y=1.0, height=0.8, label_lines=True, span=span,
                  rests=_result_rests(result, periods))
    death = _events_of(result.events, "death")
    if len(death):
        ax.plot(death["time"], np.ones(len(death)), linestyle="none", marker="s", color="black",
                markersize=7, clip_on=False)
    visits = result.visits
    if len(visits):
        ax.plot(visits["time"], np.zeros(len(visits)), linestyle="none", marker="|",
                color="#444444", markersize=7)
    progression = _events_of(result.events, "progression")
    if len(progression):
        ax.plot(progression["time"], np.zeros(len(progression)), linestyle="none", marker="x",
                color=PROGRESSION_COLOUR, markersize=7, markeredgewidth=2)
    ax.set_ylim(-0.6, 1.5)
    ax.set_yticks([0, 1], ["CT", "therapy"], fontsize=8)
    ax.tick_params(axis="y", length=0)
    ax.tick_params(axis="x", labelbottom=False)
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)


def _therapy_handles(colours: dict, periods: pd.DataFrame, span: float,
                     events: pd.DataFrame | None = None, rests: pd.DataFrame | None = None) -> list:
    handles = [Patch(facecolor=colours[line], label=line)
               for line in pd.unique(periods.sort_values("start")["line"])]
    if (periods["end"] - periods["start"]).sum() < span - 1e-9:
        handles.append(Patch(facecolor=NO_LINE_COLOUR, label="no active line"))
    if rests is not None and len(rests):
        handles.append(Patch(facecolor=_rest_colour("#555555"), label="rest of a dosing cycle"))
    if len(periods) and not periods["on_drug"].all():
        handles.append(Patch(facecolor="white", edgecolor="#555555", hatch="////",
                             label="drug paused"))
    if events is not None and (events["kind"] == "death").any():
        handles.append(Line2D([], [], color="black", marker="s", linestyle="none", label="death"))
    return handles


def _event_handles(result, progression_marker: str | None) -> list:
    """Legend entries for the CT visits, progressions and local therapies that happened."""
    kinds = set(result.events["kind"])
    handles = []
    if "local_therapy" in kinds:
        handles.append(Line2D([], [], color=LOCAL_COLOUR, marker="v", linestyle="none",
                              label="local therapy"))
    if len(result.visits):
        handles.append(Line2D([], [], color="#444444", marker="|", linestyle="none",
                              markersize=8, label="CT visit"))
    if "progression" in kinds and progression_marker:
        handles.append(Line2D([], [], color=PROGRESSION_COLOUR, linestyle="none",
                              marker=progression_marker, markeredgewidth=2, label="progression"))
    elif "progression" in kinds:
        handles.append(Line2D([], [], color=PROGRESSION_COLOUR, linestyle="--",
                              label="progression"))
    return handles


def _scenario_line_table(result) -> dict:
    """The scenario's ``therapy.lines`` as recorded in the result's provenance."""
    therapy = result.provenance.get("scenario", {}).get("therapy", {}) if result.provenance else {}
    return (therapy or {}).get("lines", {}) or {}


def _scenario_lines(result) -> list[str]:
    return list(_scenario_line_table(result))


def _result_rests(result, periods: pd.DataFrame) -> pd.DataFrame:
    return dosing_rests(periods, _scenario_line_table(result))


def _result_line_colours(result) -> dict:
    started = _events_of(result.events, "line_start")["detail"]
    return line_colours(list(_scenario_lines(result)) + list(started))


def _result_clone_colours(result) -> dict:
    clones = result.clones
    resistance = list(clones["resistance"]) if "resistance" in clones else None
    return clone_colours(list(clones["clone"]), resistance)


def _mechanism_colours(result, clone_colour: dict) -> dict:
    """Resistance mechanism -> colour of the (first) clone type carrying it."""
    out: dict[str, str] = {}
    if "resistance" in result.clones:
        for clone, mechanism in zip(result.clones["clone"], result.clones["resistance"]):
            if isinstance(mechanism, str) and mechanism and mechanism not in out:
                out[mechanism] = clone_colour.get(str(clone), "black")
    return out


def _new_figure(width: float, height: float) -> Figure:
    return Figure(figsize=(width, height), layout="constrained")


# The patient figures' own layouts, in inches: what constrained layout gave them, fixed, less
# the right margin, which follows the legends. Constrained layout measures every axis of the
# figure and, when saving, costs a whole extra draw; these figures always have the same parts.
MULLER_MARGINS = {"left": 0.56, "top": 0.24, "bottom": 0.48, "ribbon_gap": 0.29, "main_gap": 0.49,
                  "row_gap": 0.70, "column_gap": 1.23}
BURDEN_MARGINS = {"left": 0.81, "top": 0.24, "bottom": 0.48, "gap": 0.13}
LEGEND_PAD = 0.04  # inches between a legend and the edge of the figure


def _fixed_figure(width: float, height: float) -> Figure:
    """A figure without a layout engine (its axes are placed by the caller)."""
    return Figure(figsize=(width, height))


def _inches(fig: Figure, left: float, top: float, width: float, height: float) -> list[float]:
    """A rectangle given in inches from the figure's top left, in figure fractions."""
    fig_width, fig_height = fig.get_size_inches()
    return [left / fig_width, 1 - (top + height) / fig_height, width / fig_width, height / fig_height]


def _stack(fig: Figure, ratios: Sequence[float], gaps: Sequence[float], margins: dict) -> list[float]:
    """Tops (inches) and the height of one ratio unit of rows stacked with the given gaps."""
    unit = (fig.get_figheight() - margins["top"] - margins["bottom"] - sum(gaps)) / sum(ratios)
    tops, top = [], margins["top"]
    for ratio, gap in zip(ratios, [*gaps, 0.0]):
        tops.append(top)
        top += ratio * unit + gap
    return [*tops, unit]


def _legend_sizes(legends) -> list[tuple[float, float]]:
    """Width and height in inches of each of ``legends`` (None: 0 x 0) as drawn at the default
    resolution, the width with the legend's pad from its anchor."""
    from matplotlib.backends.backend_agg import RendererAgg

    renderer = RendererAgg(1, 1, DPI)
    sizes = []
    for legend in legends:
        if legend is None:
            sizes.append((0.0, 0.0))
            continue
        extent = legend.get_window_extent(renderer)
        pad = legend.borderaxespad * legend.prop.get_size_in_points() / 72
        sizes.append((extent.width / DPI + pad, extent.height / DPI))
    return sizes


def _muller_rects(fig: Figure, rows: int, n_lesions: int, right: float) -> list[list[float]]:
    """Where the ribbon, the whole-patient panel and the lesion panels (two a row) go."""
    margins = MULLER_MARGINS
    ratios = [0.45, 1.4] + [1.0] * (rows - 1)
    gaps = [margins["ribbon_gap"]] + [margins["main_gap"]] * (rows > 1) + [margins["row_gap"]] * (rows - 2)
    *tops, unit = _stack(fig, ratios, gaps, margins)
    left, full = margins["left"], fig.get_figwidth() - margins["left"] - right
    column = (full - margins["column_gap"]) / 2
    rects = [_inches(fig, left, tops[0], full, ratios[0] * unit),
             _inches(fig, left, tops[1], full, ratios[1] * unit)]
    rects += [_inches(fig, left + (i % 2) * (column + margins["column_gap"]), tops[2 + i // 2], column, unit)
              for i in range(n_lesions)]
    return rects


def _burden_rects(fig: Figure, right: float, ribbon_legend: float = 0.0) -> list[list[float]]:
    """Where the ribbon and the four data panels of the burden timeline go; the first data panel
    starts below the ribbon's legend (``ribbon_legend`` inches high, from 30% of the ribbon's
    height above it) so that it does not meet the legends beside that panel."""
    margins = BURDEN_MARGINS
    ratios = [0.45, 1.5, 1, 0.8, 0.8]
    gaps = [margins["gap"]] * 4
    for _ in range(2):  # the ribbon's height depends on the gap below it
        *tops, unit = _stack(fig, ratios, gaps, margins)
        gaps[0] = max(margins["gap"], ribbon_legend - 1.3 * ratios[0] * unit + 2 * LEGEND_PAD)
    *tops, unit = _stack(fig, ratios, gaps, margins)
    width = fig.get_figwidth() - margins["left"] - right
    return [_inches(fig, margins["left"], top, width, ratio * unit) for top, ratio in zip(tops, ratios)]


def _split_axes(ax: Axes, n: int, ratios: Sequence[float], gap: float = 0.04) -> list[Axes]:
    """Split one Axes' area into ``n`` stacked inset axes sharing x (the host is hidden)."""
    ax.set_axis_off()
    ratios = np.asarray(ratios, float)
    heights = ratios / ratios.sum() * (1 - gap * (n - 1))
    out: list[Axes] = []
    top = 1.0
    for height in heights:
        bottom = top - height
        inset = ax.inset_axes([0, bottom, 1, height], sharex=out[0] if out else None)
        out.append(inset)
        top = bottom - gap
    return out


def _axes_list(axes, n: int, what: str) -> list[Axes]:
    if isinstance(axes, Axes):
        return [axes]
    axes = list(np.ravel(np.asarray(axes, dtype=object)))
    if len(axes) < n:
        raise ValueError(f"{what}: need at least {n} axes, got {len(axes)}")
    return axes


def _mark_decisions(ax: Axes, events: pd.DataFrame, colours: dict) -> None:
    """Vertical lines at progressions (red, dashed) and line switches (line colour)."""
    for time in _events_of(events, "progression")["time"].unique():
        ax.axvline(time, color=PROGRESSION_COLOUR, linestyle="--", linewidth=0.8, alpha=0.7,
                   zorder=1.5)
    for time, line in zip(_events_of(events, "line_start")["time"],
                          _events_of(events, "line_start")["detail"]):
        ax.axvline(time, color=colours.get(line, "#555555"), linewidth=2.0, alpha=0.9,
                   zorder=1.4)


# --- Muller plot -----------------------------------------------------------------------------


def _clone_parents(result) -> list[int]:
    """Index of each clone type's parent in the mutation graph (-1 for roots; first edge wins)."""
    names = list(result.clones["clone"])
    index = {name: i for i, name in enumerate(names)}
    parents = [-1] * len(names)
    mutations = (result.provenance or {}).get("scenario", {}).get("mutations", []) or []
    for mutation in mutations:
        source, target = mutation.get("from"), mutation.get("to")
        if source in index and target in index and parents[index[target]] == -1:
            parents[index[target]] = index[source]
    for start in range(len(names)):  # break cycles: a clone that is its own ancestor is a root
        seen, node = set(), start
        while parents[node] != -1:
            if node in seen:
                parents[start] = -1
                break
            seen.add(node)
            node = parents[node]
    return parents


def muller_layers(fractions: np.ndarray,
                  parents: Sequence[int]) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """Nested Muller bands: each clone type is drawn over its parent, in the middle of it.

    Parameters
    ----------
    fractions
        Shape (times, clone types): fraction of cells of each type (rows sum to 1, or NaN).
    parents
        Parent index of each clone type in the mutation graph, -1 for a root.

    Returns
    -------
    list of (clone index, lower, upper)
        In drawing order (parents before children): painting each band over the previous ones
        shows every clone's own cells as the part of its band not covered by its descendants.
    """
    n = fractions.shape[1]
    children: list[list[int]] = [[] for _ in range(n)]
    roots = []
    for clone, parent in enumerate(parents):
        (roots if parent < 0 else children[parent]).append(clone)
    subtree = np.zeros_like(fractions, dtype=float)

    def total(clone: int) -> np.ndarray:
        subtree[:, clone] = fractions[:, clone] + sum((total(c) for c in children[clone]),
                                                      np.zeros(len(fractions)))
        return subtree[:, clone]

    for root in roots:
        total(root)
    layers: list[tuple[int, np.ndarray, np.ndarray]] = []

    def place(clone: int, lower: np.ndarray) -> None:
        layers.append((clone, lower, lower + subtree[:, clone]))
        below = lower + fractions[:, clone] / 2
        for child in children[clone]:
            place(child, below)
            below = below + subtree[:, child]

    lower = np.zeros(len(fractions))
    for root in roots:
        place(root, lower)
        lower = lower + subtree[:, root]
    return layers


def _codes(column: pd.Series) -> tuple[list, np.ndarray]:
    """The distinct values of a column, in the order grouping by it gives (a categorical's
    categories, or sorted), and each row's index among them (-1 for a missing value)."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        return list(column.cat.categories), column.cat.codes.to_numpy().astype(np.intp)
    codes, uniques = pd.factorize(column, sort=True)
    return list(uniques), codes.astype(np.intp)


class _Trajectory:
    """A patient's trajectory as arrays, summed per record time and clone type in one pass
    (what pivoting the table per lesion gives, without pivoting it per lesion)."""

    def __init__(self, trajectory: pd.DataFrame, clones: list[str]):
        self.clones = clones
        self.times, self.time_at = np.unique(trajectory["time"].to_numpy(float), return_inverse=True)
        self.lesions, self.lesion_at = _codes(trajectory["lesion"])
        names, clone_codes = _codes(trajectory["clone"])
        index = {name: i for i, name in enumerate(clones)}
        self.clone_at = np.array([index.get(str(name), -1) for name in names] + [-1])[clone_codes]
        self.cells = trajectory["cells"].to_numpy(float)

    def peaks(self) -> pd.Series:
        """Each lesion's largest total, largest first (ties in lesion order), lesions with
        cells only."""
        n_times = len(self.times)
        rows = self.lesion_at >= 0
        totals = np.bincount(self.lesion_at[rows] * n_times + self.time_at[rows], weights=self.cells[rows],
                             minlength=len(self.lesions) * n_times).reshape(len(self.lesions), n_times)
        peak = pd.Series(totals.max(axis=1, initial=0.0), index=self.lesions)
        peak = peak.sort_values(ascending=False, kind="stable")
        return peak[peak > 0]

    def present(self) -> set[str]:
        """The clone types that ever have cells."""
        return {self.clones[i] for i in np.unique(self.clone_at[(self.cells > 0) & (self.clone_at >= 0)])}

    def table(self, lesion=None) -> pd.DataFrame:
        """Cells per record time (rows) and clone type (columns) of the whole patient or of one
        lesion: NaN where the lesion did not exist."""
        rows = self.clone_at >= 0
        if lesion is not None:
            rows &= self.lesion_at == self.lesions.index(lesion)
        n_clones = len(self.clones)
        size = len(self.times) * n_clones
        flat = self.time_at[rows] * n_clones + self.clone_at[rows]
        counts = np.bincount(flat, weights=self.cells[rows], minlength=size)
        counts[np.bincount(flat, minlength=size) == 0] = np.nan
        return pd.DataFrame(counts.reshape(len(self.times), n_clones), index=self.times, columns=self.clones)


def widen_small_bands(fractions: np.ndarray, min_band: float) -> tuple[np.ndarray, np.ndarray]:
    """Give every clone with cells a band of at least ``min_band`` of the height.

    Parameters
    ----------
    fractions
        Shape (times, clone types), rows summing to 1 (or 0 where nothing lives).
    min_band
        Smallest band drawn for a clone that has cells (0 turns widening off).

    Returns
    -------
    (drawn, widened)
        Fractions as drawn (rows still sum to 1: the widened bands are taken from the others
        in proportion) and a boolean array marking where a band was widened.
    """
    fractions = np.nan_to_num(np.asarray(fractions, float))
    widened = (fractions > 0) & (fractions < min_band)
    if min_band <= 0 or not widened.any():
        return fractions, np.zeros_like(fractions, dtype=bool)
    drawn = fractions.copy()
    floor = np.where(widened, min_band, 0.0)
    rest = np.where(widened, 0.0, fractions)
    room = 1.0 - floor.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        scale = np.where(rest.sum(axis=1, keepdims=True) > 0, room / rest.sum(axis=1, keepdims=True), 0.0)
    drawn = np.where(widened, floor, rest * np.clip(scale, 0.0, None))
    totals = drawn.sum(axis=1, keepdims=True)
    drawn = np.where(totals > 0, drawn / np.where(totals > 0, totals, 1.0), 0.0)
    return drawn, widened


def _draw_muller_panel(ax: Axes, table: pd.DataFrame, parents: list[int], colours: dict,
                       twin_of: Axes | None, min_band: float = 0.0, span: float | None = None) -> Axes:
    # Limits first: the bands then need no autoscaling of the axes sharing this time axis.
    ax.margins(x=0)
    if span is not None:
        ax.set_xlim(0, span)
    ax.set_ylim(0, 1)
    counts = table.to_numpy()
    total = np.nansum(counts, axis=1)
    alive = np.isfinite(counts).any(axis=1) & (total > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        fractions = np.where(alive[:, None], np.nan_to_num(counts) / total[:, None], np.nan)
    times = table.index.to_numpy(float)
    names = list(table.columns)
    drawn, widened = widen_small_bands(np.nan_to_num(fractions), min_band)
    for clone, lower, upper in muller_layers(drawn, parents):
        lower = np.where(alive, lower, np.nan)
        upper = np.where(alive, upper, np.nan)
        ax.fill_between(times, lower, upper, facecolor=colours[names[clone]], linewidth=0)
        if widened[:, clone].any():
            # Dotted where drawn larger than it is; descendants are painted over it next, so
            # only the clone's own cells look dotted.
            ax.fill_between(times, lower, upper, where=widened[:, clone], facecolor="none",
                            edgecolor="white", hatch="....", linewidth=0)
    ax.set_ylabel("clone fraction")
    twin = ax.twinx()
    if twin_of is not None:
        twin.sharey(twin_of)
    twin.set_yscale("log")
    # Decades only: minor ticks over the ten or more decades a lesion spans are unreadable,
    # and five such axes cost a third of the figure's drawing time.
    twin.yaxis.set_minor_locator(ticker.NullLocator())
    burden = np.where(alive, total, np.nan)
    twin.plot(times, burden, color="black", linewidth=1.6)
    twin.set_ylabel("cells (log)")
    return twin


def muller_plot(result, by_lesion: bool = True, axes=None, max_lesions: int = 4,
                min_band: float = 0.02) -> Figure:
    """Muller plot: clone-type frequencies over time, in the whole patient and per lesion.

    Each clone type's band is nested inside the band of the type it arises from (mutation
    graph), so a new resistant type grows out of its parent. The black line on the right (log)
    axis is the true number of cells. Above the plot, the lines of therapy (hatched where the
    drug was paused, faded in the rests of a dosing cycle) and the CT visits (ticks; red
    crosses where progression was declared).
    Local therapies are black triangles on the treated lesion's panel and on the total.

    Parameters
    ----------
    result
        A :class:`~simulator.results.PatientResult` with its trajectory.
    by_lesion
        Add a panel for each of the ``max_lesions`` lesions with the largest peak burden.
    axes
        Axes to draw on: the first for the whole patient, the rest (if any) for lesions. The
        therapy ribbon is drawn as an inset above the first. Default: a new figure.
    max_lesions
        Most lesion panels to draw.
    min_band
        Every clone type that has cells is drawn at least this fraction of the height (2% by
        default), so a clone present at the start however small is seen; where a band is
        widened it is dotted, and the legend gives each rare clone's true fraction at the
        start. 0 draws true fractions only.

    Returns
    -------
    matplotlib.figure.Figure
    """
    if not 0 <= min_band < 0.5:
        raise ValueError(f"muller_plot: min_band must be in [0, 0.5), got {min_band}")
    trajectory = result.trajectory
    if trajectory is None or len(trajectory) == 0:
        raise ValueError("muller_plot: result has no trajectory (simulate with keep_trajectory=True)")
    clones = [str(c) for c in result.clones["clone"]]
    colours = _result_clone_colours(result)
    lines = _result_line_colours(result)
    parents = _clone_parents(result)
    periods = therapy_periods(result.events, result.end_time)
    arrays = _Trajectory(trajectory, clones)
    peak = arrays.peaks()
    n_lesions = min(max_lesions, len(peak)) if by_lesion else 0

    if axes is None:
        rows = 1 + math.ceil(n_lesions / 2)
        fig = _fixed_figure(11, 2.2 + 2.6 * rows)
        rects = _muller_rects(fig, rows, n_lesions, right=2.86)  # placed again beside the legend
        ribbon = fig.add_axes(rects[0])
        main = fig.add_axes(rects[1], sharex=ribbon)
        panels = [main] + [fig.add_axes(rect, sharex=ribbon) for rect in rects[2:]]
    else:
        panels = _axes_list(axes, 1, "muller_plot: axes")
        n_lesions = min(n_lesions, len(panels) - 1)
        panels = panels[:1 + n_lesions]
        main = panels[0]
        fig = main.figure
        ribbon = main.inset_axes([0, 1.12, 1, 0.2], sharex=main)

    span = float(result.end_time)
    whole = arrays.table()
    twin = _draw_muller_panel(main, whole, parents, colours, None, min_band, span)
    main.set_title("whole patient", loc="left", fontsize=10, y=1.0, pad=3)
    lesion_info = result.lesions.set_index("lesion") if len(result.lesions) else None
    local = _events_of(result.events, "local_therapy")
    for ax, key in zip(panels[1:], peak.index[:n_lesions]):
        lesion = str(key)
        _draw_muller_panel(ax, arrays.table(key), parents, colours, twin, min_band, span)
        title = lesion
        if lesion_info is not None and lesion in lesion_info.index:
            info = lesion_info.loc[lesion]
            if str(info["site"]) not in lesion:
                title += f" ({info['site']})"
            if info["born"] > 0:
                title += f", seeded day {info['born']:.0f} from {info['parent']}"
        ax.set_title(title, loc="left", fontsize=9, y=1.0)
        treated = local[local["lesion"].astype(str) == lesion]["time"]
        _triangles(ax, treated)
    _triangles(main, local["time"])
    for ax in panels:
        ax.set_xlim(0, span)
        _mark_line_switches(ax, result.events)
    for ax in panels[1:]:
        ax.set_xlabel("time (days)")
    if n_lesions == 0 or axes is not None:
        main.set_xlabel("time (days)")
    _therapy_ribbon(ribbon, result, lines, periods)
    scenario_id = (result.provenance or {}).get("scenario", {}).get("id", "")
    seed = (result.provenance or {}).get("seed", "")
    ribbon.set_title(f"Clonal composition over time: {scenario_id} (seed {seed})", loc="left",
                     fontsize=11, y=1.0)

    start = whole.iloc[0].fillna(0.0)
    start_fraction = start / start.sum() if start.sum() > 0 else start
    handles = []
    present = arrays.present()
    for clone in clones:
        if clone not in present:
            continue
        share = float(start_fraction.get(clone, 0.0))
        label = clone if share == 0 or share >= 0.01 else f"{clone} ({share:.1e} at start)"
        handles.append(Patch(facecolor=colours[clone], label=label))
    if min_band > 0:
        handles.append(Patch(facecolor="#999999", edgecolor="white", hatch="....",
                             label=f"band widened to {min_band:.0%} (rarer)"))
    handles.append(Line2D([], [], color="black", linewidth=1.6, label="total cells (right axis)"))
    handles += _event_handles(result, progression_marker="x")
    handles += _therapy_handles(lines, periods, result.end_time, result.events,
                                _result_rests(result, periods))
    # Past the right axis' tick labels and label, whatever the width of the axes.
    beside = transforms.offset_copy(main.transAxes, fig=fig, x=62, y=0, units="points")
    legend = main.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0),
                         bbox_transform=beside, borderaxespad=0, fontsize=8,
                         frameon=False, title="clone types / therapy", title_fontsize=8)
    if axes is None:
        right = 62 / 72 + _legend_sizes([legend])[0][0] + LEGEND_PAD
        for ax, rect in zip([ribbon, *panels], _muller_rects(fig, rows, n_lesions, right)):
            ax.set_position(rect)
    return fig


def _triangles(ax: Axes, times) -> None:
    times = np.asarray(list(times), float)
    if len(times):
        ax.plot(times, np.full(len(times), 1.0), linestyle="none", marker="v", markersize=9,
                color=LOCAL_COLOUR, markeredgecolor="white", clip_on=False, zorder=5,
                transform=ax.get_xaxis_transform())


def _mark_line_switches(ax: Axes, events: pd.DataFrame) -> None:
    """Faint guides across the Muller panels where a new line starts."""
    for time in _events_of(events, "line_start")["time"]:
        if time > 0:
            ax.axvline(time, color="white", linewidth=0.8, linestyle=":", alpha=0.9, zorder=3)


# --- burden timeline -------------------------------------------------------------------------


def burden_timeline(result, ax=None, figsize: tuple[float, float] | None = None) -> Figure:
    """The true tumour burden beside what the clinic saw, with the decisions taken.

    Five panels share the time axis: the lines of therapy and CT visits; the true number of
    cells (total and per clone type, log scale); the CT sum of target diameters coloured by
    RECIST response; the tumour marker; and ctDNA copies per sample (filled when called
    positive, with the first detection of each resistance mechanism named). Progressions are
    red dashed lines, line switches thick lines in the new line's colour (named with the
    biopsy finding that chose it), local therapies black triangles, drug holidays hatched,
    the rests of a dosing cycle faded.

    Parameters
    ----------
    result
        A :class:`~simulator.results.PatientResult` with trajectory and visits.
    ax
        Where to draw: one Axes (its area is split into the ribbon and the four data panels)
        or a sequence of four Axes (the therapy ribbon is then an inset above the first).
        Default: a new figure.
    figsize
        Size of the new figure in inches (default 11 x 10). A figure under 8 inches wide
        (new or given) gets the compact layout: short labels, legends inside the panels,
        the lines named in the ribbon, so that a 6 x 4-inch figure stays readable.

    Returns
    -------
    matplotlib.figure.Figure
    """
    clone_colour = _result_clone_colours(result)
    lines = _result_line_colours(result)
    periods = therapy_periods(result.events, result.end_time)
    events = result.events
    fixed = ax is None and (figsize or (11, 10))[0] >= 8
    if fixed:
        fig = _fixed_figure(*(figsize or (11, 10)))
        compact = False
        rects = _burden_rects(fig, right=1.43)  # placed again beside the legends
        ribbon = fig.add_axes(rects[0])
        panels = [fig.add_axes(rect, sharex=ribbon) for rect in rects[1:]]
    elif ax is None:
        fig = _new_figure(*figsize)
        compact = True
        grid = fig.add_gridspec(5, 1, height_ratios=[0.45, 1.5, 1, 0.8, 0.8])
        ribbon = fig.add_subplot(grid[0])
        panels = [fig.add_subplot(grid[i], sharex=ribbon) for i in range(1, 5)]
        fig.get_layout_engine().set(h_pad=0.01, hspace=0.0)
    else:
        if isinstance(ax, Axes):
            compact = ax.figure.get_figwidth() < 8
            ribbon, *panels = _split_axes(ax, 5, [0.45, 1.5, 1, 0.8, 0.8], gap=0.035 if compact else 0.03)
        else:
            panels = _axes_list(ax, 4, "burden_timeline: ax")[:4]
            compact = panels[0].figure.get_figwidth() < 8
            ribbon = panels[0].inset_axes([0, 1.06, 1, 0.22], sharex=panels[0])
        fig = panels[0].figure
    cells_ax, ct_ax, marker_ax, ctdna_ax = panels
    span = float(result.end_time)
    small = 6 if compact else 8
    inside = {"loc": "upper right", "fontsize": small, "frameon": True, "framealpha": 0.85,
              "borderpad": 0.3, "handlelength": 1.2, "labelspacing": 0.2, "edgecolor": "none"}

    def legend(panel: Axes, title: str, **extra) -> None:
        if compact:
            panel.legend(**inside, **extra)
        else:
            panel.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False,
                         title=title, title_fontsize=8)

    # True burden.
    trajectory = result.trajectory
    if trajectory is not None and len(trajectory):
        by_clone = trajectory.pivot_table(index="time", columns="clone", values="cells",
                                          aggfunc="sum", observed=True)
        total = by_clone.sum(axis=1)
        for clone in by_clone.columns:
            values = by_clone[clone].astype(float).where(lambda v: v > 0)
            if values.notna().any():
                cells_ax.plot(values.index, values, color=clone_colour.get(str(clone), "grey"),
                              linewidth=1.0, label=str(clone))
        cells_ax.plot(total.index, total.where(total > 0), color="black", linewidth=2.2,
                      label="total (true)")
    cells_ax.set_yscale("log")
    cells_ax.set_ylabel("true cells")
    low, high = cells_ax.get_ylim()
    cells_ax.set_ylim(max(low, 1.0), high * (30 if compact else 3))
    legend(cells_ax, "cells by clone", ncol=3 if compact else 1)

    visits = result.visits
    if len(visits):
        # CT sum of diameters, coloured by response.
        ct_ax.plot(visits["time"], visits["sum_diameters_mm"], color="#777777", linewidth=1,
                   zorder=2)
        seen = []
        for response, colour in RESPONSE_COLOURS.items():
            at = visits[visits["response"] == response]
            if len(at):
                seen.append(response)
                ct_ax.scatter(at["time"], at["sum_diameters_mm"], color=colour, s=28, zorder=3,
                              edgecolor="black", linewidth=0.4, label=response)
        legend(ct_ax, "RECIST", ncol=len(seen) if compact else 1)
        if compact:
            ct_ax.set_ylim(top=ct_ax.get_ylim()[1] * 1.35)
        # Marker.
        marker_ax.plot(visits["time"], visits["marker"], color="#8c6d31", marker="o",
                       markersize=3.5, linewidth=1)
        # ctDNA.
        copies = visits["ctdna_copies"].astype(float)
        positive = visits["ctdna_positive"].astype(bool)
        ctdna_ax.plot(visits["time"], copies, color="#555555", linewidth=0.8, zorder=2)
        ctdna_ax.scatter(visits["time"][positive], copies[positive], color="#6a3d9a", s=22,
                         zorder=3, label="positive")
        ctdna_ax.scatter(visits["time"][~positive], copies[~positive], facecolor="white",
                         edgecolor="#6a3d9a", s=22, zorder=3, label="negative")
        ctdna_ax.set_yscale("symlog", linthresh=1)
        ctdna_ax.set_ylim(0, max(float(copies.max()), 1.0) * 8)  # room for the labels
        _label_detections(ctdna_ax, visits, _mechanism_colours(result, clone_colour), span)
        legend(ctdna_ax, "ctDNA call", ncol=2 if compact else 1)
    if not len(visits):
        for panel in (ct_ax, marker_ax, ctdna_ax):
            panel.text(0.5, 0.5, "no clinic visits (monitoring disabled)", ha="center",
                       va="center", transform=panel.transAxes, color="#777777")
            panel.set_yticks([])
    if compact:
        for panel, label in zip(panels, ["cells", "CT (mm)", "marker", "ctDNA"]):
            panel.set_ylabel(label, fontsize=7)
            panel.tick_params(labelsize=6, pad=1)
            if panel is cells_ax:
                panel.yaxis.set_major_locator(ticker.LogLocator(numticks=4))
            elif panel is not ctdna_ax:
                panel.yaxis.set_major_locator(ticker.MaxNLocator(3))
        ctdna_ax.set_xlabel("time (days)", fontsize=7)
        fig.align_ylabels(panels)
    else:
        ct_ax.set_ylabel("CT sum of\ndiameters (mm)")
        marker_ax.set_ylabel("marker\n(a.u.)")
        ctdna_ax.set_ylabel("ctDNA\n(copies/sample)")
        ctdna_ax.set_xlabel("time (days)")
    for panel in panels[:-1]:
        panel.tick_params(axis="x", labelbottom=False)

    # Decisions.
    for panel in panels:
        panel.set_xlim(0, span)
        _mark_decisions(panel, events, lines)
        for row in periods[~periods["on_drug"]].itertuples():
            panel.axvspan(row.start, row.end, facecolor="none", edgecolor=lines[row.line],
                          hatch="////", linewidth=0, alpha=0.5, zorder=0)
    _label_switches(cells_ax, events)
    local = _events_of(events, "local_therapy")
    _triangles(cells_ax, local["time"])
    labels = [(time, ", ".join(f"{lesion} ({MODALITY_SHORT.get(str(modality), modality)})"
                               for lesion, modality in zip(group["lesion"], group["detail"])))
              for time, group in local.groupby("time")]
    levels = _stagger([t for t, _ in labels], [text for _, text in labels], span)
    for (time, text), (level, flip) in zip(labels, levels):
        cells_ax.annotate(text, (time, 1.0), xycoords=cells_ax.get_xaxis_transform(),
                          xytext=(-3 if flip else 3, -9 - 9 * level), textcoords="offset points",
                          fontsize=7, va="top", ha="right" if flip else "left", annotation_clip=True, clip_on=True,
                          bbox={"boxstyle": "square,pad=0.1", "facecolor": "white",
                                "edgecolor": "none", "alpha": 0.7})
    _therapy_ribbon(ribbon, result, lines, periods)
    scenario_id = (result.provenance or {}).get("scenario", {}).get("id", "")
    seed = (result.provenance or {}).get("seed", "")
    if compact:
        ribbon.tick_params(labelsize=6)
        ribbon.set_title(f"Truth and what the clinic saw: {scenario_id} (seed {seed})",
                         loc="left", fontsize=8, y=1.0, pad=2)
        return fig
    ribbon.set_title(f"True burden and what the clinic saw: {scenario_id} (seed {seed})",
                     loc="left", fontsize=11, y=1.0)
    handles = (_therapy_handles(lines, periods, result.end_time, events,
                                _result_rests(result, periods))
               + _event_handles(result, progression_marker=None))
    ribbon.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.3), fontsize=8,
                  frameon=False)
    if fixed:
        # The legends start 1% of the panels' width past them.
        sizes = _legend_sizes([panel.get_legend() for panel in [ribbon, *panels]])
        widest = max(width for width, _ in sizes)
        right = (0.01 * (fig.get_figwidth() - BURDEN_MARGINS["left"]) + widest + LEGEND_PAD) / 1.01
        for panel, rect in zip([ribbon, *panels], _burden_rects(fig, right, sizes[0][1])):
            panel.set_position(rect)
    return fig


def _stagger(times: Sequence[float], texts: Sequence[str], span: float,
             levels: int = 4) -> list[tuple[int, bool]]:
    """Row of each label at ``times``, and whether it must end there (near the right edge)
    rather than start there, so that neighbouring labels do not overlap.

    The width of a label is estimated from its length (about 0.65% of an 11-inch figure's
    time axis per character at 7 points).
    """
    ends = [-math.inf] * levels
    placed: dict[int, tuple[int, bool]] = {}
    for index in np.argsort(np.asarray(times, float), kind="stable"):
        time, width = float(times[index]), (len(texts[index]) + 2) * 0.0065 * span
        flip = time + width > span
        start, end = (time - width, time) if flip else (time, time + width)
        free = [level for level in range(levels) if ends[level] < start]
        level = free[0] if free else int(np.argmin(ends))
        ends[level] = end
        placed[int(index)] = (level, flip)
    return [placed[i] for i in range(len(times))]


def _label_detections(ax: Axes, visits: pd.DataFrame, colours: dict, span: float) -> None:
    """Name each resistance mechanism where ctDNA first detects it."""
    from simulator.results import column_name

    # Columns name mechanisms in column form ('MET_amplification'); colours know the labels.
    labels = {column_name(name): name for name in colours}
    found = []
    for column in [c for c in visits.columns if c.startswith("detected_")]:
        hits = visits[visits[column].astype(bool)]
        if len(hits):
            short = column[len("detected_"):]
            found.append((float(hits["time"].iloc[0]), float(hits["ctdna_copies"].iloc[0]),
                          labels.get(short, short)))
    levels = _stagger([t for t, _, _ in found], [f"{m} found" for _, _, m in found], span)
    for (time, copies, mechanism), (level, flip) in zip(found, levels):
        ax.annotate(f"{mechanism} found", (time, copies), xytext=(time, 0.95 - 0.16 * level),
                    textcoords=ax.get_xaxis_transform(), fontsize=7, va="top",
                    ha="right" if flip else "left", color=colours.get(mechanism, "black"),
                    arrowprops={"arrowstyle": "-", "linewidth": 0.6, "relpos": (float(flip), 0),
                                "color": colours.get(mechanism, "black")},
                    bbox={"boxstyle": "square,pad=0.1", "facecolor": "white", "edgecolor": "none",
                          "alpha": 0.8})


def _label_switches(ax: Axes, events: pd.DataFrame) -> None:
    """Name each new line where it starts, with the biopsy finding that chose it."""
    biopsies = _events_of(events, "biopsy")
    for time, line in zip(_events_of(events, "line_start")["time"],
                          _events_of(events, "line_start")["detail"]):
        found = biopsies[biopsies["time"] == time]
        finding = sorted({str(d) for d in found["detail"] if isinstance(d, str) and d != "none"})
        text = f"{line}" + (f" (biopsy: {', '.join(finding)})" if finding else "")
        ax.annotate(text, (time, 0.02), xycoords=ax.get_xaxis_transform(), xytext=(3, 0),
                    textcoords="offset points", rotation=90, fontsize=7, va="bottom",
                    color="#333333")
    exhausted = _events_of(events, "therapy_exhausted")["time"]
    for time in exhausted:
        ax.annotate("no lines left", (time, 0.02), xycoords=ax.get_xaxis_transform(),
                    xytext=(3, 0), textcoords="offset points", rotation=90, fontsize=7,
                    va="bottom", color="#333333")


# --- swimmer plot ----------------------------------------------------------------------------


def swimmer_plot(endpoints: pd.DataFrame, events: pd.DataFrame, arm: str | None = None, ax=None,
                 max_patients: int = 40) -> Figure:
    """One bar per patient: lines of therapy over time, holidays, local therapy, progression.

    Bars are coloured by line (hatched while the drug was paused), thin grey where no line was
    in force; black triangles mark local therapies, red crosses progressions, a black square
    death and an arrow a patient alive at the end of follow-up. Rows are sorted by follow-up,
    longest at the top. Time is in months since the start of therapy (each patient's first
    ``line_start``).

    Parameters
    ----------
    endpoints
        One row per (patient, arm) with ``patient``, ``arm``, ``died`` and ``end_days``
        (follow-up from the start of therapy; ``os_days`` is used if absent).
    events
        Clinical events with ``patient``, ``arm``, ``time`` (days since the start of the
        simulation), ``kind``, ``lesion`` and ``detail``.
    arm
        Arm to draw. Default: every arm, one panel each (needs ``ax=None`` if several).
    ax
        Axes to draw on (one arm). Default: a new figure.
    max_patients
        Most patients drawn: the ``max_patients`` lowest patient numbers (patients are
        exchangeable, so this is an unbiased subset), the same in every arm.

    Returns
    -------
    matplotlib.figure.Figure
    """
    arms = [arm] if arm is not None else list(pd.unique(endpoints["arm"]))
    if arm is not None and arm not in set(endpoints["arm"]):
        raise ValueError(f"swimmer_plot: unknown arm '{arm}'; allowed: "
                         f"{', '.join(map(str, pd.unique(endpoints['arm'])))}")
    if ax is not None and len(arms) > 1:
        raise ValueError("swimmer_plot: several arms in the data; pass arm= to draw one on ax")
    patients = sorted(pd.unique(endpoints["patient"]))[:max_patients]
    table = endpoints[endpoints["patient"].isin(patients)]
    colours = line_colours(events.loc[events["kind"] == "line_start", "detail"])
    if ax is None:
        fig = _new_figure(5.5 * len(arms) + 2.2, 1.6 + 0.2 * len(patients))
        axs = fig.subplots(1, len(arms), sharex=True, squeeze=False)[0]
    else:
        axs = [ax]
        fig = ax.figure
    used_lines: set[str] = set()
    paused = False
    for panel, name in zip(axs, arms):
        rows = table[table["arm"] == name]
        follow = rows["end_days"] if "end_days" in rows else rows["os_days"]
        rows = rows.assign(follow_days=follow.astype(float)).sort_values(
            ["follow_days", "patient"], ascending=[True, False])
        arm_events = events[events["arm"] == name]
        by_patient = dict(tuple(arm_events.groupby("patient")))
        for y, row in enumerate(rows.itertuples()):
            own = by_patient.get(row.patient, arm_events.iloc[:0])
            starts = own.loc[own["kind"] == "line_start", "time"]
            origin = float(starts.min()) if len(starts) else 0.0
            end = row.follow_days
            panel.add_patch(Rectangle((0, y - 0.12), end / DAYS_PER_MONTH, 0.24,
                                      facecolor=NO_LINE_COLOUR, edgecolor="none"))
            periods = therapy_periods(own, origin + end)
            periods[["start", "end"]] -= origin
            used_lines |= set(periods["line"])
            paused |= bool((~periods["on_drug"]).any())
            _draw_periods(panel, periods, colours, y=y, height=0.7, scale=DAYS_PER_MONTH)
            local = (own.loc[own["kind"] == "local_therapy", "time"] - origin) / DAYS_PER_MONTH
            if len(local):
                panel.plot(local, np.full(len(local), y + 0.42), linestyle="none", marker="v",
                           markersize=5, color=LOCAL_COLOUR)
            progression = (own.loc[own["kind"] == "progression", "time"] - origin) / DAYS_PER_MONTH
            if len(progression):
                panel.plot(progression, np.full(len(progression), y), linestyle="none", marker="x",
                           markersize=5, markeredgewidth=1.5, color=PROGRESSION_COLOUR, zorder=4)
            died = bool(getattr(row, "died", False))
            panel.plot([end / DAYS_PER_MONTH], [y], linestyle="none", marker="s" if died else ">",
                       markersize=5, color="black" if died else "#555555", zorder=4)
        panel.set_yticks(range(len(rows)), [f"P{p}" for p in rows["patient"]], fontsize=7)
        panel.set_ylim(-0.7, len(rows) - 0.3)
        panel.set_xlim(0, max(float(table["end_days"].max() if "end_days" in table
                                    else table["os_days"].max()) / DAYS_PER_MONTH * 1.03, 1))
        panel.xaxis.set_major_locator(ticker.MultipleLocator(_month_step(panel.get_xlim()[1])))
        panel.set_xlabel("months since start of therapy")
        panel.set_title(f"arm: {name}  ({len(rows)} of {int((endpoints['arm'] == name).sum())} patients)",
                        loc="left", fontsize=10)
        panel.grid(axis="x", color="#eeeeee", zorder=0)
        panel.set_axisbelow(True)
        for side in ("top", "right"):
            panel.spines[side].set_visible(False)
    starts = events[events["kind"] == "line_start"]
    first_use = (starts["time"] - starts.groupby(["patient", "arm"])["time"].transform("min")
                 ).groupby(starts["detail"]).median().sort_values(kind="stable")
    handles = [Patch(facecolor=colours[line], label=line) for line in first_use.index
               if line in used_lines]
    if paused:
        handles.append(Patch(facecolor="white", edgecolor="#555555", hatch="////",
                             label="drug paused"))
    handles.append(Patch(facecolor=NO_LINE_COLOUR, label="no active line"))
    shown = events[events["arm"].isin(arms) & events["patient"].isin(patients)]
    died = table.loc[table["arm"].isin(arms), "died"].astype(bool) if "died" in table else None
    optional = [
        ((shown["kind"] == "local_therapy").any(),
         Line2D([], [], color=LOCAL_COLOUR, marker="v", linestyle="none", label="local therapy")),
        ((shown["kind"] == "progression").any(),
         Line2D([], [], color=PROGRESSION_COLOUR, marker="x", linestyle="none",
                markeredgewidth=1.5, label="progression")),
        (died is not None and died.any(),
         Line2D([], [], color="black", marker="s", linestyle="none", label="death")),
        (died is None or not died.all(),
         Line2D([], [], color="#555555", marker=">", linestyle="none",
                label="alive at end of follow-up"))]
    handles += [handle for present, handle in optional if present]
    axs[-1].legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8,
                   frameon=False)
    if len(axs) > 1:
        fig.suptitle("Lines of therapy per patient (same virtual patients in every arm)",
                     x=0.01, ha="left", fontsize=11)
    return fig


def _month_step(months: float) -> float:
    for step in (1, 3, 6, 12, 24):
        if months / step <= 10:
            return step
    return 60


# --- Kaplan-Meier ----------------------------------------------------------------------------


def km_plot(endpoints: pd.DataFrame, time: str = "pfs_days", event: str = "progressed",
            by: str | None = "arm", ax: Axes | None = None) -> Figure:
    """Kaplan-Meier curves per group with 95% bands, medians and numbers at risk.

    Curves come from :func:`simulator.survival.kaplan_meier` (Greenwood, log-log bands), with
    censoring ticks. A dashed line drops from survival 0.5 to each median; the legend gives the
    median with its 95% CI (:func:`simulator.survival.median_survival`). Under the axis, the
    number of patients at risk at each tick. Each group has its own colour, line style and
    marker, so curves that lie on top of each other stay distinguishable; with several groups,
    the hazard ratio of each against the first (95% CI) and the log-rank p-value
    (:func:`simulator.survival.logrank`) are printed beside the legend.

    Parameters
    ----------
    endpoints
        One row per patient (and arm) with the ``time`` and ``event`` columns.
    time
        Column of times in days (plotted in months of 30.44 days).
    event
        Column: True where the event happened, False where censored.
    by
        Column whose values are the groups (one curve each); None for one curve.
    ax
        Axes to draw on; the at-risk table is then an inset below it (leave room). Default: a
        new figure.

    Returns
    -------
    matplotlib.figure.Figure
    """
    for column in [time, event] + ([by] if by else []):
        if column not in endpoints:
            raise ValueError(f"km_plot: endpoints has no column '{column}'")
    groups = list(pd.unique(endpoints[by])) if by else ["all patients"]
    if ax is None:
        fig = _new_figure(11, 5.2 + 0.25 * len(groups))
        grid = fig.add_gridspec(2, 1, height_ratios=[4.2, 0.3 + 0.25 * len(groups)])
        ax = fig.add_subplot(grid[0])
        table_ax = fig.add_subplot(grid[1], sharex=ax)
    else:
        fig = ax.figure
        table_ax = ax.inset_axes([0, -0.2 - 0.07 * len(groups), 1, 0.07 * len(groups)],
                                 sharex=ax)
    palette = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2",
               "#17becf"]
    styles = ["-", "--", "-.", ":"]
    markers = ["o", "s", "^", "D", "v", "P", "X", "*"]
    subsets = {}
    events_of = {}
    xmax = 0.0
    for index, group in enumerate(groups):
        rows = endpoints if by is None else endpoints[endpoints[by] == group]
        t = rows[time].to_numpy(float)
        e = rows[event].to_numpy(bool)
        subsets[group] = t
        events_of[group] = e
        colour = palette[index % len(palette)]
        curve = kaplan_meier(t, e)
        months = curve["time"].to_numpy() / DAYS_PER_MONTH
        xmax = max(xmax, months.max())
        median, low, high = median_survival(t, e)
        label = f"{group} (n={len(t)}, {int(e.sum())} events): median {_months(median)}"
        if not math.isnan(median):
            label += f" ({_months(low)}–{_months(high)})"
        style = styles[index % len(styles)] if len(groups) > 1 else "-"
        marker = markers[index % len(markers)] if len(groups) > 1 else None
        ax.step(months, curve["survival"], where="post", color=colour, linewidth=1.8,
                linestyle=style, label=label, marker=marker, markersize=4.5,
                markevery=(index % 3, max(1, len(months) // 8)), markerfacecolor="white")
        ax.fill_between(months, curve["lower"], curve["upper"], step="post", color=colour,
                        alpha=0.15, linewidth=0)
        censored = curve[curve["censored"] > 0]
        ax.plot(censored["time"] / DAYS_PER_MONTH, censored["survival"], linestyle="none",
                marker="|", markersize=7, color=colour)
        if not math.isnan(median):
            ax.plot([0, median / DAYS_PER_MONTH], [0.5, 0.5], color="#888888", linestyle=":",
                    linewidth=1)
            ax.plot([median / DAYS_PER_MONTH] * 2, [0, 0.5], color=colour, linestyle="--",
                    linewidth=1)
    step = _month_step(xmax)
    ax.set_xlim(0, max(xmax * 1.02, step))
    ax.set_ylim(0, 1.03)
    ax.xaxis.set_major_locator(ticker.MultipleLocator(step))
    ax.yaxis.set_major_formatter(ticker.PercentFormatter(1.0))
    ax.set_ylabel("patients alive" if event == "died" else "patients event-free")
    ax.set_title(ENDPOINT_TITLES.get(time, time), loc="left", fontsize=12, pad=4)
    ax.grid(color="#eeeeee")
    # Beside the axes, where no curve or band can be hidden by it.
    handles, _ = ax.get_legend_handles_labels()
    handles += [Patch(facecolor="#999999", alpha=0.3, label="95% pointwise CI"),
                Line2D([], [], color="#555555", marker="|", linestyle="none", markersize=7,
                       label="censored")]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8,
              frameon=False, title="median, months (95% CI)", title_fontsize=8,
              alignment="left")
    if len(groups) > 1:
        reference = groups[0]
        text = [f"against {reference}:"]
        for group in groups[1:]:
            test = logrank(subsets[group], events_of[group], subsets[reference], events_of[reference])
            text.append(f"{group}: {format_hazard_ratio(test)}")
        ax.text(1.01, 0.02, "\n".join(text), transform=ax.transAxes, fontsize=8, va="bottom",
                ha="left")
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.tick_params(axis="x", labelbottom=True)
    ax.set_xlabel("months (30.44 days) since start of therapy")

    ticks = np.arange(0, ax.get_xlim()[1] + 1e-9, step)
    for row, group in enumerate(groups):
        t = subsets[group]
        colour = palette[row % len(palette)]
        for tick in ticks:
            table_ax.text(tick, row, str(int((t >= tick * DAYS_PER_MONTH).sum())), ha="center",
                          va="center", fontsize=8, color=colour)
    table_ax.set_ylim(len(groups) - 0.5, -0.5)
    table_ax.set_yticks(range(len(groups)), [str(g) for g in groups], fontsize=8)
    for label, index in zip(table_ax.get_yticklabels(), range(len(groups))):
        label.set_color(palette[index % len(palette)])
    table_ax.tick_params(axis="y", length=0, pad=14)
    table_ax.tick_params(axis="x", length=0, labelbottom=False)
    table_ax.set_title("number at risk", loc="left", fontsize=8, pad=2)
    for side in ("top", "right", "left", "bottom"):
        table_ax.spines[side].set_visible(False)
    return fig


def format_hazard_ratio(test: dict) -> str:
    """``HR 0.62 (0.45-0.85), log-rank p = 0.003`` from :func:`simulator.survival.logrank`."""
    if math.isnan(test["hazard_ratio"]):
        return "HR not estimable (no events)"
    p = test["p_value"]
    p_text = "p < 0.001" if p < 0.001 else f"p = {p:.3f}" if p < 0.1 else f"p = {p:.2f}"
    return (f"HR {test['hazard_ratio']:.2f} ({test['hr_lower']:.2f}–{test['hr_upper']:.2f}), "
            f"log-rank {p_text}")


def _months(days: float) -> str:
    return "not reached" if math.isnan(days) else f"{days / DAYS_PER_MONTH:.1f}"


# --- files -----------------------------------------------------------------------------------


FIGURE_FORMATS = ("png", "svg", "pdf")


def _save(fig: Figure, path: Path, dpi: int = DPI) -> Path:
    fig.savefig(path, dpi=dpi)
    return path


def _check_format(fmt: str, dpi: int) -> None:
    if fmt not in FIGURE_FORMATS:
        raise ValueError(f"figure format: must be one of {', '.join(FIGURE_FORMATS)}, got '{fmt}'")
    if not 10 <= dpi <= 1200:
        raise ValueError(f"--dpi: must be between 10 and 1200, got {dpi}")


def save_patient_figures(result, directory, fmt: str = "png", dpi: int = DPI) -> list[Path]:
    """Write ``muller.png`` and ``burden.png`` of one patient into ``directory``.

    Parameters
    ----------
    result
        A :class:`~simulator.results.PatientResult` with its trajectory.
    directory
        Folder (created if needed).
    fmt, dpi
        File format (png, svg or pdf; the suffix follows it) and resolution (dots per inch;
        for SVG and PDF it only sizes embedded images).

    Returns
    -------
    list of pathlib.Path
        The files written.
    """
    _check_format(fmt, dpi)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    return [_save(muller_plot(result), directory / f"muller.{fmt}", dpi),
            _save(burden_timeline(result), directory / f"burden.{fmt}", dpi)]


def save_cohort_figures(endpoints: pd.DataFrame, events: pd.DataFrame, directory,
                        fmt: str = "png", dpi: int = DPI) -> list[Path]:
    """Write ``km_pfs.png``, ``km_os.png`` and ``swimmer.png`` of a cohort into ``directory``.

    Parameters
    ----------
    endpoints, events
        A cohort's endpoints (one row per patient and arm) and clinical events.
    directory
        Folder (created if needed).
    fmt, dpi
        File format (png, svg or pdf) and resolution, as in :func:`save_patient_figures`.

    Returns
    -------
    list of pathlib.Path
        The files written.
    """
    _check_format(fmt, dpi)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    return [_save(km_plot(endpoints, "pfs_days", "progressed"), directory / f"km_pfs.{fmt}", dpi),
            _save(km_plot(endpoints, "os_days", "died"), directory / f"km_os.{fmt}", dpi),
            _save(swimmer_plot(endpoints, events), directory / f"swimmer.{fmt}", dpi)]


# --- sweeps ----------------------------------------------------------------------------------

_CI_COLUMNS = {
    "median_pfs_months": ("pfs_ci_low", "pfs_ci_high"),
    "median_os_months": ("os_ci_low", "os_ci_high"),
}


_NOT_PARAMETERS = ("point", "arm", "patients")


def sweep_endpoints(summary: pd.DataFrame) -> list[str]:
    """The numeric endpoint columns of a sweep summary (what ``plot_sweep`` can draw)."""
    return [c for c in summary.columns if not c.startswith("param:") and c not in _NOT_PARAMETERS
            and pd.api.types.is_numeric_dtype(summary[c]) and not pd.api.types.is_bool_dtype(summary[c])]


def _check_endpoint(summary: pd.DataFrame, endpoint: str) -> None:
    numeric = sweep_endpoints(summary)
    if endpoint not in summary.columns:
        raise ValueError(f"--endpoint: unknown '{endpoint}'; allowed: {', '.join(numeric)}")
    if endpoint not in numeric:
        raise ValueError(f"--endpoint: '{endpoint}' is not a number at each point; allowed: {', '.join(numeric)}")
    if summary[endpoint].isna().all():
        raise ValueError(f"--endpoint: '{endpoint}' has no value at any point (a median never reached?); "
                         "try rmst_pfs_months or progressed_by_12_months")


def plot_sweep(summary: pd.DataFrame, endpoint: str = "rmst_pfs_months", x: str | None = None,
               y: str | None = None, ax=None, arm: str | None = None, scales: dict | None = None):
    """A sweep's endpoint against one parameter, or a heatmap over two (only when ``y`` is
    given).

    Parameters
    ----------
    summary
        A sweep's ``summary.parquet``: parameters are its ``param:PATH`` columns.
    endpoint
        A numeric column; a point without a value (a median not reached) is marked by a
        hollow triangle at the top of the axes, or ``n.r.`` in a heatmap cell.
    x, y
        Parameters (with or without ``param:``); ``x`` defaults to the first. A line plot
        draws one line per arm and per value of the other parameters, with the 95% CI band
        of medians.
    arm
        The arm of a heatmap (default: the first); a line plot draws every arm.
    scales
        ``{path: "log" | "linear"}`` (a sweep manifest's ``scales``): a ``log`` parameter gets
        a log axis.

    Returns
    -------
    matplotlib.figure.Figure
    """
    _check_endpoint(summary, endpoint)
    parameters = [c for c in summary.columns if c.startswith("param:")]
    if not parameters:
        raise ValueError("summary: no parameter columns (param:PATH)")

    def column(name: str) -> str:
        full = name if name.startswith("param:") else f"param:{name}"
        if full not in parameters:
            raise ValueError(f"--x/--y: unknown parameter '{name}'; allowed: "
                             + ", ".join(p.removeprefix("param:") for p in parameters))
        return full

    x_column = column(x) if x is not None else parameters[0]
    y_column = column(y) if y is not None else None
    if y_column == x_column:
        raise ValueError(f"--y: must differ from --x (both '{x_column.removeprefix('param:')}')")
    scales = scales or {}
    if ax is None:
        figure = _new_figure(7, 4.5)
        ax = figure.add_subplot()
    else:
        figure = ax.figure
    if y_column is not None:
        _sweep_heatmap(ax, summary, endpoint, x_column, y_column, arm)
    else:
        _sweep_lines(ax, summary, endpoint, x_column, [p for p in parameters if p != x_column])
        if scales.get(x_column.removeprefix("param:")) == "log":
            ax.set_xscale("log")
            # Label the grid's own values: a narrow log range has no decade to label.
            values = sorted(summary[x_column].dropna().unique())
            ax.minorticks_off()
            ax.set_xticks(values, [f"{v:.3g}" for v in values])
    return figure


def _sweep_lines(ax: Axes, summary: pd.DataFrame, endpoint: str, x_column: str, others: list[str]) -> None:
    label = endpoint.replace("_", " ")
    low, high = _CI_COLUMNS.get(endpoint, (None, None))
    missing_shown = False
    for keys, rows in summary.groupby(["arm", *others], sort=False):
        keys = keys if isinstance(keys, tuple) else (keys,)
        name = ", ".join([str(keys[0])] + [f"{p.removeprefix('param:')}={v:.3g}" if isinstance(v, float)
                                            else f"{p.removeprefix('param:')}={v}" for p, v in zip(others, keys[1:])])
        rows = rows.sort_values(x_column)
        line, = ax.plot(rows[x_column], rows[endpoint], marker="o", label=name)
        if low in rows.columns:
            ax.fill_between(rows[x_column], rows[low], rows[high], color=line.get_color(), alpha=0.2,
                            linewidth=0)
        missing = rows[rows[endpoint].isna()]
        if len(missing):
            ax.plot(missing[x_column], [0.97] * len(missing), linestyle="none", marker="^", markersize=8,
                    markerfacecolor="none", color=line.get_color(), transform=ax.get_xaxis_transform(),
                    label=None if missing_shown else "no value (not reached)")
            missing_shown = True
    ax.set_xlabel(x_column.removeprefix("param:"))
    ax.set_ylabel(label)
    ax.set_title(f"{label} across the sweep" + (" (95% CI)" if endpoint in _CI_COLUMNS else ""))
    ax.grid(alpha=0.3)
    ax.legend(title="arm", frameon=False, fontsize=8)


def _sweep_heatmap(ax: Axes, summary: pd.DataFrame, endpoint: str, x_column: str, y_column: str,
                   arm: str | None) -> None:
    arms = list(dict.fromkeys(summary["arm"]))
    arm = arms[0] if arm is None else arm
    if arm not in arms:
        raise ValueError(f"--arm: no arm '{arm}' in the sweep; allowed: {', '.join(map(str, arms))}")
    rows = summary[summary["arm"] == arm]
    values = rows.pivot_table(index=y_column, columns=x_column, values=endpoint, aggfunc="mean", dropna=False)
    counts = rows.pivot_table(index=y_column, columns=x_column, values="patients", aggfunc="sum", dropna=False) \
        if "patients" in rows else None
    grid = values.to_numpy(float)
    image = ax.imshow(np.ma.masked_invalid(grid), origin="lower", aspect="auto", cmap="viridis")
    ax.set_xticks(range(grid.shape[1]), [f"{v:.3g}" for v in values.columns], rotation=45)
    ax.set_yticks(range(grid.shape[0]), [f"{v:.3g}" for v in values.index])
    finite = grid[np.isfinite(grid)]
    middle = (finite.min() + finite.max()) / 2 if finite.size else 0.0
    for (row, col), value in np.ndenumerate(grid):
        n = "" if counts is None or not np.isfinite(counts.to_numpy(float)[row, col]) \
            else f"\nn={int(counts.to_numpy(float)[row, col])}"
        text = "n.r." if not np.isfinite(value) else f"{value:.3g}"
        colour = "black" if np.isfinite(value) and value > middle else "white"
        ax.text(col, row, text + n, ha="center", va="center", fontsize=7,
                color=colour if np.isfinite(value) else "black")
    ax.set_xlabel(x_column.removeprefix("param:"))
    ax.set_ylabel(y_column.removeprefix("param:"))
    ax.figure.colorbar(image, ax=ax, label=endpoint.replace("_", " "))
    ax.set_title(f"{endpoint.replace('_', ' ')} ({arm}; n.r.: no value)")


# --- calibration and sensitivity ----------------------------------------------------------------


def calibration_pairs_plot(posterior: pd.DataFrame, names: Sequence[str], bounds: dict | None = None,
                           axes=None) -> Figure:
    """Pairwise plot of a weighted posterior: weighted histograms on the diagonal, particles
    (area proportional to weight) below it.

    Parameters
    ----------
    posterior
        One row per particle: a ``weight`` column and one column per parameter in ``names``.
    bounds
        ``{name: (low, high, log)}``: prior bounds (None where unbounded) drawn as limits, and
        whether the parameter is on a log scale.
    axes
        A square array of ``len(names)`` x ``len(names)`` axes to draw into (default: a new figure).
    """
    k = len(names)
    bounds = bounds or {}
    if axes is None:
        figure = _new_figure(2.4 * k + 0.6, 2.4 * k + 0.4)
        axes = np.atleast_2d(figure.subplots(k, k, squeeze=False))
    else:
        axes = np.atleast_2d(np.asarray(axes, dtype=object))
        figure = axes[0, 0].figure
    weights = posterior["weight"].to_numpy(float)
    weights = weights / weights.sum()
    for row in range(k):
        for col in range(k):
            ax = axes[row, col]
            x_name, y_name = names[col], names[row]
            x_log = bool(bounds.get(x_name, (None, None, False))[2])
            if row < col:
                ax.set_axis_off()
                continue
            x = posterior[x_name].to_numpy(float)
            if row == col:
                edges = (np.geomspace(x.min(), x.max(), 21) if x_log and x.min() > 0 and x.max() > x.min()
                         else 20)
                ax.hist(x, bins=edges, weights=weights, color="#4c72b0", alpha=0.8)
                ax.set_yticks([])
            else:
                y = posterior[y_name].to_numpy(float)
                ax.scatter(x, y, s=4 + 400 * weights, color="#4c72b0", alpha=0.5, linewidths=0)
                if bool(bounds.get(y_name, (None, None, False))[2]):
                    ax.set_yscale("log")
                low, high = bounds.get(y_name, (None, None, False))[:2]
                if low is not None and high is not None:
                    ax.set_ylim(low, high)
            if x_log:
                ax.set_xscale("log")
            low, high = bounds.get(x_name, (None, None, False))[:2]
            if low is not None and high is not None:
                ax.set_xlim(low, high)
            if row == k - 1:
                ax.set_xlabel(x_name, fontsize=8)
            if col == 0 and row > 0:
                ax.set_ylabel(y_name, fontsize=8)
            ax.tick_params(labelsize=7)
    figure.suptitle(f"posterior ({len(posterior)} particles; diagonal: weighted histograms)", fontsize=10)
    return figure


def predictive_check_plot(predictive: pd.DataFrame, ax=None) -> Figure:
    """Posterior predictive check: each target's reference range (band) against the value in
    cohorts simulated from posterior draws (dots), one row per target, scaled to the range.

    ``predictive`` has one row per draw and metric: ``metric``, ``observed``,
    ``reference_low``, ``reference_high``.
    """
    if ax is None:
        figure = _new_figure(7.0, 0.7 * predictive["metric"].nunique() + 1.4)
        ax = figure.subplots()
    figure = ax.figure
    metrics = list(dict.fromkeys(predictive["metric"]))
    rng = np.random.default_rng(0)  # vertical jitter only, for legibility
    for index, metric in enumerate(metrics):
        rows = predictive[predictive["metric"] == metric]
        low, high = float(rows["reference_low"].iloc[0]), float(rows["reference_high"].iloc[0])
        centre, half = (low + high) / 2, max((high - low) / 2, 1e-12)
        ax.add_patch(Rectangle((-1, index - 0.3), 2, 0.6, color="#dddddd", zorder=0))
        values = (rows["observed"].to_numpy(float) - centre) / half
        shown = np.isfinite(values)
        ax.scatter(values[shown], index + rng.uniform(-0.2, 0.2, shown.sum()), s=14, color="#c44e52", zorder=2)
        inside = float(rows["within"].mean())
        ax.text(1.02, index, f" {inside:.0%} in [{low:.3g}, {high:.3g}]", transform=ax.get_yaxis_transform(),
                va="center", fontsize=8)
    ax.set_yticks(range(len(metrics)), metrics)
    ax.axvline(0, color="#999999", lw=0.8)
    ax.set_xlabel("(value - range centre) / range half-width   (grey: reference range)")
    ax.set_title(f"posterior predictive check: {predictive['draw'].nunique()} cohorts from posterior draws", fontsize=10)
    return figure


def sensitivity_plot(indices: pd.DataFrame, ax=None) -> Figure:
    """Bars of sensitivity indices with their 95% confidence intervals, one group per
    parameter and one bar per index (``S1``, ``ST`` for Sobol; ``mu_star`` for Morris).

    ``indices`` has columns ``endpoint``, ``parameter``, ``index``, ``value``, ``ci_low``,
    ``ci_high`` (one endpoint is drawn: the first).
    """
    if ax is None:
        figure = _new_figure(7.0, 3.6)
        ax = figure.subplots()
    figure = ax.figure
    endpoint = indices["endpoint"].iloc[0]
    rows = indices[indices["endpoint"] == endpoint]
    parameters = list(dict.fromkeys(rows["parameter"]))
    kinds = list(dict.fromkeys(rows["index"]))
    width = 0.8 / len(kinds)
    colours = ["#4c72b0", "#dd8452", "#55a868", "#c44e52"]
    for j, kind in enumerate(kinds):
        part = rows[rows["index"] == kind].set_index("parameter").loc[parameters]
        x = np.arange(len(parameters)) + (j - (len(kinds) - 1) / 2) * width
        value = part["value"].to_numpy(float)
        errors = np.vstack([value - part["ci_low"].to_numpy(float), part["ci_high"].to_numpy(float) - value])
        ax.bar(x, value, width, yerr=np.clip(errors, 0, None), capsize=3, color=colours[j % len(colours)],
               label=kind)
    ax.set_xticks(range(len(parameters)), parameters, rotation=20, ha="right", fontsize=8)
    ax.axhline(0, color="black", lw=0.6)
    ax.legend(frameon=False, fontsize=8)
    ax.set_title(f"sensitivity of {endpoint.replace('_', ' ')} (bars: 95% CI)", fontsize=10)
    return figure
