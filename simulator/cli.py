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
@click.option("--no-figures", is_flag=True, help="Do not draw figures into --out.")
@friendly_errors
def run(scenario: str, seed: int | None, replicate: int, out: Path | None, assignments: tuple[str, ...],
        no_figures: bool) -> None:
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
        if not no_figures:
            from simulator.plots import save_patient_figures

            save_patient_figures(result, out)
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
@click.argument("scenario", required=False, default=DEFAULT_SCENARIO)
@click.option("-n", "--patients", "n", type=int, default=100, show_default=True, help="Virtual patients.")
@click.option("--seed", type=int, default=None, help="Seed (default: the scenario's).")
@click.option("--workers", type=int, default=1, show_default=True, help="Processes (results do not depend on it).")
@click.option("--arm", "arms", multiple=True, help="Arm to run (repeat; default: every arm of the scenario).")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Directory for tables, figures and provenance.")
@click.option("--set", "assignments", multiple=True, metavar="PATH=VALUE", help="Override a scenario parameter.")
@click.option("--compare-reference", is_flag=True, help="Print observed metrics beside the scenario's published ranges.")
@click.option("--keep-trajectories", is_flag=True, help="Keep every patient's full result in memory (costly).")
@click.option("--no-figures", is_flag=True, help="Do not draw figures into --out.")
@friendly_errors
def cohort(scenario, n, seed, workers, arms, out, assignments, compare_reference, keep_trajectories, no_figures):
    """Simulate a virtual cohort of SCENARIO, in every arm, and summarise it."""
    from simulator.cohort import run_cohort

    resolved = load_scenario(scenario, parse_overrides(assignments))
    if n <= 0:
        raise UsageProblem(f"-n: must be > 0, got {n}")
    if workers <= 0:
        raise UsageProblem(f"--workers: must be > 0, got {workers}")
    if seed is not None and seed < 0:
        raise UsageProblem(f"--seed: must be >= 0, got {seed}")
    if out is not None:
        prepare_output_directory(out)
    result = run_cohort(resolved, n=n, seed=seed, workers=workers, arms=list(arms) or None,
                        progress=sys.stderr.isatty(), keep_results=keep_trajectories)
    click.echo(format_cohort(result, compare_reference))
    if out is not None:
        result.write(out)
        if not no_figures:
            from simulator.plots import save_cohort_figures

            save_cohort_figures(result.endpoints, result.events, out)
        click.echo(f"wrote {out}/")


def format_cohort(result, compare_reference: bool) -> str:
    import pandas as pd

    lines = [f"cohort of {result.endpoints['patient'].nunique()} patients, seed {result.seed}, "
             f"arms: {', '.join(result.arms)}"]
    with pd.option_context("display.width", 160, "display.max_columns", 40, "display.precision", 3):
        summary = result.summary().set_index("arm")
        mechanisms = summary.pop("mechanisms_at_first_progression")
        lines.append(summary.T.to_string())
        lines.append("mechanisms at first progression (re-biopsy):")
        lines += [f"  {arm}: {text or '-'}" for arm, text in mechanisms.items()]
        if len(result.arms) > 1:
            lines.append("\ncomparison with the first arm (paired: same virtual patients):")
            lines.append(result.comparisons().set_index(["arm", "endpoint"]).T.to_string())
        if compare_reference:
            if not result.scenario.reference:
                lines.append("\n(this scenario gives no reference ranges)")
            else:
                table = result.compare_reference()
                lines.append("\nobserved against reference (95% CI; doubling time: interquartile range):")
                lines.append(table[["arm", "metric", "observed", "ci_low", "ci_high", "reference_low",
                                    "reference_high", "within"]].to_string(index=False))
    return "\n".join(lines)


@main.command()
@click.argument("scenario")
@click.option("--grid", "grid", multiple=True, metavar="PATH=VALUES",
              help="Parameter and values: a,b,c | lin:START:STOP:N | log:START:STOP:N | range:LOW:HIGH | logrange:LOW:HIGH.")
