"""Figures: each returns a Figure with the expected panels and artists, drawn from the data."""

from __future__ import annotations

import ast
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.collections import PathCollection, PolyCollection  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

import simulator  # noqa: E402
from simulator import plots  # noqa: E402
from simulator.survival import kaplan_meier  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def scenario() -> dict:
    """Two lesions, a T790M subclone, two lines, adaptive pauses and one scheduled SBRT.

    In 400 days: gefitinib, radiotherapy to the liver on day 56, a progression with a T790M
    biopsy and a switch to osimertinib, given adaptively (with pauses).
    """
    return {
        "id": "plots-test",
        "clones": {
            "sensitive": {"birth": 0.14, "death": 0.12},
            "T790M": {"birth": 0.14, "death": 0.115, "resistance": "T790M"},
        },
        "mutations": [{"from": "sensitive", "to": "T790M", "probability": 1e-7}],
        "lesions": {
            "primary": {"site": "lung", "carrying_capacity": 1e12,
                        "cells": {"sensitive": 2e10, "T790M": 1e9}},
            "liver": {"site": "liver", "carrying_capacity": 1e12, "cells": {"sensitive": 5e9}},
        },
        "drugs": {
            "gefitinib": {"half_life_days": 2.0, "standard_dose": 250.0,
                          "effects": {"sensitive": {"death_increase": 0.08}}},
            "osimertinib": {"half_life_days": 2.0, "standard_dose": 80.0,
                            "effects": {"sensitive": {"death_increase": 0.08},
                                        "T790M": {"death_increase": 0.08}}},
        },
        "therapy": {"lines": {
            "gefitinib": {"dosing": [{"drug": "gefitinib", "dose": 250.0}],
                          "on_mechanism": {"T790M": "osimertinib"}},
            "osimertinib": {"dosing": [{"drug": "osimertinib", "dose": 80.0}]},
        }},
        "scheduled_local_therapy": [{"day": 56, "lesion": "liver", "modality": "radiotherapy"}],
        "policy": {"adaptive": {"enabled": True, "lines": ["osimertinib"]},
                   "oligoprogression": {"enabled": False}},
        "monitoring": {"visit_every_days": 28},
        "simulation": {"duration_days": 400, "dt_days": 1, "seed": 7,
                       "growth_law": "exponential", "lethal_burden": 1e13},
    }


@pytest.fixture(scope="module")
def result() -> simulator.PatientResult:
    return simulator.simulate(simulator.load_scenario(scenario()), seed=1)


@pytest.fixture(scope="module")
def cohort() -> tuple[pd.DataFrame, pd.DataFrame]:
    """A small synthetic cohort in the contract of ``CohortResult``: 6 patients x 2 arms.

    Everyone progresses on gefitinib and switches to osimertinib, except patient 5 (censored);
    the 'holiday' arm pauses the drug once; patients 0 and 3 die.
    """
    rng = np.random.default_rng(0)
    rows, events = [], []
    for arm in ("continuous", "holiday"):
        for patient in range(6):
            end = float(rng.integers(200, 1200))
            progressed = patient != 5
            pfs = float(rng.integers(50, int(end))) if progressed else end
            died = patient % 3 == 0
            rows.append({"patient": patient, "arm": arm, "pfs_days": pfs, "progressed": progressed,
                         "os_days": end, "died": died, "ttf_days": pfs, "treatment_failed": True,
                         "best_response": "PR", "lines_used": 2, "local_therapies": 1,
                         "holiday_days": 30.0 if arm == "holiday" else 0.0, "relative_dose": 1.0,
                         "mechanisms_at_progression": "T790M", "end_days": end})
            start = 10.0 * patient  # therapy starts later than day 0 for some patients
            clinical = [(0.0 + start, "line_start", None, "gefitinib"),
                        (pfs / 3 + start, "local_therapy", "liver", "radiotherapy")]
            if progressed:
                clinical += [(pfs + start, "progression", None, None),
                             (pfs + start, "biopsy", "primary", "T790M"),
                             (pfs + start, "line_start", None, "osimertinib")]
            if arm == "holiday":
                clinical += [(pfs / 2 + start, "drug_stop", None, "holiday"),
                             (pfs * 0.7 + start, "drug_restart", None, "progression")]
            if died:
                clinical.append((end + start, "death", None, None))
            events += [{"patient": patient, "arm": arm, "time": t, "kind": k, "lesion": lesion,
                        "detail": detail} for t, k, lesion, detail in clinical]
    events = pd.DataFrame(events).sort_values(["patient", "arm", "time"], kind="stable")
    return pd.DataFrame(rows), events.reset_index(drop=True)


