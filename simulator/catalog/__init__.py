"""The scenario catalog: one TOML file per scenario, named by its stable id.

The catalog lives inside the package so an installed simulator finds it wherever it runs.
"""

from importlib import resources
from pathlib import Path

DEFAULT_SCENARIO = "egfr-first-line-gefitinib"


def catalog_ids() -> list[str]:
    return sorted(p.name.removesuffix(".toml") for p in _folder().iterdir() if p.name.endswith(".toml"))


def catalog_path(scenario_id: str) -> Path | None:
    path = _folder() / f"{scenario_id}.toml"
    return path if path.exists() else None


def _folder() -> Path:
    return Path(str(resources.files("simulator.catalog")))
