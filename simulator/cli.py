"""Command-line interface: thin commands over the public API."""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path

import click

from simulator.catalog import DEFAULT_SCENARIO
from simulator.scenario import ScenarioError, load_scenario, parse_value, scenario_json_schema


class UsageProblem(click.ClickException):
    """Bad input: one line on stderr and exit code 2."""

    exit_code = 2

    def show(self, file=None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


def friendly_errors(command):
    """Turn bad-input exceptions into one line and exit code 2 (a traceback with --debug)."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except (ScenarioError, ValueError) as error:
            if click.get_current_context().find_root().params.get("debug"):
                raise
            raise UsageProblem(str(error)) from None

    return wrapper


def parse_overrides(assignments: tuple[str, ...]) -> dict:
    overrides = {}
    for assignment in assignments:
        path, separator, value = assignment.partition("=")
        if not separator or not path:
            raise UsageProblem(f"--set: expected PATH=VALUE, got '{assignment}'")
        overrides[path.strip()] = parse_value(value.strip())
    return overrides


def prepare_output_directory(out: Path) -> None:
    """Refuse a directory that holds something other than a previous run's files."""
    if out.exists() and not out.is_dir():
        raise UsageProblem(f"--out: '{out}' exists and is not a directory")
    if out.exists() and any(out.iterdir()) and not (out / "provenance.json").exists():
        raise UsageProblem(f"--out: '{out}' exists with other content; choose an empty or new directory")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show full tracebacks on errors.")
@click.version_option(package_name="simulator")
def main(debug: bool) -> None:
    """Stochastic simulator of tumour heterogeneity and clonal evolution under therapy."""


@main.command()
@click.argument("scenario", required=False, default=DEFAULT_SCENARIO)
@click.option("--seed", type=int, default=None, help="Seed (default: the scenario's).")
@click.option("--replicate", type=click.IntRange(min=0), default=0, help="Replicate index.")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Directory for Parquet and provenance files.")
@click.option("--set", "assignments", multiple=True, metavar="PATH=VALUE", help="Override a scenario parameter, e.g. clones.resistant.birth=0.12.")
@friendly_errors
def run(scenario: str, seed: int | None, replicate: int, out: Path | None, assignments: tuple[str, ...]) -> None:
    """Simulate one patient of SCENARIO (a TOML file or catalog id; default: the teaching scenario)."""
    from simulator.runner import simulate

    resolved = load_scenario(scenario, parse_overrides(assignments))
    if seed is not None and seed < 0:
        raise UsageProblem(f"--seed: must be >= 0, got {seed}")
    if out is not None:
        prepare_output_directory(out)
    result = simulate(resolved, seed=seed, replicate=replicate)
    click.echo(result.summary())
    if out is not None:
        result.write(out)
        click.echo(f"wrote {out}/")


@main.command()
@click.argument("scenario")
@click.option("--set", "assignments", multiple=True, metavar="PATH=VALUE")
@friendly_errors
def validate(scenario: str, assignments: tuple[str, ...]) -> None:
    """Check a scenario file; print 'ok' or one line naming what is wrong."""
    resolved = load_scenario(scenario, parse_overrides(assignments))
    click.echo(f"ok: {resolved.id} ({len(resolved.clones)} clone types, {len(resolved.lesions)} lesions)")


@main.command()
def schema() -> None:
    """Print the JSON Schema of scenario files."""
    click.echo(json.dumps(scenario_json_schema(), indent=2))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
