"""Self-contained HTML reports of a patient and of a cohort.

One file (``report.html``) holds everything: the summary, the clinical timeline, the pictures
(embedded as base64 PNG or inline SVG), the endpoints, provenance and, for a cohort, the arms
compared (Kaplan-Meier curves with hazard ratios and log-rank p-values, paired differences).
Nothing is fetched from a network; a few lines of inline script only check that the page
rendered (every picture decoded) and mark it, so a headless browser can tell.
"""

from __future__ import annotations

import base64
import io
import json
import math
from html import escape
from pathlib import Path

import numpy as np
import pandas as pd

REPORT_NAME = "report.html"

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif;
       margin: 0 auto; max-width: 1180px; padding: 1.2em 1.5em 3em; color: #222; line-height: 1.45; }
h1 { font-size: 1.55em; margin-bottom: 0.1em; }
h2 { font-size: 1.2em; border-bottom: 1px solid #ddd; padding-bottom: 0.2em; margin-top: 1.8em; }
p.lead { color: #555; margin-top: 0.2em; }
table { border-collapse: collapse; font-size: 0.86em; margin: 0.5em 0; }
th, td { border: 1px solid #ddd; padding: 0.22em 0.55em; text-align: right; vertical-align: top; }
th { background: #f4f4f4; }
td.text, th.text { text-align: left; }
tr.event td { background: #fff8e6; }
tr.progression td { background: #fde8e6; }
figure { margin: 1em 0; }
figure img, figure svg { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: 0.88em; color: #555; margin-top: 0.3em; }
pre { background: #f7f7f7; padding: 0.8em; overflow-x: auto; font-size: 0.8em; }
.cards { display: flex; flex-wrap: wrap; gap: 0.8em; }
.card { border: 1px solid #ddd; border-radius: 6px; padding: 0.5em 0.9em; min-width: 9em; }
.card .value { font-size: 1.35em; font-weight: 600; }
.card .name { font-size: 0.8em; color: #666; }
nav a { margin-right: 1em; font-size: 0.9em; }
"""

# Marks the page once every picture has decoded, so a headless browser can check it rendered.
CHECK_SCRIPT = """
window.addEventListener("load", function () {
  var images = Array.prototype.slice.call(document.images);
  var broken = images.filter(function (img) { return !img.complete || img.naturalWidth === 0; });
  document.body.setAttribute("data-images", String(images.length));
  document.body.setAttribute("data-broken-images", String(broken.length));
  if (broken.length) { console.error("report: " + broken.length + " picture(s) did not decode"); }
  document.body.setAttribute("data-rendered", "yes");
});
"""


# --- pieces ----------------------------------------------------------------------------------


def figure_html(figure, caption: str = "", fmt: str = "png", dpi: int = 110, name: str = "") -> str:
    """A figure as an HTML ``<figure>``: a base64 PNG ``<img>`` or an inline SVG."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format=fmt, dpi=dpi)
    if fmt == "svg":
        svg = buffer.getvalue().decode()
        body = svg[svg.index("<svg"):]
    else:
        data = base64.b64encode(buffer.getvalue()).decode()
        body = f'<img alt="{escape(caption or name)}" src="data:image/png;base64,{data}"/>'
    ident = f' id="figure-{escape(name)}"' if name else ""
    text = f"<figcaption>{escape(caption)}</figcaption>" if caption else ""
    return f'<figure{ident} class="picture">{body}{text}</figure>'


def table_html(table: pd.DataFrame, ident: str = "", index: bool = False, text_columns=()) -> str:
    """A small table with numbers right-aligned and chosen columns left-aligned."""
    columns = ([table.index.name or ""] if index else []) + [str(c) for c in table.columns]
    head = "".join(f'<th class="{"text" if c in text_columns or (index and i == 0) else ""}">'
                   f"{escape(c)}</th>" for i, c in enumerate(columns))
    rows = []
    for key, row in table.iterrows():
        cells = ([f'<th class="text">{escape(str(key))}</th>'] if index else [])
        for column, value in row.items():
            cls = "text" if column in text_columns or not _is_number(value) else ""
            cells.append(f'<td class="{cls}">{escape(format_value(value))}</td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    ident = f' id="{ident}"' if ident else ""
    return f"<table{ident}><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _is_number(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def format_value(value) -> str:
    """A value as a reader wants it: 3 significant digits, '-' for missing, lists joined."""
    if value is None:
        return "-"
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (float, np.floating)):
        if math.isnan(value):
            return "-"
        if float(value).is_integer() and abs(value) < 1e6:
            return f"{int(value):,}"
        if value != 0 and (abs(value) >= 1e6 or abs(value) < 1e-3):
            return f"{value:.3g}"
        return f"{value:,.3f}".rstrip("0").rstrip(".") if abs(value) < 100 else f"{value:,.1f}"
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}" if abs(int(value)) < 10**7 else f"{float(value):.3g}"
    if isinstance(value, (list, tuple, np.ndarray)):
        return ", ".join(map(str, value)) or "-"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {format_value(v)}" for k, v in value.items()) or "-"
    return str(value)


def cards_html(items: list[tuple[str, str]]) -> str:
    return '<div class="cards">' + "".join(
        f'<div class="card"><div class="value">{escape(value)}</div><div class="name">{escape(name)}</div></div>'
        for name, value in items) + "</div>"


def provenance_html(provenance: dict) -> str:
    keys = ["simulator_version", "git_commit", "git_dirty", "seed", "replicate", "patients",
            "arms", "command_line", "created_utc", "python_version", "numpy_version",
            "numba_version", "pandas_version"]
    shown = pd.DataFrame({"value": [format_value(provenance[k]) for k in keys if k in provenance]},
                         index=pd.Index([k for k in keys if k in provenance], name="field"))
    full = json.dumps(provenance, indent=2, default=str)
    return (table_html(shown, "provenance-table", index=True, text_columns=("value",))
            + f"<details><summary>everything recorded (the resolved scenario: rerun with "
              f"<code>simulator run provenance.json</code>)</summary><pre>{escape(full)}</pre></details>")


def page(title: str, lead: str, sections: list[tuple[str, str, str]]) -> str:
    """A whole page: ``sections`` are (id, heading, inner HTML)."""
    nav = "".join(f'<a href="#{ident}">{escape(heading)}</a>' for ident, heading, _ in sections)
    body = "".join(f'<section id="{ident}"><h2>{escape(heading)}</h2>{inner}</section>'
                   for ident, heading, inner in sections)
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"/>"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"/>"
            f"<title>{escape(title)}</title><style>{STYLE}</style></head>"
            f"<body><header><h1 id=\"title\">{escape(title)}</h1><p class=\"lead\">{escape(lead)}</p>"
            f"<nav>{nav}</nav></header>{body}<script>{CHECK_SCRIPT}</script></body></html>\n")


# --- a patient -------------------------------------------------------------------------------


def clinical_timeline(result) -> pd.DataFrame:
    """Visits and clinical events in time order: ``day``, ``what``, ``details`` (the clinic's
    view: RECIST, sum of diameters, lesions seen, marker, ctDNA; then each decision)."""
    from simulator.results import CLINICAL_EVENTS, column_name

    rows = []
    mechanisms = [m for m in dict.fromkeys(result.clones["resistance"]) if m]
    for visit in result.visits.to_dict("records"):
        found = [m for m in mechanisms if visit.get(f"detected_{column_name(m)}")]
        ctdna = ("positive" + (f" ({', '.join(found)})" if found else "")) if visit["ctdna_positive"] else "negative"
        line = visit["line"] if isinstance(visit["line"], str) else None
        drug = "no drug" if line is None else (line if visit["drug_on"] else f"{line} (paused)")
        rows.append((float(visit["time"]), 0, "visit", visit["response"],
                     f"SLD {visit['sum_diameters_mm']:.1f} mm; {visit['visible_lesions']} lesion(s) seen; "
                     f"marker {visit['marker']:.1f}; ctDNA {ctdna}; {drug}"))
    events = result.events[result.events["kind"].isin(CLINICAL_EVENTS)]
    for event in events.itertuples():
        parts = [] if pd.isna(event.lesion) else [str(event.lesion)]
        if not pd.isna(event.detail):
            parts.append(str(event.detail))
        if event.kind == "local_therapy":
            parts.append(f"{event.value:.1e} of cells survive")
        elif event.kind == "biopsy" and event.detail != "none":
            parts.append(f"at {event.value:.0%} of the lesion's cells")
        elif event.kind == "progression":
            parts.append(f"{int(event.value)} lesion(s) progressing alone")
        rows.append((float(event.time), 1, event.kind.replace("_", " "), "", "; ".join(parts)))
    rows.sort(key=lambda r: r[:2])
    return pd.DataFrame([(t, kind, response, details) for t, _, kind, response, details in rows],
                        columns=["day", "what", "RECIST", "details"])


def _timeline_html(table: pd.DataFrame) -> str:
    rows = []
    for row in table.itertuples():
        cls = "progression" if row.what == "progression" else ("event" if row.what != "visit" else "")
        rows.append(f'<tr class="{cls}"><td>{row.day:g}</td><td class="text">{escape(row.what)}</td>'
                    f'<td class="text">{escape(row.RECIST)}</td><td class="text">{escape(row.details)}</td></tr>')
    return ('<table id="timeline-table"><thead><tr><th>day</th><th class="text">what</th>'
            '<th class="text">RECIST</th><th class="text">details</th></tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table>")


def patient_report(result, fmt: str = "png", dpi: int = 110) -> str:
    """The HTML report of one simulated patient (see the module docstring)."""
    from simulator.plots import burden_timeline, muller_plot
    from simulator.results import endpoint_columns

    provenance = result.provenance
    scenario = provenance["scenario"]
    ends = result.endpoints
    months = 30.44
    cards = [("PFS (months)", _months(ends.get("pfs_days"), months, ends.get("progressed"))),
             ("OS (months)", _months(ends.get("os_days"), months, ends.get("died"))),
             ("best response", str(ends.get("best_response", "-"))),
             ("lines used", str(ends.get("lines_used", "-"))),
             ("local therapies", str(ends.get("local_therapies", "-"))),
             ("lesions ever", str(len(result.lesions)))]
    final = result.final_cells.sum(axis=0)
    clones = pd.DataFrame({"clone": result.clones["clone"], "label": result.clones["label"],
                           "resistance": result.clones["resistance"].fillna(""),
                           "cells at start": _start_cells(result),
                           "cells at end": final.astype(float),
                           "first seen (day)": result.clones["first_seen"]})
    summary = (cards_html(cards)
               + f"<p>{escape(scenario.get('description', ''))}</p>"
               + "<p>The truth underneath, by clone type (the clinic never sees these counts):</p>"
               + table_html(clones, "clones-table", text_columns=("clone", "label", "resistance")))
    lines = list(scenario.get("therapy", {}).get("lines", {}))
    endpoints = pd.DataFrame({"value": pd.Series(endpoint_columns(ends, lines), dtype=object)})
    endpoints.index.name = "endpoint"
    pictures = (figure_html(muller_plot(result), "Clonal composition over time (Muller plot) with "
                            "the lines of therapy and CT visits", fmt, dpi, "muller")
                + figure_html(burden_timeline(result), "The true burden beside what the clinic saw: "
                              "CT, marker and ctDNA, with the decisions taken", fmt, dpi, "burden"))
    title = f"Patient report: {scenario.get('id', '')}"
    lead = (f"seed {provenance.get('seed')}, replicate {provenance.get('replicate')}, "
            f"followed to day {result.end_time:g}")
    return page(title, lead, [
        ("summary", "Summary", summary),
        ("timeline", "Clinical timeline", _timeline_html(clinical_timeline(result))),
        ("figures", "Pictures", pictures),
        ("endpoints", "Endpoints", table_html(endpoints, "endpoints-table", index=True,
                                              text_columns=("value",))),
        ("provenance", "Provenance", provenance_html(provenance)),
    ])


def _start_cells(result) -> np.ndarray:
    trajectory = result.trajectory
    first = trajectory[trajectory["time"] == trajectory["time"].min()]
    totals = first.groupby("clone", observed=False)["cells"].sum()
    return totals.reindex(result.clones["clone"]).fillna(0).to_numpy(float)


def _months(days, per_month: float, happened) -> str:
    if days is None or (isinstance(days, float) and math.isnan(days)):
        return "-"
    text = f"{days / per_month:.1f}"
    return text if happened else f"> {text} (censored)"


# --- a cohort --------------------------------------------------------------------------------


def cohort_report(cohort, fmt: str = "png", dpi: int = 110) -> str:
    """The HTML report of a cohort: arms summarised and compared (see the module docstring)."""
    from simulator.plots import km_plot, swimmer_plot

    provenance = cohort.provenance()
    summary = cohort.summary().set_index("arm").T
    summary.index.name = "metric"
    arms = cohort.arms
    n = int(cohort.endpoints["patient"].nunique())
    sections = [("summary", "Summary",
                 f"<p>{escape(cohort.scenario.description)}</p>"
                 + cards_html([("patients", str(n)), ("arms", str(len(arms))), ("seed", str(cohort.seed))])
                 + table_html(summary.astype(object), "summary-table", index=True))]
    km = (figure_html(km_plot(cohort.endpoints, "pfs_days", "progressed"),
                      "Progression-free survival by arm (hazard ratio and log-rank p against the first arm)",
                      fmt, dpi, "km-pfs")
          + figure_html(km_plot(cohort.endpoints, "os_days", "died"), "Overall survival by arm",
                        fmt, dpi, "km-os"))
    if len(arms) > 1:
        table = cohort.comparisons()
        compared = ("<p>Each arm against the first. The same virtual patients are in every arm "
                    "(common random numbers), so the paired differences are per-patient treatment "
                    "effects that no trial can observe.</p>"
                    + table_html(table.set_index(["arm", "endpoint"]).drop(columns="reference").T.astype(object),
                                 "comparison-table", index=True))
        sections.append(("comparison", "Arms compared", km + compared))
    else:
        sections.append(("comparison", "Survival", km))
    sections.append(("figures", "Swimmer plot",
                     figure_html(swimmer_plot(cohort.endpoints, cohort.events),
                                 "Lines of therapy per patient (the first patients of the cohort)", fmt, dpi,
                                 "swimmer")))
    if cohort.scenario.reference:
        reference = cohort.compare_reference()[["arm", "metric", "observed", "ci_low", "ci_high",
                                                 "reference_low", "reference_high", "within"]]
        sections.append(("reference", "Against published ranges",
                         table_html(reference, "reference-table", text_columns=("arm", "metric"))))
    endpoints = cohort.endpoints
    shown = [c for c in ["patient", "arm", "pfs_days", "progressed", "os_days", "died", "best_response",
                         "lines_used", "local_therapies", "mechanisms_at_progression"] if c in endpoints]
    sections.append(("endpoints", "Endpoints (first 40 rows)",
                     table_html(endpoints[shown].head(40), "endpoints-table",
                                text_columns=("arm", "best_response", "mechanisms_at_progression"))))
    sections.append(("provenance", "Provenance", provenance_html(provenance)))
    return page(f"Cohort report: {cohort.scenario.id}", f"{n} virtual patients in {len(arms)} arm(s): "
                f"{', '.join(arms)}", sections)


# --- checking a page in a real browser -------------------------------------------------------

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--enable-logging=stderr", "--v=0"]


def find_chromium() -> str | None:
    """The path of a Chromium (or Chrome) binary, or None."""
    import shutil

    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        found = shutil.which(name)
        if found:
            return found
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None


def render_in_browser(page_path, screenshot=None, width: int = 1280, height: int = 2400,
                      timeout: float = 90.0) -> dict:
    """Open an HTML file in headless Chromium: the rendered DOM, console messages and,
    optionally, a screenshot (PNG).

    Returns
    -------
    dict
        ``dom`` (the page after its scripts ran), ``console`` (lines Chromium logged from the
        page's console: errors and warnings included) and ``screenshot`` (the path or None).

    Raises
    ------
    FileNotFoundError
        When no Chromium is installed.
    """
    import subprocess
    import tempfile

    binary = find_chromium()
    if binary is None:
        raise FileNotFoundError("no chromium binary (apt-get install chromium)")
    url = Path(page_path).resolve().as_uri()
    console = []
    with tempfile.TemporaryDirectory(prefix="report-browser-") as profile:
        base = [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=5000",
                f"--window-size={width},{height}"]
        dom = subprocess.run([*base, "--dump-dom", url], capture_output=True, text=True, timeout=timeout)
        console += [line for line in dom.stderr.splitlines() if "CONSOLE" in line]
        if screenshot is not None:
            shot = subprocess.run([*base, f"--screenshot={Path(screenshot).resolve()}", url],
                                  capture_output=True, text=True, timeout=timeout)
            console += [line for line in shot.stderr.splitlines() if "CONSOLE" in line]
    return {"dom": dom.stdout, "console": console, "screenshot": screenshot}
