"""Faults from outside: the main process killed mid-run, an output place that cannot be made.

Killing the main process of ``cohort`` or ``sweep`` by any signal must end its worker
processes within seconds, and rerunning a killed sweep must give the table an uninterrupted
sweep gives.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from simulator.cli import main
from simulator.sweep import read_rows

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

SCENARIO = "two-clone-teaching"
CLI = [sys.executable, "-c", "import sys; from simulator.cli import main; sys.exit(main())"]
GRACE_SECONDS = 5.0


def _children(pid: int) -> set[int]:
    """Every living descendant of ``pid``."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rpartition(")")[2].split()
            except OSError:
                continue
            if fields[0] != "Z":
                parents[int(entry.name)] = int(fields[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"


def _start(args: list[str], cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(CLI + args, cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)


def _wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _kill_and_check_workers_end(process: subprocess.Popen, workers: set[int], sig: int) -> float:
    """Kill the main process; return the seconds until its last worker ended."""
    killed = time.monotonic()
    process.send_signal(sig)
    process.wait(timeout=30)
    deadline = killed + GRACE_SECONDS
    while time.monotonic() < deadline and any(_alive(pid) for pid in workers):
        time.sleep(0.05)
    survivors = [pid for pid in workers if _alive(pid)]
    for pid in survivors:  # do not leave them behind even when the test fails
        os.kill(pid, signal.SIGKILL)
    assert not survivors, f"workers {survivors} still alive {GRACE_SECONDS} s after the main process died"
    return time.monotonic() - killed


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_killing_a_cohort_ends_its_workers(tmp_path, sig):
    process = _start(["cohort", SCENARIO, "-n", "20000", "--workers", "2",
                      "--set", "simulation.duration_days=700"], tmp_path)
    try:
        _wait_for(lambda: len(_children(process.pid)) >= 2 or process.poll() is not None, 60, "two workers")
        assert process.poll() is None, process.stderr.read().decode()
        workers = _children(process.pid)
        time.sleep(1.0)  # the workers are simulating patients now
        assert process.poll() is None, "the cohort ended before it could be killed"
        _kill_and_check_workers_end(process, workers, sig)
    finally:
        if process.poll() is None:
            process.kill()


def test_a_sweep_killed_mid_way_ends_its_workers_and_resumes_to_the_uninterrupted_table(tmp_path):
    grid = ["--grid", "clones.resistant.birth=0.17,0.18,0.19,0.2", "--replicates", "50",
            "--set", "simulation.duration_days=500"]
    out = tmp_path / "killed"
    process = _start(["sweep", SCENARIO, *grid, "--workers", "2", "--out", str(out)], tmp_path)
    chunks = out / "rows"
    try:
        _wait_for(lambda: any(chunks.glob("point=*/chunk-*.parquet")) or process.poll() is not None,
                  90, "the first chunk")
        assert process.poll() is None, "the sweep ended before it could be killed"
        workers = _children(process.pid)
        assert len(workers) >= 2
        _kill_and_check_workers_end(process, workers, signal.SIGKILL)
    finally:
        if process.poll() is None:
            process.kill()
    done = len(list(chunks.glob("point=*/chunk-*.parquet")))
    assert 1 <= done < 8 and not (out / "summary.parquet").exists()
    resumed = CliRunner().invoke(main, ["sweep", SCENARIO, *grid, "--out", str(out)])
    assert resumed.exit_code == 0, resumed.output
    assert f"{done} already done" in resumed.output
    whole = CliRunner().invoke(main, ["sweep", SCENARIO, *grid, "--out", str(tmp_path / "whole")])
    assert whole.exit_code == 0, whole.output
    pd.testing.assert_frame_equal(read_rows(out), read_rows(tmp_path / "whole"))
    pd.testing.assert_frame_equal(pd.read_parquet(out / "summary.parquet"),
                                  pd.read_parquet(tmp_path / "whole" / "summary.parquet"))


@pytest.mark.parametrize("command", [
    ["run", SCENARIO, "--set", "simulation.duration_days=60", "--no-figures"],
    ["cohort", SCENARIO, "-n", "2", "--set", "simulation.duration_days=60", "--no-figures"],
    ["sweep", SCENARIO, "--grid", "clones.resistant.birth=0.18", "--replicates", "1",
     "--set", "simulation.duration_days=60"],
])
def test_an_output_place_that_cannot_be_made_is_one_line_exit_2(tmp_path, command):
    blocker = tmp_path / "file"
    blocker.write_text("a regular file")
    out = blocker / "out"
    result = CliRunner().invoke(main, [*command, "--out", str(out)])
    assert result.exit_code == 2, result.output
    message = result.output.strip()
    assert "\n" not in message and "Traceback" not in message and "--out" in message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]
