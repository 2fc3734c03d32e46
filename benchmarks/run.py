"""Speed benchmarks of the engine, as ratios measured in one process.

    python benchmarks/run.py [--quick [--cold]] [--json PATH] [--only/--skip NAME ...] [--list]

Prints a table (measurement, value, target, met) and writes JSON (default
``benchmarks/results.json``). See ``benchmarks/README.md`` for what each figure means.

Adding a measurement: write a function ``def my_benchmark(ctx: Context) -> list[Measurement]``
and decorate it with ``@benchmark``; it joins the registry ``BENCHMARKS`` and runs in order.
Use ``ctx.quick`` / ``ctx.repeats`` / ``ctx.steps`` to size the work, ``ctx.memo`` to share
expensive timings between measurements, and the helpers below (``time_interleaved``,
``wide_scenario``, ``count_compartment_steps``) for the usual chores.

Only the public API is used (``simulator.load_scenario``, ``simulate``, ``run_replicates``,
``simulator.lowering.lower`` and ``simulator.runner.run_model``), so the file survives
rewrites of the kernel.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numba
import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import simulator  # noqa: E402
from numpy_reference import simulate_numpy  # noqa: E402
from simulator.lowering import lower  # noqa: E402
from simulator.runner import run_model  # noqa: E402

# ---------------------------------------------------------------------------------------------
# Registry and results


@dataclass
class Measurement:
    """One row of the table."""

    key: str  # stable identifier, e.g. "a.engine_vs_raw_draws@1e3"
    name: str  # what a reader sees
    value: float
    unit: str = "x"
    target: str = ""  # e.g. "<= 1.5"; empty when the figure is only reported
    met: bool | None = None  # None when there is no target
    details: dict = field(default_factory=dict)


@dataclass
class Context:
    """Sizes of the work and a memo shared by the benchmarks of one run."""

    quick: bool
    cold: bool = True  # measure the cold start (a full compile of the engine, minutes)
    memo: dict = field(default_factory=dict)

    @property
    def repeats(self) -> int:
        return 5 if self.quick else 9

    @property
    def steps(self) -> int:
        return 2000 if self.quick else 6000


BENCHMARKS: list[Callable[[Context], list[Measurement]]] = []


def benchmark(function: Callable[[Context], list[Measurement]]):
    """Register ``function`` as a benchmark (runs in registration order)."""
    BENCHMARKS.append(function)
    return function


def check(value: float, target: str) -> bool | None:
    """Whether ``value`` meets a target written as '<= x' or '>= x'."""
    if not target:
        return None
    op, bound = target.split()
    return value <= float(bound) if op == "<=" else value >= float(bound)


# ---------------------------------------------------------------------------------------------
# Helpers

# (birth, death) per day: near-critical, one of each kind (slowly growing, slowly shrinking,
# critical), so sizes stay in range for hundreds of days and the non-critical alpha/beta
# formulas are exercised.
WIDE_RATES = [(0.10, 0.099), (0.12, 0.121), (0.15, 0.1495), (0.20, 0.20)]
WIDE_LESIONS = 16
DT = 0.05
SEED = 1


def wide_scenario(cells: int, steps: int, lesions: int = WIDE_LESIONS, clones: int = 4,
                  mutation: float = 0.0):
    """``lesions`` x ``clones`` compartments of ``cells`` each, exponential law, no seeding,
    recording only at the start and end. With ``mutation`` > 0, clone 2i mutates to 2i + 1
    (both present everywhere, so no compartment is created: the same work, plus Poissons)."""
    names = [f"c{k}" for k in range(clones)]
    clone_table = {
        name: {"birth": WIDE_RATES[k % 4][0], "death": WIDE_RATES[k % 4][1]}
        for k, name in enumerate(names)
    }
    mutations = (
        [{"from": names[k], "to": names[k + 1], "probability": mutation}
         for k in range(0, clones - 1, 2)]
        if mutation > 0 else []
    )
    lesion_table = {
        f"l{i}": {"site": "lung", "cells": {name: int(cells) for name in names},
                  "growth_law": "exponential", "carrying_capacity": 1e18}
        for i in range(lesions)
    }
    duration = steps * DT
    return simulator.load_scenario({
        "id": f"bench-wide-{lesions}x{clones}-{cells:.0e}",
        "clones": clone_table,
        "mutations": mutations,
        "lesions": lesion_table,
        "seeding": {"rate": 0.0},
        "simulation": {
            "duration_days": duration, "dt_days": DT, "record_every_days": duration,
            "growth_law": "exponential", "lethal_burden": 1e15, "max_lesions": lesions,
            "seed": SEED, "max_step_days": DT,  # fixed steps: the cost of one step is measured
        },
    })


def count_compartment_steps(scenario, seed: int = SEED) -> dict:
    """Compartment-steps the engine advanced in replicate 0 of ``seed``.

    Without seeding, extinction is absorbing, so if every compartment is alive at the end and
    the run lasted the full duration, every compartment was advanced at every step.
    """
    result = simulator.simulate(scenario, seed=seed)
    final = np.asarray(result.final_cells)
    steps_done = int(round(result.end_time / scenario.simulation.dt_days))
    all_alive = bool((final > 0).all())
    return {
        "compartments": int(final.size),
        "steps": steps_done,
        "compartment_steps": int(final.size * steps_done),
        "all_compartments_alive": all_alive,
        "exact_count": all_alive and steps_done == scenario.simulation.n_steps,
        "final_total_cells": float(final.sum()),
    }


def _elapsed(function: Callable[[], object]) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def time_interleaved(functions: dict[str, Callable[[], object]], repeats: int) -> dict[str, dict]:
    """Warm each function up once, then time them in turn ``repeats`` times (interleaved, so
    drifts of the machine hit all alike). Each call must do identical work (fixed seeds)."""
    warm_up = {name: _elapsed(function) for name, function in functions.items()}
    times: dict[str, list[float]] = {name: [] for name in functions}
    for _ in range(repeats):
        for name, function in functions.items():
            times[name].append(_elapsed(function))
    return {name: {"min": min(t), "median": statistics.median(t), "all": t,
                   "warm_up": warm_up[name]}
            for name, t in times.items()}


def engine_runner(scenario, seed: int = SEED):
    """A zero-argument call of the engine on ``scenario`` (lowered once, outside the timing)."""
    model = lower(scenario)
    max_lesions = scenario.simulation.max_lesions
    return lambda: run_model(model, seed, 0, max_lesions)


def kendall(birth: float, death: float, dt: float) -> tuple[float, float]:
    """Kendall's alpha and beta (same formulas as the engine), for the raw-draw baseline."""
    net = birth - death
    if abs(net) * dt < 1e-12:
        x = birth * dt
        return x / (1.0 + x), x / (1.0 + x)
    growth_minus_one = math.expm1(net * dt)
    denominator = birth * growth_minus_one + net
    return death * growth_minus_one / denominator, birth * growth_minus_one / denominator


