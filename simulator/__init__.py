"""Stochastic simulator of tumour heterogeneity and clonal evolution under therapy."""

__version__ = "0.1.0"

from simulator.cohort import CohortResult, patient_scenario, run_cohort  # noqa: E402
from simulator.policy import LocalTherapy, PolicyError, StartDrug, StopDrug, SwitchLine, Visit  # noqa: E402
from simulator.results import PatientResult  # noqa: E402
from simulator.runner import Replicates, run_replicates, simulate  # noqa: E402
from simulator.scenario import (  # noqa: E402
    Scenario,
    ScenarioError,
    load_scenario,
    scenario_json_schema,
)
from simulator.sweep import Sweep, SweepResult, open_sweep, run_sweep  # noqa: E402

__all__ = [
    "CohortResult",
    "LocalTherapy",
    "PatientResult",
    "PolicyError",
    "Replicates",
    "Scenario",
    "ScenarioError",
    "StartDrug",
    "StopDrug",
    "Sweep",
    "SweepResult",
    "SwitchLine",
    "Visit",
    "load_scenario",
    "open_sweep",
    "patient_scenario",
    "run_cohort",
    "run_replicates",
    "run_sweep",
    "scenario_json_schema",
    "simulate",
]
