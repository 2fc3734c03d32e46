"""Event codes and the event log the kernel writes (time, kind, lesion, detail, value)."""

from simulator.engine.jit import jit_inline

EVENT_CLONE_APPEARS = 0  # detail: clone type; value: cells
EVENT_LESION_SEEDED = 1  # detail: clone type of the founder; value: parent lesion
EVENT_LESION_EXTINCT = 2
EVENT_DEATH = 3  # value: burden
EVENT_EXTINCTION = 4
EVENT_PROGRESSION = 5  # value: lesions progressing on their own
EVENT_BIOPSY = 6  # detail: mechanism found (-1: none); value: its fraction in the lesion
EVENT_LINE_START = 7  # detail: line
EVENT_THERAPY_EXHAUSTED = 8  # no further line
EVENT_DRUG_STOP = 9  # detail: reason
EVENT_DRUG_RESTART = 10  # detail: reason
EVENT_LOCAL_THERAPY = 11  # detail: modality; value: fraction of the lesion's cells surviving
EVENT_SIZE_REACHED = 12  # the run's stopping size; value: burden
EVENT_LESION_PROGRESSING = 13  # after a progression, one per lesion: detail 1 if new; value: diameter
EVENT_NAMES = {
    EVENT_CLONE_APPEARS: "clone_appears",
    EVENT_LESION_SEEDED: "lesion_seeded",
    EVENT_LESION_EXTINCT: "lesion_extinct",
    EVENT_DEATH: "death",
    EVENT_EXTINCTION: "extinction",
    EVENT_PROGRESSION: "progression",
    EVENT_BIOPSY: "biopsy",
    EVENT_LINE_START: "line_start",
    EVENT_THERAPY_EXHAUSTED: "therapy_exhausted",
    EVENT_DRUG_STOP: "drug_stop",
    EVENT_DRUG_RESTART: "drug_restart",
    EVENT_LOCAL_THERAPY: "local_therapy",
    EVENT_SIZE_REACHED: "size_reached",
    EVENT_LESION_PROGRESSING: "lesion_progressing",
}


@jit_inline
def log_event(out, time, kind, lesion, detail, value):
    """Append an event; False when the log is full (the run is redone with more room)."""
    index = out.counters[2]
    if index >= out.event_time.size:
        return False
    out.event_time[index] = time
    out.event_kind[index] = kind
    out.event_lesion[index] = lesion
    out.event_detail[index] = detail
    out.event_value[index] = value
    out.counters[2] = index + 1
    return True