@numba.njit(cache=False, error_model="numpy")
def _raw_bnb_draws(rng, cells, p_survive, p_success, n_steps):
    """The random draws the engine cannot avoid: per compartment-step one binomial and (when
    something survives) one negative binomial, state fed back so sizes evolve alike."""
    n = cells.size
    for _ in range(n_steps):
        for i in range(n):
            k = rng.binomial(cells[i], p_survive[i])
            if k > 0:
                k += rng.negative_binomial(k, p_success[i])
            cells[i] = k
    return cells.sum()


def raw_draw_runner(scenario, seed: int = SEED):
    """A zero-argument call of the raw-draw loop with the scenario's sizes and rates."""
    lesions = list(scenario.lesions.values())
    clones = list(scenario.clones.values())
    names = list(scenario.clones)
    dt = scenario.simulation.dt_days
    cells0 = np.array([lesion.cells.get(name, 0) for lesion in lesions for name in names], np.int64)
    ab = [kendall(clone.birth, clone.death, dt) for clone in clones] * len(lesions)
    p_survive = np.array([1.0 - a for a, _ in ab])
    p_success = np.array([1.0 - b for _, b in ab])
    n_steps = scenario.simulation.n_steps

    def run():
        rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed)))
        return _raw_bnb_draws(rng, cells0.copy(), p_survive, p_success, n_steps)

    return run


