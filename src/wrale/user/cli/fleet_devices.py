"""``wrale devices …``: the registry over the central API (list with filters, show, edit,
maintenance, decommission, delete) and placement in a rack slot."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.markup import escape

from wrale.shared.errors import WraleError
from wrale.user.cli import refs
from wrale.user.cli.client import CentralClient
from wrale.user.cli.fleet_common import (
    KEEP,
    Col,
    JsonOpt,
    LimitOpt,
    Styled,
    client,
    device_id,
    kv_table,
    list_table,
    resolve,
    say,
    sub_app,
    when,
)
from wrale.user.cli.output import console, print_json

devices_app = sub_app("Devices of the fleet: list, show, edit, maintenance, placement.")

STATUS_COLOUR = {
    "online": "green",
    "offline": "red",
    "error": "red",
    "maintenance": "yellow",
    "decommissioned": "dim",
    "unknown": "white",
}
DeviceArg = Annotated[
    str,
    typer.Argument(
        help="device name, id, or a unique part of the id",
        autocompletion=refs.completer("device"),
    ),
]


class OnOff(StrEnum):
    on = "on"
    off = "off"


def status_cell(status: str | None) -> str:
    return Styled(f"[{STATUS_COLOUR.get(status or '', 'white')}]{escape(str(status))}[/]")


def where(c: CentralClient, d: dict[str, Any]) -> str | None:
    """The device's place by name (``Site / Room / Rack U7``, zone), asked of ``c``."""
    return refs.Locations(c).loaded(bool(d.get("location"))).of(d.get("location"))


def show_device(d: dict[str, Any], place: str | None = None) -> None:
    loc = d.get("location") or {}
    console.print(
        kv_table(
            f"Device {d.get('name')}",
            {
                "id": d.get("id"),
                "name": d.get("name"),
                "status": status_cell(d.get("status")),
                "model": d.get("model"),
                "hardware profile": d.get("hardware_profile"),
                "tags": d.get("tags"),
                "capabilities": d.get("capabilities"),
                "agent version": d.get("agent_version"),
                "last seen": when(d.get("last_seen_at")),
                "location": place,
                "rack": loc.get("rack_id"),
                "slot (U)": loc.get("slot_u"),
                "zone": loc.get("zone_id"),
                "created": when(d.get("created_at")),
            },
        )
    )


@devices_app.command("list")
def list_devices(
    status: Annotated[
        list[str] | None, typer.Option(help="any of these statuses (repeatable)")
    ] = None,
    tag: Annotated[list[str] | None, typer.Option(help="all of these tags (repeatable)")] = None,
    rack: Annotated[
        str | None,
        typer.Option(help="rack name or id", autocompletion=refs.completer("rack")),
    ] = None,
    zone: Annotated[str | None, typer.Option(help="zone id or name")] = None,
    name: Annotated[str | None, typer.Option("--name", help="name contains")] = None,
    limit: LimitOpt = 100,
    as_json: JsonOpt = False,
) -> None:
    """The fleet's devices, oldest first."""
    with client() as c:
        params: dict[str, Any] = {"status": status, "tag": tag, "q": name}
        if rack:
            params["rack_id"] = resolve(c, "rack", rack)
        if zone:
            params["zone_id"] = resolve(c, "zone", zone)
        items = list(c.iter_all("/devices", params, limit=limit))
        if not as_json:  # names and short ids, asked while the client is open
            short = refs.short_ids(c, "device")
            places = refs.Locations(c).loaded(any(d.get("location") for d in items))
    if as_json:
        print_json(items)
        return
    console.print(
        list_table(
            f"Devices ({len(items)})",
            [
                Col("id", 1),
                Col("name", KEEP),
                Col("status", KEEP),
                Col("model", 6),
                Col("tags", 5),
                Col("location", 2),  # physical first: where it is before when it spoke
                Col("last seen", 3),
            ],
            (
                [
                    short(d["id"]),
                    d["name"],
                    status_cell(d.get("status")),
                    d.get("model"),
                    d.get("tags"),
                    places.of(d.get("location")),
                    when(d.get("last_seen_at")),
                ]
                for d in items
            ),
        )
    )