def test_plots_never_import_pyplot():
    """Plotting must not create global pyplot state (house style): no pyplot import at all."""
    tree = ast.parse(Path(plots.__file__).read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {f"{node.module}.{alias.name}" for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) for alias in node.names}
    assert not [name for name in imported if "pyplot" in name]


# --- colours and periods ---------------------------------------------------------------------


def test_colours_are_fixed_per_name_and_distinct_within_a_plot():
    a = plots.clone_colours(["sensitive", "T790M", "MET", "weird", "odd"])
    b = plots.clone_colours(["T790M", "sensitive"])
    assert a["sensitive"] == b["sensitive"] and a["T790M"] == b["T790M"]
    assert len(set(a.values())) == len(a)
    by_mechanism = plots.clone_colours(["met-amp"], resistance=["MET amplification"])
    assert by_mechanism["met-amp"] == a["MET"]
    lines = plots.line_colours(["gefitinib", "osimertinib", "trial drug", "chemotherapy"])
    assert plots.line_colours(["trial drug"])["trial drug"] == lines["trial drug"]
    assert plots.line_colours(["osimertinib"])["osimertinib"] == lines["osimertinib"]
    assert len(set(lines.values())) == len(lines)


def test_therapy_periods_follow_lines_holidays_and_exhaustion():
    events = pd.DataFrame({
        "time": [0.0, 50.0, 80.0, 100.0, 150.0, 170.0, 200.0],
        "kind": ["line_start", "drug_stop", "drug_restart", "line_start", "progression",
                 "therapy_exhausted", "death"],
        "detail": ["gefitinib", "holiday", "progression", "osimertinib", None, None, None],
    })
    periods = plots.therapy_periods(events, end_time=250.0)
    expected = pd.DataFrame({"start": [0.0, 50.0, 80.0, 100.0], "end": [50.0, 80.0, 100.0, 170.0],
                             "line": ["gefitinib", "gefitinib", "gefitinib", "osimertinib"],
                             "on_drug": [True, False, True, True]})
    pd.testing.assert_frame_equal(periods, expected, check_dtype=False)


def test_dosing_rests_follow_the_cycles_from_each_start_of_dosing():
    """120 days on, 60 off from the line's start; a pause restarts the cycle, as doses do; a
    line with a dosing that has no cycle never rests; two cycled drugs rest only together."""
    periods = pd.DataFrame({"start": [0.0, 400.0, 450.0, 600.0],
                            "end": [400.0, 450.0, 600.0, 700.0],
                            "line": ["a", "a", "a", "b"], "on_drug": [True, False, True, True]})
    cycled = {"drug": "x", "dose": 1.0, "every_days": 1.0, "cycle_days": 180.0,
              "active_days": 120.0}
    lines = {"a": {"dosing": [cycled]},
             "b": {"dosing": [cycled, {"drug": "y", "dose": 1.0, "every_days": 7.0,
                                       "cycle_days": None, "active_days": None}]}}
    rests = plots.dosing_rests(periods, lines)
    expected = pd.DataFrame({"start": [120.0, 300.0, 570.0], "end": [180.0, 360.0, 600.0],
                             "line": ["a", "a", "a"]})
    pd.testing.assert_frame_equal(rests, expected, check_dtype=False)
    shifted = dict(cycled, cycle_days=100.0, active_days=50.0)
    both = {"a": {"dosing": [dict(shifted, active_days=30.0), dict(shifted, drug="y")]}}
    union = plots.dosing_rests(periods.iloc[:1], both)
    assert list(zip(union["start"], union["end"])) == [(50.0, 100.0), (150.0, 200.0),
                                                        (250.0, 300.0), (350.0, 400.0)]


def test_the_therapy_bar_fades_the_rests_of_cycled_dosing():
    result = simulator.simulate(simulator.load_scenario("egfr-persisters"))
    ribbon = plots.burden_timeline(result).axes[0]
    rest_colour = plots._rest_colour(plots.line_colours(["gefitinib"])["gefitinib"])
    faded = [patch for patch in ribbon.patches if patch.get_facecolor()[:3] == rest_colour]
    assert [round(patch.get_x()) for patch in faded][:2] == [120, 300]
    assert all(round(patch.get_width()) == 60 for patch in faded)


