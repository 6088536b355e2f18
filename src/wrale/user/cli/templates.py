"""``wrale templates …``: config templates over the central API — versions, rendering
previews, deployments to a device, a group or the fleet, per-device status and rollback.
JSON arguments are given inline or as ``@file.json``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

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
    kv_table,
    list_table,
    resolve,
    say,
    sub_app,
    when,
)
from wrale.user.cli.output import console, fmt, print_json

templates_app = sub_app("Config templates: versions, render, deploy, status, rollback.")
TemplateArg = Annotated[str, typer.Argument(help="template id or name")]
DeploymentArg = Annotated[str, typer.Argument(help="deployment id")]
VarOpt = Annotated[
    list[str] | None, typer.Option("--var", help="name=value (repeatable), e.g. port=8123")
]
JsonArg = Annotated[str, typer.Option(help="JSON, or @file.json")]
STATUS_COLOUR = {"pending": "white", "applied": "green", "failed": "red", "superseded": "dim"}


def load_json(text: str, what: str) -> Any:
    raw = text
    if text.startswith("@"):
        try:
            raw = Path(text[1:]).read_text()
        except OSError as exc:
            raise WraleError(f"{what}: cannot read {text[1:]} ({exc.strerror})") from None
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise WraleError(f"{what}: not JSON ({exc})") from None


def template_id(c: CentralClient, ref: str) -> str:
    return resolve(c, "template", ref)


def _counts(d: dict[str, Any]) -> str:
    counts = d.get("counts") or {}
    return ", ".join(f"{k} {v}" for k, v in counts.items() if v) or "no devices"


@templates_app.command("list")
def list_templates(limit: LimitOpt = 500, as_json: JsonOpt = False) -> None:
    """Config templates, oldest first."""
    with client() as c:
        items = list(c.iter_all("/config-templates", limit=limit))
        short = refs.short_ids(c, "template")
    if as_json:
        print_json(items)
        return
    console.print(
        list_table(
            f"Config templates ({len(items)})",
            ["id", "name", "latest version", "description", "updated"],
            (
                [
                    short(t["id"]),
                    t["name"],
                    t["latest_version"],
                    t.get("description"),
                    when(t["updated_at"]),
                ]
                for t in items
            ),
        )
    )


@templates_app.command("show")
def show(
    template: TemplateArg,
    version: Annotated[int | None, typer.Option(help="default: the latest")] = None,
    as_json: JsonOpt = False,
) -> None:
    """A template version: its body and variables."""
    with client() as c:
        tid = template_id(c, template)
        t = c.get(f"/config-templates/{tid}")
        v = t["latest"] if version is None else c.get(f"/config-templates/{tid}/versions/{version}")
    if as_json:
        print_json({**t, "version": v})
        return
    console.print(
        kv_table(
            f"Template {t['name']} v{v['version']}",
            {
                "id": t["id"],
                "latest version": t["latest_version"],
                "note": v.get("note"),
                "by": v.get("created_by"),
                "body": json.dumps(v["body"], indent=2, sort_keys=True),
            },
        )
    )
    console.print(
        list_table(
            "Variables",
            ["name", "type", "required", "default", "min", "max", "choices"],
            (
                [
                    n,
                    s.get("type"),
                    s.get("required"),
                    s.get("default"),
                    s.get("min"),
                    s.get("max"),
                    s.get("choices"),
                ]
                for n, s in v["variables"].items()
            ),
        )
    )


@templates_app.command("create")
def create(
    name: str,
    body: JsonArg,
    variables: Annotated[str | None, typer.Option(help="variables schema: JSON or @file")] = None,
    description: Annotated[str | None, typer.Option(help="what it configures")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a template at version 1."""
    payload: dict[str, Any] = {"name": name, "body": load_json(body, "--body")}
    if variables is not None:
        payload["variables"] = load_json(variables, "--variables")
    if description is not None:
        payload["description"] = description
    with client() as c:
        t = c.post("/config-templates", payload)
    if as_json:
        print_json(t)
        return
    say(f"created template {t['name']} ({t['id']}) at version 1")


