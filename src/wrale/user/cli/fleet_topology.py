"""``wrale sites|rooms|racks|zones list/create/delete`` and ``wrale racks power``: the
physical topology (site → room → rack → slot, plus zones) over the central API."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from wrale.user.cli import refs
from wrale.user.cli.fleet_common import (
    KEEP,
    Col,
    JsonOpt,
    LimitOpt,
    Styled,
    client,
    kv_table,
    list_table,
    resolve,
    say,
    sub_app,
    when,
)
from wrale.user.cli.output import console, print_json

sites_app = sub_app("Sites (buildings, field locations).")
rooms_app = sub_app("Rooms of a site.")
racks_app = sub_app("Racks of a room: units, power budget, cooling zone.")
zones_app = sub_app("Free-form zones (a shelf, a cooling zone, a kiosk row).")

ForceOpt = Annotated[
    bool, typer.Option("--force", help="admin: delete with everything under it (devices unplaced)")
]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="do not ask")]


def _list(path: str, title: str, columns: list[str | Col], params: dict[str, Any], limit: int,
          as_json: bool) -> None:  # fmt: skip
    with client() as c:
        items = list(c.iter_all(path, params, limit=limit))
        # short ids of this kind and of the parent column, asked while the client is open
        keys = _keys(columns)
        ids = refs.ShortIds(c)
        kinds = {"id": path.strip("/")[:-1], "site_id": "site", "room_id": "room"}
        kinds = {k: kind for k, kind in kinds.items() if k in keys}
        for kind in kinds.values():
            ids.length(kind)
    if as_json:
        print_json(items)
        return
    items = [i | {k: ids.of(kind, i.get(k)) for k, kind in kinds.items()} for i in items]
    console.print(
        list_table(
            f"{title} ({len(items)})",
            columns,
            ([when(i.get(k)) if k == "created_at" else i.get(k) for k in keys] for i in items),
        )
    )


def _keys(columns: list[str | Col]) -> list[str]:
    return [c.name if isinstance(c, Col) else c for c in columns]


def _created(item: dict[str, Any], title: str, as_json: bool) -> None:
    if as_json:
        print_json(item)
        return
    console.print(
        kv_table(title, {k: when(v) if k == "created_at" else v for k, v in item.items()})
    )


def _delete(kind: str, path: str, ref: str, force: bool, yes: bool) -> None:
    with client() as c:
        ident = resolve(c, kind, ref)
        if not yes:
            typer.confirm(f"delete {kind} {ref}?", abort=True)
        c.delete(f"{path}/{ident}", force=force or None)
    say(f"deleted {kind} {ref}")


# ----------------------------------------------------------------------------- sites


@sites_app.command("list")
def list_sites(limit: LimitOpt = 500, as_json: JsonOpt = False) -> None:
    """Every site."""
    _list("/sites", "Sites", ["id", "name", "address", "created_at"], {}, limit, as_json)


@sites_app.command("create")
def create_site(
    name: str,
    address: Annotated[str | None, typer.Option(help="street address")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a site."""
    with client() as c:
        _created(c.post("/sites", {"name": name, "address": address}), "Site", as_json)


@sites_app.command("delete")
def delete_site(site: str, force: ForceOpt = False, yes: YesOpt = False) -> None:
    """Delete a site (id or name)."""
    _delete("site", "/sites", site, force, yes)


# ----------------------------------------------------------------------------- rooms


@rooms_app.command("list")
def list_rooms(
    site: Annotated[str | None, typer.Option(help="site id or name")] = None,
    limit: LimitOpt = 500,
    as_json: JsonOpt = False,
) -> None:
    """Rooms, of one site or all."""
    params: dict[str, Any] = {}
    if site:
        with client() as c:
            params["site_id"] = resolve(c, "site", site)
    _list("/rooms", "Rooms", ["id", "name", "site_id", "created_at"], params, limit, as_json)


@rooms_app.command("create")
def create_room(
    name: str,
    site: Annotated[str, typer.Option(help="site id or name")],
    as_json: JsonOpt = False,
) -> None:
    """Create a room in a site."""
    with client() as c:
        body = {"name": name, "site_id": resolve(c, "site", site)}
        _created(c.post("/rooms", body), "Room", as_json)


