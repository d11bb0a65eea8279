"""Progress bars and summary tables on stderr, through rich."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
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

console = Console(stderr=True)
if not console.is_terminal:  # logs and pipes: wide enough that tables keep their names
    console.width = 160


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
    out = Table(title=title, title_justify="left")
    for name in columns:
        out.add_column(name, justify="left" if name == columns[0] else "right")
    for row in rows:
        out.add_row(*[_fmt(v) for v in row])
    console.print(out)


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"
    return "-" if value is None else str(value)