@templates_app.command("add-version")
def add_version(
    template: TemplateArg,
    body: JsonArg,
    variables: Annotated[str | None, typer.Option(help="variables schema: JSON or @file")] = None,
    note: Annotated[str | None, typer.Option(help="what changed")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Add the next version of a template (earlier ones never change)."""
    payload: dict[str, Any] = {"body": load_json(body, "--body"), "note": note}
    if variables is not None:
        payload["variables"] = load_json(variables, "--variables")
    with client() as c:
        v = c.post(f"/config-templates/{template_id(c, template)}/versions", payload)
    if as_json:
        print_json(v)
        return
    say(f"template {v['template_id']} is at version {v['version']}")


@templates_app.command("render")
def render(
    template: TemplateArg,
    var: VarOpt = None,
    version: Annotated[int | None, typer.Option(help="default: the latest")] = None,
) -> None:
    """Preview a version rendered with variables (nothing changes)."""
    with client() as c:
        r = c.post(
            f"/config-templates/{template_id(c, template)}/render",
            {"version": version, "variables": key_values(var)},
        )
    print_json(r["rendered"])


@templates_app.command("deploy")
def deploy(
    template: TemplateArg,
    device: Annotated[str | None, typer.Option(help="one device (id or name)")] = None,
    group: Annotated[str | None, typer.Option(help="a group and its subgroups")] = None,
    fleet: Annotated[bool, typer.Option("--fleet", help="every device")] = False,
    var: VarOpt = None,
    version: Annotated[int | None, typer.Option(help="default: the latest")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Deploy a version to a device, a group or the fleet."""
    if sum((device is not None, group is not None, fleet)) != 1:
        raise WraleError("give one target: --device, --group or --fleet")
    with client() as c:
        body: dict[str, Any] = {"version": version, "variables": key_values(var)}
        if device is not None:
            body |= {"target_type": "device", "target_id": device_id(c, device)}
        elif group is not None:
            body |= {"target_type": "group", "target_id": group_id(c, group)}
        else:
            body["target_type"] = "fleet"
        d = c.post(f"/config-templates/{template_id(c, template)}/deployments", body)
    if as_json:
        print_json(d)
        return
    say(f"deployment {d['id']} of version {d['version']}: {_counts(d)}")


@templates_app.command("deployments")
def deployments(template: TemplateArg, limit: LimitOpt = 500, as_json: JsonOpt = False) -> None:
    """Deployments of a template, oldest first, with device counts per status."""
    with client() as c:
        items = list(
            c.iter_all(f"/config-templates/{template_id(c, template)}/deployments", limit=limit)
        )
    if as_json:
        print_json(items)
        return
    console.print(
        list_table(
            f"Deployments ({len(items)})",
            ["id", "version", "target", "variables", "devices", "rollback of", "created"],
            (
                [
                    d["id"],
                    d["version"],
                    f"{d['target_type']}:{d['target_id']}" if d.get("target_id") else "fleet",
                    fmt(d.get("variables")),
                    _counts(d),
                    d.get("rollback_of"),
                    when(d.get("created_at")),
                ]
                for d in items
            ),
        )
    )


@templates_app.command("status")
def status(
    template: TemplateArg,
    deployment: DeploymentArg,
    limit: LimitOpt = 1000,
    as_json: JsonOpt = False,
) -> None:
    """Each device of a deployment: pending, applied, failed (why) or superseded."""
    with client() as c:
        base = f"/config-templates/{template_id(c, template)}/deployments/{deployment}"
        items = list(c.iter_all(f"{base}/devices", limit=limit))
    if as_json:
        print_json(items)
        return
    from rich.markup import escape

    console.print(
        list_table(
            f"Deployment {deployment} ({len(items)} devices)",
            ["device", "status", "reason", "desired version", "updated"],
            (
                [
                    r["device_id"],
                    Styled(f"[{STATUS_COLOUR.get(r['status'], 'white')}]{escape(r['status'])}[/]"),
                    r.get("reason"),
                    r.get("desired_version"),
                    when(r.get("updated_at")),
                ]
                for r in items
            ),
        )
    )


@templates_app.command("rollback")
def rollback(
    template: TemplateArg,
    deployment: DeploymentArg,
    version: Annotated[
        int | None, typer.Option(help="default: what the target had before this deployment")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Deploy an earlier version to the same target as a deployment."""
    with client() as c:
        tid = template_id(c, template)
        d = c.post(
            f"/config-templates/{tid}/deployments/{deployment}/rollback", {"version": version}
        )
    if as_json:
        print_json(d)
        return
    say(f"deployment {d['id']} rolls back to version {d['version']}: {_counts(d)}")


@templates_app.command("delete")
def delete(template: TemplateArg) -> None:
    """Delete a template with its versions and deployment records (admin)."""
    with client() as c:
        tid = template_id(c, template)
        c.delete(f"/config-templates/{tid}")
    say(f"deleted template {tid}")
