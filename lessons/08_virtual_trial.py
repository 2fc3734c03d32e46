# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       format_name: percent
# ---

# %% [markdown]
# # Lesson 8: a virtual trial with common random numbers
#
# **Question.** At progression on gefitinib, does choosing the next line by the re-biopsy
# (osimertinib if T790M is found) beat a fixed sequence (chemotherapy whatever is found)? And
# what does a paired comparison of the same virtual patients show that a Kaplan-Meier curve
# cannot?
#
# **Predict.** Guess the share of patients who live longer with the guided choice, the share
# who live exactly as long, and the share who do worse.

# %%
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

import simulator
from simulator import plots
from simulator.lessons import page
from simulator.survival import logrank

lesson = page()
scenario = simulator.load_scenario("egfr-resistance-switch")
first, second = list(scenario.arms)[:2]
n = 80
cohort = simulator.run_cohort(scenario, n=n, arms=[first, second], settings={"simulation.duration_days": 1400})
lesson.figure(plots.km_plot(cohort.endpoints, "os_days", "died"), "km-os", "Overall survival: what a trial reports")
comparison = cohort.comparisons().set_index("endpoint").loc["os_days"]
lesson.say(f"""
**The trial's view.** Overall survival, '{second}' against '{first}': hazard ratio
{comparison['hazard_ratio']:.2f} ({comparison['hr_ci_low']:.2f}-{comparison['hr_ci_high']:.2f}),
log-rank p = {comparison['logrank_p']:.2g}. The curves say how the two groups fare, not what happens to
any one patient.
""")

# %%
e = cohort.endpoints
a = e[e["arm"] == first].set_index("patient")
b = e[e["arm"] == second].set_index("patient").loc[a.index]
diff = (a["os_days"] - b["os_days"]) / 30.44   # positive: longer with the first arm
fig = Figure(figsize=(9, 3.8), layout="constrained")
left, right = fig.subplots(1, 2)
left.scatter(b["os_days"] / 30.44, a["os_days"] / 30.44, c=np.sign(diff), cmap="coolwarm_r", s=18,
             edgecolor="#333333", linewidth=0.3)
top = max(a["os_days"].max(), b["os_days"].max()) / 30.44
left.plot([0, top], [0, top], ":", color="#999999")
left.set_xlabel(f"OS with '{second}' (months)")
left.set_ylabel(f"OS with '{first}' (months)")
left.set_title("each dot: one patient, both strategies", loc="left", fontsize=10)
left.text(0.97, 0.03, f"above the line: longer with '{first}'\non the line: the choice changed nothing\n"
          "top edge: alive at the end of follow-up", transform=left.transAxes, fontsize=8, va="bottom",
          ha="right")
right.hist(diff, bins=25, color="#555555")
right.axvline(0, color="#d62728", linestyle=":")
right.set_xlabel(f"months gained with '{first}', per patient")
right.set_ylabel("patients")
right.set_title("the paired differences", loc="left", fontsize=10)
lesson.figure(fig, "paired", "The same virtual patients in both arms")

# %% [markdown]
# ## The same question without pairing
#
# A real trial gives each patient one arm. Take different patients for each arm (the first
# half in one, the second half in the other) and compare again.

# %%
half = len(a) // 2
ids = np.array(sorted(a.index))
unpaired = logrank(a.loc[ids[:half], "os_days"], a.loc[ids[:half], "died"],
                   b.loc[ids[half:], "os_days"], b.loc[ids[half:], "died"])
paired_se = diff.std(ddof=1) / np.sqrt(len(diff))
changed = diff != 0
from scipy import stats

paired_half = stats.ttest_1samp(diff.loc[ids[:half]], 0.0).pvalue if diff.loc[ids[:half]].std() > 0 else float('nan')
lesson.say(f"""
**What to notice.** {(diff > 0).mean():.0%} of patients lived longer with '{first}', {(diff == 0).mean():.0%}
exactly as long and {(diff < 0).mean():.0%} shorter; the mean gain is {diff.mean():+.1f} months (standard
error {paired_se:.2f}, from the pairs). Patients who lived exactly as long are those the choice never
touched (no T790M found, or no progression): the whole effect sits in the {changed.mean():.0%} whose
course changed. With different patients in each arm ({half} each) the same comparison gives a hazard ratio
of {1 / unpaired['hazard_ratio']:.2f} ({1 / unpaired['hr_upper']:.2f}-{1 / unpaired['hr_lower']:.2f}) for
'{second}' against '{first}', p = {unpaired['p_value']:.2g}, where the paired test on the same number of
patients gives p = {paired_half:.2g}. Without pairing, patient-to-patient variation enters every
comparison; with it, only the treatment differs. A Kaplan-Meier curve cannot say who benefits;
common random numbers can.
""")
