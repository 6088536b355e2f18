"""Shared CLI output: Rich tables for people (fitted to the terminal, see ``tables``) and
``-o json|yaml|csv`` (``--json``) for scripts. The format of one command's run is a context
value set by ``with_formats``; the commands print through ``print_json`` and ``list_table``."""

from __future__ import annotations

import contextlib
import csv
import functools
import io
import json
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Protocol

import typer
from rich.console import Console
from typer.core import TyperGroup

from wrale.user.cli.tables import Col, fit_width, fmt, kv_table, list_table

__all__ = [
    "Col",
    "Format",
    "FormatsGroup",
    "Mode",
    "console",
    "err_console",
    "fit_width",
    "fmt",
    "kv_table",
    "list_table",
    "mode",
    "print_json",
    "using",
    "with_formats",
]

console = Console()
err_console = Console(stderr=True)

WIDE_WIDTH = 10_000  # --wide: a table is as wide as its columns, whatever the terminal


@dataclass(frozen=True)
class Mode:
    """How this run prints: ``format`` a ``Format`` value; ``wide`` keeps every column."""

    format: str = "table"
    wide: bool = False


_mode: ContextVar[Mode] = ContextVar("wrale_output_mode", default=Mode())  # noqa: B039 (frozen)


def mode() -> Mode:
    return _mode.get()


@contextlib.contextmanager
def using(m: Mode) -> Iterator[None]:
    """Print in ``m`` inside the block (``--wide`` lets lines run past the terminal)."""
    token = _mode.set(m)
    width = console.width
    if m.wide:
        console.width = WIDE_WIDTH
    try:
        yield
    finally:
        _mode.reset(token)
        if m.wide:
            console.width = width


# ----------------------------------------------------------------------------- data formats


def print_json(data: Any) -> None:
    """The data as it came from the API, in this run's data format: JSON (``--json``,
    ``-o json``: unchanged, times as unix seconds), YAML or CSV (times as ISO-8601)."""
    fmt_name = mode().format
    if fmt_name in ("yaml", "csv"):  # as they are: no wrapping, CSV keeps its CRLF
        console.file.write(to_yaml(data) if fmt_name == "yaml" else to_csv(data))
        console.file.flush()
    else:
        console.print_json(json.dumps(data, default=str))


def is_time_key(key: str) -> bool:
    return key.endswith("_at") or key in {"at", "ts"}


def iso(ts: float) -> str:
    """Unix seconds as ISO-8601 in UTC, to the microsecond the value carries."""
    return datetime.fromtimestamp(ts, UTC).isoformat()


def with_iso_times(data: Any) -> Any:
    """``data`` with every ``*_at``/``at``/``ts`` number as an ISO-8601 string."""
    if isinstance(data, dict):
        return {
            str(k): iso(v)
            if is_time_key(str(k)) and isinstance(v, int | float) and not isinstance(v, bool)
            else with_iso_times(v)
            for k, v in data.items()
        }
    if isinstance(data, list | tuple):
        return [with_iso_times(v) for v in data]
    return data


def to_yaml(data: Any) -> str:
    import yaml  # type: ignore[import-untyped]  # PyYAML has no inline types

    plain = json.loads(json.dumps(with_iso_times(data), default=str))
    return str(yaml.safe_dump(plain, sort_keys=False, allow_unicode=True, width=1_000_000))


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"), default=str)
    return str(value)


def to_csv(data: Any) -> str:
    """RFC 4180 CSV: a header row, then one record per item (one for a single object);
    nested values as compact JSON, empty for null."""
    rows = with_iso_times(data if isinstance(data, list) else [data])
    if not all(isinstance(r, dict) for r in rows):
        rows = [{"value": r} for r in rows]
    header: list[str] = []
    for row in rows:
        header.extend(k for k in row if k not in header)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([_csv_cell(row.get(k)) for k in header])
    return buf.getvalue()


# ----------------------------------------------------------------------------- options


class Command(Protocol):
    """What ``with_formats`` needs of a (Typer's) Click command."""

    params: list[Any]
    callback: Callable[..., Any] | None


def with_formats(cmd: Command) -> None:
    """Give a command with ``--json`` (its ``as_json`` parameter) ``-o/--output`` and
    ``--wide``: a data format sets ``as_json`` (the command prints with ``print_json``)
    and the command runs in its ``Mode``. Idempotent."""
    names = {p.name for p in cmd.params}
    taken = {o for p in cmd.params for o in getattr(p, "opts", ())} & {"-o", "--output", "--wide"}
    if "as_json" not in names or "output_format" in names or taken or cmd.callback is None:
        return  # not a --json command, done already, or its own -o/--output/--wide
    cmd.params.extend(_format_params())
    cmd.callback = _formatted(cmd.callback)


class Format(StrEnum):
    table = "table"
    json = "json"
    yaml = "yaml"
    csv = "csv"


def _format_options(
    output_format: Annotated[
        Format | None,
        typer.Option(
            "--output",
            "-o",
            help="table (default), json (as --json), yaml or csv (full values, ISO-8601 times)",
        ),
    ] = None,
    wide_output: Annotated[
        bool, typer.Option("--wide", help="every column of a table, however wide the terminal")
    ] = False,
) -> None:
    """The options ``with_formats`` adds, declared as Typer declares a command's."""


@functools.cache
def _format_params() -> tuple[Any, ...]:
    holder = typer.Typer(add_completion=False)
    holder.command()(_format_options)
    return tuple(typer.main.get_command(holder).params)


class FormatsGroup(TyperGroup):
    """A Typer group whose ``--json`` commands also take ``-o/--output`` and ``--wide``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for cmd in self.commands.values():
            with_formats(cmd)


def _formatted(inner: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(inner)
    def callback(
        *args: Any, output_format: str | None = None, wide_output: bool = False, **kwargs: Any
    ) -> Any:
        chosen = str(output_format or ("json" if kwargs.get("as_json") else "table"))
        kwargs["as_json"] = chosen != "table"
        with using(Mode(chosen, wide_output)):
            return inner(*args, **kwargs)

    return callback