@rooms_app.command("delete")
def delete_room(room: str, force: ForceOpt = False, yes: YesOpt = False) -> None:
    """Delete a room (id or name)."""
    _delete("room", "/rooms", room, force, yes)


# ----------------------------------------------------------------------------- racks


@racks_app.command("list")
def list_racks(
    room: Annotated[str | None, typer.Option(help="room id or name")] = None,
    limit: LimitOpt = 500,
    as_json: JsonOpt = False,
) -> None:
    """Racks, of one room or all."""
    params: dict[str, Any] = {}
    if room:
        with client() as c:
            params["room_id"] = resolve(c, "room", room)
    cols: list[str | Col] = [
        Col("id", 1), Col("name", KEEP), Col("room_id", 6), Col("units", 3),
        Col("power_budget_w", 1), Col("cooling_zone", 2), Col("power_feed", 5),
        Col("created_at", 7),
    ]  # fmt: skip
    _list("/racks", "Racks", cols, params, limit, as_json)


@racks_app.command("create")
def create_rack(
    name: str,
    room: Annotated[str, typer.Option(help="room id or name")],
    units: Annotated[int, typer.Option(min=1, max=60, help="height in U")] = 42,
    power_budget: Annotated[
        float | None, typer.Option("--power-budget", min=0, help="watts")
    ] = None,
    cooling_zone: Annotated[str | None, typer.Option(help="cooling zone label")] = None,
    power_feed: Annotated[
        str | None, typer.Option(help="the power feed (PDU, circuit) the rack hangs on")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a rack in a room."""
    with client() as c:
        body = {
            "name": name,
            "room_id": resolve(c, "room", room),
            "units": units,
            "power_budget_w": power_budget,
            "cooling_zone": cooling_zone,
            "power_feed": power_feed,
        }
        _created(c.post("/racks", body), "Rack", as_json)


@racks_app.command("delete")
def delete_rack(rack: str, force: ForceOpt = False, yes: YesOpt = False) -> None:
    """Delete a rack (id or name)."""
    _delete("rack", "/racks", rack, force, yes)


@racks_app.command("power")
def rack_power(
    rack: Annotated[
        str, typer.Argument(help="rack name or id", autocompletion=refs.completer("rack"))
    ],
    as_json: JsonOpt = False,
) -> None:
    """A rack's power draw (latest power_w of its devices) against its budget."""
    with client() as c:
        p = c.get(f"/racks/{resolve(c, 'rack', rack)}/power")
    if as_json:
        print_json(p)
        return
    over = Styled("[red]yes[/]") if p.get("over_budget") else "no"
    console.print(
        kv_table(
            f"Rack {rack} power",
            {
                "draw W": p.get("draw_w"),
                "budget W": p.get("budget_w"),
                "headroom W": p.get("headroom_w"),
                "over budget": over,
                "devices reporting": p.get("devices_reporting"),
            },
        )
    )
    if p.get("devices"):
        console.print(
            list_table(
                "Devices",
                ["slot (U)", "name", "power W", "at"],
                (
                    [d.get("slot_u"), d.get("name"), d.get("power_w"), when(d.get("at"))]
                    for d in p["devices"]
                ),
            )
        )


# ----------------------------------------------------------------------------- zones


@zones_app.command("list")
def list_zones(limit: LimitOpt = 500, as_json: JsonOpt = False) -> None:
    """Every zone."""
    _list("/zones", "Zones", ["id", "name", "description", "created_at"], {}, limit, as_json)


@zones_app.command("create")
def create_zone(
    name: str,
    description: Annotated[str | None, typer.Option(help="what it is")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a zone."""
    with client() as c:
        _created(c.post("/zones", {"name": name, "description": description}), "Zone", as_json)


@zones_app.command("delete")
def delete_zone(zone: str, force: ForceOpt = False, yes: YesOpt = False) -> None:
    """Delete a zone (id or name)."""
    _delete("zone", "/zones", zone, force, yes)
