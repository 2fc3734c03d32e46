"""Stochastic simulator of tumour heterogeneity and clonal evolution under therapy."""

import importlib

__version__ = "0.1.0"

# The public API, imported on first use so that light commands (``simulator --help``,
# ``validate``) do not load the engine and numba.
_EXPORTS = {
    "CohortResult": "simulator.cohort",
    "patient_scenario": "simulator.cohort",
    "run_cohort": "simulator.cohort",
    "LocalTherapy": "simulator.policy",
    "PolicyError": "simulator.policy",
    "StartDrug": "simulator.policy",
    "StopDrug": "simulator.policy",
    "SwitchLine": "simulator.policy",
    "Visit": "simulator.policy",
    "PatientResult": "simulator.results",
    "Replicates": "simulator.runner",
    "run_replicates": "simulator.runner",
    "simulate": "simulator.runner",
    "Scenario": "simulator.scenario",
    "ScenarioError": "simulator.scenario",
    "load_scenario": "simulator.scenario",
    "scenario_json_schema": "simulator.scenario",
    "Sweep": "simulator.sweep",
    "SweepResult": "simulator.sweep",
    "open_sweep": "simulator.sweep",
    "run_sweep": "simulator.sweep",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'simulator' has no attribute '{name}'")


def __dir__():
    return sorted([*globals(), *_EXPORTS])
