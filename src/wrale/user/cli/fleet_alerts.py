"""``wrale alerts …`` (list, show with history, acknowledge, assign, clear) and
``wrale alert-rules …`` (``metric op threshold for duration`` over a scope)."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape

from wrale.shared.errors import WraleError
from wrale.user.cli import refs
from wrale.user.cli.fleet_common import (
    KEEP,
    Col,
    JsonOpt,
    LimitOpt,
    Styled,
    client,
    device_id,
    group_id,
    kv_table,
    list_table,
    resolve,
    say,
    sub_app,
    user_id,
    when,
)
from wrale.user.cli.output import console, print_json

alerts_app = sub_app("Alerts: list, acknowledge, assign, clear.")
rules_app = sub_app("Alert rules, e.g. 'cpu_temp_c > 70 for 5m' over a group.")

SEVERITIES = ("CRITICAL", "MAJOR", "MINOR", "WARNING", "INFO")
SEVERITY_COLOUR = {
    "CRITICAL": "bold red",
    "MAJOR": "red",
    "MINOR": "yellow",
    "WARNING": "yellow",
    "INFO": "cyan",
}
AlertArg = Annotated[str, typer.Argument(help="alert id or a unique part of it")]
NoteOpt = Annotated[str | None, typer.Option(help="a note kept in the alert's history")]


def severity(value: str | None) -> str | None:
    if value is None:
        return None
    upper = value.upper()
    if upper not in SEVERITIES:
        raise typer.BadParameter(f"{value!r}: one of {', '.join(s.lower() for s in SEVERITIES)}")
    return upper


def sev_cell(value: str | None) -> str:
    return Styled(f"[{SEVERITY_COLOUR.get(value or '', 'white')}]{escape(str(value))}[/]")


def _alert_row(a: dict[str, Any], where: str | None = None) -> list[Any]:
    return [
        a["id"],
        sev_cell(a.get("severity")),
        a.get("state"),
        a.get("message"),
        where or a.get("device_id") or a.get("rack_id"),
        a.get("value"),
        a.get("assignee_id"),
        when(a.get("raised_at")),
    ]


@alerts_app.command("list")
def list_alerts(
    state: Annotated[
        str | None, typer.Option(help="active, acknowledged, cleared, or open (not cleared)")
    ] = None,
    severity_: Annotated[
        str | None, typer.Option("--severity", help="critical, major, minor, warning, info")
    ] = None,
    device: Annotated[str | None, typer.Option(help="device id or name")] = None,
    limit: LimitOpt = 200,
    as_json: JsonOpt = False,
) -> None:
    """Alerts, oldest first."""
    with client() as c:
        params: dict[str, Any] = {"state": state, "severity": severity(severity_)}
        if device:
            params["device_id"] = device_id(c, device)
        items = list(c.iter_all("/alerts", params, limit=limit))
        short = refs.short_ids(c, "alert")
        if not as_json:
            names = refs.device_names(c, [a.get("device_id") for a in items])
            racks = refs.Locations(c).loaded(any(a.get("rack_id") for a in items))
            devices = refs.short_ids(c, "device")
    if as_json:
        print_json(items)
        return

    def where(a: dict[str, Any]) -> str | None:
        if a.get("device_id"):
            return names.get(a["device_id"]) or f"device {devices(a['device_id'])}"
        return racks.rack(a.get("rack_id"))

    console.print(
        list_table(
            f"Alerts ({len(items)})",
            [
                Col("id", KEEP),  # alerts have no name: the id is the handle
                Col("severity", KEEP),
                Col("state", KEEP),
                Col("message", 2),
                Col("device/rack", 3),
                Col("value", 4),
                Col("assignee", 6),
                Col("raised", 1),
            ],
            (_alert_row(a | {"id": short(a["id"])}, where(a)) for a in items),
        )
    )


@alerts_app.command()
def show(alert: AlertArg, as_json: JsonOpt = False) -> None:
    """An alert with its history."""
    with client() as c:
        a = c.get(f"/alerts/{resolve(c, 'alert', alert)}")
    if as_json:
        print_json(a)
        return
    history = a.pop("history", [])
    console.print(
        kv_table(
            f"Alert {a['id']}",
            {k: when(v) if k.endswith("_at") else v for k, v in a.items()},
        )
    )
    console.print(
        list_table(
            "History",
            ["at", "action", "from", "to", "by", "note"],
            (
                [
                    when(e.get("at")),
                    e.get("action"),
                    e.get("from_state"),
                    e.get("to_state"),
                    e.get("actor_name"),
                    e.get("note"),
                ]
                for e in history
            ),
        )
    )


@alerts_app.command("ack")
def acknowledge(alert: AlertArg, note: NoteOpt = None) -> None:
    """Acknowledge an alert (someone is on it)."""
    with client() as c:
        a = c.post(f"/alerts/{resolve(c, 'alert', alert)}/acknowledge", {"note": note})
    say(f"alert {a['id']}: {a['state']}")


@alerts_app.command()
def assign(
    alert: AlertArg,
    user: Annotated[str, typer.Argument(help="user id or username; 'none' unassigns")],
) -> None:
    """Assign an alert to a user."""
    with client() as c:
        uid = None if user.lower() == "none" else user_id(c, user)
        a = c.post(f"/alerts/{resolve(c, 'alert', alert)}/assign", {"user_id": uid})
    say(f"alert {a['id']}: assigned to {a.get('assignee_id') or 'nobody'}")


@alerts_app.command()
def clear(alert: AlertArg, note: NoteOpt = None) -> None:
    """Clear an alert by hand (it is raised again if the condition still holds)."""
    with client() as c:
        a = c.post(f"/alerts/{resolve(c, 'alert', alert)}/clear", {"note": note})
    say(f"alert {a['id']}: {a['state']}")


# ----------------------------------------------------------------------------- rules


@rules_app.command("list")
def list_rules(limit: LimitOpt = 500, as_json: JsonOpt = False) -> None:
    """Alert rules."""
    with client() as c:
        items = list(c.iter_all("/alert-rules", limit=limit))
        short = refs.short_ids(c, "alert-rule")
    if as_json:
        print_json(items)
        return
    console.print(
        list_table(
            f"Alert rules ({len(items)})",
            [
                Col("id", 1),
                Col("name", KEEP),
                Col("expression", 1),
                Col("severity", 2),
                Col("scope", 3),
                Col("enabled", 5),
            ],
            (
                [
                    short(r["id"]),
                    r["name"],
                    r.get("expression"),
                    sev_cell(r.get("severity")),
                    f"{r.get('scope_type')}:{r['scope_id']}" if r.get("scope_id")
                    else r.get("scope_type"),
                    r.get("enabled"),
                ]
                for r in items
            ),
        )
    )  # fmt: skip


@rules_app.command("create")
def create_rule(
    expr: Annotated[
        str, typer.Option("--expr", help="e.g. 'cpu_temp_c > 70 for 5m', 'rack power_w > budget'")
    ],
    severity_: Annotated[
        str, typer.Option("--severity", help="critical, major, minor, warning, info")
    ] = "warning",
    name: Annotated[str | None, typer.Option(help="default: the expression")] = None,
    group: Annotated[str | None, typer.Option(help="only devices of this group")] = None,
    device: Annotated[str | None, typer.Option(help="only this device")] = None,
    rack: Annotated[str | None, typer.Option(help="only this rack")] = None,
    zone: Annotated[str | None, typer.Option(help="only this zone")] = None,
    description: Annotated[str | None, typer.Option(help="what to do when it fires")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Create an alert rule over the fleet, or one group, device, rack or zone."""
    scopes = [s for s in (group, device, rack, zone) if s is not None]
    if len(scopes) > 1:
        raise WraleError("give at most one of --group, --device, --rack, --zone")
    body: dict[str, Any] = {
        "name": name or expr,
        "expression": expr,
        "severity": severity(severity_),
        "description": description,
    }
    with client() as c:
        if group:
            body |= {"scope_type": "group", "scope_id": group_id(c, group)}
        elif device:
            body |= {"scope_type": "device", "scope_id": device_id(c, device)}
        elif rack:
            body |= {"scope_type": "rack", "scope_id": resolve(c, "rack", rack)}
        elif zone:
            body |= {"scope_type": "zone", "scope_id": resolve(c, "zone", zone)}
        r = c.post("/alert-rules", {k: v for k, v in body.items() if v is not None})
    if as_json:
        print_json(r)
        return
    say(f"alert rule {r['name']} ({r['id']}): {r['expression']}")


@rules_app.command("delete")
def delete_rule(
    rule: Annotated[str, typer.Argument(help="rule id, name, or a unique part of the id")],
) -> None:
    """Delete an alert rule (its open alerts are cleared and kept)."""
    with client() as c:
        c.delete(f"/alert-rules/{resolve(c, 'alert-rule', rule)}")
    say(f"deleted alert rule {rule}")
