"""The large fuzz profile: thousands of generated scenarios, cohorts and ``--set`` values.

Every case must be refused with one line before any work, or run to its end with finite,
non-negative outputs (the property of ``tests/fuzzing.py``). Cases run in a child process
watched for hangs; a child that stops reporting for ``--timeout`` seconds is killed and its case
is counted as a hang, then fuzzing goes on in a new child.

    python scripts/fuzz.py --cases 5000 --report fuzz-report.jsonl

prints the counts (refused, ran, problems, tracebacks, hangs), the slowest cases and every
failing case with its reproducer, and exits 1 if any case failed.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import traceback
from collections import Counter
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent / "tests"
KINDS = ("scenario", "cohort", "set")


def child(seed: int, cases: int, report: Path, current: Path) -> None:
    """Run ``cases`` generated cases, appending one JSON line per case to ``report``."""
    sys.path.insert(0, str(TESTS))
    from click.testing import CliRunner
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as hypothesis_seed
    from hypothesis import strategies as st

    import fuzzing
    from simulator.cli import main
    from simulator.scenario import load_scenario, scenario_to_dict

    paths = [p for p in fuzzing.leaves(scenario_to_dict(load_scenario("two-clone-teaching")))
             if not p.startswith(("citations", "long_description", "description", "id"))]
    case_strategy = st.one_of(
        st.tuples(st.just("scenario"), fuzzing.damaged(), st.booleans()),
        st.tuples(st.just("cohort"), fuzzing.cohorts(), st.just(True)),
        st.tuples(st.just("set"), fuzzing.set_arguments(paths), st.just(True)),
    )
    out = report.open("a")

    @hypothesis_seed(seed)
    @settings(max_examples=cases, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(case_strategy)
    def one(case):
        kind, data, flag = case
        current.write_text(json.dumps({"kind": kind, "case": repr(data)}))
        started = time.perf_counter()
        record = {"kind": kind, "seed": seed}
        try:
            if kind == "scenario":
                outcome = fuzzing.run_case(data[0], keep_trajectory=flag)
            elif kind == "cohort":
                outcome = fuzzing.run_cohort_case(data, n=2)
            else:
                outcome = _set_case(CliRunner(), main, data)
            record["outcome"] = "problem" if outcome.problems else ("refused" if outcome.refused else "ran")
            record["detail"] = list(outcome.problems) or outcome.message
        except Exception as error:  # noqa: BLE001 - every exception is a finding here
            record["outcome"] = "traceback"
            record["detail"] = "".join(traceback.format_exception_only(error)).strip()
            record["traceback"] = traceback.format_exc(limit=-6)
        record["seconds"] = round(time.perf_counter() - started, 4)
        if record["outcome"] in ("problem", "traceback"):
            record["case"] = repr(data)
        out.write(json.dumps(record, default=str) + "\n")
        out.flush()

    one()


def _set_case(runner, main, assignments):
    import tempfile

    import fuzzing

    arguments = [item for text in assignments for item in ("--set", text)]
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "out"
        result = runner.invoke(main, ["run", "two-clone-teaching", *arguments, "--no-figures", "--out", str(out)])
        problems = []
        if result.exit_code not in (0, 2):
            problems.append(f"exit {result.exit_code}: {result.exception!r}")
        elif result.exit_code == 2:
            problems += fuzzing.check_one_line(result.output)
            if out.exists():
                problems.append("refused but wrote output")
        return fuzzing.Outcome(result.exit_code == 2, result.output.strip()[-200:], tuple(problems))


def supervise(cases: int, seed: int, timeout: float, report: Path, per_child: int) -> int:
    report.write_text("")
    current = report.with_suffix(".current.json")
    done, hangs, started = 0, [], time.perf_counter()
    while done < cases:
        batch = min(per_child, cases - done)
        process = subprocess.Popen([sys.executable, __file__, "--child", "--seed", str(seed), "--cases", str(batch),
                                    "--report", str(report)], start_new_session=True)
        last, seen = time.monotonic(), _lines(report)
        while process.poll() is None:
            time.sleep(0.5)
            now_seen = _lines(report)
            if now_seen != seen:
                last, seen = time.monotonic(), now_seen
            elif time.monotonic() - last > timeout:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
                case = json.loads(current.read_text()) if current.exists() else {}
                hangs.append(case)
                with report.open("a") as out:
                    out.write(json.dumps({"outcome": "hang", "seconds": timeout, "seed": seed, **case}) + "\n")
        total = _lines(report)
        if process.returncode not in (0, -signal.SIGKILL) and total == seen and total - done < batch:
            with report.open("a") as out:  # the child died without a report: count it
                case = json.loads(current.read_text()) if current.exists() else {}
                out.write(json.dumps({"outcome": "crash", "seed": seed, "exit": process.returncode, **case}) + "\n")
        done = _lines(report)
        seed += 1
        print(f"{done} cases, {time.perf_counter() - started:.0f} s", file=sys.stderr)
    current.unlink(missing_ok=True)
    return summarise(report, time.perf_counter() - started)


def _lines(path: Path) -> int:
    with path.open() as handle:
        return sum(1 for _ in handle)


def summarise(report: Path, seconds: float) -> int:
    records = [json.loads(line) for line in report.read_text().splitlines() if line.strip()]
    counts = Counter(r["outcome"] for r in records)
    by_kind = Counter((r.get("kind", "?"), r["outcome"]) for r in records)
    print(f"{len(records)} cases in {seconds:.0f} s: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    for kind in KINDS:
        print(f"  {kind}: " + ", ".join(f"{o} {n}" for (k, o), n in sorted(by_kind.items()) if k == kind))
    timed = sorted((r for r in records if "seconds" in r), key=lambda r: -r["seconds"])
    if timed:
        print(f"slowest case {timed[0]['seconds']:.2f} s; median "
              f"{sorted(r['seconds'] for r in timed)[len(timed) // 2]:.3f} s")
    failures = [r for r in records if r["outcome"] not in ("ran", "refused")]
    for record in failures:
        print(json.dumps(record)[:2000])
    return 1 if failures else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=120.0, help="Seconds without progress counted as a hang.")
    parser.add_argument("--per-child", type=int, default=500, help="Cases per child process.")
    parser.add_argument("--report", type=Path, default=Path("fuzz-report.jsonl"))
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.seed, args.cases, args.report, args.report.with_suffix(".current.json"))
        return 0
    return supervise(args.cases, args.seed, args.timeout, args.report, args.per_child)


if __name__ == "__main__":
    sys.exit(main())
