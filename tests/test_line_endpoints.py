"""Per-line PFS and best response, PFS2 and patterns of progression, on a hand-made log."""

import numpy as np

import simulator
from simulator.endpoints import Log, patient_endpoints
from simulator.engine import clinic as cl
from simulator.engine import events as ev

SCENARIO = simulator.load_scenario("egfr-first-line-gefitinib")
LINES = list(SCENARIO.therapy.lines)
BRAIN = SCENARIO.sites.index("brain")
LUNG = SCENARIO.sites.index("lung")


def log(events, visits):
    time, kind, lesion, detail, value = (np.array(c) for c in zip(*events))
    visit_time, response = (np.array(c) for c in zip(*visits))
    return Log(time.astype(float), kind.astype(np.int64), lesion.astype(np.int64),
               detail.astype(np.int64), value.astype(float), visit_time.astype(float),
               response.astype(np.int64), np.array([LUNG, BRAIN]), np.zeros(len(SCENARIO.drugs)), 500.0)


def test_each_line_has_its_own_pfs_response_and_pfs2():
    events = [
        (0, ev.EVENT_LINE_START, -1, LINES.index("gefitinib"), 0),
        (294, ev.EVENT_PROGRESSION, -1, -1, 2), (294, ev.EVENT_LESION_PROGRESSING, 0, 0, 30),
        (294, ev.EVENT_LESION_PROGRESSING, 1, 1, 8),
        (294, ev.EVENT_BIOPSY, 0, SCENARIO.mechanisms.index("T790M"), 0.4),
        (294, ev.EVENT_LINE_START, -1, LINES.index("osimertinib"), 0),
        (420, ev.EVENT_PROGRESSION, -1, -1, 1), (420, ev.EVENT_LESION_PROGRESSING, 0, 0, 25),
        (420, ev.EVENT_LINE_START, -1, LINES.index("chemotherapy"), 0),
        (480, ev.EVENT_DEATH, -1, BRAIN, 1e11),
    ]
    visits = [(0, cl.RESPONSE_BASELINE), (42, cl.RESPONSE_PR), (84, cl.RESPONSE_CR),
              (294, cl.RESPONSE_PD), (336, cl.RESPONSE_PR), (378, cl.RESPONSE_SD),
              (420, cl.RESPONSE_PD), (462, cl.RESPONSE_SD)]
    endpoints = patient_endpoints(SCENARIO, log(events, visits))
    per_line = endpoints["per_line"]
    assert per_line["gefitinib"] == {"pfs_days": 294, "progressed": True, "best_response": "CR"}
    # The scan that led to osimertinib (PD on gefitinib) is its baseline, not its response.
    assert per_line["osimertinib"] == {"pfs_days": 126, "progressed": True, "best_response": "PR"}
    assert per_line["chemotherapy"] == {"pfs_days": 60, "progressed": True, "best_response": "SD"}
    assert endpoints["pfs_days"] == 294 and endpoints["pfs2_days"] == 420
    assert endpoints["os_days"] == 480 and endpoints["death_cause"] == "brain"
    assert endpoints["stop_reason"] == "death"
    assert endpoints["progressing_lesions"] == [2, 1]
    assert endpoints["new_lesions_at_progression"] == [1, 0]
    assert endpoints["brain_at_progression"] == [True, False]
    assert endpoints["mechanisms_at_progression"] == ["T790M"]


def test_without_a_next_line_pfs2_is_death():
    events = [(0, ev.EVENT_LINE_START, -1, 0, 0), (200, ev.EVENT_PROGRESSION, -1, -1, 1),
              (200, ev.EVENT_THERAPY_EXHAUSTED, -1, cl.EXHAUSTED_UNFIT, 0),
              (300, ev.EVENT_DEATH, -1, -2, 1e11)]
    endpoints = patient_endpoints(SCENARIO, log(events, [(0, cl.RESPONSE_BASELINE), (42, cl.RESPONSE_SD)]))
    assert endpoints["pfs2_days"] == 300 and endpoints["progressed2"]
    assert endpoints["death_cause"] == "hazard"
    assert endpoints["per_line"]["gefitinib"]["pfs_days"] == 200