@click.option("--points", "points", type=click.Path(path_type=Path), default=None, help="CSV of points (one column per PATH).")
@click.option("--sample", default=None, metavar="lhs:N|random:N", help="Sample N points over the grid's ranges.")
@click.option("--sample-seed", type=int, default=0, show_default=True, help="Seed of the sample of points.")
@click.option("--replicates", type=int, default=10, show_default=True, help="Virtual patients per point.")
@click.option("--arm", "arms", multiple=True, help="Arm to run (repeat; default: every arm).")
@click.option("--seed", type=int, default=None, help="Seed (default: the scenario's).")
@click.option("--executor", type=click.Choice(["local", "dask"]), default="local", show_default=True)
@click.option("--scheduler", default=None, metavar="ADDRESS", help="Dask scheduler, e.g. tcp://host:8786 (default: a local cluster).")
@click.option("--workers", type=int, default=1, show_default=True, help="Worker processes.")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Sweep directory (rerun to resume).")
@click.option("--set", "assignments", multiple=True, metavar="PATH=VALUE", help="Override a scenario parameter.")
@click.option("--dry-run", is_flag=True, help="Print points, simulations and an estimated time; run nothing.")
@friendly_errors
def sweep(scenario, grid, points, sample, sample_seed, replicates, arms, seed, executor, scheduler,
          workers, out, assignments, dry_run):
    """Sweep scenario parameters: partitioned Parquet, resumable, local or on Dask."""
    from simulator import sweep as sw

    resolved = load_scenario(scenario, parse_overrides(assignments))
    if workers <= 0:
        raise UsageProblem(f"--workers: must be > 0, got {workers}")
    if points is not None and grid:
        raise UsageProblem("--points: give either --grid or --points, not both")
    if points is not None:
        table = sw.points_from_csv(points)
    else:
        parsed = {}
        for assignment in grid:
            path, separator, values = assignment.partition("=")
            if not separator or not path.strip():
                raise UsageProblem(f"--grid: expected PATH=VALUES, got '{assignment}'")
            parsed[path.strip()] = sw.parse_values(path.strip(), values)
        table = sw.grid_points(parsed, sample, sample_seed)
    plan = sw.plan_sweep(resolved, table, replicates, list(arms) or None, seed)
    if dry_run:
        seconds = sw.estimate_seconds(plan, workers)
        click.echo(f"{len(plan.points)} points x {plan.replicates} patients x {len(plan.arms)} arm(s) "
                   f"= {plan.simulations} simulations in {len(plan.chunks())} chunks; "
                   f"estimated {sw.format_duration(seconds)} on {workers} worker(s)")
        click.echo(plan.points.to_string(max_rows=20))
        return
    if out is None:
        raise UsageProblem("--out: a sweep needs an output directory (or use --dry-run)")
    try:
        result = sw.execute_sweep(plan, out, executor, workers, scheduler, progress=sys.stderr.isatty())
    except KeyboardInterrupt:
        done = len(list(Path(out).glob("rows/point=*/chunk-*.parquet")))
        click.echo(f"interrupted: {done} of {len(plan.chunks())} chunks on disk; rerun the same command "
                   "to resume", err=True)
        sys.exit(130)
    click.echo(f"{result.chunks_run} chunk(s) run, {result.chunks_skipped} already done, "
               f"{result.seconds:.1f} s; wrote {out}/")


@main.command(name="plot-sweep")
@click.argument("directory", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option("--endpoint", default="median_pfs_months", show_default=True,
              help="Column of the summary: median_pfs_months, median_os_months, objective_response, ...")
@click.option("--x", "x", default=None, help="Parameter on the x axis (default: the first).")
@click.option("--y", "y", default=None, help="Second parameter: draw a heatmap.")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="PNG file (default: DIRECTORY/sweep-ENDPOINT.png).")
@friendly_errors
def plot_sweep_command(directory: Path, endpoint: str, x: str | None, y: str | None, out: Path | None) -> None:
    """Draw a sweep's endpoint against one parameter (with CI bands) or two (heatmap)."""
    import pandas as pd

    from simulator.plots import plot_sweep

    summary_path = directory / "summary.parquet"
    if not summary_path.exists():
        raise UsageProblem(f"DIRECTORY: no summary.parquet in '{directory}'; run the sweep to the end first")
    summary = pd.read_parquet(summary_path)
    figure = plot_sweep(summary, endpoint=endpoint, x=x, y=y)
    target = out or directory / f"sweep-{endpoint}.png"
    figure.savefig(target, dpi=120, bbox_inches="tight")
    click.echo(f"wrote {target}")


@main.command(name="list")
def list_catalog() -> None:
    """List the scenario catalog: id and one-line description."""
    from simulator.catalog import catalog_ids

    for scenario_id in catalog_ids():
        click.echo(f"{scenario_id:38s} {load_scenario(scenario_id).description}")


@main.command()
@click.argument("scenario_id")
@friendly_errors
def show(scenario_id: str) -> None:
    """Print a catalog scenario's description, citations and arms."""
    scenario = load_scenario(scenario_id)
    click.echo(f"{scenario.id}: {scenario.description}\n")
    click.echo(scenario.long_description.strip() + "\n")
    if scenario.arms:
        click.echo("arms:")
        for name, arm in scenario.arms.items():
            click.echo(f"  {name}: {arm.description}")
    if scenario.citations:
        click.echo("citations:")
        for citation in scenario.citations:
            doi = f" doi:{citation.doi}" if citation.doi else ""
            click.echo(f"  - {citation.reference}{doi}\n    supports: {citation.supports}")


@main.command()
def schema() -> None:
    """Print the JSON Schema of scenario files."""
    click.echo(json.dumps(scenario_json_schema(), indent=2))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
