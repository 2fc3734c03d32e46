"""Stochastic simulator of tumour heterogeneity and clonal evolution under therapy."""

__version__ = "0.1.0"

from simulator.results import PatientResult  # noqa: E402
from simulator.runner import Replicates, run_replicates, simulate  # noqa: E402
from simulator.scenario import (  # noqa: E402
    Scenario,
    ScenarioError,
    load_scenario,
    scenario_json_schema,
)

__all__ = [
    "PatientResult",
    "Replicates",
    "Scenario",
    "ScenarioError",
    "load_scenario",
    "run_replicates",
    "scenario_json_schema",
    "simulate",
]
