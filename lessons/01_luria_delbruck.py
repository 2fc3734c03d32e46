# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       format_name: percent
# ---

# %% [markdown]
# # Lesson 1: resistance before the drug, or because of it?
#
# **Question.** When a targeted drug stops working, were the resistant cells already there
# before the first dose, or did the drug make them?
#
# **Predict.** Grow the same tumour many times from the same few cells, then count resistant
# cells on the day treatment would start. If the drug caused resistance, every tumour would
# carry about the same small number (a Poisson count: variance equal to the mean). If
# resistance arises by chance mutation during growth, what would you expect? Write down your
# guess for the share of tumours with no resistant cell at all, and for how uneven the counts are.

# %%
import numpy as np
from matplotlib.figure import Figure
from scipy import stats

import simulator
from simulator import theory
from simulator.lessons import page

lesson = page()
birth, start_cells, size, u = 0.1, 1000, 1e6, 2e-6   # pure birth, so theory is exact
days = round(np.log(size / start_cells) / birth)
scenario = simulator.load_scenario({
    "id": "luria-delbruck",
    "clones": {"sensitive": {"birth": birth, "death": 0.0},
               "resistant": {"birth": birth, "death": 0.0, "resistance": "R"}},
    "mutations": [{"from": "sensitive", "to": "resistant", "probability": u}],
    "lesions": {"primary": {"site": "lung", "carrying_capacity": 1e13, "cells": {"sensitive": start_cells}}},
    "simulation": {"duration_days": days, "dt_days": 1, "seed": 11, "growth_law": "exponential"},
})
runs = simulator.run_replicates(scenario, 500)
resistant = runs.cells[:, 1]
final = runs.cells.sum(axis=1)
m = u * (final.mean() - start_cells)        # expected mutations during growth
lesson.say(f"""
**The run.** {len(resistant)} tumours, each grown from {start_cells:,} sensitive cells for {days} days
to about {final.mean():.2g} cells; a division makes a resistant cell with probability {u:g}, so
{m:.2f} mutations are expected per tumour.
""")

# %%
pmf = theory.luria_delbruck_pmf(m, 60)
counts = np.bincount(np.minimum(resistant, 60), minlength=61)[:61] / len(resistant)
poisson = stats.poisson.pmf(np.arange(61), resistant.mean())
fig = Figure(figsize=(9, 3.8), layout="constrained")
left, right = fig.subplots(1, 2)
n = np.arange(0, 21)
left.bar(n - 0.2, counts[:21], width=0.4, color="#d62728", label="simulated tumours")
left.bar(n + 0.2, pmf[:21], width=0.4, color="#555555", label="Luria-Delbrück theory")
left.plot(n, poisson[:21], "o--", color="#1f77b4", markersize=4, label="Poisson, same mean\n(drug-induced)")
left.set_xlabel("resistant cells at the start of therapy")
left.set_ylabel("share of tumours")
left.legend(fontsize=8, frameon=False)
left.set_title("the first 20 counts", loc="left", fontsize=10)
tail_n = np.unique(np.logspace(0, np.log10(max(resistant.max(), 2)), 30).astype(int))
right.loglog(tail_n, [(resistant >= k).mean() for k in tail_n], "o", color="#d62728", markersize=4,
             label="simulated P(X ≥ n)")
right.loglog(tail_n, m / tail_n, color="#555555", label="theory: about m / n")
right.set_xlabel("n resistant cells")
right.set_ylabel("share with at least n")
right.set_title("jackpots: a long tail", loc="left", fontsize=10)
right.legend(fontsize=8, frameon=False)
lesson.figure(fig, "luria-delbruck", "Resistant cells per tumour at the start of therapy")

# %%
none_sim = (resistant == 0).mean()
ci = 1.96 * np.sqrt(none_sim * (1 - none_sim) / len(resistant))
ratio = resistant.var() / resistant.mean()
top = np.sort(resistant)[::-1]
share_top = top[: len(top) // 20].sum() / max(top.sum(), 1)
lesson.say(f"""
**What to notice.**

- {none_sim:.0%} of tumours (95% CI {max(none_sim - ci, 0):.0%}-{none_sim + ci:.0%}) have no resistant
  cell at all; theory says exp(-m) = {np.exp(-m):.0%}. A Poisson count with the same mean
  ({resistant.mean():.1f}) would leave {poisson[0]:.1e} of tumours without one.
- The variance is {ratio:.0f} times the mean (1 for Poisson). The 5% largest counts hold
  {share_top:.0%} of all resistant cells: a mutation early in growth leaves a big family (a "jackpot").
- The tail falls like m/n, as Luria and Delbrück found for bacteria and phage.
""")

# %% [markdown]
# ## At clinical sizes
#
# The same theory, with birth and death as in Bozic 2013, gives the chance that a tumour
# holds not a single resistant cell when it is found.

# %%
b, d = 0.14, 0.13
for cells in (1e9, 1e10, 1e11):
    p_none = theory.prob_no_preexisting_resistance(cells, 1e-9, b, d, n_positions=50)
    expected = theory.expected_preexisting_resistant(cells, 1e-9, b, d, n_positions=50)
    shown = f"{p_none:.2g}" if p_none > 1e-300 else "below 1e-300"
    lesson.say(f"- {cells:.0e} cells: P(no resistant cell) = {shown}; about {expected:,.0f} resistant cells expected.")
lesson.say("""
So at diagnosis resistance is almost always already there: the drug does not create it, it selects it.
""")
