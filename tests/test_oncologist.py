"""'Be the oncologist': the student's choices are a policy that asks, fed here through stdin."""

from __future__ import annotations

from click.testing import CliRunner

import simulator
from simulator.cli import main
from simulator.oncologist import StudentPolicy
from simulator.policy import LocalTherapy, SwitchLine

SHORT = ["--seed", "3"]


def test_student_switches_and_sees_the_truth(tmp_path):
    # At the first decision: biopsy the suggested lesion, then switch to the line offered first; then autopilot.
    answers = "b\n\ns\n\na\n"  # Enter: the suggested lesson, the first line offered
    result = CliRunner().invoke(main, ["oncologist", "two-clone-teaching", *SHORT, "--out", str(tmp_path / "o")],
                                input=answers)
    assert result.exit_code == 0, result.output
    assert "decide (" in result.output and "biopsy of" in result.output
    assert "The truth underneath" in result.output and "resistant=" in result.output
    assert (tmp_path / "o" / "report.html").exists()


def test_the_policy_decides_only_where_a_decision_is_due_and_replays_on_a_rerun():
    scenario = simulator.load_scenario("egfr-first-line-gefitinib", {"simulation.duration_days": 800})
    asked = []

    def ask(text, choices, default):
        asked.append(text)
        if text.startswith("  decide") and len(asked) >= 2 and "s" in choices:
            return "s"
        if text.startswith("  switch"):
            return "osimertinib"
        return "c"

    student = StudentPolicy(ask=ask, say=lambda text: None)
    result = simulator.simulate(scenario, policy=student)
    visits = len(result.visits)
    decisions = [a for a in asked if a.startswith("  decide")]
    assert 0 < len(decisions) < visits
    assert "osimertinib" in set(result.events.loc[result.events["kind"] == "line_start", "detail"])
    assert any(isinstance(action, SwitchLine) for _, actions, _, _ in student.answers for action in actions)
    # The engine may rerun a patient from the start: recorded answers replay without asking.
    before = len(asked)
    again = simulator.simulate(scenario, policy=student)
    assert len(asked) == before
    assert again.events.equals(result.events)


def test_local_therapy_choice_reaches_the_lesion():
    scenario = simulator.load_scenario("egfr-first-line-gefitinib", {"simulation.duration_days": 300})

    def ask(text, choices, default):
        key = next((k for k in ("  decide", "  treat", "  with") if text.startswith(k)), "")
        return {"  decide": "l", "  treat": default, "  with": "radiotherapy"}.get(key, "c")

    student = StudentPolicy(ask=ask, say=lambda text: None)
    result = simulator.simulate(scenario, policy=student)
    assert (result.events["kind"] == "local_therapy").sum() >= 1
    assert any(isinstance(a, LocalTherapy) for _, actions, _, _ in student.answers for a in actions)
