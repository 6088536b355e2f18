"""``wrale maintenance rules list|create|delete``, ``wrale maintenance tasks [--all]`` and
``wrale maintenance done TASK --note``, over ``/api/v1/maintenance/rules`` and
``/api/v1/maintenance/tasks`` (``docs/maintenance.md``): conditions on the boards'
readings that open maintenance tasks with a due date, and the tasks themselves."""

from __future__ import annotations

import json
import re
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
)
from wrale.user.cli.output import console, print_json

rules_app = sub_app("Maintenance rules: conditions that open maintenance tasks (list, create…).")
_BOUND_RE = re.compile(
    r"^\s*(?P<metric>[a-z][a-z0-9_]*)\s*(?P<op>>=|<=|==|!=|>|<)\s*"
    r"(?P<value>[-+]?\d+(?:\.\d+)?)(?:\s+for\s+(?P<for>\S+))?\s*$"
)


def bound(text: str) -> dict[str, Any]:
    """``cpu_temp_c > 75 for 2h`` → ``{"metric", "op", "value", "for_s"}``."""
    m = _BOUND_RE.match(text)
    if not m:
        raise typer.BadParameter(
            f"{text[:80]!r}: use METRIC OP NUMBER [for DURATION], e.g. 'cpu_temp_c > 75 for 2h'",
            param_hint="--when",
        )
    for_s = parse_duration(m["for"]) if m["for"] else 0.0
    return {"metric": m["metric"], "op": m["op"], "value": float(m["value"]), "for_s": for_s}


def describe(tree: Any, top: bool = True) -> str:
    """A condition tree in one line: ``cpu_temp_c > 75 for 2h and fan_rpm < 1500``."""
    if not isinstance(tree, dict):
        return "?"
    for mode, word in (("all", " and "), ("any", " or ")):
        if mode in tree:
            parts = [describe(p, False) for p in tree[mode]]
            inner = word.join(parts)
            return inner if top or len(parts) == 1 else f"({inner})"
    for_s = float(tree.get("for_s") or 0)
    tail = f" for {_span(for_s)}" if for_s else ""
    return f"{tree.get('metric')} {tree.get('op')} {float(tree.get('value', 0)):g}{tail}"


