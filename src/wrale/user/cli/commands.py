"""``wrale commands …``: send an operation to a device, a group or the devices matching a
selector, follow commands through queued → sent → succeeded / failed / refused / expired,
and cancel one still queued — over the central API."""

from __future__ import annotations

import json
import time
from typing import Annotated, Any

import typer

from wrale.shared.errors import WraleError
from wrale.user.cli import refs
from wrale.user.cli.fleet_common import (
    JsonOpt,
    LimitOpt,
    Styled,
    client,
    device_id,
    group_id,
    key_values,
    kv_table,
    list_table,
    parse_duration,
    resolve,
    say,
    sub_app,
    when,
)
from wrale.user.cli.output import console, fmt, print_json

commands_app = sub_app("Commands to devices: send, list, show, cancel.")
STATUS_COLOUR = {
    "queued": "white",
    "sent": "cyan",
    "succeeded": "green",
    "failed": "red",
    "refused": "red",
    "expired": "yellow",
}


def status_cell(status: str | None) -> str:
    from rich.markup import escape

    return Styled(f"[{STATUS_COLOUR.get(status or '', 'white')}]{escape(str(status))}[/]")


def _rows(items: list[dict[str, Any]]) -> list[list[Any]]:
    return [
        [
            c["id"],
            c.get("device_id"),
            c.get("op"),
            fmt(c.get("args")),
            status_cell(c.get("status")),
            c.get("reason"),
            when(c.get("created_at")),
        ]
        for c in items
    ]


OPEN = ("queued", "sent")  # a command not finished yet (the API's CommandStatus)
WAIT_TURN_S = 20.0  # one long poll (the API allows 30 s; the client times out at 30)
COLUMNS = ["id", "device", "op", "args", "status", "reason", "created"]


@commands_app.command("send")
def send(
    op: Annotated[str, typer.Argument(help="set_fan, run_diag, reboot, safe_mode, sim_fault…")],
    device: Annotated[str | None, typer.Option(help="one device (id or name)")] = None,
    group: Annotated[str | None, typer.Option(help="every device of a group")] = None,
    tag: Annotated[
        list[str] | None, typer.Option(help="devices with all of these tags (repeatable)")
    ] = None,
    selector: Annotated[
        str | None, typer.Option(help='a selector as JSON, e.g. \'{"rack_id": "…"}\'')
    ] = None,
    arg: Annotated[
        list[str] | None, typer.Option("--arg", help="key=value (repeatable), e.g. percent=80")
    ] = None,
    timeout: Annotated[
        str | None, typer.Option(help="deadline from now, e.g. 30s, 5m, 2h (default 5m)")
    ] = None,
    wait: Annotated[
        str | None,
        typer.Option(
            help="with --device: wait this long for its result, e.g. 30s (exit 1 unless it "
            "succeeded)"
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Send a command to a device, a group, or the devices matching tags / a selector."""
    body: dict[str, Any] = {"op": op, "args": key_values(arg)}
    if timeout is not None:
        body["timeout_s"] = parse_duration(timeout)
    sel: dict[str, Any] = {}
    if selector is not None:
        try:
            sel = json.loads(selector)
        except ValueError as exc:
            raise WraleError(f"--selector is not JSON: {exc}") from None
        if not isinstance(sel, dict):
            raise WraleError("--selector must be a JSON object")
    if tag:
        sel["tags"] = list(tag)
    targets = sum(x is not None for x in (device, group)) + bool(sel)
    if targets != 1:
        raise WraleError("give one target: --device, --group, or --tag / --selector")
    if wait is not None and device is None:
        raise WraleError("--wait is for one device (--device)")
    with client() as c:
        if device is not None:
            cmd = c.post(f"/devices/{device_id(c, device)}/commands", body)
            if wait is not None:
                cmd = _until_finished(c, cmd, parse_duration(wait))
            if as_json:
                print_json(cmd)
            else:
                reason = f": {cmd['reason']}" if cmd.get("reason") else ""
                say(f"command {cmd['id']} ({cmd['op']}) is {cmd['status']}{reason}")
            if wait is not None and cmd["status"] != "succeeded":
                raise typer.Exit(1)
            return
        if group is not None:
            batch = c.post(f"/groups/{group_id(c, group)}/commands", body)
        else:
            batch = c.post("/commands", {**body, "selector": sel})
    if as_json:
        print_json(batch)
        return
    say(f"batch {batch['batch_id']}: {batch['count']} command(s) queued")
    for r in batch.get("refused", []):
        say(f"  refused {r['name']} ({r['device_id']}): {r['reason']}")


def _until_finished(c: Any, cmd: dict[str, Any], seconds: float) -> dict[str, Any]:
    """The command once finished, or as it is after ``seconds`` (the API's long poll, in
    turns shorter than the client's own timeout)."""
    end = time.monotonic() + seconds
    while cmd["status"] in OPEN and (left := end - time.monotonic()) > 0:
        cmd = c.get(f"/commands/{cmd['id']}", wait_s=round(min(left, WAIT_TURN_S), 3))
    return dict(cmd)


@commands_app.command("list")
def list_commands(
    device: Annotated[str | None, typer.Option(help="device id or name")] = None,
    batch: Annotated[str | None, typer.Option(help="batch id")] = None,
    status: Annotated[list[str] | None, typer.Option(help="any of (repeatable)")] = None,
    limit: LimitOpt = 500,
    as_json: JsonOpt = False,
) -> None:
    """Commands, oldest first."""
    with client() as c:
        params: dict[str, Any] = {"batch_id": batch, "status": status or None}
        if device:
            params["device_id"] = device_id(c, device)
        items = list(c.iter_all("/commands", params, limit=limit))
        short, short_dev = refs.short_ids(c, "command"), refs.short_ids(c, "device")
    if as_json:
        print_json(items)
        return
    rows = [i | {"id": short(i["id"]), "device_id": short_dev(i.get("device_id"))} for i in items]
    console.print(list_table(f"Commands ({len(items)})", COLUMNS, _rows(rows)))


@commands_app.command("show")
def show(
    command: Annotated[str, typer.Argument(help="command id or a unique part of it")],
    as_json: JsonOpt = False,
) -> None:
    """One command with its result."""
    with client() as c:
        cmd = c.get(f"/commands/{resolve(c, 'command', command)}")
    if as_json:
        print_json(cmd)
        return
    console.print(
        kv_table(
            f"Command {cmd['id']}",
            {
                "device": cmd.get("device_id"),
                "batch": cmd.get("batch_id"),
                "op": cmd.get("op"),
                "args": json.dumps(cmd.get("args") or {}, sort_keys=True),
                "status": status_cell(cmd.get("status")),
                "reason": cmd.get("reason"),
                "result": json.dumps(cmd.get("result"), sort_keys=True),
                "deadline": when(cmd.get("deadline")),
                "created": f"{when(cmd.get('created_at'))} by {cmd.get('created_by')}",
                "sent": when(cmd.get("sent_at")),
                "finished": when(cmd.get("finished_at")),
            },
        )
    )


@commands_app.command("cancel")
def cancel(
    command: Annotated[str, typer.Argument(help="command id or a unique part of it")],
) -> None:
    """Cancel a command that is still queued."""
    with client() as c:
        cmd = c.post(f"/commands/{resolve(c, 'command', command)}/cancel")
    say(f"command {cmd['id']} is {cmd['status']}: {cmd['reason']}")
