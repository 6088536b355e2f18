"""What every ``wrale <area>`` command of the central API shares: Typer classes that turn a
``WraleError`` into a red message and exit 1, the client of the current login, duration
and time formats, and resolving names (rack, device, user) to ids."""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Mapping
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table
from typer.core import TyperCommand

from wrale.shared.errors import WraleError
from wrale.user.cli import output, refs, session
from wrale.user.cli.client import CentralClient
from wrale.user.cli.output import err_console
from wrale.user.cli.tables import KEEP as KEEP  # the list commands declare their columns
from wrale.user.cli.tables import Col as Col
from wrale.user.cli.tables import FittedTable

JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output")]
LimitOpt = Annotated[int, typer.Option(min=1, max=100_000, help="show at most this many")]
ID_RE = refs.ID_RE


def fail(message: str) -> typer.Exit:
    err_console.print(f"[red]error:[/red] {escape(message)}", highlight=False)
    return typer.Exit(1)


class FleetCommand(TyperCommand):
    """A command whose domain errors end it with a message, not a traceback."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        output.with_formats(self)  # --json commands also take -o/--output and --wide

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except WraleError as exc:
            raise fail(exc.message) from None


class FleetGroup(output.FormatsGroup):
    """A sub-app whose commands end with a message on a domain error; those with ``--json``
    also take ``-o/--output`` and ``--wide``."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except WraleError as exc:
            raise fail(exc.message) from None


def sub_app(help_text: str) -> typer.Typer:
    return typer.Typer(help=help_text, no_args_is_help=True, cls=FleetGroup)


def client() -> CentralClient:
    """The client of the logged-in central (or of ``WRALE_CENTRAL_URL``/``WRALE_TOKEN``)."""
    return session.connect()


# ----------------------------------------------------------------------------- output


class Styled(str):
    """Text with Rich markup made by the CLI itself; anything else is shown literally."""

    __slots__ = ()


def safe(value: Any) -> Any:
    """A value from the server made safe to print: its ``[`` never reads as markup."""
    if isinstance(value, Styled):
        return value
    if isinstance(value, str):
        return escape(value)
    if isinstance(value, list):
        return [safe(v) for v in value]
    if isinstance(value, dict):
        return {escape(str(k)): safe(v) for k, v in value.items()}
    return value


def list_table(
    title: str, columns: Iterable[str | Col], rows: Iterable[Iterable[Any]]
) -> FittedTable:
    """``output.list_table`` with every server value escaped (``Styled`` cells kept): a
    table that fits the terminal by dropping its least useful columns (``Col`` priority)."""
    return output.list_table(escape(title), columns, ([safe(v) for v in row] for row in rows))


def kv_table(title: str, rows: Mapping[str, Any]) -> Table:
    return output.kv_table(escape(title), {k: safe(v) for k, v in rows.items()})


# ----------------------------------------------------------------------------- formats

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 7 * 86_400}


def parse_duration(text: str) -> float:
    """``90``, ``30s``, ``5m``, ``1h``, ``7d``, ``2w`` → seconds."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*", text)
    if not m:
        raise typer.BadParameter(f"{text!r} is not a duration like 30s, 5m, 1h or 7d")
    return float(m.group(1)) * _UNITS[m.group(2) or "s"]


def when(ts: float | None) -> str | None:
    """Unix seconds as local time (None stays None)."""
    if ts is None:
        return None
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def parse_value(raw: str) -> Any:
    """``key=value`` values: JSON where it parses (numbers, true, null, lists), else text."""
    import json

    try:
        return json.loads(raw)
    except ValueError:
        return raw


def key_values(items: list[str] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"{item!r} is not key=value")
        out[key.strip()] = parse_value(raw)
    return out


# ----------------------------------------------------------------------------- names → ids


def resolve(c: CentralClient, kind: str, ref: str) -> str:
    """The id of the one ``kind`` (device, rack, group, job, …: ``refs``) that ``ref``
    names: its name, full id, or a unique id prefix or suffix, resolved by the central."""
    return refs.ref_id(c, kind, ref)


def device_id(c: CentralClient, ref: str) -> str:
    """The id of the device ``ref`` names (name, full id, or unique id prefix/suffix)."""
    return refs.ref_id(c, "device", ref)


def user_id(c: CentralClient, ref: str) -> str:
    """The id of the user ``ref`` names (username or id part; needs admin)."""
    return refs.ref_id(c, "user", ref)


def group_id(c: CentralClient, ref: str) -> str:
    """The id of the group ``ref`` names (name, full id, or unique id prefix/suffix)."""
    return refs.ref_id(c, "group", ref)


def say(message: str) -> None:
    """Print a message built from server values literally (no markup, no highlighting)."""
    output.console.print(message, markup=False, highlight=False)
