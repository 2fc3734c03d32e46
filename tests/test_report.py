"""HTML reports: one self-contained page per run and per cohort, checked in a real browser."""

from __future__ import annotations

import re

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
from click.testing import CliRunner  # noqa: E402

import simulator  # noqa: E402
from simulator import report  # noqa: E402
from simulator.cli import main  # noqa: E402

SHORT = {"simulation.duration_days": 500}
PATIENT_SECTIONS = ["summary", "timeline", "figures", "endpoints", "provenance"]
COHORT_SECTIONS = ["summary", "comparison", "figures", "endpoints", "provenance"]


@pytest.fixture(scope="module")
def patient():
    scenario = simulator.load_scenario("two-clone-teaching", SHORT)
    return simulator.simulate(scenario, seed=3)


@pytest.fixture(scope="module")
def cohort():
    scenario = simulator.load_scenario("egfr-drug-holiday")
    return simulator.run_cohort(scenario, n=12, settings={"simulation.duration_days": 600})


def no_network(html: str) -> bool:
    return not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)


def test_patient_report_is_one_self_contained_page(patient):
    html = report.patient_report(patient)
    for section in PATIENT_SECTIONS:
        assert f'<section id="{section}">' in html
    assert html.count("data:image/png;base64,") == 2 and no_network(html)
    assert 'id="timeline-table"' in html and "line start" in html
    assert str(patient.provenance["seed"]) in html


def test_patient_timeline_interleaves_visits_and_decisions(patient):
    table = report.clinical_timeline(patient)
    assert list(table["day"]) == sorted(table["day"])
    assert (table["what"] == "visit").sum() == len(patient.visits)
    assert "line start" in set(table["what"])


def test_cohort_report_compares_arms_with_hazard_ratio_and_p(cohort):
    html = report.cohort_report(cohort, fmt="svg")
    for section in COHORT_SECTIONS:
        assert f'<section id="{section}">' in html
    assert "<svg" in html and no_network(html)
    assert 'id="comparison-table"' in html and "hazard_ratio" in html and "logrank_p" in html
    assert "paired" in html


def test_cli_writes_the_report_beside_the_tables(tmp_path):
    runner = CliRunner()
    out = tmp_path / "run"
    result = runner.invoke(main, ["run", "two-clone-teaching", "--set", "simulation.duration_days=300",
                                  "--out", str(out), "--report", "--no-figures"])
    assert result.exit_code == 0, result.output
    assert (out / "report.html").exists() and (out / "provenance.json").exists()
    assert not list(out.glob("*.png"))
    refused = runner.invoke(main, ["run", "two-clone-teaching", "--report"])
    assert refused.exit_code == 2 and "--report" in refused.output


def test_cli_cohort_report_and_figure_format(tmp_path):
    out = tmp_path / "cohort"
    result = CliRunner().invoke(main, ["cohort", "egfr-adaptive", "-n", "6", "--set",
                                       "simulation.duration_days=400", "--out", str(out), "--report",
                                       "--figure-format", "pdf", "--dpi", "50"])
    assert result.exit_code == 0, result.output
    assert (out / "report.html").read_text().count("<figure") == 3
    assert sorted(p.name for p in out.glob("*.pdf")) == ["km_os.pdf", "km_pfs.pdf", "swimmer.pdf"]


# --- in a real browser -----------------------------------------------------------------------


def chromium_or_skip() -> str:
    binary = report.find_chromium()
    if binary is None:
        reason = "no chromium installed (apt-get install chromium; .ci/run installs it where apt-get works)"
        print(f"skipping: {reason}")
        pytest.skip(reason)
    return binary


def test_the_console_check_catches_errors(tmp_path):
    chromium_or_skip()
    page = tmp_path / "bad.html"
    page.write_text("<!DOCTYPE html><html><body><script>console.error('broken on purpose');</script></body></html>")
    seen = report.render_in_browser(page)
    assert any("broken on purpose" in line for line in seen["console"])


@pytest.mark.parametrize("kind", ["patient", "cohort"])
def test_report_renders_in_chromium_without_console_errors(kind, patient, cohort, tmp_path):
    chromium_or_skip()
    page = tmp_path / "report.html"
    if kind == "patient":
        page.write_text(report.patient_report(patient), encoding="utf-8")
        sections, images = PATIENT_SECTIONS, 2
    else:
        page.write_text(report.cohort_report(cohort), encoding="utf-8")
        sections, images = COHORT_SECTIONS, 3
    seen = report.render_in_browser(page, screenshot=tmp_path / "report.png")
    assert seen["console"] == []
    dom = seen["dom"]
    assert 'data-rendered="yes"' in dom, "the page's check script did not run to the end"
    assert f'data-images="{images}"' in dom and 'data-broken-images="0"' in dom
    for section in sections:
        assert f'id="{section}"' in dom
    shot = (tmp_path / "report.png").read_bytes()
    assert shot[:8] == b"\x89PNG\r\n\x1a\n" and len(shot) > 50_000
