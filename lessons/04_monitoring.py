# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       format_name: percent
# ---

# %% [markdown]
# # Lesson 4: what the clinic sees, and what is true
#
# **Question.** A CT scan every few weeks, a blood marker and a liquid biopsy: how late does
# each of them notice that resistant cells are growing, and does the re-biopsy at progression
# choose the right next line?
#
# **Predict.** Order the three signals (CT by RECIST, the marker, ctDNA) by how early they
# reveal regrowth, and guess by how many weeks ctDNA leads the scan.

# %%
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

import simulator
from simulator import plots, theory
from simulator.lessons import page

lesson = page()
scenario = simulator.load_scenario("egfr-first-line-gefitinib")
monitoring = scenario.monitoring
limit_cells = theory.cells_from_diameter(monitoring.detection_limit_mm / 10, monitoring.cells_per_cm3)
measurable = theory.cells_from_diameter(1.0, monitoring.cells_per_cm3)
lesson.say(f"""
**The clinic's eyes.** CT sees a lesion from {monitoring.detection_limit_mm:g} mm, about {limit_cells:.1e} cells;
RECIST measures targets from 10 mm, about {measurable:.1e} cells. Visits every {monitoring.visit_every_days:g} days.
Anything smaller is invisible, however fast it grows.
""")
result = simulator.simulate(scenario)
lesson.figure(plots.burden_timeline(result), "burden", "One patient: the true burden (top) against CT, marker and ctDNA")

# %%
def signals(run) -> dict:
    """Days (from the start of therapy) when each signal first showed the regrowth that led to the
    first RECIST progression: the true nadir before it, and the first ctDNA-positive visit and
    the first marker rise (+25% over its low) between that nadir and the progression."""
    start = run.provenance["scenario"]["therapy"]["start_day"]
    pd_day = run.events.loc[run.events["kind"] == "progression", "time"]
    if not len(pd_day):
        return {"true regrowth": np.nan, "ctDNA positive": np.nan,
                "marker +25% over its low": np.nan, "RECIST progression": np.nan}
    progression = float(pd_day.iloc[0])
    nadir = float(run.burden.loc[start:progression].idxmin())
    visits = run.visits[(run.visits["time"] >= start) & (run.visits["time"] <= progression)]
    window = visits[visits["time"] > nadir]
    low = visits["marker"].cummin()
    rise = window[window["marker"] > 1.25 * low.loc[window.index]]["time"]
    ctdna = window[window["ctdna_positive"]]["time"]
    return {"true regrowth": nadir - start,
            "ctDNA positive": (float(ctdna.iloc[0]) if len(ctdna) else progression) - start,
            "marker +25% over its low": (float(rise.iloc[0]) if len(rise) else progression) - start,
            "RECIST progression": progression - start}


one = signals(result)
lesson.say("**This patient**, days from the start of therapy: " +
           "; ".join(f"{k} {v:.0f}" if not np.isnan(v) else f"{k}: not seen" for k, v in one.items()) + ".")

# %%
n = 40
cohort = simulator.run_cohort(scenario, n=n, keep_results=True, settings={"simulation.duration_days": 900})
table = pd.DataFrame([signals(run) for run in cohort.results.values()])
lead = (table["RECIST progression"] - table["ctDNA positive"]).dropna() / 7
marker_lead = (table["RECIST progression"] - table["marker +25% over its low"]).dropna() / 7
late = (table["RECIST progression"] - table["true regrowth"]).dropna() / 7
fig = Figure(figsize=(8, 3.6), layout="constrained")
ax = fig.add_subplot()
data = [late, lead, marker_lead]
names = ["RECIST after true regrowth", "ctDNA before RECIST", "marker before RECIST"]
ax.boxplot(data, orientation="horizontal", widths=0.5)
for row, values in enumerate(data, start=1):
    ax.plot(values, np.full(len(values), row) + np.random.default_rng(row).uniform(-0.15, 0.15, len(values)),
            "o", color="#6a3d9a", alpha=0.5, markersize=3)
ax.set_yticks([1, 2, 3], names)
ax.axvline(0, color="#999999", linestyle=":")
ax.set_xlabel("weeks by which the signal came before the first RECIST progression\n"
              "(bottom row: the true regrowth; 0: the signal was no earlier than the scan)")
ax.set_title(f"{n} virtual patients: how late the clinic knows", loc="left", fontsize=10)
lesson.figure(fig, "lead-times", "Lead and lag of each signal, per patient")
lesson.say(f"""
**What to notice.** RECIST progression comes a median {late.median():.0f} weeks after the true burden
started to rise ({len(late)} patients who progressed). ctDNA turned positive a median {lead.median():.0f}
weeks before the scan declared progression ({(lead > 0).mean():.0%} of {len(lead)} patients earlier, the rest
at the same visit or later); the marker led by a median {marker_lead.median():.0f} weeks. The truth runs
ahead of every signal; at 0, the blood showed nothing before the scan did.
""")

# %% [markdown]
# ## The re-biopsy chooses the next line
#
# At progression the largest progressing lesion is sampled; genotypes above the detection
# fraction are reported. Below: what it found, against the truth in the whole patient.

# %%
rows = []
for (patient, arm), run in cohort.results.items():
    biopsy = run.events[run.events["kind"] == "biopsy"]
    if not len(biopsy):
        continue
    day = float(biopsy["time"].iloc[0])
    traj = run.trajectory[run.trajectory["time"] <= day]
    at = traj[traj["time"] == traj["time"].max()].groupby("clone", observed=True)["cells"].sum()
    clones = run.clones.set_index("clone")
    resistant = at[[c for c in at.index if clones.loc[c, "resistance"]]]
    truth = clones.loc[resistant.idxmax(), "resistance"] if resistant.sum() > 0 else "none"
    next_line = run.events[(run.events["kind"] == "line_start") & (run.events["time"] >= day)]["detail"]
    found = "+".join(sorted({str(d) for d in biopsy[biopsy["time"] == day]["detail"]}))
    rows.append({"found": found, "largest named resistant clone (truth)": truth,
                 "next line": next_line.iloc[0] if len(next_line) else "none"})
biopsies = pd.DataFrame(rows)
if len(biopsies):
    lesson.table(pd.crosstab(biopsies["found"], biopsies["largest named resistant clone (truth)"]),
                 "first re-biopsy (rows) against the most common resistance mechanism in the patient (columns)")
    agree = (biopsies["found"] == biopsies["largest named resistant clone (truth)"]).mean()
    lesson.say(f"""
**What to notice.** In {agree:.0%} of the {len(biopsies)} re-biopsies the finding named the patient's
largest resistant population. One lesion is not the patient: the others may hold another mechanism, and a
finding of 'none' sends the patient to chemotherapy although a targetable clone may grow elsewhere.
Next lines chosen: {', '.join(f'{k} {v}' for k, v in biopsies['next line'].value_counts().items())}.
""")
