"""What a command shows, through rich: results (tables, the report's path, `--json`) on
stdout, so they pipe; progress, messages and errors on stderr.

Every text that is not ours (names, paths, library messages) goes through rich's escaping
here, so `[hub]` in `pip install -e ".[hub]"` is printed, not read as a style tag."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

console = Console(stderr=True)  # progress and messages
results = Console()  # tables and paths: what a user pipes into a file
for _one in (console, results):
    if not _one.is_terminal:  # logs and pipes: wide enough that tables keep their names
        _one.width = 160


class _RateColumn(ProgressColumn):
    def render(self, task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.1f} img/s" if speed else "- img/s", style="cyan")


@contextmanager
def image_bar(description: str, total: int) -> Iterator:
    """Yields advance(n): a bar with images done, images/s and ETA."""
    columns = (
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TaskProgressColumn(), _RateColumn(), TimeElapsedColumn(), TextColumn("ETA"),
        TimeRemainingColumn(),
    )  # fmt: skip
    if not console.is_terminal:  # logs and pipes get the summary table, not bar frames
        yield lambda n: None
        return
    # Two frames a second: redrawing at rich's default 10 takes CPU from the embedders.
    with Progress(*columns, console=console, transient=False, refresh_per_second=2) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n: bar.advance(task, n)


def table(title: str, columns: list[str], rows: list[list]) -> None:
    """A result table on stdout; every cell is text, never markup."""
    out = Table(title=Text(title), title_justify="left")
    for name in columns:
        out.add_column(Text(name), justify="left" if name == columns[0] else "right")
    for row in rows:
        out.add_row(*[Text(_fmt(v)) for v in row])
    results.print(out)


def result(text: str) -> None:
    """One line of result on stdout (the report's path), as written."""
    results.print(Text(text), soft_wrap=True)


def json_result(value) -> None:
    """`--json`: the result as one JSON document on stdout, for scripts."""
    print(json.dumps(value, indent=1), flush=True)


def say(text: str, *, tag: str = "", style: str = "") -> None:
    """A message on stderr: `tag` (a name, coloured with `style`) then `text`, both as written."""
    line = Text.assemble((tag, style), " " if tag else "", text)
    console.print(line, soft_wrap=True)


def status(text: str):
    """A spinner on stderr while a step runs, its text as written."""
    return console.status(escape(text))


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"
    return "-" if value is None else str(value)
