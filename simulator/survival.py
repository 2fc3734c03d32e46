"""Survival analysis for cohorts: Kaplan-Meier, medians with CIs, log-rank, hazard ratio.

Small, exact implementations of the textbook estimators (Collett, *Modelling Survival Data
in Medical Research*): Greenwood's variance with the log-log transform for pointwise bands,
Brookmeyer-Crowley intervals for the median, the log-rank test and the Mantel-Haenszel
(Peto) hazard ratio exp((O - E) / V) with standard error 1 / sqrt(V).
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pandas as pd

Z95 = NormalDist().inv_cdf(0.975)


def kaplan_meier(time, event) -> pd.DataFrame:
    """Kaplan-Meier estimate with 95% log-log pointwise bands.

    Returns one row per distinct time (starting at 0): ``time``, ``survival``, ``lower``,
    ``upper``, ``at_risk`` (just before the time), ``events`` and ``censored`` at the time.
    """
    time = np.asarray(time, float)
    event = np.asarray(event, bool)
    if time.size == 0:
        raise ValueError("kaplan_meier: no observations")
    times = np.unique(time)
    at_risk = np.array([(time >= t).sum() for t in times])
    events = np.array([((time == t) & event).sum() for t in times])
    censored = np.array([((time == t) & ~event).sum() for t in times])
    with np.errstate(divide="ignore", invalid="ignore"):
        factors = 1.0 - events / at_risk
        survival = np.cumprod(factors)
        greenwood = np.cumsum(np.where(at_risk > events, events / (at_risk * (at_risk - events)), np.inf))
        log_s = np.log(survival)
        se = np.sqrt(greenwood) / np.abs(log_s)
        lower = survival ** np.exp(Z95 * se)
        upper = survival ** np.exp(-Z95 * se)
    lower = np.where(survival > 0, np.nan_to_num(lower, nan=0.0), 0.0)
    upper = np.where((survival > 0) & (survival < 1), np.nan_to_num(upper, nan=1.0), survival)
    upper = np.where(survival >= 1.0, 1.0, upper)
    lower = np.where(survival >= 1.0, 1.0, lower)
    table = pd.DataFrame({"time": times, "survival": survival, "lower": lower, "upper": upper,
                          "at_risk": at_risk, "events": events, "censored": censored})
    if times[0] > 0:
        start = pd.DataFrame({"time": [0.0], "survival": [1.0], "lower": [1.0], "upper": [1.0],
                              "at_risk": [time.size], "events": [0], "censored": [0]})
        table = pd.concat([start, table], ignore_index=True)
    return table


def median_survival(time, event) -> tuple[float, float, float]:
    """Median survival time with its 95% CI (NaN where the curve does not reach 0.5)."""
    table = kaplan_meier(time, event)

    def first_below(column: str) -> float:
        below = table.loc[table[column] <= 0.5, "time"]
        return float(below.iloc[0]) if len(below) else math.nan

    return first_below("survival"), first_below("lower"), first_below("upper")


def logrank(time_a, event_a, time_b, event_b) -> dict:
    """Log-rank test of two groups and the Mantel-Haenszel hazard ratio of a against b.

    Returns ``chi2``, ``p_value``, ``hazard_ratio`` and its 95% CI (``hr_lower``, ``hr_upper``).
    """
    time_a, time_b = np.asarray(time_a, float), np.asarray(time_b, float)
    event_a, event_b = np.asarray(event_a, bool), np.asarray(event_b, bool)
    all_times = np.unique(np.concatenate([time_a[event_a], time_b[event_b]]))
    observed_minus_expected = 0.0
    variance = 0.0
    for t in all_times:
        n_a, n_b = (time_a >= t).sum(), (time_b >= t).sum()
        d_a = ((time_a == t) & event_a).sum()
        d = d_a + ((time_b == t) & event_b).sum()
        n = n_a + n_b
        if n < 2:
            continue
        observed_minus_expected += d_a - d * n_a / n
        variance += d * (n_a / n) * (n_b / n) * (n - d) / (n - 1)
    if variance <= 0:
        return {"chi2": math.nan, "p_value": math.nan, "hazard_ratio": math.nan,
                "hr_lower": math.nan, "hr_upper": math.nan}
    chi2 = observed_minus_expected**2 / variance
    log_hr = observed_minus_expected / variance
    se = 1.0 / math.sqrt(variance)
    return {
        "chi2": chi2,
        "p_value": math.erfc(math.sqrt(chi2 / 2.0)),  # chi-squared, 1 degree of freedom
        "hazard_ratio": math.exp(log_hr),
        "hr_lower": math.exp(log_hr - Z95 * se),
        "hr_upper": math.exp(log_hr + Z95 * se),
    }


def proportion_ci(successes: int, n: int) -> tuple[float, float, float]:
    """A proportion with its 95% Wilson interval."""
    if n == 0:
        return math.nan, math.nan, math.nan
    p = successes / n
    z2 = Z95**2
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = Z95 * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return p, max(centre - half, 0.0), min(centre + half, 1.0)
