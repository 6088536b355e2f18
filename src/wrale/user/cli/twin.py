"""``wrale twin …``: a device's twin over the central API — desired and reported state
with their versions and what differs — and merge-patch changes of its desired values."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from wrale.shared.errors import WraleError
from wrale.user.cli import refs
from wrale.user.cli.fleet_common import (
    JsonOpt,
    Styled,
    client,
    device_id,
    kv_table,
    list_table,
    parse_value,
    say,
    sub_app,
    when,
)
from wrale.user.cli.output import console, fmt, print_json

twin_app = sub_app("A device's twin: desired and reported state, and what differs.")
DeviceArg = Annotated[
    str,
    typer.Argument(
        help="device name, id, or a unique part of the id",
        autocompletion=refs.completer("device"),
    ),
]


def _sync_cell(t: dict[str, Any]) -> str:
    return Styled("[green]in sync[/]" if t.get("in_sync") else "[yellow]not in sync[/]")


def show_twin(t: dict[str, Any]) -> None:
    desired, reported = t.get("desired") or {}, t.get("reported") or {}
    console.print(
        kv_table(
            f"Twin of {t.get('device_id')}",
            {
                "desired version": desired.get("version"),
                "reported version": reported.get("version"),
                "applied desired version": t.get("applied_desired_version"),
                "state": _sync_cell(t),
                "reported at": when(reported.get("at")),
                "explicit values": json.dumps(t.get("overrides") or {}, sort_keys=True),
            },
        )
    )
    diff = t.get("diff") or []
    if diff:
        console.print(
            list_table(
                f"Differences ({len(diff)})",
                ["path", "desired", "reported", "rejected"],
                (
                    [
                        d.get("path"),
                        fmt(d.get("desired")),
                        "missing" if d.get("missing") else fmt(d.get("reported")),
                        d.get("rejected"),
                    ]
                    for d in diff
                ),
            )
        )


@twin_app.command("show")
def show(device: DeviceArg, as_json: JsonOpt = False) -> None:
    """Desired and reported state, what the device rejected, and what differs."""
    with client() as c:
        t = c.get(f"/devices/{device_id(c, device)}/twin")
    if as_json:
        print_json(t)
        return
    show_twin(t)


def merge_patch_of(values: list[str], unset: list[str]) -> dict[str, Any]:
    """A merge patch from ``section.field=value`` settings and ``section[.field]`` removals."""
    patch: dict[str, Any] = {}

    def put(path: str, value: Any) -> None:
        keys = [k for k in path.split(".") if k]
        if not keys:
            raise typer.BadParameter(f"{path!r} is not a path like fan.override_pct")
        node = patch
        for key in keys[:-1]:
            child = node.setdefault(key, {})
            if not isinstance(child, dict):
                raise typer.BadParameter(f"{path!r} conflicts with another setting")
            node = child
        node[keys[-1]] = value

    for item in values:
        path, sep, raw = item.partition("=")
        if not sep:
            raise typer.BadParameter(f"{item!r} is not path=value")
        put(path.strip(), parse_value(raw))
    for path in unset:
        put(path.strip(), None)
    return patch


@twin_app.command("set")
def set_desired(
    device: DeviceArg,
    values: Annotated[
        list[str] | None,
        typer.Option("--set", help="path=value (repeatable), e.g. fan.override_pct=60"),
    ] = None,
    unset: Annotated[
        list[str] | None,
        typer.Option("--unset", help="remove an explicit value or section, e.g. fan"),
    ] = None,
    patch: Annotated[
        str | None, typer.Option("--patch", help="a JSON merge patch of the desired values")
    ] = None,
    version: Annotated[
        int | None,
        typer.Option(help="the desired version this is based on (default: the current one)"),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Change the device's explicit desired values (a JSON merge patch; null removes)."""
    body = merge_patch_of(values or [], unset or [])
    if patch is not None:
        try:
            extra = json.loads(patch)
        except ValueError as exc:
            raise WraleError(f"--patch is not JSON: {exc}") from None
        if not isinstance(extra, dict):
            raise WraleError("--patch must be a JSON object")
        body = {**extra, **body}
    if not body:
        raise WraleError("nothing to change: give --set, --unset or --patch")
    with client() as c:
        url = f"/devices/{device_id(c, device)}/twin"
        if version is None:
            version = int(c.get(url)["desired"]["version"])
        t = c.patch(url, {"version": version, "desired": body})
    if as_json:
        print_json(t)
        return
    say(f"desired state of {t['device_id']} is at version {t['desired']['version']}")