def test_therapy_periods_of_a_real_patient_cover_the_run(result):
    periods = plots.therapy_periods(result.events, result.end_time)
    assert periods["start"].iloc[0] == 0.0 and periods["end"].iloc[-1] == result.end_time
    assert (periods["start"].iloc[1:].to_numpy() == periods["end"].iloc[:-1].to_numpy()).all()
    assert set(periods["line"]) == {"gefitinib", "osimertinib"}
    assert not periods["on_drug"].all()  # the adaptive pauses


def test_muller_layers_nest_children_inside_parents():
    fractions = np.array([[1.0, 0.0, 0.0, 0.0], [0.5, 0.2, 0.1, 0.2], [0.1, 0.3, 0.4, 0.2]])
    parents = [-1, 0, 1, -1]  # sensitive -> T790M -> C797S; an unrelated root
    layers = {clone: (lower, upper) for clone, lower, upper in plots.muller_layers(fractions, parents)}
    assert [clone for clone, _, _ in plots.muller_layers(fractions, parents)] == [0, 1, 2, 3]
    width = {clone: upper - lower for clone, (lower, upper) in layers.items()}
    np.testing.assert_allclose(width[0], fractions[:, :3].sum(axis=1))
    np.testing.assert_allclose(width[1], fractions[:, 1:3].sum(axis=1))
    np.testing.assert_allclose(layers[3][1], 1.0)
    for child, parent in ((1, 0), (2, 1)):
        assert (layers[child][0] >= layers[parent][0] - 1e-12).all()
        assert (layers[child][1] <= layers[parent][1] + 1e-12).all()
    # A child is centred in its parent's own cells: half of them below it.
    np.testing.assert_allclose(layers[1][0], fractions[:, 0] / 2)


# --- patient figures -------------------------------------------------------------------------


def test_muller_plot_draws_total_and_lesion_panels(result):
    fig = plots.muller_plot(result)
    assert isinstance(fig, Figure)
    # ribbon + whole patient + 2 lesions, and a log twin for each of the 3 panels.
    assert len(fig.axes) == 1 + 3 + 3
    ribbon, main = fig.axes[0], fig.axes[1]
    clones = len(result.clones)
    filled = [c for c in main.collections if isinstance(c, PolyCollection) and not c.get_hatch()]
    assert len(filled) == clones  # one band each; dotted overlays (widened bands) are unfilled
    twins = [ax for ax in fig.axes if ax.get_yscale() == "log"]
    assert len(twins) == 3
    burden = result.burden
    line = twins[0].get_lines()[0]
    np.testing.assert_allclose(line.get_xdata(), burden.index.to_numpy())
    np.testing.assert_allclose(line.get_ydata(), burden.to_numpy())
    titles = [ax.get_title(loc="left") for ax in fig.axes]
    assert "whole patient" in titles and any(t.startswith("liver") for t in titles)
    # The liver's radiotherapy: a triangle on the liver panel at day 56.
    liver = next(ax for ax in fig.axes if ax.get_title(loc="left").startswith("liver"))
    triangles = [l for l in liver.get_lines() if l.get_marker() == "v"]
    assert [list(l.get_xdata()) for l in triangles] == [[56.0]]
    # Scans as ticks and progressions as crosses on the ribbon.
    ticks = next(l for l in ribbon.get_lines() if l.get_marker() == "|")
    np.testing.assert_allclose(ticks.get_xdata(), result.visits["time"])
    crosses = next(l for l in ribbon.get_lines() if l.get_marker() == "x")
    progression = result.events.loc[result.events["kind"] == "progression", "time"]
    np.testing.assert_allclose(crosses.get_xdata(), progression)
    assert {t.get_text() for t in ribbon.texts} >= {"gefitinib", "osimertinib"}


def test_small_bands_are_widened_and_rows_still_sum_to_one():
    fractions = np.array([[0.999, 0.001, 0.0], [0.5, 0.3, 0.2], [0.0, 0.0, 0.0]])
    drawn, widened = plots.widen_small_bands(fractions, 0.02)
    np.testing.assert_allclose(drawn[:2].sum(axis=1), 1.0)
    assert drawn[0, 1] == pytest.approx(0.02) and drawn[0, 2] == 0.0  # absent stays absent
    assert widened.tolist() == [[False, True, False], [False, False, False], [False, False, False]]
    np.testing.assert_allclose(drawn[1], fractions[1])
    np.testing.assert_allclose(plots.widen_small_bands(fractions, 0.0)[0], fractions)


