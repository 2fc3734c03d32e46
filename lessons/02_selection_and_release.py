# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       format_name: percent
# ---

# %% [markdown]
# # Lesson 2: selection under a targeted drug, and competitive release
#
# **Question.** A drug kills the sensitive cells of a tumour that also holds a few resistant
# ones. What does the tumour do, and would a stronger drug that kills sensitive cells faster
# keep it down for longer?
#
# **Predict.** Sketch the total number of cells over time under the drug. Then guess: with
# twice the killing of sensitive cells, does progression come earlier or later?

# %%
import numpy as np
from matplotlib.figure import Figure

import simulator
from simulator import plots
from simulator.lessons import page

lesson = page()
base = simulator.load_scenario("two-clone-teaching")
effect = base.drugs["tki"].effects["sensitive"].death_increase
result = simulator.simulate(base, seed=1)
lesson.figure(plots.burden_timeline(result), "burden", "One patient: the truth (top) and what the clinic saw")
lesson.figure(plots.muller_plot(result), "muller", "Clone fractions: the resistant band grows out of the sensitive one")

# %%
cells = result.trajectory.pivot_table(index="time", columns="clone", values="cells", aggfunc="sum", observed=True)
total = cells.sum(axis=1)
start = base.therapy.start_day
nadir_day = float(total.loc[start:].idxmin())
share_at_start = float(cells.loc[start:, "resistant"].iloc[0] / total.loc[start:].iloc[0])
share_at_end = float(cells["resistant"].iloc[-1] / total.iloc[-1])
lesson.say(f"""
**What to notice.** The drug starts on day {start:g} and adds {effect:g}/day to the death of
sensitive cells only. The total falls from {total.loc[start:].iloc[0]:.2g} to {total.min():.2g} cells
(day {nadir_day:g}), then rises again: resistant cells were {share_at_start:.1e} of the tumour
when the drug started and are {share_at_end:.0%} at the end. The drug did not change them; it
removed their competitors. Regrowth is the same tumour, selected.
""")

# %% [markdown]
# ## A stronger drug
#
# Now the same patients (same random numbers) with the effect on sensitive cells doubled.
# Growth here slows as the tumour fills its site (a Gompertz law), so sensitive cells also
# hold the resistant ones back by taking up room.

# %%
patients = 24
visible_cells = 1e8  # about a 6 mm sphere: what CT starts to see
rows = []
for label, factor in (("standard", 1.0), ("twice as strong", 2.0)):
    scenario = simulator.load_scenario("two-clone-teaching",
                                       {"drugs.tki.effects.sensitive.death_increase": effect * factor,
                                        "simulation.duration_days": 1000})
    for replicate in range(patients):
        run = simulator.simulate(scenario, replicate=replicate)
        resistant = run.trajectory[run.trajectory["clone"] == "resistant"].groupby("time")["cells"].sum()
        visible = resistant[resistant >= visible_cells]
        rows.append({"drug": label, "replicate": replicate,
                     "progression_day": float(visible.index[0]) if len(visible) else np.nan,
                     "resistant_day_300": float(resistant.loc[:300].iloc[-1]), "run": run})
import pandas as pd

table = pd.DataFrame(rows)
fig = Figure(figsize=(9, 3.8), layout="constrained")
left, right = fig.subplots(1, 2)
for (label, group), style in zip(table.groupby("drug", sort=False), ["-", "--"]):
    run = group["run"].iloc[0]
    traj = run.trajectory.pivot_table(index="time", columns="clone", values="cells", aggfunc="sum", observed=True)
    left.semilogy(traj.index, traj.sum(axis=1), "k", linestyle=style, label=f"total, {label}")
    left.semilogy(traj.index, traj["resistant"].where(traj["resistant"] > 0), color="#d62728", linestyle=style,
                  label=f"resistant, {label}")
left.set_xlabel("day"); left.set_ylabel("cells"); left.legend(fontsize=7, frameon=False)
left.set_title("patient 0 under both drugs", loc="left", fontsize=10)
standard = table[table["drug"] == "standard"].set_index("replicate")
strong = table[table["drug"] == "twice as strong"].set_index("replicate")
jitter = np.random.default_rng(0).uniform(-2.5, 2.5, size=(2, len(standard)))  # days are recorded weekly
right.scatter(standard["progression_day"] + jitter[0], strong["progression_day"] + jitter[1], color="#444444",
              alpha=0.6, s=18)
right.text(0.03, 0.95, f"{len(standard)} patients (dots jittered:\ncells are recorded weekly)",
           transform=right.transAxes, fontsize=8, va="top")
lim = [np.nanmin(table["progression_day"]) * 0.9, np.nanmax(table["progression_day"]) * 1.05]
right.plot(lim, lim, ":", color="#999999")
right.text(lim[1], lim[1], " same day", fontsize=8, color="#999999", va="center")
right.set_xlabel("day resistant cells reach 1e8, standard"); right.set_ylabel("same, stronger drug")
right.set_title("each dot: one patient, both drugs", loc="left", fontsize=10)
lesson.figure(fig, "release", "Competitive release: stronger killing of sensitive cells frees the resistant ones")

# %%
diff = (strong["progression_day"] - standard["progression_day"]).dropna()
earlier = (diff < 0).mean()
ratio = (strong["resistant_day_300"] / standard["resistant_day_300"]).median()
lesson.say(f"""
**What to notice.** With the stronger drug, the resistant cells reached {visible_cells:.0e} (about
what a CT scan can see) earlier in {earlier:.0%} of the {len(diff)} patients where they reached it
under both drugs (median difference {diff.median():+.0f} days), and by
day 300 the resistant population was {ratio:.2g} times as large (median over patients). Killing
the competitors faster gave the resistant cells room sooner: *competitive release*. Whether
this wins or loses against a deeper response depends on how strongly the clones compete;
lesson 6 uses the same idea to argue for drug holidays.
""")
