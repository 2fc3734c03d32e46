"""Command-line interface: thin commands over the public API.

Errors: bad input (a scenario, a setting, an option, an output place) gets one line and exit
code 2, with nothing written; an unexpected internal error gets one line naming a log file
that holds the traceback, and exit code 3. ``--debug`` shows tracebacks instead.
"""

from __future__ import annotations

import atexit
import difflib
import functools
import gc
import json
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

import click

from simulator.catalog import DEFAULT_SCENARIO, catalog_ids
from simulator.errors import CapacityError
from simulator.scenario import ScenarioError, get_path, load_scenario, parse_value, scenario_json_schema

EXIT_USAGE = 2
EXIT_INTERNAL = 3

# Set when this process is the ``simulator`` program itself (``main()`` reading sys.argv), not
# a caller of ``main(args)`` such as a test: its objects then all live until it exits.
_PROGRAM = False


class UsageProblem(click.ClickException):
    """Bad input: one line on stderr and exit code 2."""

    exit_code = EXIT_USAGE

    def show(self, file=None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


class OneLineGroup(click.Group):
    """A click group whose usage errors (unknown option, missing argument) take one line,
    with the command's ``--help`` hint."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        if args is None:
            global _PROGRAM
            _PROGRAM = True
            # At exit the interpreter collects garbage over every object the imports made
            # (about 0.4 s after a run) before the system takes the memory back anyway.
            atexit.register(gc.freeze)
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.UsageError as error:
            command = error.ctx.command_path if error.ctx is not None else "simulator"
            click.echo(f"error: {error.format_message()} (see '{command} --help')", err=True)
            sys.exit(EXIT_USAGE)
        except click.ClickException as error:
            error.show()
            sys.exit(error.exit_code)
        except click.Abort:
            click.echo("aborted", err=True)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


def friendly_errors(command):
    """Bad input -> one line and exit 2; anything else -> one line naming a log file with the
    traceback, exit 3 (with ``--debug``: the traceback itself)."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        debug = click.get_current_context().find_root().params.get("debug")
        try:
            return command(*args, **kwargs)
        except (click.ClickException, click.Abort, KeyboardInterrupt, SystemExit):
            raise
        except (ScenarioError, ValueError, CapacityError) as error:
            # CapacityError: the scenario asks for more lesions than any run may hold.
            if debug:
                raise
            raise UsageProblem(str(error)) from None
        except OSError as error:
            # Reading or writing a file the user named: a full disk, a permission, a vanished path.
            if debug:
                raise
            where = f" '{error.filename}'" if error.filename else ""
            raise UsageProblem(f"cannot use{where}: {error.strerror or error}") from None
        except Exception as error:  # noqa: BLE001 - the last line of defence of the CLI
            if debug:
                raise
            log = write_error_log()
            click.echo(f"internal error: {type(error).__name__}: {_one_line(error)}; "
                       f"traceback in {log} (please report it)", err=True)
            sys.exit(EXIT_INTERNAL)

    return wrapper


def collector_paused(command):
    """Run ``command`` with Python's cyclic garbage collector paused, and restore it after.

    One patient makes little cyclic garbage (mostly its two figures), while each full
    collection rescans every object that pandas, numba and matplotlib made on import: on a
    warm ``run --out`` the collections took about 0.3 s of 2.5. In the program itself the
    objects are frozen (never scanned again) before the collector comes back, since it exits
    next; otherwise the first collection would go over everything the command made.
    """

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        enabled = gc.isenabled()
        gc.disable()
        try:
            return command(*args, **kwargs)
        finally:
            if _PROGRAM:
                gc.freeze()
            if enabled:
                gc.enable()

    return wrapper


def write_error_log() -> Path:
    """Write the current exception's traceback, the command line and the versions to a file."""
    from simulator.results import run_context

    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = Path(tempfile.gettempdir()) / f"simulator-error-{stamp}-{os.getpid()}.log"
    context = json.dumps(run_context(), indent=2)
    path.write_text(f"{context}\n\n{traceback.format_exc()}")
    return path


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return text[:200] + ("..." if len(text) > 200 else "")


# --- scenarios, settings and output places ---------------------------------------------------


def load_source(source: str):
    """Load a scenario file or catalog id, suggesting the nearest id for a misspelt one."""
    if not Path(source).exists() and source not in catalog_ids():
        close = difflib.get_close_matches(source, catalog_ids(), n=1, cutoff=0.6)
        if close:
            raise UsageProblem(f"scenario: no file or catalog id '{source}' (did you mean '{close[0]}'?); "
                               "see 'simulator list'")
    return load_scenario(source)


def parse_overrides(assignments: tuple[str, ...]) -> dict:
    overrides = {}
    for assignment in assignments:
        path, separator, value = assignment.partition("=")
        if not separator or not path.strip():
            raise UsageProblem(f"--set: expected PATH=VALUE, got '{assignment}'")
        overrides[path.strip()] = parse_value(value.strip())
    return overrides


def check_setting_paths(scenario, overrides: dict, option: str = "--set") -> None:
    """Refuse a path whose missing key is a near miss of an existing one, e.g.
    ``clones.T790Mx.death`` (did you mean ``T790M``?). A path may still add a new entry (a
    clone type's cells in a lesion) when it resembles nothing that exists."""
    from simulator.scenario import scenario_to_dict

    resolved = scenario_to_dict(scenario)
    for path in overrides:
        keys = path.split(".")
        node = resolved
        for depth, key in enumerate(keys):
            if not isinstance(node, dict):
                break
            if key not in node:
                close = difflib.get_close_matches(key, [str(k) for k in node], n=1, cutoff=0.75)
                if close:
                    where = ".".join(keys[:depth]) or "the scenario"
                    raise UsageProblem(f"{option} {path}: no '{key}' in {where} (did you mean '{close[0]}'?); "
                                       f"allowed: {', '.join(map(str, node))}")
                break
            node = node[key]


def _resolved_value(scenario, path: str):
    from simulator.scenario import scenario_to_dict

    try:
        return get_path(scenario_to_dict(scenario), path)
    except (ScenarioError, KeyError, IndexError, TypeError):
        return None


def check_output(out: Path | None, marker: str = "provenance.json") -> None:
    """Refuse an output place that cannot be written, before any work."""
    if out is not None:
        from simulator.results import check_output_directory

        check_output_directory(out, marker)


def warn_if_compiling() -> None:
    """Say so when the engine is about to compile (its cache is empty): the first run is
    silent for a minute or two otherwise."""
    try:
        from simulator.engine.kernel import simulate_kernel

        cold = not Path(simulate_kernel._cache._cache_file._index_path).exists()
    except Exception:  # noqa: BLE001 - a courtesy message must never stop a run
        return
    if cold:
        click.echo("compiling the engine (first run only, about half a minute; cached afterwards)...", err=True)


def _check_seed(seed: int | None) -> None:
    if seed is not None and seed < 0:
        raise UsageProblem(f"--seed: must be >= 0, got {seed}")


# --- commands --------------------------------------------------------------------------------


@click.group(cls=OneLineGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show full tracebacks on errors.")
@click.version_option(package_name="simulator")
def main(debug: bool) -> None:
    """Stochastic simulator of tumour heterogeneity and clonal evolution under therapy."""


@main.command()
@click.argument("scenario", required=False, default=DEFAULT_SCENARIO)
@click.option("--seed", type=int, default=None, help="Seed (default: the scenario's).")
@click.option("--replicate", type=click.IntRange(min=0), default=None,
              help="Replicate index: the random stream, with the scenario's own parameters.")
@click.option("--patient", type=click.IntRange(min=0), default=None,
              help="Cohort patient I: its drawn parameters and its random stream, as in 'cohort'.")
@click.option("--arm", default=None, help="Arm of the scenario (default: its first arm).")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Directory for tables, figures and provenance (replaced whole).")
@click.option("--set", "assignments", multiple=True, metavar="PATH=VALUE",
              help="Override a parameter, e.g. clones.T790M.death=0.1 (wins over the arm's settings).")
@click.option("--no-figures", is_flag=True, help="Do not draw figures into --out.")
@click.option("--report", is_flag=True, help="Also write report.html into --out: one self-contained page.")
@click.option("--figure-format", type=click.Choice(["png", "svg", "pdf"]), default="png", show_default=True,
              help="File format of the figures.")
@click.option("--dpi", type=click.IntRange(10, 1200), default=120, show_default=True, help="Resolution of the figures.")
@friendly_errors
@collector_paused
def run(scenario: str, seed: int | None, replicate: int | None, patient: int | None, arm: str | None,
        out: Path | None, assignments: tuple[str, ...], no_figures: bool, report: bool = False,
        figure_format: str = "png", dpi: int = 120) -> None:
    """Simulate one patient of SCENARIO: a TOML file, a catalog id (default:
    egfr-first-line-gefitinib) or a provenance.json to rerun."""
    from simulator.cohort import default_arm, patient_scenario
    from simulator.runner import simulate

    _check_seed(seed)
    if patient is not None and replicate is not None:
        raise UsageProblem("--patient: give --patient or --replicate, not both (a patient's replicate is its index)")
    overrides = parse_overrides(assignments)
    if scenario.endswith(".json"):
        resolved, seed, replicate = rerun_from_provenance(Path(scenario), seed, (arm, patient, overrides))
    else:
        base = load_source(scenario)
        check_setting_paths(base, overrides)
        if arm is None and base.arms:
            arm = default_arm(base)
            click.echo(f"arm: {arm} (the first of {', '.join(base.arms)}; choose with --arm)")
        resolved, drawn = patient_scenario(base, arm, patient, seed, overrides)
        replicate = patient if patient is not None else (replicate or 0)
        if drawn:
            click.echo("patient parameters: " + ", ".join(f"{k}={_short(v)}" for k, v in drawn.items()))
    check_output(out)
    warn_if_compiling()
    result = simulate(resolved, seed=seed, replicate=replicate)
    result.provenance["invocation"] = {"scenario": scenario, "arm": arm, "patient": patient,
                                       "settings": overrides, "precedence": ["scenario", "arm", "--set"]}
    click.echo(result.summary_text())
    if report and out is None:
        raise UsageProblem("--report: needs --out DIR (the report is written there as report.html)")
    if out is not None:
        result.write(out, figures=not no_figures, report=report, figure_format=figure_format, dpi=dpi)
        click.echo(f"wrote {out}/" + (f" (report: {out / 'report.html'})" if report else ""))


def rerun_from_provenance(path: Path, seed: int | None, extra: tuple):
    """The scenario, seed and replicate a ``provenance.json`` of ``run`` records."""
    if any(value for value in extra):
        raise UsageProblem(f"{path}: a provenance file is rerun as recorded; drop --arm, --patient and --set")
    try:
        provenance = json.loads(path.read_text())
        recorded = provenance["scenario"], provenance["seed"], provenance["replicate"]
    except FileNotFoundError:
        raise UsageProblem(f"scenario: no file '{path}'") from None
    except (ValueError, KeyError, TypeError):
        raise UsageProblem(f"{path}: not the provenance.json of a run (needs scenario, seed and replicate)") from None
    scenario, recorded_seed, replicate = recorded
    return load_scenario(scenario), recorded_seed if seed is None else seed, int(replicate)


def _short(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


@main.command()
@click.argument("scenario")
@click.option("--set", "assignments", multiple=True, metavar="PATH=VALUE")
@friendly_errors
def validate(scenario: str, assignments: tuple[str, ...]) -> None:
    """Check a scenario file; print 'ok' or one line naming what is wrong."""
    from simulator.cohort import arm_layers, check_layers, with_settings

    base = load_source(scenario)
    overrides = parse_overrides(assignments)
    check_setting_paths(base, overrides)
    resolved, user = with_settings(base, overrides)
    check_layers(resolved, arm_layers(resolved, None, user))
    click.echo(f"ok: {resolved.id} ({len(resolved.clones)} clone types, {len(resolved.lesions)} lesions)")


@main.command()
@click.argument("scenario", required=False, default=DEFAULT_SCENARIO)
@click.option("-n", "--patients", "n", type=int, default=100, show_default=True, help="Virtual patients.")
@click.option("--seed", type=int, default=None, help="Seed (default: the scenario's).")
@click.option("--workers", type=int, default=1, show_default=True, help="Processes (results do not depend on it).")
@click.option("--arm", "arms", multiple=True, help="Arm to run (repeat; default: every arm of the scenario).")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Directory for tables, figures and provenance (replaced whole).")
@click.option("--set", "assignments", multiple=True, metavar="PATH=VALUE",
              help="Override a parameter in every arm (wins over the arm's settings and the draws).")
@click.option("--compare-reference", is_flag=True, help="Print observed metrics beside the scenario's published ranges.")
@click.option("--keep-trajectories", is_flag=True, help="Keep every patient's full result in memory (costly).")
@click.option("--no-figures", is_flag=True, help="Do not draw figures into --out.")
@click.option("--report", is_flag=True, help="Also write report.html into --out: one self-contained page.")
@click.option("--figure-format", type=click.Choice(["png", "svg", "pdf"]), default="png", show_default=True,
              help="File format of the figures.")
@click.option("--dpi", type=click.IntRange(10, 1200), default=120, show_default=True, help="Resolution of the figures.")
@friendly_errors
def cohort(scenario, n, seed, workers, arms, out, assignments, compare_reference, keep_trajectories, no_figures,
           report=False, figure_format="png", dpi=120):
    """Simulate a virtual cohort of SCENARIO (default: egfr-first-line-gefitinib), in every arm,
    and summarise it."""
    from simulator.cohort import run_cohort

    base = load_source(scenario)
    overrides = parse_overrides(assignments)
    check_setting_paths(base, overrides)
    if n <= 0:
        raise UsageProblem(f"-n: must be > 0, got {n}")
    if workers <= 0:
        raise UsageProblem(f"--workers: must be > 0, got {workers}")
    _check_seed(seed)
    if report and out is None:
        raise UsageProblem("--report: needs --out DIR (the report is written there as report.html)")
    check_output(out)
    warn_if_compiling()
    result = run_cohort(base, n=n, seed=seed, workers=workers, arms=list(arms) or None,
                        progress=sys.stderr.isatty(), keep_results=keep_trajectories, settings=overrides)
    click.echo(format_cohort(result, compare_reference))
    if out is not None:
        result.write(out, figures=not no_figures, report=report, figure_format=figure_format, dpi=dpi)
        click.echo(f"wrote {out}/" + (f" (report: {out / 'report.html'})" if report else ""))


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
@click.option("--set", "assignments", multiple=True, metavar="PATH=VALUE",
              help="Override a parameter at every point (wins over the arm's settings; --grid wins over it).")
@click.option("--dry-run", is_flag=True, help="Print points, simulations and an estimated time; run nothing.")
@friendly_errors
def sweep(scenario, grid, points, sample, sample_seed, replicates, arms, seed, executor, scheduler,
          workers, out, assignments, dry_run):
    """Sweep scenario parameters: partitioned Parquet, resumable, local or on Dask."""
    from simulator import sweep as sw

    base = load_source(scenario)
    overrides = parse_overrides(assignments)
    check_setting_paths(base, overrides)
    if workers <= 0:
        raise UsageProblem(f"--workers: must be > 0, got {workers}")
    if points is not None and grid:
        raise UsageProblem("--points: give either --grid or --points, not both")
    scales = {}
    if points is not None:
        table = sw.points_from_csv(points)
    else:
        parsed = sw.parse_grid(grid)
        check_setting_paths(base, parsed, "--grid")
        table = sw.grid_points(parsed, sample, sample_seed)
        texts = {path.strip(): values for path, _, values in (a.partition("=") for a in grid)}
        scales = sw.grid_scales(texts)
    plan = sw.plan_sweep(base, table, replicates, list(arms) or None, seed, settings=overrides, scales=scales)
    if dry_run:
        seconds = sw.estimate_seconds(plan, workers)
        click.echo(f"{len(plan.points)} points x {plan.replicates} patients x {len(plan.arms)} arm(s) "
                   f"= {plan.simulations} simulations in {len(plan.chunks())} chunks; "
                   f"estimated {sw.format_duration(seconds)} on {workers} worker(s)")
        click.echo(plan.points.to_string(max_rows=20))
        return
    if out is None:
        raise UsageProblem("--out: a sweep needs an output directory (or use --dry-run)")
    check_output(out, marker="manifest.json")
    warn_if_compiling()
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
@click.option("--endpoint", default="rmst_pfs_months", show_default=True,
              help="Numeric column of the summary: rmst_pfs_months, median_pfs_months, progressed_by_12_months, "
                   "mean_months_on_LINE, first_rebiopsy_MECHANISM, ...")
@click.option("--x", "x", default=None, help="Parameter on the x axis (default: the first).")
@click.option("--y", "y", default=None, help="Second parameter: draw a heatmap of the endpoint over x and y.")
@click.option("--arm", default=None, help="Arm of the heatmap (default: the first); lines show every arm.")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Picture file, .png, .svg or .pdf (default: DIRECTORY/sweep-ENDPOINT.png).")
@click.option("--dpi", type=click.IntRange(10, 1200), default=120, show_default=True, help="Resolution.")
@friendly_errors
def plot_sweep_command(directory: Path, endpoint: str, x: str | None, y: str | None, arm: str | None,
                       out: Path | None, dpi: int = 120) -> None:
    """Draw a sweep's endpoint against one parameter (one line per arm and value of the other
    parameters, with CI bands where there are some) or, with --y, a heatmap over two."""
    import pandas as pd

    from simulator.plots import plot_sweep

    summary_path = directory / "summary.parquet"
    if not summary_path.exists():
        raise UsageProblem(f"DIRECTORY: no summary.parquet in '{directory}'; run the sweep to the end first")
    summary = pd.read_parquet(summary_path)
    manifest_path = directory / "manifest.json"
    scales = json.loads(manifest_path.read_text()).get("scales", {}) if manifest_path.exists() else {}
    target = out or directory / f"sweep-{endpoint}.png"
    check_file_target(target)
    suffix = target.suffix.lower().lstrip(".")
    if suffix not in ("png", "svg", "pdf"):
        raise UsageProblem(f"--out: '{target.name}' must end in .png, .svg or .pdf")
    figure = plot_sweep(summary, endpoint=endpoint, x=x, y=y, arm=arm, scales=scales)
    partial = target.with_name(f".{target.name}.{os.getpid()}.tmp.{suffix}")
    try:
        figure.savefig(partial, dpi=dpi, bbox_inches="tight")
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    click.echo(f"wrote {target}")


def check_file_target(target: Path) -> None:
    """A picture goes into an existing, writable directory; refuse anything else up front."""
    folder = target.absolute().parent
    if target.is_dir():
        raise UsageProblem(f"--out: '{target}' is a directory; give a file name such as '{target / 'sweep.png'}'")
    if not folder.is_dir():
        raise UsageProblem(f"--out: no directory '{folder}' to write '{target.name}' into")
    if not os.access(folder, os.W_OK):
        raise UsageProblem(f"--out: cannot write in '{folder}'")


@main.command()
@click.argument("scenario")
@click.option("--out", type=click.Path(path_type=Path), required=True,
              help="Directory of the run: history.sqlite and the outputs (rerun to resume).")
@click.option("--populations", type=int, default=5, show_default=True, help="Populations of the ABC-SMC.")
@click.option("--particles", type=int, default=100, show_default=True, help="Accepted particles per population.")
@click.option("--patients", type=int, default=50, show_default=True, help="Virtual patients in each particle's cohort.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the proposals (cohorts use the scenario's).")
@click.option("--workers", type=int, default=1, show_default=True, help="Processes (results do not depend on it).")
@click.option("--executor", type=click.Choice(["local", "dask"]), default="local", show_default=True)
@click.option("--scheduler", default=None, metavar="ADDRESS", help="Dask scheduler, e.g. tcp://host:8786 (implies dask).")
@click.option("--predictive", type=click.IntRange(min=0), default=20, show_default=True,
              help="Cohorts from posterior draws for the posterior predictive check.")
@click.option("--set", "assignments", multiple=True, metavar="PATH=VALUE",
              help="Override a parameter in every particle (not a calibrated one).")
@friendly_errors
def calibrate(scenario, out, populations, particles, patients, seed, workers, executor, scheduler, predictive,
              assignments):
    """Calibrate SCENARIO's [calibration] parameters against its [reference] ranges by ABC-SMC
    (see docs/calibration.md)."""
    import shlex

    from simulator import calibration

    base = load_source(scenario)
    overrides = parse_overrides(assignments)
    check_setting_paths(base, overrides)
    _check_seed(seed)
    if workers <= 0:
        raise UsageProblem(f"--workers: must be > 0, got {workers}")
    source = scenario if not Path(scenario).exists() else str(Path(scenario).resolve())
    warn_if_compiling()

    def report(stats: dict) -> None:
        click.echo(calibration.format_progress(stats))

    try:
        result = calibration.calibrate(base, out, populations, particles, patients, seed, workers, executor,
                                       scheduler, overrides, report, predictive, shlex.join(sys.argv), source)
    except KeyboardInterrupt:
        click.echo(f"interrupted: finished populations are in {out}/{calibration.HISTORY}; rerun the same "
                   "command to resume", err=True)
        sys.exit(130)
    if result.populations_run == 0:
        click.echo(f"{len(result.populations)} population(s) already done; outputs rewritten")
    import pandas as pd

    with pd.option_context("display.width", 160, "display.precision", 4):
        click.echo("posterior (weighted quantiles):")
        click.echo(result.quantiles().to_string(index=False))
    check = ", predictive.png" if predictive else ""
    click.echo(f"wrote {out}/ (posterior.parquet, posterior.png{check}, calibrated.toml)")


@main.command()
@click.argument("scenario")
@click.option("--param", "params", multiple=True, required=True, metavar="PATH=LOW:HIGH",
              help="Parameter and its range (log:LOW:HIGH samples its logarithm); repeat.")
@click.option("--method", type=click.Choice(["sobol", "morris"]), default="sobol", show_default=True)
@click.option("--endpoint", "endpoints", multiple=True,
              help="Summary column to analyse (repeat; default rmst_pfs_months), as in 'plot-sweep'.")
@click.option("--patients", type=int, default=20, show_default=True, help="Virtual patients per point.")
@click.option("--samples", type=int, default=64, show_default=True,
              help="Base samples N (Sobol: N x (k + 2) points; Morris: N trajectories of k + 1 points).")
@click.option("--arm", default=None, help="Arm to run (default: the first).")
@click.option("--seed", type=int, default=None, help="Seed of the cohorts (default: the scenario's).")
@click.option("--sample-seed", type=int, default=0, show_default=True, help="Seed of the sample of points.")
@click.option("--executor", type=click.Choice(["local", "dask"]), default="local", show_default=True)
@click.option("--scheduler", default=None, metavar="ADDRESS", help="Dask scheduler, e.g. tcp://host:8786.")
@click.option("--workers", type=int, default=1, show_default=True, help="Worker processes.")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Directory (rerun to resume).")
@click.option("--set", "assignments", multiple=True, metavar="PATH=VALUE", help="Override a parameter at every point.")
@friendly_errors
def sensitivity(scenario, params, method, endpoints, patients, samples, arm, seed, sample_seed, executor,
                scheduler, workers, out, assignments):
    """Global sensitivity analysis (SALib: Sobol or Morris) of endpoints to parameter ranges,
    run as a resumable sweep."""
    from simulator import sensitivity as sa

    base = load_source(scenario)
    overrides = parse_overrides(assignments)
    check_setting_paths(base, overrides)
    ranges = sa.parse_params(params)
    check_setting_paths(base, ranges, "--param")
    _check_seed(seed)
    if workers <= 0:
        raise UsageProblem(f"--workers: must be > 0, got {workers}")
    warn_if_compiling()
    try:
        result = sa.run_sensitivity(base, out, ranges, method, list(endpoints) or None, patients, samples, arm, seed,
                                    sample_seed, executor, workers, scheduler, overrides, sys.stderr.isatty())
    except KeyboardInterrupt:
        click.echo(f"interrupted: finished chunks are in {out}/sweep; rerun the same command to resume", err=True)
        sys.exit(130)
    import pandas as pd

    with pd.option_context("display.width", 160, "display.precision", 3):
        click.echo(result.indices.to_string(index=False))
    click.echo(f"{result.points} points x {patients} patients; wrote {out}/ (indices.parquet, indices.csv, "
               "indices.png)")


@main.command(name="list")
def list_catalog() -> None:
    """List the scenario catalog: id and one-line description."""
    for scenario_id in catalog_ids():
        click.echo(f"{scenario_id:38s} {load_scenario(scenario_id).description}")


@main.command()
@click.argument("scenario_id")
@friendly_errors
def show(scenario_id: str) -> None:
    """Print a scenario's description, arms with their settings, and citations."""
    scenario = load_source(scenario_id)
    click.echo(f"{scenario.id}: {scenario.description}\n")
    click.echo(scenario.long_description.strip() + "\n")
    if scenario.arms:
        click.echo("arms (each sets these on top of the scenario; --set and --grid win over them):")
        for name, arm in scenario.arms.items():
            click.echo(f"  {name}: {arm.description}")
            for path, value in arm.set.items():
                was = _resolved_value(scenario, path)
                click.echo(f"      {path} = {json.dumps(value)}   (scenario: {json.dumps(was)})")
            if not arm.set:
                click.echo("      (the scenario as it is)")
    if scenario.citations:
        click.echo("citations:")
        for citation in scenario.citations:
            doi = f" doi:{citation.doi}" if citation.doi else ""
            click.echo(f"  - {citation.reference}{doi}\n    supports: {citation.supports}")


@main.command()
def schema() -> None:
    """Print the JSON Schema of scenario files."""
    click.echo(json.dumps(scenario_json_schema(), indent=2))


# --- be the oncologist ----------------------------------------------------------------------


@main.command()
@click.argument("scenario", required=False, default=DEFAULT_SCENARIO)
@click.option("--seed", type=int, default=None, help="Seed (default: the scenario's).")
@click.option("--patient", type=click.IntRange(min=0), default=None, help="Cohort patient I (its drawn parameters).")
@click.option("--arm", default=None, help="Arm of the scenario (default: its first arm).")
@click.option("--every-visit", is_flag=True, help="Ask at every visit, not only where a decision is due.")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Write the run (tables, figures, report.html) here afterwards.")
@friendly_errors
def oncologist(scenario: str, seed: int | None, patient: int | None, arm: str | None, every_visit: bool,
               out: Path | None) -> None:
    """Be the oncologist: decide at each visit from what the clinic sees (scan, marker,
    ctDNA, biopsies), then see the truth underneath."""
    from simulator.cohort import default_arm, patient_scenario
    from simulator.oncologist import StudentPolicy, truth_text
    from simulator.runner import simulate

    _check_seed(seed)
    base = load_source(scenario)
    if arm is None and base.arms:
        arm = default_arm(base)
    resolved, _ = patient_scenario(base, arm, patient, seed)
    check_output(out)
    warn_if_compiling()
    click.echo(f"You are the oncologist of a patient of {resolved.id}: {resolved.description}\n"
               f"Lines available: {', '.join(resolved.therapy.lines)}; local therapies: "
               f"{', '.join(resolved.local_therapy)}. Press Enter to continue a line.")
    student = StudentPolicy(every_visit=every_visit)
    result = simulate(resolved, seed=seed, replicate=patient or 0, policy=student)
    result.provenance["oncologist_decisions"] = [
        {"day": day, "actions": [repr(a) for a in actions], "biopsies": biopsies}
        for day, actions, biopsies, _ in student.answers]
    click.echo(truth_text(result))
    click.echo(result.timeline())
    if out is not None:
        result.write(out, report=True)
        click.echo(f"wrote {out}/ (report: {out / 'report.html'})")


# --- lessons ---------------------------------------------------------------------------------


@main.group()
def lesson() -> None:
    """Lessons: a question, a prediction to make, the run, the pictures and what to notice."""


@lesson.command(name="list")
@friendly_errors
def lesson_list() -> None:
    """List the lessons: name, title and question."""
    from simulator.lessons import lesson_paths, lesson_title, lessons_directory

    lessons = lesson_paths()
    if not lessons:
        raise UsageProblem(f"lesson: no lessons found in '{lessons_directory()}'")
    for name, path in lessons.items():
        title, question = lesson_title(path)
        click.echo(f"{name:28s} {title}")
        if question:
            click.echo(f"{'':28s}   {question}")


@lesson.command(name="run")
@click.argument("name")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Directory for the pictures and index.html (default: lesson-output/NAME; replaced whole).")
@click.option("--dpi", type=click.IntRange(10, 1200), default=110, show_default=True, help="Resolution of the pictures.")
@friendly_errors
def lesson_run(name: str, out: Path | None, dpi: int) -> None:
    """Run lesson NAME (a name from 'simulator lesson list', its number, or a script) and write
    its pictures and an HTML page."""
    from simulator.lessons import find_lesson, lesson_name, run_lesson
    from simulator.results import run_context, write_atomically

    path = find_lesson(name)
    out = out or Path("lesson-output") / lesson_name(path)
    check_output(out)
    warn_if_compiling()
    runs = []

    def draw(staging: Path) -> None:
        runs.append(run_lesson(path, staging, dpi=dpi, echo=True))

    provenance = {**run_context(), "lesson": lesson_name(path), "script": str(path.resolve())}
    write_atomically(out, {}, provenance, draw)
    done = runs[0]
    click.echo(f"lesson {done.name}: {len(done.figures)} picture(s) in {done.seconds:.0f} s; "
               f"wrote {out}/ (open {out / 'index.html'})")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