def test_muller_plot_shows_a_clone_present_at_the_start_however_small(result):
    fig = plots.muller_plot(result, by_lesion=False)
    main = fig.axes[1]
    dotted = [c for c in main.collections if isinstance(c, PolyCollection) and c.get_hatch()]
    start = result.trajectory[result.trajectory["time"] == 0].groupby("clone", observed=True)["cells"].sum()
    if (start / start.sum()).min() < 0.02:
        assert dotted
    labels = [t.get_text() for t in main.get_legend().get_texts()]
    assert any("widened" in label for label in labels)
    with pytest.raises(ValueError, match="min_band"):
        plots.muller_plot(result, min_band=0.7)


def test_muller_plot_without_lesions_and_on_given_axes(result):
    fig = plots.muller_plot(result, by_lesion=False)
    assert len(fig.axes) == 3  # ribbon, whole patient, its twin
    host = Figure()
    axes = host.subplots(2, 1)
    assert plots.muller_plot(result, axes=axes) is host
    assert len(axes[0].child_axes) == 1  # the therapy ribbon
    assert len([c for c in axes[1].collections if isinstance(c, PolyCollection) and not c.get_hatch()]) == len(result.clones)


def test_burden_timeline_shows_truth_observations_and_decisions(result):
    fig = plots.burden_timeline(result)
    assert isinstance(fig, Figure)
    ribbon, cells, ct, marker, ctdna = fig.axes
    total = next(l for l in cells.get_lines() if l.get_label() == "total (true)")
    np.testing.assert_allclose(total.get_ydata(), result.burden.to_numpy())
    assert cells.get_yscale() == "log"
    points = [c for c in ct.collections if isinstance(c, PathCollection)]
    assert sum(len(c.get_offsets()) for c in points) == len(result.visits)
    np.testing.assert_allclose(marker.get_lines()[0].get_ydata(), result.visits["marker"])
    dots = [c for c in ctdna.collections if isinstance(c, PathCollection)]
    assert sum(len(c.get_offsets()) for c in dots) == len(result.visits)
    texts = {t.get_text() for t in cells.texts}
    assert "osimertinib (biopsy: T790M)" in texts and "liver (RT)" in texts
    assert any(t.get_text() == "T790M found" for t in ctdna.texts)
    assert "(mm)" in ct.get_ylabel() and "days" in ctdna.get_xlabel()


def test_burden_timeline_on_one_axes_splits_it(result):
    host = Figure()
    ax = host.add_subplot()
    assert plots.burden_timeline(result, ax=ax) is host
    assert not ax.axison
    assert len(ax.child_axes) == 5  # the therapy ribbon and the four data panels
    with pytest.raises(ValueError, match="need at least 4 axes"):
        plots.burden_timeline(result, ax=Figure().subplots(2, 1))


# --- cohort figures --------------------------------------------------------------------------


def test_swimmer_plot_one_bar_per_patient(cohort):
    endpoints, events = cohort
    fig = plots.swimmer_plot(endpoints, events, arm="holiday")
    ax = fig.axes[0]
    assert len(ax.get_yticks()) == 6
    rows = endpoints[endpoints["arm"] == "holiday"].sort_values("end_days")
    assert [t.get_text() for t in ax.get_yticklabels()] == [f"P{p}" for p in rows["patient"]]
    # Per patient: the grey follow-up bar and gefitinib, pause, gefitinib, osimertinib (not
    # for patient 5, who never progresses).
    assert len(ax.patches) == 6 * 5 - 1
    hatched = [p for p in ax.patches if p.get_hatch()]
    assert len(hatched) == 6
    # Times are months since each patient's first line, whatever day therapy started.
    longest = max(p.get_x() + p.get_width() for p in ax.patches)
    assert longest == pytest.approx(rows["end_days"].max() / plots.DAYS_PER_MONTH)
    crosses = [l for l in ax.get_lines() if l.get_marker() == "x"]
    progressed = rows[rows["progressed"]]
    assert sorted(float(l.get_xdata()[0]) for l in crosses) == pytest.approx(
        sorted(progressed["pfs_days"] / plots.DAYS_PER_MONTH))
    triangles = [l for l in ax.get_lines() if l.get_marker() == "v"]
    assert len(triangles) == 6
    deaths = [l for l in ax.get_lines() if l.get_marker() == "s"]
    assert len(deaths) == int(rows["died"].sum())
    assert "months" in ax.get_xlabel()


