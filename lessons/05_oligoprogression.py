# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       format_name: percent
# ---

# %% [markdown]
# # Lesson 5: oligoprogression - treat the spot, or switch the drug?
#
# **Question.** Most lesions stay controlled on the drug, but one or a few grow (seed 004:
# "we can zap that one spot with radiation ... stay on your same line of therapy"). Is it
# better to irradiate those lesions and keep the drug, or to switch to the next line?
#
# **Predict.** Under local therapy, will progression-free survival (RECIST, first
# progression) change? Will time on the first drug? Overall survival?

# %%
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

import simulator
from simulator import plots
from simulator.lessons import page

lesson = page()
scenario = simulator.load_scenario("egfr-oligoprogression")
arms = list(scenario.arms)
compared = [arms[0], arms[1]]
n = 50
cohort = simulator.run_cohort(scenario, n=n, arms=compared, settings={"simulation.duration_days": 1100})
summary = cohort.summary().set_index("arm")
first_line = list(scenario.therapy.lines)[0]
columns = ["median_pfs_months", "median_os_months", "rmst_os_months", f"mean_months_on_{first_line}",
           "local_therapies_per_patient"]
lesson.table(summary[columns].T, f"{n} virtual patients in each arm ({', '.join(compared)}); the same patients")

# %%
lesson.figure(plots.km_plot(cohort.endpoints, "os_days", "died"), "km-os", "Overall survival by arm")
lesson.figure(plots.swimmer_plot(cohort.endpoints, cohort.events, max_patients=25), "swimmer",
              "Lines per patient: triangles are local therapies")

# %%
e = cohort.endpoints
a = e[e["arm"] == compared[0]].set_index("patient")
b = e[e["arm"] == compared[1]].set_index("patient")
column = f"days_on_{first_line}"
gain = (b[column] - a[column]) / 30.44
treated = b["local_therapies"] > 0
pfs_same = (b["pfs_days"] == a["pfs_days"]).mean()
lesson.say(f"""
**What to notice.** {treated.mean():.0%} of patients had local therapy in arm '{compared[1]}'. Their first
progression is the same day in both arms for {pfs_same:.0%} of patients: PFS counts the first progression,
whatever is done about it. Time on {first_line} is longer by a mean {gain.mean():.1f} months
(among the treated: {gain[treated].mean():.1f} months), so the next lines are kept in reserve.
Overall survival (restricted mean to the end of follow-up): {summary.loc[compared[0], 'rmst_os_months']:.1f}
months with '{compared[0]}' against {summary.loc[compared[1], 'rmst_os_months']:.1f} with '{compared[1]}'.
""")

# %% [markdown]
# ## One treated patient
#
# The first virtual patient who had local therapy, as the cohort simulated it.

# %%
if treated.any():
    patient = int(treated[treated].index[0])
    one, _ = simulator.patient_scenario(scenario, arm=compared[1], patient=patient,
                                        settings={"simulation.duration_days": 1100})
    run = simulator.simulate(one, replicate=patient)
    lesson.figure(plots.burden_timeline(run), "patient", f"Patient {patient} in arm '{compared[1]}': "
                  "the black triangles are radiotherapy of the progressing lesions")
    local = run.events[run.events["kind"] == "local_therapy"]
    lesson.say(f"Patient {patient}: {len(local)} course(s) of local therapy, of lesion(s) "
               f"{', '.join(local['lesion'].astype(str).unique())}; {first_line} for "
               f"{run.endpoints['time_on_line'].get(first_line, 0) / 30.44:.1f} months.")
