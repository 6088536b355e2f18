"""``wrale maintenance windows list|create|delete``, ``wrale maintenance status DEVICE``,
over ``/api/v1/maintenance/windows`` and ``/api/v1/devices/{id}/maintenance``
(``docs/maintenance.md``): when disruptive commands (reboot, shutdown) may reach a board;
``wrale maintenance wear DEVICE`` and ``wrale maintenance queue`` over
``/api/v1/devices/{id}/wear`` and ``/api/v1/maintenance/queue`` (``docs/wear.md``);
``wrale maintenance rules|tasks|done`` live in ``fleet_maintenance_rules``."""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer

from wrale.user.cli import refs
from wrale.user.cli.fleet_common import (
    JsonOpt,
    client,
    device_id,
    group_id,
    list_table,
    parse_duration,
    resolve,
    say,
    sub_app,
    when,
)
from wrale.user.cli.fleet_maintenance_rules import register as register_rules
from wrale.user.cli.output import console, print_json

maintenance_app = sub_app(
    "Maintenance windows (when disruptive commands may reach a board), rules and their "
    "tasks, wear and the queue."
)
windows_app = sub_app("Maintenance windows per fleet, site or group (list, create, delete).")
maintenance_app.add_typer(windows_app, name="windows")
register_rules(maintenance_app)  # rules, tasks, done
SCOPES = ("fleet", "site", "group")


def _conditions(c: dict[str, Any]) -> str:
    parts = []
    if c.get("not_on_battery"):
        parts.append("mains")
    if c.get("battery_min_pct") is not None:
        parts.append(f"battery≥{c['battery_min_pct']:g}%")
    if c.get("ambient_max_c") is not None:
        parts.append(f"ambient<{c['ambient_max_c']:g}°C")
    if c.get("case_closed"):
        parts.append("case closed")
    if c.get("rack_under_budget"):
        parts.append("rack under budget")
    return ", ".join(parts) or "-"


def _row(w: dict[str, Any]) -> list[Any]:
    scope = w["scope"] if not w.get("scope_id") else f"{w['scope']} {w['scope_id']}"
    hours = float(w.get("duration_s") or 0.0) / 3600
    return [
        w["id"],
        w["name"],
        scope,
        w["cron"],
        f"{hours:g} h",
        w["timezone"],
        _conditions(w.get("conditions") or {}),
        "yes" if w.get("enabled") else "no",
    ]


@windows_app.command("list")
def list_windows(as_json: JsonOpt = False) -> None:
    """The organisation's maintenance windows."""
    with client() as c:
        items = c.get("/maintenance/windows")
        short = refs.short_ids(c, "window")
    if as_json:
        print_json(items)
        return
    console.print(
        list_table(
            f"Maintenance windows ({len(items)})",
            ["id", "name", "scope", "cron", "duration", "time zone", "conditions", "enabled"],
            (_row(w | {"id": short(w["id"])}) for w in items),
        )
    )


