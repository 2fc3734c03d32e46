# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       format_name: percent
# ---

# %% [markdown]
# # Lesson 6: drug holidays and adaptive therapy - when stopping helps, and when it harms
#
# **Question.** Stopping the drug lets sensitive cells regrow. Can that ever delay
# resistance? Two strategies from the catalog: a holiday under ctDNA monitoring after a deep
# response, and adaptive therapy (stop when the marker halves, restart at baseline, as in
# Zhang 2017).
#
# **Predict.** Adaptive therapy relies on sensitive cells outcompeting resistant ones while
# the drug is off. What happens if resistant cells grow *faster* than sensitive cells without
# the drug (no fitness cost), and what if they grow slower (a cost, Chmielecki 2011)?

# %%
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

import simulator
from simulator import plots
from simulator.lessons import page

lesson = page()
n = 40
follow = {"simulation.duration_days": 1000}


def paired(cohort, endpoint="pfs_days"):
    """Per-patient difference (months) of the second arm minus the first."""
    e = cohort.endpoints
    first, second = cohort.arms[:2]
    a = e[e["arm"] == first].set_index("patient")
    b = e[e["arm"] == second].set_index("patient").loc[a.index]
    return (b[endpoint] - a[endpoint]) / 30.44, b


holiday = simulator.run_cohort(simulator.load_scenario("egfr-drug-holiday"), n=n, settings=follow)
diff, arm = paired(holiday)
took = arm["holiday_days"] > 0
lesson.table(holiday.summary().set_index("arm")[["median_pfs_months", "rmst_pfs_months", "rmst_os_months",
                                                 "median_relative_dose"]].T, "Drug holiday: the two arms")
lesson.say(f"""
**Holiday under ctDNA monitoring.** {took.mean():.0%} of patients qualified for a holiday (a deep response,
ctDNA negative). Among them, PFS changed by a median {diff[took].median():+.1f} months (better for
{(diff[took] > 0).mean():.0%}, worse for {(diff[took] < 0).mean():.0%}); they took a median
{arm.loc[took, 'relative_dose'].median():.0%} of the standard dose.
""")

# %% [markdown]
# ## Adaptive therapy: competition and fitness cost
#
# The teaching scenario (one lesion, sensitive cells and a small resistant clone) under
# continuous dosing and under the adaptive rule, in three worlds: clones competing for room
# (a Gompertz law) with resistant cells paying a fitness cost; competing without a cost; and
# not competing at all (exponential growth). The endpoint is the day the resistant cells reach
# a size the drug can no longer hold back.

# %%
teaching = simulator.load_scenario("two-clone-teaching")
sensitive = teaching.clones["sensitive"]
worlds = {
    "competition, fitness cost": {"simulation.growth_law": "gompertz"},
    "competition, no cost": {"simulation.growth_law": "gompertz", "clones.resistant.birth": sensitive.birth},
    "no competition, cost": {"simulation.growth_law": "exponential"},
}
threshold, patients = 1e9, 12
common = {"simulation.duration_days": 1500, "lesions.primary.cells.resistant": 1e5, "seeding.rate": 0.0}


def takeover_day(run) -> float:
    resistant = run.trajectory[run.trajectory["clone"] == "resistant"].groupby("time")["cells"].sum()
    over = resistant[resistant >= threshold]
    return float(over.index[0]) if len(over) else float(run.end_time)


rows, results = [], {}
for world, extra in worlds.items():
    days = {}
    for adaptive in (False, True):
        scenario = simulator.load_scenario("two-clone-teaching", {**common, **extra, "policy.adaptive.enabled": adaptive})
        runs = [simulator.simulate(scenario, replicate=i) for i in range(patients)]
        days[adaptive] = np.array([takeover_day(run) for run in runs])
        if adaptive:
            dose = np.median([run.endpoints["relative_dose"] for run in runs])
            example = runs[0]
    diff = (days[True] - days[False]) / 30.44
    results[world] = diff
    rows.append({"world": world, "median months gained": np.median(diff), "patients better": (diff > 0).mean(),
                 "patients worse": (diff < 0).mean(), "dose taken, adaptive (median)": dose})
    if world == "competition, fitness cost":
        lesson.figure(plots.burden_timeline(example), "adaptive-patient",
                      "One patient on adaptive therapy (competition, fitness cost): hatched stretches are pauses")
table = pd.DataFrame(rows).set_index("world")
lesson.table(table.T, f"Adaptive minus continuous, the same {patients} patients in each world "
             f"(days until resistant cells reach {threshold:.0e})")

fig = Figure(figsize=(8, 3.4), layout="constrained")
ax = fig.add_subplot()
for row, (world, diff) in enumerate(results.items()):
    jitter = np.random.default_rng(row).uniform(-0.15, 0.15, len(diff))
    ax.plot(diff, np.full(len(diff), row) + jitter, "o", alpha=0.6, markersize=4,
            color=["#1f77b4", "#ff7f0e", "#d62728"][row])
    ax.plot([np.median(diff)] * 2, [row - 0.3, row + 0.3], color="black", linewidth=2)
ax.axvline(0, color="#999999", linestyle=":")
ax.set_yticks(range(len(results)), list(results))
ax.set_xlabel("months gained by adaptive therapy before resistant cells take over, per patient")
ax.set_title("each dot: one patient under both strategies (black bar: median)", loc="left", fontsize=10)
lesson.figure(fig, "adaptive-paired", "When stopping helps and when it harms")

# %%
best = table["median months gained"].idxmax()
worst = table["median months gained"].idxmin()
lesson.say(f"""
**What to notice.** Adaptive therapy did best with *{best}* (median {table.loc[best, 'median months gained']:+.1f}
months) and worst with *{worst}* ({table.loc[worst, 'median months gained']:+.1f} months). Without a fitness cost
the gain was {table.loc['competition, no cost', 'median months gained']:+.1f} months; without competition it was
{table.loc['no competition, cost', 'median months gained']:+.1f}. The sensitive cells spared by a pause only
help when they hold the resistant ones back, by taking their room; when clones do not compete, a pause just
lets the tumour regrow. The catalog's adaptive cohort (`egfr-adaptive`) asks the same question with many clones.
""")
