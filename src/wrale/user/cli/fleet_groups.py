"""``wrale groups …``: static and dynamic (selector) groups, nested under parents, and
their members, over the central API."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from wrale.shared.errors import WraleError
from wrale.user.cli import refs
from wrale.user.cli.fleet_common import (
    KEEP,
    Col,
    JsonOpt,
    LimitOpt,
    client,
    device_id,
    group_id,
    kv_table,
    list_table,
    say,
    sub_app,
    when,
)
from wrale.user.cli.fleet_devices import status_cell
from wrale.user.cli.output import console, fmt, print_json

groups_app = sub_app("Groups of devices: static or dynamic (a selector), nested.")
GroupArg = Annotated[
    str,
    typer.Argument(
        help="group name, id, or a unique part of the id", autocompletion=refs.completer("group")
    ),
]


@groups_app.command("list")
def list_groups(
    parent: Annotated[str | None, typer.Option(help="children of this group")] = None,
    root: Annotated[bool, typer.Option("--root", help="only top-level groups")] = False,
    limit: LimitOpt = 500,
    as_json: JsonOpt = False,
) -> None:
    """Groups, oldest first."""
    with client() as c:
        params: dict[str, Any] = {"root": root or None}
        if parent:
            params["parent_id"] = group_id(c, parent)
        items = list(c.iter_all("/groups", params, limit=limit))
        short = refs.short_ids(c, "group")
    if as_json:
        print_json(items)
        return
    console.print(
        list_table(
            f"Groups ({len(items)})",
            [
                Col("id", 1),
                Col("name", KEEP),
                Col("kind", 2),
                Col("parent", 5),
                Col("selector", 3),
                Col("created", 6),
            ],
            (
                [
                    short(g["id"]),
                    g["name"],
                    g.get("kind"),
                    short(g.get("parent_id")),
                    fmt(g.get("selector")),
                    when(g.get("created_at")),
                ]
                for g in items
            ),
        )
    )


@groups_app.command("create")
def create_group(
    name: str,
    parent: Annotated[str | None, typer.Option(help="parent group id or name")] = None,
    dynamic: Annotated[
        str | None,
        typer.Option(
            help='selector JSON for a dynamic group, e.g. \'{"tags_all": ["lab"], '
            '"status": ["online"]}\''
        ),
    ] = None,
    description: Annotated[str | None, typer.Option(help="what the group is for")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a static group, or a dynamic one with --dynamic SELECTOR_JSON."""
    body: dict[str, Any] = {"name": name, "description": description, "kind": "static"}
    if dynamic is not None:
        try:
            selector = json.loads(dynamic)
        except ValueError as exc:
            raise WraleError(f"--dynamic is not JSON: {exc}") from None
        if not isinstance(selector, dict):
            raise WraleError("--dynamic must be a JSON object")
        body |= {"kind": "dynamic", "selector": selector}
    with client() as c:
        if parent:
            body["parent_id"] = group_id(c, parent)
        g = c.post("/groups", body)
    if as_json:
        print_json(g)
        return
    console.print(kv_table("Group", {k: when(v) if k == "created_at" else v for k, v in g.items()}))


@groups_app.command("delete")
def delete_group(
    group: GroupArg,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask")] = False,
) -> None:
    """Delete a group."""
    with client() as c:
        gid = group_id(c, group)
        if not yes:
            typer.confirm(f"delete group {group}?", abort=True)
        c.delete(f"/groups/{gid}")
    say(f"deleted group {group}")


@groups_app.command("add")
def add_members(
    group: GroupArg,
    devices: Annotated[
        list[str],
        typer.Argument(
            help="device names or ids (or unique parts of ids)",
            autocompletion=refs.completer("device"),
        ),
    ],
) -> None:
    """Add devices to a static group."""
    with client() as c:
        gid = group_id(c, group)
        ids = [device_id(c, d) for d in devices]
        r = c.post(f"/groups/{gid}/members", {"device_ids": ids})
    say(f"added {r.get('added')} device(s); {r.get('already')} already in {group}")


@groups_app.command("remove")
def remove_members(
    group: GroupArg,
    devices: Annotated[
        list[str],
        typer.Argument(
            help="device names or ids (or unique parts of ids)",
            autocompletion=refs.completer("device"),
        ),
    ],
) -> None:
    """Remove devices from a static group."""
    with client() as c:
        gid = group_id(c, group)
        for d in devices:
            c.delete(f"/groups/{gid}/members/{device_id(c, d)}")
    say(f"removed {len(devices)} device(s) from {group}")


@groups_app.command("members")
def members(
    group: GroupArg,
    recursive: Annotated[bool, typer.Option(help="include every subgroup's devices")] = False,
    limit: LimitOpt = 1000,
    as_json: JsonOpt = False,
) -> None:
    """The group's devices (static members or selector matches)."""
    with client() as c:
        gid = group_id(c, group)
        items = list(c.iter_all(f"/groups/{gid}/devices", {"recursive": recursive}, limit=limit))
        short = refs.short_ids(c, "device")
    if as_json:
        print_json(items)
        return
    console.print(
        list_table(
            f"Group {group} ({len(items)} devices)",
            [Col("id", 1), Col("name", KEEP), Col("status", KEEP), Col("model", 5), Col("tags", 4)],
            (
                [
                    short(d["id"]),
                    d["name"],
                    status_cell(d.get("status")),
                    d.get("model"),
                    d.get("tags"),
                ]
                for d in items
            ),
        )
    )