def _span(seconds: float) -> str:
    for unit, size in (("d", 86_400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


def _day(ts: float | None) -> str:
    return "-" if ts is None else time.strftime("%Y-%m-%d %H:%M", time.localtime(ts))


@rules_app.command("list")
def list_rules(as_json: JsonOpt = False) -> None:
    """The organisation's maintenance rules."""
    with client() as c:
        items = c.get("/maintenance/rules")
        short = refs.short_ids(c, "maintenance-rule")
    if as_json:
        print_json(items)
        return
    console.print(
        list_table(
            f"Maintenance rules ({len(items)})",
            ["id", "name", "scope", "condition", "task", "due in", "enabled"],
            (
                [
                    short(r["id"]),
                    r["name"],
                    r["scope"] if not r.get("scope_id") else f"{r['scope']} {r['scope_id']}",
                    describe(r["condition"]),
                    r["title"],
                    _span(float(r["due_in_s"])),
                    "yes" if r.get("enabled") else "no",
                ]
                for r in items
            ),
        )
    )


@rules_app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="a name for the rule")],
    when: Annotated[
        list[str] | None,
        typer.Option("--when", help="a bound: 'cpu_temp_c > 75 for 2h' (repeat for several)"),
    ] = None,
    any_of: Annotated[
        bool, typer.Option("--any", help="a task when any bound holds (default: all)")
    ] = False,
    condition: Annotated[
        str | None, typer.Option(help='the whole tree as JSON: {"all": [...]} / {"any": [...]}')
    ] = None,
    title: Annotated[str | None, typer.Option(help="the task's title (default: the name)")] = None,
    due: Annotated[str, typer.Option(help="a task is due this long after it opens")] = "7d",
    group: Annotated[str | None, typer.Option(help="only this group (name or id)")] = None,
    site: Annotated[str | None, typer.Option(help="only this site (name or id)")] = None,
    rack: Annotated[str | None, typer.Option(help="only this rack (name or id)")] = None,
    device: Annotated[str | None, typer.Option(help="only this board (name or id)")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a rule: where its bounds hold on a board, a maintenance task opens there."""
    scopes = [(k, v) for k, v in (("group", group), ("site", site), ("rack", rack)) if v]
    scopes += [("device", device)] if device else []
    if len(scopes) > 1:
        raise typer.BadParameter(
            "give one of --group, --site, --rack, --device", param_hint="--site"
        )
    if bool(when) == (condition is not None):
        raise typer.BadParameter("give --when (one or more) or --condition", param_hint="--when")
    if condition is not None:
        try:
            tree = json.loads(condition)
        except ValueError:
            raise typer.BadParameter("not JSON", param_hint="--condition") from None
    else:
        tree = {"any" if any_of else "all": [bound(w) for w in when or []]}
    body: dict[str, Any] = {"name": name, "condition": tree, "due_in_s": parse_duration(due)}
    if title is not None:
        body["title"] = title
    with client() as c:
        for kind, ref in scopes:
            if kind == "group":
                sid = group_id(c, ref)
            elif kind == "device":
                sid = device_id(c, ref)
            else:
                sid = resolve(c, kind, ref)
            body |= {"scope": kind, "scope_id": sid}
        r = c.post("/maintenance/rules", body)
    if as_json:
        print_json(r)
        return
    say(f"maintenance rule {r['name']} created: {r['id']}")


@rules_app.command("delete")
def delete(
    rule: Annotated[str, typer.Argument(help="rule id, name, or a unique part of the id")],
) -> None:
    """Delete a rule; its open tasks are closed."""
    with client() as c:
        c.delete(f"/maintenance/rules/{resolve(c, 'maintenance-rule', rule)}")
    say(f"maintenance rule {rule} deleted (its open tasks closed)")


def tasks(
    show_all: Annotated[bool, typer.Option("--all", help="the done ones too")] = False,
    device: Annotated[str | None, typer.Option(help="only this board (name or id)")] = None,
    as_json: JsonOpt = False,
) -> None:
    """The maintenance tasks the rules opened (open ones unless --all), earliest due first."""
    query: dict[str, Any] = {} if show_all else {"state": "open"}
    with client() as c:
        if device is not None:
            query["device_id"] = device_id(c, device)
        items = c.get("/maintenance/tasks", **query)
        short = refs.short_ids(c, "task")
    if as_json:
        print_json(items)
        return
    if not items:
        say("no open maintenance tasks" if not show_all else "no maintenance tasks")
        return
    console.print(
        list_table(
            f"Maintenance tasks ({len(items)})",
            ["id", "due", "board", "task", "rule", "state", "readings", "note"],
            (
                [
                    short(t["id"]),
                    _day(t["due_at"]),
                    t.get("device_name") or t["device_id"],
                    t["title"],
                    t["rule_name"],
                    t["state"] if t["state"] == "open" else f"done ({t.get('close_reason')})",
                    ", ".join(f"{k} {v:g}" for k, v in sorted(t["readings"].items())) or "-",
                    t.get("note") or "-",
                ]
                for t in items
            ),
        )
    )


def done(
    task: Annotated[str, typer.Argument(help="task id or a unique part of it")],
    note: Annotated[str, typer.Option(help="what was done")],
    as_json: JsonOpt = False,
) -> None:
    """Close TASK: the work is done (the note is kept, and audited)."""
    with client() as c:
        t = c.post(f"/maintenance/tasks/{resolve(c, 'task', task)}/done", {"note": note})
    if as_json:
        print_json(t)
        return
    say(f"maintenance task {t['id']} done: {t['title']}")


def register(app: typer.Typer) -> None:
    """Add ``rules``, ``tasks`` and ``done`` to ``wrale maintenance``."""
    app.add_typer(rules_app, name="rules")
    app.command()(tasks)
    app.command()(done)