def engine_and_raw(ctx: Context, cells: int) -> dict:
    """Engine and raw-draw timings on the wide scenario at ``cells`` per compartment (memoised:
    measurements a and b share them)."""
    key = ("engine_and_raw", cells)
    if key not in ctx.memo:
        scenario = wide_scenario(cells, ctx.steps)
        count = count_compartment_steps(scenario)
        times = time_interleaved(
            {"engine": engine_runner(scenario), "raw": raw_draw_runner(scenario)}, ctx.repeats
        )
        n = count["compartment_steps"]
        ctx.memo[key] = {
            "count": count,
            "engine_s": times["engine"],
            "raw_s": times["raw"],
            "engine_ns_per_compartment_step": times["engine"]["min"] / n * 1e9,
            "raw_ns_per_compartment_step": times["raw"]["min"] / n * 1e9,
        }
    return ctx.memo[key]


def _rounded(times: dict) -> dict:
    return {k: (round(v, 6) if isinstance(v, float) else [round(x, 6) for x in v])
            for k, v in times.items()}


@benchmark
def first_engine_call(ctx: Context) -> list[Measurement]:
    """In this process: the engine's first call (loads the on-disk cache, or compiles)."""
    scenario = wide_scenario(10**3, 10)
    model = lower(scenario)
    seconds = _elapsed(lambda: run_model(model, SEED, 0, scenario.simulation.max_lesions))
    return [Measurement("first_engine_call", "first engine call in this process (cache or compile)",
                        seconds, unit="s",
                        details={"note": "compiles when the kernel changed since the last run"})]


# ---------------------------------------------------------------------------------------------
# The measurements


@benchmark
def engine_vs_raw_draws(ctx: Context) -> list[Measurement]:
    """a. Engine time per compartment-step over the cost of its unavoidable random draws."""
    rows = []
    for cells in (10**3, 10**12):
        m = engine_and_raw(ctx, cells)
        ratio = m["engine_s"]["min"] / m["raw_s"]["min"]
        target = "<= 1.5"
        rows.append(Measurement(
            key=f"a.engine_vs_raw_draws@{cells:.0e}",
            name=f"a. engine / raw BNB draws, {cells:.0e} cells/compartment",
            value=ratio, target=target, met=check(ratio, target),
            details={
                "engine_ns_per_compartment_step": round(m["engine_ns_per_compartment_step"], 1),
                "raw_ns_per_compartment_step": round(m["raw_ns_per_compartment_step"], 1),
                "median_ratio": m["engine_s"]["median"] / m["raw_s"]["median"],
                **m["count"],
                "engine_s": _rounded(m["engine_s"]), "raw_s": _rounded(m["raw_s"]),
            },
        ))
    return rows


@benchmark
def size_independence(ctx: Context) -> list[Measurement]:
    """b. The same scenario at 1e12 and at 1e3 cells per compartment: time ratio."""
    small, large = engine_and_raw(ctx, 10**3), engine_and_raw(ctx, 10**12)
    ratio = large["engine_s"]["min"] / small["engine_s"]["min"]
    spread = max(ratio, 1.0 / ratio)
    target = "<= 1.5"
    return [Measurement(
        key="b.size_independence",
        name="b. engine time 1e12 / 1e3 cells per compartment",
        value=ratio, target=target, met=check(spread, target),
        details={
            "slower_over_faster": spread,
            "engine_ns_per_compartment_step_1e3": round(small["engine_ns_per_compartment_step"], 1),
            "engine_ns_per_compartment_step_1e12": round(large["engine_ns_per_compartment_step"], 1),
            "raw_ratio_1e12_over_1e3": large["raw_s"]["min"] / small["raw_s"]["min"],
            "note": "met uses max(ratio, 1/ratio): a step must cost the same at any size",
        },
    )]


