"""Lessons: short executable scripts that ask a question, ask for a prediction, run the
simulator, draw the pictures and say what to notice.

A lesson is a Python script in the jupytext "percent" format (cells start with ``# %%``;
``# %% [markdown]`` cells are prose in comments), so it runs as plain Python and opens as a
notebook in Jupyter with jupytext. Its prose holds no results: every number a lesson states
is computed by its code and written with :meth:`Page.say`.

In a lesson::

    from simulator.lessons import page

    lesson = page()                        # the page this run writes to
    lesson.say(f"Median PFS: {median:.1f} months.")
    lesson.figure(fig, "km", "Progression-free survival by arm")

Run as a script (``python lessons/01_luria_delbruck.py``) the page prints its text and saves
its pictures in ``lesson-output/<script name>/`` (or ``$SIMULATOR_LESSON_OUT``). Run by
``simulator lesson run NAME --out DIR`` (:func:`run_lesson`), each cell is executed in turn
and the page becomes ``index.html``: the prose, the code (folded), and each cell's text,
tables and pictures after it, with the pictures also written as files.
"""

from __future__ import annotations

import html
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

LESSON_ENV = "SIMULATOR_LESSONS"
OUT_ENV = "SIMULATOR_LESSON_OUT"
PAGE_NAME = "index.html"


def lessons_directory() -> Path:
    """Where the lessons are: ``$SIMULATOR_LESSONS``, else ``lessons/`` of the source checkout."""
    if os.environ.get(LESSON_ENV):
        return Path(os.environ[LESSON_ENV])
    return Path(__file__).resolve().parent.parent / "lessons"


def lesson_name(path: Path) -> str:
    """``01_luria_delbruck.py`` -> ``luria-delbruck``."""
    return re.sub(r"^\d+[_-]", "", path.stem).replace("_", "-")


def lesson_paths() -> dict[str, Path]:
    """Lesson name -> script, in the order of their numbers."""
    folder = lessons_directory()
    if not folder.is_dir():
        return {}
    return {lesson_name(path): path for path in sorted(folder.glob("[0-9]*.py"))}


def find_lesson(name: str) -> Path:
    """A lesson by name (``luria-delbruck``), number (``1``, ``01``) or file."""
    lessons = lesson_paths()
    if name in lessons:
        return lessons[name]
    if Path(name).is_file():
        return Path(name)
    for path in lessons.values():
        number = re.match(r"^(\d+)", path.stem)
        if name.isdigit() and number and int(number.group(1)) == int(name):
            return path
    import difflib

    if not lessons:
        raise ValueError(f"lesson: no lessons found in '{lessons_directory()}' (they ship with the "
                         f"source checkout; set {LESSON_ENV} to their folder)")
    close = difflib.get_close_matches(name, list(lessons), n=1, cutoff=0.5)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    raise ValueError(f"lesson: no lesson '{name}'{hint}; allowed: {', '.join(lessons)}")


# --- cells -----------------------------------------------------------------------------------


@dataclass
class Cell:
    kind: str          # "markdown" or "code"
    source: str        # for markdown: the text without the comment marks
    line: int          # first line of the cell's body in the file (1-based)


def split_cells(text: str) -> list[Cell]:
    """The cells of a percent-format script; a header before the first cell is dropped."""
    cells: list[Cell] = []
    kind, start, body = None, 0, []

    def close() -> None:
        if kind is None:
            return
        if kind == "markdown":
            source = "\n".join(re.sub(r"^# ?", "", line) if line.startswith("#") else line for line in body)
        else:
            source = "\n".join(body)
        if source.strip():
            cells.append(Cell(kind, source.strip("\n"), start))

    for number, line in enumerate(text.splitlines(), start=1):
        if line.startswith("# %%"):
            close()
            kind = "markdown" if "[markdown]" in line else "code"
            start, body = number + 1, []
        elif kind is not None:
            body.append(line)
    close()
    return cells


