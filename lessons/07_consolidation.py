# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       format_name: percent
# ---

# %% [markdown]
# # Lesson 7: local consolidation after a good response, and why trials disagree
#
# **Question.** After the drug has shrunk the disease to a few lesions, should they be removed
# by surgery or radiotherapy (seed 003)? A small trial (Gomez) reported a large benefit; a
# larger one (NRG LU002) reported none. How can both be honest?
#
# **Predict.** Which patients can benefit at all? And if you ran many small trials of the same
# treatment on different patients, how much would their hazard ratios differ?

# %%
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

import simulator
from simulator import plots
from simulator.lessons import page
from simulator.survival import logrank

lesson = page()
scenario = simulator.load_scenario("egfr-consolidation")
control, treated = list(scenario.arms)[:2]
n = 80
cohort = simulator.run_cohort(scenario, n=n, arms=[control, treated], settings={"simulation.duration_days": 1100})
lesson.figure(plots.km_plot(cohort.endpoints, "pfs_days", "progressed"), "km-pfs",
              f"Progression-free survival, {n} virtual patients in both arms")
e = cohort.endpoints
a = e[e["arm"] == control].set_index("patient")
b = e[e["arm"] == treated].set_index("patient").loc[a.index]
got = b["local_therapies"] > 0
gain = (b["pfs_days"] - a["pfs_days"]) / 30.44
everyone = logrank(b["pfs_days"], b["progressed"], a["pfs_days"], a["progressed"])
lesson.say(f"""
**Who was treated.** Only {got.mean():.0%} of patients met the rule (a response with few residual lesions
after the first months). For them PFS changed by a median {gain[got].median():+.1f} months (better for
{(gain[got] > 0).mean():.0%}); for the others it could not change (median {gain[~got].median():+.1f}). Over the
whole cohort: {plots.format_hazard_ratio(everyone)}.
""")

# %% [markdown]
# ## Many small trials
#
# Split the virtual patients into small trials with different patients in each arm, as in a
# real trial, and compute each trial's hazard ratio.

# %%
size = 10
ratios = []
ids = np.array(sorted(a.index))
for start in range(0, len(ids) - 2 * size + 1, 2 * size):
    one, two = ids[start:start + size], ids[start + size:start + 2 * size]
    test = logrank(b.loc[two, "pfs_days"], b.loc[two, "progressed"], a.loc[one, "pfs_days"], a.loc[one, "progressed"])
    ratios.append(test)
trials = pd.DataFrame(ratios)
fig = Figure(figsize=(7, 3.2), layout="constrained")
ax = fig.add_subplot()
for row, trial in trials.iterrows():
    ax.plot([trial["hr_lower"], trial["hr_upper"]], [row, row], color="#555555")
    ax.plot(trial["hazard_ratio"], row, "s", color="#d62728" if trial["p_value"] < 0.05 else "#1f77b4")
ax.axvline(1, color="#999999", linestyle=":")
ax.axvline(everyone["hazard_ratio"], color="black", linestyle="--", label="whole cohort")
ax.set_xscale("log")
ticks = [t for t in (0.05, 0.1, 0.2, 0.5, 1, 2, 5) if trials["hr_lower"].min() / 1.5 <= t <= trials["hr_upper"].max() * 1.5]
ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
ax.minorticks_off()
ax.set_yticks(range(len(trials)), [f"trial {i + 1}" for i in range(len(trials))])
ax.set_xlabel(f"hazard ratio of PFS, {treated} against {control} (95% CI; red: p < 0.05)")
ax.legend(fontsize=8, frameon=False)
lesson.figure(fig, "trials", f"{len(trials)} small trials of {size} patients per arm, same treatment")
finite = trials["hazard_ratio"].dropna()
lesson.say(f"""
**What to notice.** The same treatment, the same kind of patients: the small trials' hazard ratios run from
{finite.min():.2f} to {finite.max():.2f}, and {(trials['p_value'] < 0.05).sum()} of {len(trials)} would be
reported as significant. Chance alone makes small trials disagree, and who is eligible (here
{got.mean():.0%} of patients were treated at all) sets how large any benefit can be. A simulator can do what
no trial can: give the same patients both treatments (lesson 8).
""")
