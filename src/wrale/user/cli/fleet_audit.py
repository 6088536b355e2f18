"""``wrale audit``: the audit log (who did what to which resource, with what outcome),
newest first, filtered (admins and operators)."""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer
from rich.markup import escape

from wrale.user.cli.fleet_common import (
    JsonOpt,
    LimitOpt,
    Styled,
    client,
    list_table,
    parse_duration,
    when,
)
from wrale.user.cli.output import console, print_json

OUTCOME_COLOUR = {"success": "green", "denied": "red", "failed": "yellow"}


def audit(
    action: Annotated[str | None, typer.Option(help="e.g. device.enroll, auth.login")] = None,
    actor: Annotated[str | None, typer.Option(help="username or token name")] = None,
    resource: Annotated[str | None, typer.Option(help="resource type, e.g. device")] = None,
    outcome: Annotated[str | None, typer.Option(help="success, denied or failed")] = None,
    since: Annotated[str | None, typer.Option(help="only the last 30m, 1h, 7d …")] = None,
    limit: LimitOpt = 50,
    as_json: JsonOpt = False,
) -> None:
    """The audit log, newest first."""
    params: dict[str, Any] = {
        "action": action,
        "actor": actor,
        "resource_type": resource,
        "outcome": outcome,
        "since": time.time() - parse_duration(since) if since else None,
    }
    with client() as c:
        items = list(c.iter_all("/audit", params, limit=limit))
    if as_json:
        print_json(items)
        return
    console.print(
        list_table(
            f"Audit log ({len(items)})",
            ["at", "actor", "action", "resource", "outcome", "source"],
            (
                [
                    when(e.get("at")),
                    e.get("actor_name") or e.get("actor_type"),
                    e.get("action"),
                    f"{e['resource_type']}:{e.get('resource_id') or ''}"
                    if e.get("resource_type")
                    else None,
                    Styled(
                        f"[{OUTCOME_COLOUR.get(e.get('outcome', ''), 'white')}]"
                        f"{escape(str(e.get('outcome')))}[/]"
                    ),
                    e.get("source_ip"),
                ]
                for e in items
            ),
        )
    )
