# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       format_name: percent
# ---

# %% [markdown]
# # Lesson 3: one tumour, several subtypes, and early progression
#
# **Question.** A tumour is part solid, part papillary and part acinar, and the targeted
# mutation is carried mostly by one subtype (seed 002). How does it respond to the drug, and
# why do some patients progress within months?
#
# **Predict.** Before running: what share of the tumour do you expect the drug to clear, what
# best RECIST response, and when the first progression?

# %%
import numpy as np
import pandas as pd

import simulator
from simulator import plots
from simulator.lessons import page

lesson = page()
scenario = simulator.load_scenario("egfr-histologic-subtypes")
result = simulator.simulate(scenario, seed=scenario.simulation.seed)
clones = result.clones.set_index("clone")
sensitive = [name for name in clones.index if not clones.loc[name, "resistance"]]
first = result.trajectory[result.trajectory["time"] == 0]
by_subtype = first.assign(subtype=first["clone"].map(clones["subtype"])).groupby("subtype")["cells"].sum()
shares = by_subtype / by_subtype.sum()
sensitive_share = first[first["clone"].isin(sensitive)]["cells"].sum() / first["cells"].sum()
lesson.say("**The tumour at the start**, by subtype: " + ", ".join(
    f"{name} {share:.0%}" for name, share in shares.sort_values(ascending=False).items())
    + f". Cells carrying the drug's target: {sensitive_share:.0%}.")
lesson.figure(plots.muller_plot(result, max_lesions=2), "muller", "Clone types over time; colours are subtypes with and without the EGFR mutation")
lesson.figure(plots.burden_timeline(result), "burden", "The truth and what the clinic saw")

# %%
ends = result.endpoints
biopsies = result.events[result.events["kind"] == "biopsy"]
found = ", ".join(sorted({str(d) for d in biopsies["detail"]})) or "no biopsy"
lines = result.events[result.events["kind"] == "line_start"]["detail"].tolist()
lesson.say(f"""
**What to notice (this patient).** Best response {ends['best_response']}; first progression on day
{ends['pfs_days']:.0f} of therapy ({ends['pfs_days'] / 30.44:.1f} months). The re-biopsy found: {found}.
Lines given: {', '.join(lines)}. The drug emptied the sensitive subtype; the wild-type subtypes never
shrank and became the tumour.
""")

# %% [markdown]
# ## How common is early progression?
#
# The same cohort size of virtual patients with this mixture and with the standard
# first-line scenario (mostly sensitive tumours).

# %%
n = 50
rows = []
for name in ("egfr-histologic-subtypes", "egfr-first-line-gefitinib"):
    cohort = simulator.run_cohort(simulator.load_scenario(name), n=n, workers=1,
                                  settings={"simulation.duration_days": 720})
    summary = cohort.summary().iloc[0]
    rows.append({"scenario": name, "objective response": summary["objective_response"],
                 "progressed by 3 months": summary["progressed_by_3_months"],
                 "progressed by 6 months": summary["progressed_by_6_months"],
                 "median PFS (months)": summary["median_pfs_months"],
                 "endpoints": cohort.endpoints.assign(arm=name)})
table = pd.DataFrame(rows).set_index("scenario")
lesson.table(table.drop(columns="endpoints").T, f"{n} virtual patients per scenario")
both = pd.concat(table["endpoints"].tolist(), ignore_index=True)
lesson.figure(plots.km_plot(both, "pfs_days", "progressed"), "km", "Progression-free survival: mixed subtypes against the standard scenario")

# %%
mixed, standard = table.iloc[0], table.iloc[1]


def compare(a: float, b: float) -> str:
    return "about the same as" if abs(a - b) < 0.05 else ("more than" if a > b else "fewer than")


lesson.say(f"""
**What to notice.** With mixed subtypes, {mixed['progressed by 6 months']:.0%} of patients have progressed
by 6 months, {compare(mixed['progressed by 6 months'], standard['progressed by 6 months'])} in the standard
scenario ({standard['progressed by 6 months']:.0%}); by 3 months {mixed['progressed by 3 months']:.0%} against
{standard['progressed by 3 months']:.0%}. Median PFS is {mixed['median PFS (months)']:.1f} against
{standard['median PFS (months)']:.1f} months. The objective response rate is {mixed['objective response']:.0%}
(standard: {standard['objective response']:.0%}): shrinking the sensitive part can still pass the RECIST bar of
-30%, so a response does not prove that the whole tumour is sensitive.
Progression here is not new resistance: the cells that grow were never sensitive. A biopsy of one lesion, or
one part of it, can miss them; that is why seed 002 insists on molecular profiling throughout treatment.
""")