def test_swimmer_plot_panels_per_arm_and_limits(cohort):
    endpoints, events = cohort
    fig = plots.swimmer_plot(endpoints, events, max_patients=4)
    assert len(fig.axes) == 2
    assert all(len(ax.get_yticks()) == 4 for ax in fig.axes)
    assert {t.get_text() for t in fig.axes[0].get_yticklabels()} == {"P0", "P1", "P2", "P3"}
    with pytest.raises(ValueError, match="pass arm="):
        plots.swimmer_plot(endpoints, events, ax=Figure().add_subplot())
    with pytest.raises(ValueError, match="unknown arm"):
        plots.swimmer_plot(endpoints, events, arm="nope")


def test_km_plot_curves_match_kaplan_meier(cohort):
    endpoints, _ = cohort
    fig = plots.km_plot(endpoints)
    ax, table = fig.axes
    curves = [l for l in ax.get_lines() if l.get_drawstyle() == "steps-post"]
    assert [l.get_label().split(" ")[0] for l in curves] == ["continuous", "holiday"]
    for line, arm in zip(curves, ["continuous", "holiday"]):
        rows = endpoints[endpoints["arm"] == arm]
        expected = kaplan_meier(rows["pfs_days"], rows["progressed"])
        np.testing.assert_allclose(line.get_xdata(), expected["time"] / plots.DAYS_PER_MONTH)
        np.testing.assert_allclose(line.get_ydata(), expected["survival"])
        assert "median" in line.get_label()
    assert len([c for c in ax.collections if isinstance(c, PolyCollection)]) == 2  # CI bands
    # Numbers at risk: everyone at time 0, in the arm's row.
    zeros = [t for t in table.texts if t.get_position()[0] == 0]
    assert [t.get_text() for t in zeros] == ["6", "6"]
    assert "months" in ax.get_xlabel()


def test_km_plot_draws_arms_distinguishably_with_hazard_ratio_and_p(cohort):
    endpoints, _ = cohort
    fig = plots.km_plot(endpoints)
    ax = fig.axes[0]
    curves = [l for l in ax.get_lines() if l.get_drawstyle() == "steps-post"]
    assert len({l.get_linestyle() for l in curves}) == len(curves)
    assert len({l.get_marker() for l in curves}) == len(curves)
    text = " ".join(t.get_text() for t in ax.texts)
    from simulator.survival import logrank
    a, b = (endpoints[endpoints["arm"] == arm] for arm in ["continuous", "holiday"])
    test = logrank(b["pfs_days"], b["progressed"], a["pfs_days"], a["progressed"])
    assert plots.format_hazard_ratio(test) in text and "log-rank" in text


def test_figures_in_svg_and_pdf_at_a_chosen_dpi(result, tmp_path):
    svg = plots.save_patient_figures(result, tmp_path / "svg", fmt="svg")
    assert [p.name for p in svg] == ["muller.svg", "burden.svg"]
    assert b"<svg" in svg[0].read_bytes()[:400]
    pdf = plots.save_patient_figures(result, tmp_path / "pdf", fmt="pdf", dpi=60)
    assert pdf[1].read_bytes()[:5] == b"%PDF-"
    low = plots.save_patient_figures(result, tmp_path / "low", dpi=40)
    assert low[0].stat().st_size < (tmp_path / "low").stat().st_size + 10**6
    with pytest.raises(ValueError, match="format"):
        plots.save_patient_figures(result, tmp_path / "x", fmt="gif")


def test_burden_timeline_fits_a_small_figure(result):
    fig = plots.burden_timeline(result, figsize=(6, 4))
    assert tuple(fig.get_size_inches()) == (6, 4)
    legends = [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]
    fig.canvas.draw()
    box = fig.bbox
    for legend in legends:  # every legend inside the figure
        extent = legend.get_window_extent()
        assert extent.x1 <= box.x1 + 1 and extent.x0 >= box.x0 - 1


def test_km_plot_single_group_and_given_axes(cohort):
    endpoints, _ = cohort
    host = Figure()
    ax = host.add_subplot()
    assert plots.km_plot(endpoints, "os_days", "died", by=None, ax=ax) is host
    assert ax.get_title(loc="left") == "Overall survival"
    assert len(ax.child_axes) == 1
    with pytest.raises(ValueError, match="no column"):
        plots.km_plot(endpoints, time="missing_days")