@windows_app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="a name for the window")],
    cron: Annotated[str, typer.Option(help="five fields, e.g. '0 2 * * 1-5' (quote it)")],
    duration: Annotated[str, typer.Option(help="how long it stays open: 30m, 2h…")],
    timezone: Annotated[str, typer.Option(help="IANA time zone, e.g. Europe/Berlin")] = "UTC",
    site: Annotated[str | None, typer.Option(help="only this site (name or id)")] = None,
    group: Annotated[str | None, typer.Option(help="only this group (name or id)")] = None,
    mains: Annotated[bool, typer.Option("--mains", help="not on battery")] = False,
    battery_min: Annotated[
        float | None, typer.Option(min=0, max=100, help="battery at least this %")
    ] = None,
    ambient_max: Annotated[
        float | None, typer.Option(min=-40, max=80, help="ambient below this °C")
    ] = None,
    case_closed: Annotated[bool, typer.Option("--case-closed", help="case closed")] = False,
    rack_budget: Annotated[
        bool, typer.Option("--rack-under-budget", help="the rack's draw under its budget")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Create a window; disruptive commands to the boards it covers wait for it."""
    if site is not None and group is not None:
        raise typer.BadParameter("give --site or --group, not both", param_hint="--site")
    conditions: dict[str, Any] = {
        "not_on_battery": mains,
        "case_closed": case_closed,
        "rack_under_budget": rack_budget,
    }
    if battery_min is not None:
        conditions["battery_min_pct"] = battery_min
    if ambient_max is not None:
        conditions["ambient_max_c"] = ambient_max
    body: dict[str, Any] = {
        "name": name,
        "cron": cron,
        "duration_s": parse_duration(duration),
        "timezone": timezone,
        "conditions": conditions,
    }
    with client() as c:
        if site is not None:
            body |= {"scope": "site", "scope_id": resolve(c, "site", site)}
        elif group is not None:
            body |= {"scope": "group", "scope_id": group_id(c, group)}
        w = c.post("/maintenance/windows", body)
    if as_json:
        print_json(w)
        return
    say(f"maintenance window {w['name']} created: {w['id']}")


@windows_app.command("delete")
def delete(
    window: Annotated[str, typer.Argument(help="window id, name, or a unique part of the id")],
) -> None:
    """Delete a window (waiting commands are then judged by the remaining ones)."""
    with client() as c:
        c.delete(f"/maintenance/windows/{resolve(c, 'window', window)}")
    say(f"maintenance window {window} deleted")


@maintenance_app.command()
def status(
    device: Annotated[str, typer.Argument(help="device name or id")], as_json: JsonOpt = False
) -> None:
    """Whether disruptive commands reach DEVICE now, why not, and its windows."""
    with client() as c:
        s = c.get(f"/devices/{device_id(c, device)}/maintenance")
    if as_json:
        print_json(s)
        return
    verdict = "yes" if s["may_disrupt"] else f"no: {s['reason']}"
    say(f"disruptive commands may run now: {verdict}")
    if s.get("next_open") is not None:
        say(f"next window opens {when(s['next_open'])}")
    if s["windows"]:
        console.print(
            list_table(
                "Windows of the board",
                ["id", "name", "open", "closes", "failing", "next open"],
                (
                    [
                        v["id"],
                        v["name"],
                        "yes" if v["open"] else "no",
                        when(v.get("closes_at")),
                        "; ".join(v.get("failing") or []) or "-",
                        when(v.get("next_open")),
                    ]
                    for v in s["windows"]
                ),
            )
        )


def _day(ts: float | None) -> str:
    return "-" if ts is None else time.strftime("%Y-%m-%d", time.localtime(ts))


def _part(t: dict[str, Any]) -> str:
    """A worn part in a few words: ``fan_wear 18% (before 2027-01-04, 2026-12-20…2027-02-01)``."""
    span = ""
    if t.get("replace_earliest") is not None or t.get("replace_latest") is not None:
        span = f", {_day(t.get('replace_earliest'))}…{_day(t.get('replace_latest'))}"
    return f"{t['kind']} {t['wear_pct']:.0f}% (before {_day(t.get('replace_before'))}{span})"


@maintenance_app.command()
def wear(
    device: Annotated[str, typer.Argument(help="device name or id")], as_json: JsonOpt = False
) -> None:
    """DEVICE's wear trends over its last 30 days: each part's wear against its own start,
    the trend and the date to replace it before (with its range)."""
    with client() as c:
        w = c.get(f"/devices/{device_id(c, device)}/wear")
    if as_json:
        print_json(w)
        return
    place = " / ".join(x for x in (w.get("site_name"), w.get("rack_name")) if x) or "no rack"
    say(f"{w.get('device_name') or w['device_id']} ({place}): replace before {_day(w.get('due'))}")
    say(f"days with throttling: {w['throttled_days']}")
    if not w["trends"]:
        say("no wear trend yet (too few days of readings, or nothing worn)")
        return
    console.print(
        list_table(
            "Wear trends",
            ["part", "worn", "wear %", "per day", "replace before", "earliest", "latest"],
            (
                [
                    t["kind"],
                    "yes" if t["worn"] else "no",
                    f"{t['wear_pct']:.1f}",
                    f"{t['slope_pct_per_day']:+.2f}",
                    _day(t.get("replace_before")),
                    _day(t.get("replace_earliest")),
                    _day(t.get("replace_latest")),
                ]
                for t in w["trends"]
            ),
        )
    )


@maintenance_app.command()
def queue(as_json: JsonOpt = False) -> None:
    """The boards with a worn part or an open maintenance task, one visit per rack, most
    urgent first."""
    with client() as c:
        q = c.get("/maintenance/queue")
    if as_json:
        print_json(q)
        return
    if not q["visits"]:
        say(f"nothing to replace ({q['boards_read']} boards read)")
        return
    console.print(
        list_table(
            "Maintenance queue",
            ["due", "site", "rack", "board", "worn parts and tasks"],
            (
                [
                    _day(d.get("due")),
                    v.get("site_name") or "-",
                    v.get("rack_name") or "-",
                    d.get("device_name") or d["device_id"],
                    "; ".join(
                        [_part(t) for t in d["trends"] if t["worn"]]
                        + [f"task: {x['title']} (due {_day(x['due'])})" for x in d.get("tasks", [])]
                    ),
                ]
                for v in q["visits"]
                for d in v["devices"]
            ),
        )
    )
    if q["truncated"]:
        say(f"only the first {q['boards_read']} boards were read")
