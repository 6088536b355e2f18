"""``wrale policies …``: versioned thermal / power / security / sampling documents on the
fleet, a group or a device, and a device's effective (merged) policy with each field's source."""

from __future__ import annotations

import time
from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.markup import escape

from wrale.shared.errors import WraleError
from wrale.user.cli import refs
from wrale.user.cli.client import CentralClient
from wrale.user.cli.fleet_common import (
    JsonOpt,
    LimitOpt,
    Styled,
    client,
    device_id,
    group_id,
    key_values,
    list_table,
    resolve,
    say,
    sub_app,
    when,
)
from wrale.user.cli.output import console, fmt, print_json

policies_app = sub_app("Policies on the fleet, a group or a device (nearest wins).")
ScopeOpt = Annotated[str, typer.Option(help="fleet, group:ID|NAME or device:ID|NAME")]


class Kind(StrEnum):
    thermal = "thermal"
    power = "power"
    security = "security"
    sampling = "sampling"


def parse_scope(c: CentralClient, scope: str) -> tuple[str, str | None]:
    kind, _, ref = scope.partition(":")
    if kind == "fleet" and not ref:
        return "fleet", None
    if kind == "group" and ref:
        return "group", group_id(c, ref)
    if kind == "device" and ref:
        return "device", device_id(c, ref)
    raise WraleError(f"--scope {scope!r}: use fleet, group:ID or device:ID")


def _scope_text(scope_type: str | None, scope_id: str | None) -> str:
    return f"{scope_type}:{scope_id}" if scope_id else str(scope_type)


@policies_app.command("list")
def list_policies(
    scope: Annotated[str | None, typer.Option(help="fleet, group:ID or device:ID")] = None,
    kind: Annotated[Kind | None, typer.Option(help="policy kind")] = None,
    limit: LimitOpt = 500,
    as_json: JsonOpt = False,
) -> None:
    """Policies, oldest first."""
    with client() as c:
        params: dict[str, Any] = {"kind": kind.value if kind else None}
        if scope:
            params["scope_type"], params["scope_id"] = parse_scope(c, scope)
        items = list(c.iter_all("/policies", params, limit=limit))
        short = refs.short_ids(c, "policy")
    if as_json:
        print_json(items)
        return
    console.print(
        list_table(
            f"Policies ({len(items)})",
            ["id", "scope", "kind", "version", "document", "updated", "by"],
            (
                [
                    short(p["id"]),
                    _scope_text(p.get("scope_type"), p.get("scope_id")),
                    p.get("kind"),
                    p.get("version"),
                    fmt(p.get("document")),
                    when(p.get("updated_at")),
                    p.get("updated_by"),
                ]
                for p in items
            ),
        )
    )


@policies_app.command("set")
def set_policy(
    scope: ScopeOpt,
    kind: Annotated[Kind, typer.Option(help="policy kind")],
    values: Annotated[
        list[str], typer.Option("--set", help="field=value (repeatable), e.g. profile=cool")
    ],
    replace: Annotated[
        bool, typer.Option("--replace", help="replace the document instead of merging")
    ] = False,
    wait: Annotated[
        bool, typer.Option("--wait", help="wait until every twin in the scope is recomposed")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Set fields of the policy of a scope (a new version; created when there is none).
    The twins of a group or the fleet are recomposed in the background: ``--wait`` follows."""
    changes = key_values(values)
    with client() as c:
        scope_type, scope_id = parse_scope(c, scope)
        params = {"scope_type": scope_type, "scope_id": scope_id, "kind": kind.value}
        existing = next(iter(c.iter_all("/policies", params, limit=1)), None)
        if existing is None:
            body: dict[str, Any] = {"scope_type": scope_type, "kind": kind.value}
            if scope_id is not None:  # the fleet's policy takes no scope_id
                body["scope_id"] = scope_id
            p = c.post("/policies", body | {"document": changes})
        else:
            document = changes if replace else {**existing["document"], **changes}
            p = c.put(
                f"/policies/{existing['id']}",
                {"document": document, "expected_version": existing["version"]},
            )
        job = p.get("recompose") or {}
        if wait and job.get("id"):
            job = _follow(c, job, quiet=as_json)
            p["recompose"] = job
    if as_json:
        print_json(p)
        return
    say(
        f"{p['kind']} policy of {_scope_text(p['scope_type'], p.get('scope_id'))} is at "
        f"version {p['version']}: {fmt(p['document'])}"
    )
    if job.get("id"):
        say(
            f"twins: {job['done']:,} of {job['total']:,} recomposed ({job['state']}; "
            f"recompose {job['id']})"
        )


def _follow(c: CentralClient, job: dict[str, Any], *, quiet: bool) -> dict[str, Any]:
    """Poll the recompose until it is done; a newer change that superseded it is followed
    in its place (it recomposes the same boards)."""
    last = -1
    while job["state"] in ("queued", "running") or job.get("superseded_by"):
        if job["state"] == "superseded":
            job = c.get(f"/policies/recompose/{job['superseded_by']}")
            continue
        if not quiet and job["done"] != last:
            say(f"  {job['done']:,} of {job['total']:,} twins recomposed …")
            last = job["done"]
        time.sleep(0.5)
        job = c.get(f"/policies/recompose/{job['id']}")
    return job


@policies_app.command("delete")
def delete_policy(
    policy: Annotated[str, typer.Argument(help="policy id or a unique part of it")],
) -> None:
    """Delete a policy (the scope falls back to what it inherits)."""
    with client() as c:
        c.delete(f"/policies/{resolve(c, 'policy', policy)}")
    say(f"deleted policy {policy}")


@policies_app.command("effective")
def effective(
    device: Annotated[str, typer.Argument(help="device id or name")],
    kind: Annotated[Kind | None, typer.Option(help="only this kind")] = None,
    as_json: JsonOpt = False,
) -> None:
    """A device's effective policy: every field's value and where it comes from."""
    with client() as c:
        e = c.get(f"/devices/{device_id(c, device)}/effective-policy")
    if kind is not None:
        e["kinds"] = {k: v for k, v in e.get("kinds", {}).items() if k == kind.value}
    if as_json:
        print_json(e)
        return
    chain = " → ".join(_scope_text(s["scope_type"], s.get("scope_id")) for s in e.get("chain", []))
    say(f"device {e['device_id']}: {chain or 'defaults only'}")
    for name, k in e.get("kinds", {}).items():
        rows = []
        for field, f in k.get("fields", {}).items():
            src = f.get("source")
            origin = (
                f"{_scope_text(src['scope_type'], src.get('scope_id'))} v{src['version']}"
                if src
                else Styled("[dim]default[/]")
            )
            rows.append([field, fmt(f.get("value")), origin])
        console.print(list_table(f"{name}", ["field", "value", "from"], rows))
        for err in k.get("errors", []):
            console.print(f"[red]  {escape(err)}[/]")