# --- files -----------------------------------------------------------------------------------


def test_save_figures_write_pngs(result, cohort, tmp_path):
    patient_files = plots.save_patient_figures(result, tmp_path / "patient")
    cohort_files = plots.save_cohort_figures(*cohort, tmp_path / "cohort")
    assert [p.name for p in patient_files] == ["muller.png", "burden.png"]
    assert [p.name for p in cohort_files] == ["km_pfs.png", "km_os.png", "swimmer.png"]
    for path in patient_files + cohort_files:
        assert path.read_bytes()[:8] == PNG_MAGIC
        assert path.stat().st_size > 10_000


def sweep_summary() -> pd.DataFrame:
    """A 2 x 2 sweep summary in the contract of ``summary.parquet``; one median not reached."""
    return pd.DataFrame({
        "point": [0, 1, 2, 3], "arm": ["default"] * 4, "patients": [20] * 4,
        "param:clones.T790M.death": [0.1, 0.1, 0.12, 0.12], "param:drugs.gefitinib.ec50": [0.1, 0.2, 0.1, 0.2],
        "median_pfs_months": [10.0, 11.0, 12.0, np.nan], "pfs_ci_low": [9.0, 10.0, 11.0, np.nan],
        "pfs_ci_high": [11.0, 12.0, 13.0, np.nan], "rmst_pfs_months": [8.5, 9.0, 9.6, 10.1],
        "mechanisms_at_first_progression": ["T790M 50%"] * 4, "never": [np.nan] * 4,
    })


def test_plot_sweep_draws_lines_unless_a_heatmap_is_asked_for():
    from simulator.plots import plot_sweep

    summary = sweep_summary()
    lines = plot_sweep(summary, "rmst_pfs_months")
    assert len(lines.axes) == 1  # two parameters but no --y: no heatmap
    # One line per value of the other parameter.
    assert len([line for line in lines.axes[0].lines if line.get_marker() == "o"]) == 2
    heat = plot_sweep(summary, "rmst_pfs_months", y="drugs.gefitinib.ec50")
    assert len(heat.axes) == 2  # the heatmap and its colour bar
    texts = [t.get_text() for t in heat.axes[0].texts]
    assert texts == ["8.5\nn=20", "9.6\nn=20", "9\nn=20", "10.1\nn=20"]


def test_plot_sweep_marks_points_without_a_value():
    from simulator.plots import plot_sweep

    summary = sweep_summary()
    one = summary[summary["param:drugs.gefitinib.ec50"] == 0.2]
    figure = plot_sweep(one, "median_pfs_months", x="clones.T790M.death")
    markers = [line for line in figure.axes[0].lines if line.get_marker() == "^"]
    assert len(markers) == 1 and list(markers[0].get_xdata()) == [0.12]
    assert len(figure.axes[0].collections) == 1  # the CI band
    heat = plot_sweep(summary, "median_pfs_months", x="clones.T790M.death", y="drugs.gefitinib.ec50")
    assert "n.r.\nn=20" in [t.get_text() for t in heat.axes[0].texts]


def test_plot_sweep_uses_a_log_axis_for_log_grids():
    from simulator.plots import plot_sweep

    summary = sweep_summary()
    one = summary[summary["param:clones.T790M.death"] == 0.1]
    log = plot_sweep(one, "rmst_pfs_months", x="drugs.gefitinib.ec50", scales={"drugs.gefitinib.ec50": "log"})
    assert log.axes[0].get_xscale() == "log"
    linear = plot_sweep(one, "rmst_pfs_months", x="drugs.gefitinib.ec50")
    assert linear.axes[0].get_xscale() == "linear"


@pytest.mark.parametrize("kwargs, message", [
    ({"x": "nope"}, "unknown parameter 'nope'"),
    ({"endpoint": "mechanisms_at_first_progression"}, "is not a number"),
    ({"endpoint": "never"}, "has no value at any point"),
    ({"endpoint": "nope"}, "unknown 'nope'"),
    ({"x": "clones.T790M.death", "y": "clones.T790M.death"}, "must differ from --x"),
])
def test_plot_sweep_refuses_what_it_cannot_draw(kwargs, message):
    from simulator.plots import plot_sweep

    with pytest.raises(ValueError, match=message):
        plot_sweep(sweep_summary(), **kwargs)
