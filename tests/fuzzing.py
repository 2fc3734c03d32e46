"""Generated scenarios and ``--set`` values, and the one property every case must have.

A case is either refused before any work (``ScenarioError`` from the API; one line and exit
code 2 from the command line, nothing written) or runs to its end with finite, non-negative
outputs. Used by ``tests/test_fuzz.py`` (a small profile) and ``scripts/fuzz.py`` (a large one).

Scenarios are drawn valid-looking first and then damaged at a few leaves with values from
the edges of every type (0, tiny, huge, inf, NaN, negative, bools, strings, tables), so both
the validator and the engine behind it are exercised.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from hypothesis import strategies as st

from simulator.scenario import ScenarioError, get_path, load_scenario, set_path

SITES = ["lung", "brain", "liver", "bone", "adrenal"]

# Columns that may hold NaN by definition (a missing value, not a computed non-finite one).
MAY_BE_MISSING = {
    ("clones", "first_seen"),  # the type never appeared
    ("endpoints", "relative_dose"),  # no drug was due
    ("visits", "sum_diameters_mm"),  # no target lesion at this visit
}
# Columns that may be infinite by definition.
MAY_BE_INFINITE = {("endpoints", "untreated_doubling_days")}  # a tumour that does not grow
# Columns that may be negative by definition.
MAY_BE_NEGATIVE = {("visits", "visit"), ("observations", "visit"),
                   ("lesions", "born"), ("events", "time"), ("trajectory", "time")}  # before diagnosis

NASTY_NUMBERS = [0, 0.0, -0.0, 1, -1, -5, 0.5, 1.5, 1e-300, 5e-324, 1e-12, 1e-6, 1e6, 1e9, 1e12, 1e15,
                 1e16, 1e18, 1e19, 2**63, 1e30, 1e300, 1.7e308, math.inf, -math.inf, math.nan, 36525, 36526]
NASTY_OTHERS = [True, False, "yes", "", "0", None, [], [1, 2], {}, {"x": 1}]
# The edges of the schema's bounds: accepted, so they test the engine behind the validator.
EDGE_NUMBERS = [1e-4, 1e-3, 1e-6, 0.01, 0.99, 10, 20, 100, 1e3, 1e4, 1e5, 1e6, 1e9, 1e11, 1e13, 1e15,
                1e18, 36525, 2**18, 2**62]


def nasty() -> st.SearchStrategy:
    return st.one_of(st.sampled_from(NASTY_NUMBERS), st.sampled_from(NASTY_OTHERS),
                     st.floats(allow_nan=True, allow_infinity=True), st.integers(-2**70, 2**70),
                     st.sampled_from(EDGE_NUMBERS), st.sampled_from(EDGE_NUMBERS))


def log_uniform(low: float, high: float) -> st.SearchStrategy:
    return st.floats(math.log10(low), math.log10(high)).map(lambda e: float(10 ** e))


@st.composite
def scenarios(draw, max_days: float = 400.0) -> dict:
    """A raw scenario (a dict shaped as its TOML), plausible in shape and mostly in value."""
    n_clones = draw(st.integers(1, 4))
    names = [f"c{i}" for i in range(n_clones)]
    clones = {name: {"birth": draw(st.floats(0, 0.5)), "death": draw(st.floats(0, 0.5)),
                     "resistance": draw(st.sampled_from(["", "T790M", "MET"]))} for name in names}
    mutations = []
    for source in names:
        for target in names:
            if source != target and draw(st.booleans()):
                mutations.append({"from": source, "to": target, "probability": draw(log_uniform(1e-9, 1e-3))})
    lesions = {}
    for index in range(draw(st.integers(1, 3))):
        cells = {name: int(draw(log_uniform(1, 1e11))) for name in names if draw(st.booleans())} or {names[0]: 1000}
        lesions[f"l{index}"] = {"site": draw(st.sampled_from(SITES)), "cells": cells,
                                "carrying_capacity": draw(log_uniform(1e6, 1e13))}
    dt = draw(st.sampled_from([0.25, 0.5, 1.0, 2.0]))
    steps = draw(st.integers(1, int(max_days / dt)))
    drugs = {}
    for index in range(draw(st.integers(0, 2))):
        effects = {name: {"birth_inhibition": draw(st.floats(0, 1)), "death_increase": draw(st.floats(0, 0.5))}
                   for name in names if draw(st.booleans())}
        drugs[f"d{index}"] = {
            "half_life_days": draw(log_uniform(0.01, 30)),
            "absorption_half_life_days": draw(st.sampled_from([0.0, 0.1, 1.0])),
            "ec50": draw(log_uniform(1e-3, 10)), "hill": draw(log_uniform(0.1, 10)),
            "penetration": {draw(st.sampled_from(SITES)): draw(st.floats(0, 2))},
            "effects": effects,
        }
    lines = {}
    for index in range(draw(st.integers(0, 3)) if drugs else 0):
        dosing = [{"drug": draw(st.sampled_from(list(drugs))), "dose": draw(st.floats(0, 3)),
                   "every_days": dt * draw(st.integers(1, 7))}]
        if draw(st.booleans()):
            cycle = draw(st.integers(2, 10))
            dosing[0] |= {"cycle_days": dt * cycle, "active_days": dt * draw(st.integers(1, cycle))}
        lines[f"line{index}"] = {"dosing": dosing}
    raw = {
        "clones": clones, "mutations": mutations, "lesions": lesions,
        "seeding": {"rate": draw(st.sampled_from([0.0, 1e-12, 1e-10])),
                    "site_weights": {site: 1.0 for site in draw(st.lists(st.sampled_from(SITES), min_size=1, max_size=3))}},
        "drugs": drugs,
        "therapy": {"start_day": dt * draw(st.integers(0, steps)), "lines": lines},
        "monitoring": {"enabled": draw(st.booleans()), "visit_every_days": dt * draw(st.integers(1, 60)),
                       "cells_per_cm3": draw(log_uniform(1e7, 1e10))},
        "policy": {"oligoprogression": {"enabled": draw(st.booleans())},
                   "holiday": {"enabled": (holiday := draw(st.booleans()))},
                   "adaptive": {"enabled": (not holiday) and draw(st.booleans())},
                   "consolidation": {"enabled": draw(st.booleans())}},
        "simulation": {"duration_days": dt * steps, "dt_days": dt, "record_every_days": dt * draw(st.integers(1, 10)),
                       "growth_law": draw(st.sampled_from(["exponential", "logistic", "gompertz"])),
                       "lethal_burden": draw(log_uniform(1e8, 1e13)), "seed": draw(st.integers(0, 2**32))},
    }
    if draw(st.booleans()):
        item = {"day": dt * draw(st.integers(0, steps)), "lesion": "l0",
                "modality": draw(st.sampled_from(["surgery", "radiotherapy", "ablation"]))}
        raw["scheduled_local_therapy"] = [item]
    return raw


def leaves(raw: Any, prefix: str = "") -> list[str]:
    """Dotted paths of every value in ``raw`` (list items by index)."""
    if isinstance(raw, dict):
        items = raw.items()
    elif isinstance(raw, list):
        items = ((str(index), item) for index, item in enumerate(raw))
    else:
        return [prefix]
    paths = []
    for key, value in items:
        paths += leaves(value, f"{prefix}.{key}" if prefix else str(key))
    return paths


@st.composite
def damaged(draw, base: st.SearchStrategy | None = None) -> tuple[dict, list[tuple[str, Any]]]:
    """A generated scenario with 0 to 3 of its leaves set to edge values (the changes kept
    for the report)."""
    raw = draw(base if base is not None else scenarios())
    changes = []
    paths = leaves(raw)
    for _ in range(draw(st.integers(0, 3))):
        path = draw(st.sampled_from(paths))
        value = copy.deepcopy(draw(nasty()))  # the edge values are shared: never damage them
        set_path(raw, path, value)
        changes.append((path, value))
        paths = leaves(raw)
    return raw, changes


DISTRIBUTIONS = st.one_of(
    st.fixed_dictionaries({"distribution": st.just("lognormal"), "median": log_uniform(1e-3, 1e12),
                           "sigma": st.one_of(st.floats(0.01, 3), st.sampled_from([1e300, 50.0, -1.0]))}),
    st.fixed_dictionaries({"distribution": st.just("poisson"), "mean": st.one_of(log_uniform(1, 1e9),
                                                                                  st.sampled_from([1e300, 0.0]))}),
    st.fixed_dictionaries({"distribution": st.just("uniform"), "low": st.floats(-1, 1), "high": st.floats(0, 2)}),
    st.fixed_dictionaries({"distribution": st.just("normal"), "mean": st.floats(-1, 1), "sd": log_uniform(1e-3, 1e300)},
                          optional={"low": st.floats(-1, 1), "high": st.floats(0, 2)}),
    st.fixed_dictionaries({"distribution": st.just("choice"), "values": st.lists(nasty(), min_size=1, max_size=3)}),
)


@st.composite
def cohorts(draw) -> dict:
    """A generated scenario with distributions over some of its numeric parameters."""
    raw = draw(scenarios(max_days=150.0))
    numeric = [p for p in leaves(raw) if isinstance(get_path(raw, p), (int, float))
               and not isinstance(get_path(raw, p), bool)]
    chosen = draw(st.lists(st.sampled_from(numeric), min_size=1, max_size=3, unique=True))
    raw["cohort"] = {"parameters": {path: draw(DISTRIBUTIONS) for path in chosen}}
    return raw


# --- the property -----------------------------------------------------------------------------


@dataclass
class Outcome:
    refused: bool
    message: str = ""
    problems: tuple[str, ...] = ()


def check_one_line(message: str) -> list[str]:
    problems = []
    if not message or "\n" in message.strip():
        problems.append(f"refusal is not one line: {message!r}")
    if "Traceback" in message:
        problems.append("refusal shows a traceback")
    return problems


def run_case(raw: dict, seed: int = 1, keep_trajectory: bool = True) -> Outcome:
    """Validate, and if accepted simulate one patient; report what is wrong, if anything."""
    from simulator.runner import simulate

    try:
        scenario = load_scenario(raw)
    except ScenarioError as error:
        return Outcome(True, str(error), tuple(check_one_line(str(error))))
    result = simulate(scenario, seed=seed, keep_trajectory=keep_trajectory)
    tables = {name: getattr(result, name) for name in ("trajectory", "events", "visits", "observations",
                                                       "lesions", "clones")}
    tables["endpoints"] = pd.DataFrame([{k: v for k, v in result.endpoints.items()
                                         if isinstance(v, (int, float, np.number))}])
    return Outcome(False, problems=tuple(table_problems(tables)))


def run_cohort_case(raw: dict, n: int = 3) -> Outcome:
    from simulator.cohort import run_cohort

    try:
        scenario = load_scenario(raw)
    except ScenarioError as error:
        return Outcome(True, str(error), tuple(check_one_line(str(error))))
    result = run_cohort(scenario, n=n)
    endpoints = result.endpoints.select_dtypes(include="number").drop(
        columns=[c for c in result.endpoints if c in raw["cohort"]["parameters"]], errors="ignore")
    return Outcome(False, problems=tuple(table_problems({"endpoints": endpoints, "events": result.events})))


def table_problems(tables: dict[str, pd.DataFrame]) -> list[str]:
    """Non-finite or negative numbers in any numeric column, beyond what is defined."""
    problems = []
    for name, table in tables.items():
        for column in table.columns:
            values = table[column]
            if values.dtype == bool or not pd.api.types.is_numeric_dtype(values):
                continue
            numbers = values.to_numpy(dtype=float)
            missing = np.isnan(numbers)
            per_line = name == "endpoints" and column.startswith("pfs_") and column not in ("pfs_days", "pfs2_days")
            if missing.any() and (name, column) not in MAY_BE_MISSING and not per_line:  # a line never taken
                problems.append(f"{name}.{column}: {int(missing.sum())} NaN")
            if np.isinf(numbers).any() and (name, column) not in MAY_BE_INFINITE:
                problems.append(f"{name}.{column}: infinite values")
            if (numbers[~missing] < 0).any() and (name, column) not in MAY_BE_NEGATIVE:
                problems.append(f"{name}.{column}: negative values (min {numbers[~missing].min():g})")
    return problems


# --- --set from the command line ----------------------------------------------------------------

SET_TEXTS = ["0", "-1", "1", "0.5", "1e-12", "1e300", "-1e300", "inf", "nan", "true", "false", "'yes'",
             "yes", "", "[1, 2]", "[]", "{x = 1}", "1979-05-27", "'lung'", "2e15", "9223372036854775808",
             "1e5", "36525", "36526", "0.0001", "\"\\u00e9\""]


@st.composite
def set_arguments(draw, paths: list[str]) -> list[str]:
    """1 or 2 ``--set PATH=VALUE`` texts: existing paths, paths one level too deep, misspelt
    paths, with values in TOML and not."""
    out = []
    for _ in range(draw(st.integers(1, 2))):
        path = draw(st.sampled_from(paths))
        shape = draw(st.sampled_from(["as is", "as is", "deeper", "misspelt", "parent"]))
        if shape == "deeper":
            path += "." + draw(st.sampled_from(["x", "0", "birth"]))
        elif shape == "misspelt":
            path = path[:-1] + "q"
        elif shape == "parent" and "." in path:
            path = path.rpartition(".")[0]
        value = draw(st.one_of(st.sampled_from(SET_TEXTS), st.floats(allow_nan=True).map(repr),
                               st.text(max_size=8)))
        out.append(f"{path}={value}")
    return out


# --- the edges of every bound -------------------------------------------------------------------


def schema_bounds(schema: dict, path: str) -> list[float]:
    """The numeric bounds the JSON schema states for the field at ``path`` (inclusive ones as
    they are, exclusive ones nudged inside)."""
    node = schema
    for key in path.split("."):
        node = _resolve(schema, node)
        if "properties" in node and key in node["properties"]:
            node = node["properties"][key]
        elif isinstance(node.get("additionalProperties"), dict):
            node = node["additionalProperties"]
        elif "items" in node:
            node = node["items"]
        else:
            return []
    bounds = []
    for option in [_resolve(schema, node), *(_resolve(schema, o) for o in node.get("anyOf", []))]:
        for key, nudge in (("minimum", 0), ("maximum", 0), ("exclusiveMinimum", 1), ("exclusiveMaximum", -1)):
            if key in option:
                value = float(option[key])
                bounds.append(value if not nudge else math.nextafter(value, nudge * math.inf))
    return bounds


def _resolve(schema: dict, node: dict) -> dict:
    while "$ref" in node:
        node = schema["$defs"][node["$ref"].rsplit("/", 1)[-1]]
    if "anyOf" in node:
        refs = [o for o in node["anyOf"] if "$ref" in o]
        if refs:
            return _resolve(schema, refs[0])
    return node