@benchmark
def overhead_split(ctx: Context) -> list[Measurement]:
    """Diagnostic: the engine's time split into a fixed part per step, a part per lesion-step
    and a part per compartment-step, from 64 lesions x 1 clone, 1 x 64 and 1 x 1."""
    steps = ctx.steps // 2
    shapes = {"64x1": (64, 1), "1x64": (1, 64), "1x1": (1, 1)}
    runners = {name: engine_runner(wide_scenario(10**6, steps, lesions=l, clones=k))
               for name, (l, k) in shapes.items()}
    t = {name: v["min"] / steps for name, v in time_interleaved(runners, ctx.repeats).items()}
    # t(L x K) = step + L * lesion + L * K * compartment, per step.
    per_lesion = (t["64x1"] - t["1x64"]) / 63
    per_compartment = (t["1x64"] - t["1x1"]) / 63
    per_step = t["1x1"] - per_lesion - per_compartment
    details = {f"ns_per_compartment_step_{name}": round(t[name] / (k * l) * 1e9, 1)
               for name, (l, k) in shapes.items()}
    raw = ctx.memo.get(("engine_and_raw", 10**12))
    if raw:
        details["raw_draws_ns_per_compartment_step_1e12"] = round(
            raw["raw_ns_per_compartment_step"], 1)
    details["steps"] = steps
    return [
        Measurement("diag.ns_per_step", "diag. engine fixed cost per step", per_step * 1e9,
                    unit=" ns", details=details),
        Measurement("diag.ns_per_lesion_step", "diag. engine cost per lesion-step",
                    per_lesion * 1e9, unit=" ns"),
        Measurement("diag.ns_per_compartment_step", "diag. engine cost per compartment-step",
                    per_compartment * 1e9, unit=" ns"),
    ]


def _mean_check(scenario, totals: list[float]) -> dict:
    """z-score of the mean end burden of some replicates against branching-process theory."""
    t = scenario.simulation.duration_days
    mean = var = 0.0
    for lesion in scenario.lesions.values():
        for name, n0 in lesion.cells.items():
            clone = scenario.clones[name]
            r = clone.birth - clone.death
            growth = math.exp(r * t)
            mean += n0 * growth
            var += n0 * (2 * clone.birth * t if abs(r) < 1e-12
                         else (clone.birth + clone.death) / r * growth * (growth - 1.0))
    observed = float(np.mean(totals))
    return {"theory_mean": mean, "observed_mean": observed,
            "z": (observed - mean) / math.sqrt(var / len(totals)), "replicates": len(totals)}


def _engine_vs_numpy(ctx: Context, key: str, name: str, scenario, target: str) -> Measurement:
    count = count_compartment_steps(scenario)
    reference = simulate_numpy(scenario, seed=SEED)
    same_work = (reference.compartment_steps == count["compartment_steps"]
                 and bool((reference.cells > 0).all()))
    times = time_interleaved(
        {"engine": engine_runner(scenario), "numpy": lambda: simulate_numpy(scenario, seed=SEED)},
        ctx.repeats,
    )
    ratio = times["numpy"]["min"] / times["engine"]["min"]
    n = count["compartment_steps"]
    # A speed comparison means nothing if the two disagree: check both against theory.
    replicates = 4 if ctx.quick else 8
    engine_totals = simulator.run_replicates(scenario, replicates, seed=SEED + 1).cells.sum(axis=1)
    numpy_totals = [simulate_numpy(scenario, seed=SEED + 1, replicate=i).cells.sum()
                    for i in range(replicates)]
    return Measurement(
        key=key, name=name, value=ratio, target=target, met=check(ratio, target),
        details={
            "engine_ns_per_compartment_step": round(times["engine"]["min"] / n * 1e9, 1),
            "numpy_ns_per_compartment_step": round(times["numpy"]["min"] / n * 1e9, 1),
            "numpy_us_per_step": round(times["numpy"]["min"] / count["steps"] * 1e6, 2),
            "same_work": same_work,
            "median_ratio": times["numpy"]["median"] / times["engine"]["median"],
            **count,
            "engine_vs_theory": _mean_check(scenario, list(map(float, engine_totals))),
            "numpy_vs_theory": _mean_check(scenario, list(map(float, numpy_totals))),
            "engine_s": _rounded(times["engine"]), "numpy_s": _rounded(times["numpy"]),
        },
    )


