"""Tables for people: a list table fitted to the terminal's width at print time (the least
useful columns drop first, the name and status never; ``--wide`` keeps them all) and a
key/value table, with numbers rounded to what a person reads. No data formats here."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, RenderResult
from rich.table import Table
from rich.text import Text

KEEP = 0  # priority of a column that never drops
NAMES = frozenset({"name", "username"})
ALWAYS_KEPT = NAMES | {"status", "state"}


@dataclass(frozen=True)
class Col:
    """A list column: its header and how readily it drops when the terminal is narrow
    (``KEEP`` never; otherwise the higher the number, the sooner)."""

    name: str
    priority: int = 5
    justify: str | None = None  # "right" for numbers; None: right when every value is one


def as_cols(columns: Iterable[str | Col]) -> list[Col]:
    """Columns, those given by name alone with a priority: name, username, status and state
    are kept; the rest drop from the right (the later, the sooner), except that ``id`` drops
    last: a short id is a few characters and what a person types next."""
    given = list(columns)
    out = []
    for index, column in enumerate(given):
        if isinstance(column, Col):
            out.append(column)
        elif column in ALWAYS_KEPT:
            out.append(Col(column, KEEP))
        elif column == "id":
            out.append(Col(column, 1))
        else:
            out.append(Col(column, index + 2))
    return out


def fmt(value: Any) -> str:
    """A value as a person reads it: ``—`` for none, yes/no, a float to one decimal
    (``63.4``; two significant digits below 1), lists and maps joined."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return fmt_float(value)
    if isinstance(value, list):
        return ", ".join(fmt(v) for v in value) or "—"
    if isinstance(value, dict):
        return ", ".join(f"{k}={fmt(v)}" for k, v in value.items()) or "—"
    return str(value)


def fmt_float(value: float) -> str:
    if value != value or value in (float("inf"), float("-inf")):
        return str(value)
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    if abs(value) >= 1:
        return f"{value:.1f}"
    return f"{value:.2g}"


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def text_width(cell: str) -> int:
    """Widest line of a cell written in Rich markup, in terminal cells."""
    plain = Text.from_markup(cell).plain
    return max((cell_len(line) for line in plain.splitlines()), default=0)


def fit_width(widths: Sequence[int], priorities: Sequence[int], max_width: int) -> list[int]:
    """Indexes of the columns to show: drop the highest priority number first (the
    rightmost of equals) until the table's width — ``Σ(w + 3) + 1`` for a boxed table with
    one cell of padding either side — fits ``max_width``; ``KEEP`` columns stay."""
    shown = list(range(len(widths)))
    droppable = sorted(
        (i for i in shown if priorities[i] != KEEP), key=lambda i: (priorities[i], i)
    )
    while sum(widths[i] + 3 for i in shown) + 1 > max_width and droppable:
        shown.remove(droppable.pop())
    return shown


class FittedTable:
    """A list table that picks its columns when printed, for the width it is given."""

    def __init__(self, title: str, columns: Sequence[Col], rows: Sequence[Sequence[Any]]) -> None:
        self.title = title
        self.columns = list(columns)
        self.raw = [list(r) for r in rows]
        self.cells = [[fmt(v) for v in r] for r in self.raw]

    def widths(self) -> list[int]:
        return [
            max([text_width(c.name)] + [text_width(r[i]) for r in self.cells if i < len(r)])
            for i, c in enumerate(self.columns)
        ]

    def table(self, max_width: int) -> Table:
        shown = fit_width(self.widths(), [c.priority for c in self.columns], max_width)
        hidden = [c.name for i, c in enumerate(self.columns) if i not in shown]
        caption = f"--wide shows {', '.join(hidden)}" if hidden else None
        table = Table(
            title=self.title, title_justify="left", caption=caption, caption_justify="left"
        )
        for i in shown:
            col = self.columns[i]
            values = [r[i] for r in self.raw if i < len(r) and r[i] is not None]
            numeric = bool(values) and all(_is_number(v) for v in values)
            justify = col.justify or ("right" if numeric else "left")
            table.add_column(
                col.name,
                justify=justify,  # type: ignore[arg-type]
                no_wrap=True,
                overflow="ellipsis",
                min_width=min(text_width(col.name), 12),
            )
        for r in self.cells:
            table.add_row(*(r[i] if i < len(r) else "" for i in shown))
        return table

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield self.table(options.max_width)


def list_table(
    title: str, columns: Iterable[str | Col], rows: Iterable[Iterable[Any]]
) -> FittedTable:
    return FittedTable(title, as_cols(columns), [list(r) for r in rows])


def kv_table(title: str, rows: Mapping[str, Any]) -> Table:
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    for key, value in rows.items():
        table.add_row(key, fmt(value))
    return table