@devices_app.command()
def show(device: DeviceArg, as_json: JsonOpt = False) -> None:
    """One device in full."""
    with client() as c:
        d = c.get(f"/devices/{device_id(c, device)}")
        place = None if as_json else where(c, d)
    print_json(d) if as_json else show_device(d, place)


@devices_app.command()
def update(
    device: DeviceArg,
    name: Annotated[str | None, typer.Option(help="new name")] = None,
    tag: Annotated[
        list[str] | None, typer.Option(help="the device's tags (repeatable; replaces them)")
    ] = None,
    no_tags: Annotated[bool, typer.Option("--no-tags", help="remove every tag")] = False,
    model: Annotated[str | None, typer.Option(help="hardware model")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Rename a device, or set its tags or model."""
    body: dict[str, Any] = {}
    if name is not None:
        body["name"] = name
    if tag:
        body["tags"] = tag
    elif no_tags:
        body["tags"] = []
    if model is not None:
        body["model"] = model
    if not body:
        raise WraleError("nothing to change: give --name, --tag, --no-tags or --model")
    with client() as c:
        d = c.patch(f"/devices/{device_id(c, device)}", body)
        place = None if as_json else where(c, d)
    print_json(d) if as_json else show_device(d, place)


@devices_app.command()
def maintenance(
    device: DeviceArg,
    state: Annotated[OnOff, typer.Argument(help="on or off")],
    reason: Annotated[str | None, typer.Option(help="why (kept in the audit log)")] = None,
) -> None:
    """Put a device into maintenance (alerts and commands hold off) or take it out."""
    status = "maintenance" if state is OnOff.on else "unknown"
    with client() as c:
        d = c.post(f"/devices/{device_id(c, device)}/status", {"status": status, "reason": reason})
    console.print(f"{escape(d['name'])}: {status_cell(d['status'])}")


@devices_app.command()
def decommission(
    device: DeviceArg,
    reason: Annotated[str | None, typer.Option(help="why (kept in the audit log)")] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask")] = False,
) -> None:
    """Retire a device: its record stays, it may no longer connect."""
    with client() as c:
        dev = device_id(c, device)
        if not yes:
            typer.confirm(f"decommission {device}?", abort=True)
        d = c.post(f"/devices/{dev}/status", {"status": "decommissioned", "reason": reason})
    console.print(f"{escape(d['name'])}: {status_cell(d['status'])}")


@devices_app.command()
def delete(
    device: DeviceArg,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask")] = False,
) -> None:
    """Delete a device and its credentials (admin); decommission keeps the record."""
    with client() as c:
        dev = device_id(c, device)
        if not yes:
            typer.confirm(f"delete {device} for good?", abort=True)
        c.delete(f"/devices/{dev}")
    say(f"deleted {device}")


@devices_app.command()
def place(
    device: DeviceArg,
    rack: Annotated[
        str | None,
        typer.Option(help="rack name or id", autocompletion=refs.completer("rack")),
    ] = None,
    slot: Annotated[int | None, typer.Option(min=1, max=60, help="U position")] = None,
    zone: Annotated[str | None, typer.Option(help="zone id or name")] = None,
    clear: Annotated[bool, typer.Option("--clear", help="take it out of rack and zone")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Put a device in a rack slot (--rack R --slot N) and/or a zone."""
    with client() as c:
        dev = device_id(c, device)
        if clear:
            loc = c.delete(f"/devices/{dev}/location")
        else:
            body: dict[str, Any] = {}
            if rack is not None:
                if slot is None:
                    raise WraleError("--rack needs --slot (the U position)")
                body |= {"rack_id": resolve(c, "rack", rack), "slot_u": slot}
            if zone is not None:
                body["zone_id"] = resolve(c, "zone", zone)
            if not body:
                raise WraleError("give --rack and --slot, --zone, or --clear")
            loc = c.put(f"/devices/{dev}/location", body)
        place = None if as_json else where(c, {"location": loc})
    if as_json:
        print_json(loc)
        return
    console.print(kv_table("Location", {"location": place, **loc}))