def lesson_title(path: Path) -> tuple[str, str]:
    """The lesson's title (its first heading) and question (the paragraph starting
    'Question')."""
    cells = [c for c in split_cells(path.read_text(encoding="utf-8")) if c.kind == "markdown"]
    text = "\n".join(c.source for c in cells)
    title = next((line.lstrip("# ").strip() for line in text.splitlines() if line.startswith("#")), path.stem)
    question = re.search(r"\*\*Question\.?\*\*\s*(.+?)(\n\n|$)", text, re.S)
    return title, " ".join(question.group(1).split()) if question else ""


# --- the page a lesson writes to -------------------------------------------------------------


@dataclass
class Output:
    kind: str          # "text", "figure" or "table"
    content: str       # markdown text, a file name, or table HTML
    caption: str = ""


@dataclass
class Page:
    """What a lesson shows: text (markdown), tables and pictures, in order."""

    directory: Path
    dpi: int = 110
    echo: bool = True
    outputs: list[Output] = field(default_factory=list)
    figures: list[Path] = field(default_factory=list)

    def say(self, text: str) -> None:
        """Text with computed numbers (markdown: paragraphs, **bold**, lists, `code`)."""
        text = _dedent(text)
        self.outputs.append(Output("text", text))
        if self.echo:
            print(text + "\n")

    def figure(self, figure, name: str, caption: str = "") -> Path:
        """Save a figure as ``NAME.png`` in the lesson's folder and show it on the page."""
        if not re.fullmatch(r"[A-Za-z0-9_-]+", name):
            raise ValueError(f"figure name: letters, digits, '-' and '_' only, got '{name}'")
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"{name}.png"
        figure.savefig(path, dpi=self.dpi)
        self.figures.append(path)
        self.outputs.append(Output("figure", path.name, caption))
        if self.echo:
            print(f"[picture: {path}]" + (f" {caption}" if caption else "") + "\n")
        return path

    def table(self, table, caption: str = "", index: bool = True) -> None:
        """A small table (a DataFrame), numbers rounded for reading."""
        from simulator.report import table_html

        self.outputs.append(Output("table", table_html(table, index=index), caption))
        if self.echo:
            print((caption + "\n" if caption else "") + table.to_string() + "\n")


def _dedent(text: str) -> str:
    import textwrap

    return textwrap.dedent(text).strip()


_current: Page | None = None


def page() -> Page:
    """The page of the lesson being run: the one :func:`run_lesson` set up, or (when the
    script runs on its own) one that prints and saves pictures in ``$SIMULATOR_LESSON_OUT``
    or ``lesson-output/<script name>``."""
    global _current
    if _current is None:
        import __main__

        stem = Path(getattr(__main__, "__file__", "lesson")).stem
        _current = Page(Path(os.environ.get(OUT_ENV) or Path("lesson-output") / stem))
    return _current


# --- running a lesson into a folder ----------------------------------------------------------


@dataclass
class LessonRun:
    name: str
    title: str
    seconds: float
    figures: list[Path]
    texts: list[str]
    page_path: Path


def run_lesson(path: str | Path, directory: str | Path, dpi: int = 110, echo: bool = False) -> LessonRun:
    """Execute a lesson cell by cell; write its pictures and ``index.html`` into ``directory``.

    The code runs in a fresh namespace with ``__name__ == "__main__"``; tracebacks point at
    the lesson's own lines.
    """
    import matplotlib

    matplotlib.use("Agg")
    global _current
    path = Path(path)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    text = path.read_text(encoding="utf-8")
    cells = split_cells(text)
    namespace = {"__name__": "__main__", "__file__": str(path)}
    current = Page(directory, dpi=dpi, echo=echo)
    previous, _current = _current, current
    blocks: list[str] = []
    start = time.perf_counter()
    try:
        for cell in cells:
            if cell.kind == "markdown":
                blocks.append(f'<div class="prose">{markdown_html(cell.source)}</div>')
                continue
            before = len(current.outputs)
            # Padding keeps the line numbers of a traceback those of the file.
            code = compile("\n" * (cell.line - 1) + cell.source, str(path), "exec")
            exec(code, namespace)  # noqa: S102 - a lesson is code the user chose to run
            blocks.append(f'<details class="code"><summary>code</summary><pre>{html.escape(cell.source)}</pre>'
                          "</details>")
            blocks += [_output_html(output, directory) for output in current.outputs[before:]]
    finally:
        _current = previous
    seconds = time.perf_counter() - start
    title, question = lesson_title(path)
    page_path = directory / PAGE_NAME
    page_path.write_text(_lesson_page(title, blocks, lesson_name(path), seconds), encoding="utf-8")
    return LessonRun(lesson_name(path), title, seconds, list(current.figures),
                     [o.content for o in current.outputs if o.kind == "text"], page_path)


