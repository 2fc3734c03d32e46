"""The command line: the default run, written files, and one-line errors with exit code 2."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from click.testing import CliRunner

from simulator.cli import main

GOOD = """
[clones.sensitive]
birth = 0.14
death = 0.13

[lesions.primary]
site = "lung"
carrying_capacity = 1e11
cells = { sensitive = 1e9 }

[simulation]
duration_days = 30
"""


@pytest.fixture
def cli():
    return CliRunner()


def test_run_default_scenario_prints_summary_and_writes_files(cli, tmp_path):
    out = tmp_path / "run"
    result = cli.invoke(main, ["run", "--out", str(out), "--seed", "3"])
    assert result.exit_code == 0, result.output
    assert "total burden" in result.output and "clinical timeline" in result.output
    provenance = json.loads((out / "provenance.json").read_text())
    assert provenance["seed"] == 3 and provenance["replicate"] == 0
    trajectory = pd.read_parquet(out / "trajectory.parquet")
    assert list(trajectory.columns) == ["time", "lesion", "clone", "cells"]
    for table in ("events", "visits", "observations", "endpoints"):
        assert (out / f"{table}.parquet").exists()


def test_run_is_reproducible_from_the_cli(cli, tmp_path):
    for name in ("a", "b"):
        assert cli.invoke(main, ["run", "--seed", "5", "--out", str(tmp_path / name)]).exit_code == 0
    first = pd.read_parquet(tmp_path / "a" / "trajectory.parquet")
    second = pd.read_parquet(tmp_path / "b" / "trajectory.parquet")
    pd.testing.assert_frame_equal(first, second)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("[clones.a\nbirth = 1", "TOML"),
        (GOOD.replace("birth = 0.14", "brith = 0.14"), "clones.sensitive.brith: unknown key"),
        (GOOD.replace("birth = 0.14", "birth = -0.14"), "clones.sensitive.birth"),
        (GOOD.replace("birth = 0.14", "birth = inf"), "clones.sensitive.birth"),
        (GOOD + '[[mutations]]\nfrom = "sensitive"\nto = "T790M"\nprobability = 1e-7\n',
         "mutations[0].to: unknown clone type 'T790M'"),
        (GOOD + '[[mutations]]\nfrom = "sensitive"\nto = "sensitive"\nprobability = 2\n',
         "mutations[0].probability"),
        (GOOD.replace("sensitive = 1e9", "sensitive = 0"), "lesions.primary.cells"),
        (GOOD.replace("duration_days = 30", "duration_days = 30\ndt_days = 60"), "simulation.dt_days"),
        (GOOD + '[therapy.lines.first]\ndosing = [{ drug = "gefitinib", dose = 250 }]\n',
         "therapy.lines.first.dosing[0].drug: unknown drug 'gefitinib'"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_no_output(cli, tmp_path, text, expected):
    scenario = tmp_path / "bad.toml"
    scenario.write_text(text)
    out = tmp_path / "out"
    result = cli.invoke(main, ["run", str(scenario), "--out", str(out)])
    assert result.exit_code == 2, result.output
    message = result.output.strip()
    assert message.startswith("error: ") and "\n" not in message
    assert expected in message
    assert "Traceback" not in result.output
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["bad.toml"]


def test_set_overrides_a_parameter_and_rejects_unknown_paths(cli, tmp_path):
    scenario = tmp_path / "good.toml"
    scenario.write_text(GOOD)
    assert cli.invoke(main, ["validate", str(scenario), "--set", "clones.sensitive.birth=0.2"]).exit_code == 0
    bad = cli.invoke(main, ["validate", str(scenario), "--set", "clones.sensitive.brith=0.2"])
    assert bad.exit_code == 2 and "brith" in bad.output


def test_out_directory_with_other_content_is_refused(cli, tmp_path):
    (tmp_path / "notes.txt").write_text("keep me")
    result = cli.invoke(main, ["run", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "other content" in result.output
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_schema_is_json(cli):
    result = cli.invoke(main, ["schema"])
    schema = json.loads(result.output)
    assert "clones" in schema["properties"] and "policy" in schema["properties"]
