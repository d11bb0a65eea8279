"""What a command shows, through rich: results (tables, the report's path, `--json`) on
stdout, so they pipe; progress, messages and errors on stderr.

Every text that is not ours (names, paths, library messages) goes through rich's escaping
here, so `[hub]` in `pip install -e ".[hub]"` is printed, not read as a style tag."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator
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

log = logging.getLogger("cifar_ray")
console = Console(stderr=True)  # progress and messages
results = Console()  # tables and paths: what a user pipes into a file
for _one in (console, results):
    if not _one.is_terminal:  # logs and pipes: wide enough that tables keep their names
        _one.width = 160


SPEED_WINDOW_S = 30.0  # the bar's rate: images over the last this many seconds


class _RateColumn(ProgressColumn):
    """The bar's rate is the recent one; the summary's `img/s whole job` counts start-up too."""

    def render(self, task) -> Text:
        speed = task.finished_speed or task.speed
        shown = f"{speed:,.1f}" if speed else "-"
        return Text(f"{shown} img/s (last {SPEED_WINDOW_S:.0f} s)", style="cyan")


class ImageBar:
    """Images published (`done`) plus images embedded in shards still in flight (`embedding`,
    reported per batch by the actors): the bar moves within a shard, never backwards."""

    def __init__(self, update: Callable[[int], None], total: int):
        self.update, self.total = update, total
        self.published = self.in_flight = self.shown = 0
        self.lock = threading.Lock()

    def done(self, n: int) -> None:
        with self.lock:
            self.published += n
            self._show()

    def embedding(self, n: int) -> None:
        with self.lock:
            self.in_flight = n
            self._show()

    def _show(self) -> None:
        self.shown = max(self.shown, min(self.total, self.published + self.in_flight))
        self.update(self.shown)


@contextmanager
def image_bar(description: str, total: int) -> Iterator[ImageBar]:
    """Yields an `ImageBar`: a bar with images done, the recent images/s and ETA."""
    columns = (
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TaskProgressColumn(), _RateColumn(), TimeElapsedColumn(), TextColumn("ETA"),
        TimeRemainingColumn(),
    )  # fmt: skip
    if not console.is_terminal:  # logs and pipes get the summary table, not bar frames
        yield ImageBar(lambda n: None, total)
        return
    # Two frames a second: redrawing at rich's default 10 takes CPU from the embedders.
    with Progress(*columns, console=console, transient=False, refresh_per_second=2,
                  speed_estimate_period=SPEED_WINDOW_S) as bar:  # fmt: skip
        task = bar.add_task(description, total=total)
        yield ImageBar(lambda n: bar.update(task, completed=n), total)


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


def phase(text: str) -> None:
    """A start-up phase as it begins: a line on a terminal, so the first seconds are not
    blank; in logs and pipes an INFO log line (`-v`), so an error stays the one line there."""
    if console.is_terminal:
        console.print(Text(f"· {text}", style="dim"), soft_wrap=True)
    else:
        log.info("%s", text)


def status(text: str):
    """A spinner on stderr while a step runs, its text as written."""
    return console.status(escape(text))


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"
    return "-" if value is None else str(value)