def _output_html(output: Output, directory: Path) -> str:
    if output.kind == "text":
        return f'<div class="output">{markdown_html(output.content)}</div>'
    if output.kind == "table":
        caption = f"<p class=\"caption\">{html.escape(output.caption)}</p>" if output.caption else ""
        return f'<div class="output">{caption}{output.content}</div>'
    import base64

    data = base64.b64encode((directory / output.content).read_bytes()).decode()
    caption = f"<figcaption>{html.escape(output.caption)}</figcaption>" if output.caption else ""
    return (f'<figure class="picture"><img alt="{html.escape(output.caption or output.content)}" '
            f'src="data:image/png;base64,{data}"/>{caption}</figure>')


def _lesson_page(title: str, blocks: list[str], name: str, seconds: float) -> str:
    from simulator.report import CHECK_SCRIPT, STYLE

    style = STYLE + """
.prose { max-width: 52em; }
.output { background: #f3f8fc; border-left: 4px solid #4a90c2; padding: 0.3em 1em; margin: 0.6em 0; }
details.code summary { color: #777; font-size: 0.85em; cursor: pointer; }
"""
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"/>"
            f"<title>{html.escape(title)}</title><style>{style}</style></head><body>"
            + "".join(blocks)
            + f"<p class=\"lead\">Lesson '{html.escape(name)}', run in {seconds:.0f} s with "
              f"<code>simulator lesson run {html.escape(name)}</code>.</p>"
            + f"<script>{CHECK_SCRIPT}</script></body></html>\n")


def markdown_html(text: str) -> str:
    """The little markdown lessons use: headings, paragraphs, bullet lists, **bold**,
    *italic* and `code`."""

    def inline(line: str) -> str:
        line = html.escape(line)
        line = re.sub(r"`([^`]+)`", r"<code>\1</code>", line)
        line = re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", line)
        return re.sub(r"(?<![*\w])\*([^*\s][^*]*)\*(?!\*)", r"<em>\1</em>", line)

    out: list[str] = []
    for block in re.split(r"\n\s*\n", text.strip()):
        lines = block.splitlines()
        if all(re.match(r"\s*[-*] ", line) or line.startswith("  ") for line in lines) and \
                re.match(r"\s*[-*] ", lines[0]):
            items, current = [], []
            for line in lines:
                if re.match(r"\s*[-*] ", line):
                    if current:
                        items.append(" ".join(current))
                    current = [re.sub(r"^\s*[-*] ", "", line)]
                else:
                    current.append(line.strip())
            items.append(" ".join(current))
            out.append("<ul>" + "".join(f"<li>{inline(item)}</li>" for item in items) + "</ul>")
        elif lines[0].startswith("#"):
            level = min(len(lines[0]) - len(lines[0].lstrip("#")), 4)
            out.append(f"<h{level}>{inline(lines[0].lstrip('# '))}</h{level}>")
            if lines[1:]:
                out.append(f"<p>{inline(' '.join(lines[1:]))}</p>")
        else:
            out.append(f"<p>{inline(' '.join(line.strip() for line in lines))}</p>")
    return "\n".join(out)