@benchmark
def engine_vs_numpy(ctx: Context) -> list[Measurement]:
    """c. Engine against the plain-NumPy step-by-step reference on the same work."""
    rows = [
        _engine_vs_numpy(ctx, "c.engine_vs_numpy", "c. NumPy reference / engine (16x4, 1e6 cells)",
                         wide_scenario(10**6, ctx.steps), ">= 5"),
        _engine_vs_numpy(ctx, "c.engine_vs_numpy_mutation",
                         "c. NumPy reference / engine, with mutation (16x4)",
                         wide_scenario(10**6, ctx.steps, mutation=1e-6), ">= 5"),
        # Few compartments, reported only: NumPy pays its per-call overhead for little work.
        _engine_vs_numpy(ctx, "c.engine_vs_numpy_small", "c. NumPy reference / engine (2x2, info)",
                         wide_scenario(10**6, ctx.steps, lesions=2, clones=2), ""),
    ]
    if not ctx.quick:
        # Scaling, reported only: NumPy's per-call overhead is amortised over wider arrays.
        rows.append(_engine_vs_numpy(
            ctx, "c.engine_vs_numpy_wide", "c. NumPy reference / engine (64x16, info)",
            wide_scenario(10**6, ctx.steps // 4, lesions=64, clones=16), ""))
    return rows


_STARTUP_PROBE = r"""
import json, sys, time
start = time.perf_counter()
import simulator
imported = time.perf_counter()
scenario = simulator.load_scenario(json.loads(sys.argv[1]))
loaded = time.perf_counter()
simulator.simulate(scenario, seed=1)
first = time.perf_counter()
simulator.simulate(scenario, seed=2)
second = time.perf_counter()
print(json.dumps({"import_s": imported - start, "first_call_s": first - loaded,
                  "second_call_s": second - first}))
"""

# A small but complete drug-free patient: Gompertz growth, mutation and seeding, 60 days.
STARTUP_SCENARIO = {
    "id": "bench-startup",
    "clones": {"sensitive": {"birth": 0.14, "death": 0.13},
               "resistant": {"birth": 0.13, "death": 0.125}},
    "mutations": [{"from": "sensitive", "to": "resistant", "probability": 1e-7}],
    "lesions": {"primary": {"site": "lung", "carrying_capacity": 1e11,
                            "cells": {"sensitive": 1e9, "resistant": 40}}},
    "seeding": {"rate": 2e-11, "site_weights": {"brain": 0.5, "liver": 0.5}},
    "simulation": {"duration_days": 60, "dt_days": 1, "record_every_days": 7,
                   "growth_law": "gompertz"},
}


def _probe(cache_dir: str | None) -> dict:
    """Run the startup probe in a fresh interpreter; ``cache_dir`` None: the default cache."""
    env = dict(os.environ)
    env.pop("NUMBA_CACHE_DIR", None)
    if cache_dir is not None:
        env["NUMBA_CACHE_DIR"] = cache_dir
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", _STARTUP_PROBE, json.dumps(STARTUP_SCENARIO)],
        env=env, capture_output=True, text=True, check=False, cwd=tempfile.gettempdir(),
    )
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"startup probe failed:\n{done.stderr[-2000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["process_wall_s"] = wall
    return result


@benchmark
def startup(ctx: Context) -> list[Measurement]:
    """d. Cold start (numba compiles into an empty cache) and warm start (cache populated)."""
    rows = []
    if ctx.cold:
        # One cold start only: it is long (a full compile of the engine) and varies little.
        with tempfile.TemporaryDirectory(prefix="bench-numba-cache-") as cache:
            cold = _probe(cache)
            warm_runs = [_probe(cache) for _ in range(1 if ctx.quick else 3)]
        cache_used = "fresh temporary NUMBA_CACHE_DIR, populated by the cold start"
        rows += [
            Measurement("d.cold_start_first_call", "d. cold start: first simulate() (compile)",
                        cold["first_call_s"], unit="s", details=cold),
            Measurement("d.cold_start_process", "d. cold start: whole process",
                        cold["process_wall_s"], unit="s"),
        ]
    else:
        # No compile: the warm start uses the ordinary cache, which this process has filled
        # (the first probe fills anything simulate() needs beyond the engine; not counted).
        _probe(None)
        warm_runs = [_probe(None)]
        cache_used = "the default numba cache (cold start skipped: pass --cold)"
    warm = min(warm_runs, key=lambda r: r["first_call_s"])
    return rows + [
        Measurement("d.warm_start_first_call", "d. warm start: first simulate() (cached)",
                    warm["first_call_s"], unit="s", details={"runs": warm_runs, "cache": cache_used}),
        Measurement("d.warm_start_process", "d. warm start: whole process", warm["process_wall_s"],
                    unit="s"),
        Measurement("d.import", "d. import simulator (warm)", warm["import_s"], unit="s"),
        Measurement("d.second_call", "d. second simulate() in the same process",
                    warm["second_call_s"], unit="s"),
    ]


# ---------------------------------------------------------------------------------------------
# Driver


def _format_value(m: Measurement) -> str:
    if m.unit == "s":
        return f"{m.value:.3g} s"
    if m.unit == " ns":
        return f"{m.value:.0f} ns"
    return f"{m.value:.2f}{m.unit}"


def print_table(rows: list[Measurement]) -> None:
    width = max(len(r.name) for r in rows)
    header = f"{'measurement':<{width}}  {'value':>10}  {'target':>8}  met"
    print(header)
    print("-" * len(header))
    for r in rows:
        met = "-" if r.met is None else ("yes" if r.met else "NO")
        print(f"{r.name:<{width}}  {_format_value(r):>10}  {r.target or '-':>8}  {met}")


def _git_commit() -> str:
    try:
        out = subprocess.run(["git", "-C", str(HERE.parent), "rev-parse", "HEAD"],
                             capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(HERE.parent), "status", "--porcelain", "simulator"],
                               capture_output=True, text=True, check=True).stdout.strip()
        return out + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


# ---------------------------------------------------------------------------------------------
# Clinic, cohorts and sweeps

CLINIC_SCENARIO = "egfr-first-line-gefitinib"


@benchmark
def monitoring_and_rules(ctx: Context) -> list[Measurement]:
    """Cost per patient of visits (CT, RECIST, marker, ctDNA) and built-in rules."""
    # Rules that never change the course (no switch, no local therapy), so both runs do the
    # same cell dynamics and the difference is the clinic's own cost.
    base = {"simulation.duration_days": 1095.0, "policy.switch_on_progression": False}
    with_clinic = simulator.load_scenario(CLINIC_SCENARIO, base)
    without = simulator.load_scenario(CLINIC_SCENARIO, {**base, "monitoring.enabled": False})
    runners = {name: engine_runner(scenario) for name, scenario in
               (("with", with_clinic), ("without", without))}
    t = time_interleaved(runners, ctx.repeats)
    ratio = t["with"]["min"] / t["without"]["min"]
    per_patient = _elapsed(lambda: simulator.simulate(with_clinic, seed=SEED))
    return [
        Measurement("clinic.overhead", "monitoring + rules / engine alone, per patient", ratio,
                    target="<= 1.3", met=check(ratio, "<= 1.3"),
                    details={"engine_with_s": t["with"]["min"], "engine_without_s": t["without"]["min"],
                             "note": "3 years, visits every 6 weeks, the same patient, no line switch"}),
        Measurement("clinic.patient_s", "one patient, engine + result tables (3 years)",
                    per_patient, unit="s"),
    ]


def _cohort_seconds(workers: int, n: int) -> float:
    from simulator.cohort import run_cohort

    scenario = simulator.load_scenario(CLINIC_SCENARIO)
    run_cohort(scenario, n=2 * workers, workers=workers)  # start-up and caches
    return _elapsed(lambda: run_cohort(scenario, n=n, workers=workers))


@benchmark
def cohort_throughput(ctx: Context) -> list[Measurement]:
    """Cohort of the calibrated scenario: patients per second on 1 and 2 workers."""
    n = 100 if ctx.quick else 400
    one, two = _cohort_seconds(1, n), _cohort_seconds(2, n)
    efficiency = one / two
    return [
        Measurement("cohort.rate_1", "cohort: patients per second, 1 worker", n / one, unit="/s"),
        Measurement("cohort.rate_2", "cohort: patients per second, 2 workers", n / two, unit="/s"),
        Measurement("cohort.speedup_2", "cohort: speed-up of 2 workers over 1", efficiency,
                    target=">= 1.7", met=check(efficiency, ">= 1.7"), details={"patients": n}),
    ]


def _stepping_run(scenario, n: int) -> dict:
    """Engine work and time for ``n`` patients of ``scenario`` (history and course)."""
    from simulator import history, runner
    from simulator.cohort import patient_scenario
    from simulator.engine.kernel import COUNT_COMPARTMENT_STEPS, COUNT_LINEAGES, COUNT_STEPS
    from simulator.lowering import lower

    patients = [patient_scenario(scenario, patient=i)[0] for i in range(n)]
    totals = dict(steps=0, compartment_steps=0, lineages=0, years=0.0)
    started = time.perf_counter()
    for i, patient in enumerate(patients):
        model = lower(patient)
        diagnosis = history.grow_to_diagnosis(patient, model, SEED, i)
        course = history.at_diagnosis(model, diagnosis)._replace(record_every=patient.simulation.n_steps)
        for buffers in (diagnosis.buffers, runner.run_model(course, SEED, i, 2 * diagnosis.cells.shape[0] + 64)):
            totals["steps"] += int(buffers.counters[COUNT_STEPS])
            totals["compartment_steps"] += int(buffers.counters[COUNT_COMPARTMENT_STEPS])
            totals["lineages"] += int(buffers.counters[COUNT_LINEAGES])
            totals["years"] += float(buffers.record_time[int(buffers.counters[1]) - 1]
                                     - buffers.record_time[0]) / 365.25
    totals["seconds"] = time.perf_counter() - started
    return totals


@benchmark
def joined_steps(ctx: Context) -> list[Measurement]:
    """The main scenario with the engine's joined steps against fixed steps of dt (history
    and course, the same patients): work per patient-year and patients per second."""
    n = 20 if ctx.quick else 100
    joined = simulator.load_scenario(CLINIC_SCENARIO)
    fixed = simulator.load_scenario(CLINIC_SCENARIO, {"simulation.max_step_days": 0.0})
    _stepping_run(joined, 2), _stepping_run(fixed, 2)  # compile and warm
    runs = {"joined": _stepping_run(joined, n), "fixed": _stepping_run(fixed, n)}
    per_year = {name: {key: run[key] / run["years"] for key in ("steps", "compartment_steps", "lineages")}
                for name, run in runs.items()}
    fewer = per_year["fixed"]["lineages"] / per_year["joined"]["lineages"]
    speedup = runs["fixed"]["seconds"] / runs["joined"]["seconds"]
    details = {"patients": n, **{f"{name}_{key}_per_patient_year": round(value, 1)
                                 for name, values in per_year.items() for key, value in values.items()},
               **{f"{name}_engine_patients_per_s": round(n / run["seconds"], 2) for name, run in runs.items()}}
    return [
        Measurement("stepping.fewer_draws", "main scenario: lineage draws per patient-year, fixed / joined",
                    fewer, target=">= 5", met=check(fewer, ">= 5"), details=details),
        Measurement("stepping.speedup", "main scenario: engine time per patient, fixed / joined", speedup),
    ]


@benchmark
def history_cost(ctx: Context) -> list[Measurement]:
    """The main scenario per patient: the pre-diagnosis history against the course after it."""
    from simulator import history, runner
    from simulator.cohort import patient_scenario
    from simulator.lowering import lower

    base = simulator.load_scenario(CLINIC_SCENARIO)
    patients = [patient_scenario(base, patient=i)[0] for i in range(20 if ctx.quick else 100)]
    grown = []
    started = time.perf_counter()
    for i, scenario in enumerate(patients):
        model = lower(scenario)
        grown.append((scenario, model, history.grow_to_diagnosis(scenario, model, SEED, i)))
    history_seconds = time.perf_counter() - started
    started = time.perf_counter()
    for i, (scenario, model, diagnosis) in enumerate(grown):
        course = history.at_diagnosis(model, diagnosis)._replace(record_every=scenario.simulation.n_steps)
        runner.run_model(course, SEED, i, 2 * diagnosis.cells.shape[0] + 64)
    course_seconds = time.perf_counter() - started
    n = len(patients)
    lesions = float(np.median([d.cells.shape[0] for _, _, d in grown]))
    return [
        Measurement("history.per_patient_ms", "main scenario: history before diagnosis, ms per patient",
                    1e3 * history_seconds / n, unit="ms", details={"median_lesions_at_diagnosis": lesions}),
        Measurement("course.per_patient_ms", "main scenario: engine course after diagnosis, ms per patient",
                    1e3 * course_seconds / n, unit="ms"),
    ]


def _sweep_seconds(executor: str, workers: int, replicates: int, scheduler: str | None = None) -> float:
    import tempfile

    from simulator.sweep import run_sweep

    scenario = simulator.load_scenario(CLINIC_SCENARIO)
    grid = {"clones.T790M.death": "0.095,0.1,0.105,0.11"}
    with tempfile.TemporaryDirectory() as directory:
        return _elapsed(lambda: run_sweep(scenario, Path(directory) / "s", grid=grid, replicates=replicates,
                                          executor=executor, workers=workers, scheduler=scheduler))


@benchmark
def sweep_scaling(ctx: Context) -> list[Measurement]:
    """Sweep throughput on 1 and 2 local workers, and a Dask LocalCluster against local."""
    replicates = 25 if ctx.quick else 100
    one = _sweep_seconds("local", 1, replicates)
    two = _sweep_seconds("local", 2, replicates)
    rows = [
        Measurement("sweep.rate_1", "sweep: simulations per second, 1 worker", 4 * replicates / one, unit="/s"),
        Measurement("sweep.speedup_2", "sweep: speed-up of 2 local workers over 1", one / two,
                    target=">= 1.7", met=check(one / two, ">= 1.7")),
    ]
    try:
        import distributed  # noqa: F401
    except ImportError:
        return rows
    from distributed import Client, LocalCluster

    started = time.perf_counter()
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                      host="127.0.0.1") as cluster, Client(cluster):
        _sweep_seconds("dask", 2, 2, cluster.scheduler_address)  # workers load the engine
        warm = time.perf_counter() - started
        dask = _sweep_seconds("dask", 2, replicates, cluster.scheduler_address)
    overhead = dask / two - 1.0
    rows.append(Measurement("sweep.dask_overhead", "sweep: Dask LocalCluster(2) time over local(2) - 1",
                            overhead, unit="", target="<= 0.15", met=check(overhead, "<= 0.15"),
                            details={"dask_s": dask, "local_s": two, "cluster_start_and_warm_s": warm,
                                     "note": "running cluster, workers warm; start-up reported apart"}))
    rows.append(Measurement("sweep.dask_start", "sweep: starting a Dask LocalCluster(2), warm", warm,
                            unit="s"))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="smaller work and no cold start, well under a minute")
    parser.add_argument("--cold", action="store_true",
                        help="with --quick: measure the cold start too (a full compile)")
    parser.add_argument("--json", type=Path, default=HERE / "results.json", help="output file")
    parser.add_argument("--only", nargs="+", metavar="NAME",
                        help="run only these benchmarks (function names, see --list)")
    parser.add_argument("--skip", nargs="+", default=[], metavar="NAME",
                        help="leave these benchmarks out (e.g. --skip startup)")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    args = parser.parse_args(argv)
    if args.list:
        for function in BENCHMARKS:
            print(f"{function.__name__:<22} {(function.__doc__ or '').strip().splitlines()[0]}")
        return 0
    known = [f.__name__ for f in BENCHMARKS]
    for name in (args.only or []) + args.skip:
        if name not in known:
            parser.error(f"unknown benchmark '{name}'; known: {', '.join(known)}")
    selected = [f for f in BENCHMARKS
                if (not args.only or f.__name__ in args.only) and f.__name__ not in args.skip]

    ctx = Context(quick=args.quick, cold=not args.quick or args.cold)
    load_before = _load_average()
    started = time.perf_counter()
    rows: list[Measurement] = []
    for function in selected:
        t0 = time.perf_counter()
        rows.extend(function(ctx))
        print(f"[{function.__name__}: {time.perf_counter() - t0:.1f} s]", file=sys.stderr)
    print()
    print_table(rows)
    total = time.perf_counter() - started
    print(f"\n{len(rows)} measurements in {total:.0f} s ({'quick' if args.quick else 'full'})")

    report = {
        "meta": {
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "quick": args.quick,
            "cold_start_measured": ctx.cold,
            "seconds": round(total, 1),
            "simulator_version": simulator.__version__,
            "simulator_path": str(Path(simulator.__file__).parent),
            "git_commit": _git_commit(),
            "python": platform.python_version(),
            "numpy": np.__version__,
            "numba": numba.__version__,
            "machine": platform.machine(),
            "processor": platform.processor(),
            "cpus": os.cpu_count(),
            # Other work on the machine skews timings: judge a run by these.
            "load_average_1min_before_after": [load_before, _load_average()],
            "steps": ctx.steps,
            "repeats": ctx.repeats,
            "dt_days": DT,
        },
        "measurements": [asdict(r) for r in rows],
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2, default=_json_default) + "\n")
    print(f"wrote {args.json}")
    return 0


def _load_average() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value)}")


if __name__ == "__main__":
    sys.exit(main())
