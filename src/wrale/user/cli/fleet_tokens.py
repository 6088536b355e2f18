"""``wrale tokens …`` (enrollment tokens that boards exchange for their own credential)
and ``wrale api-tokens …`` (tokens for automation, scoped by role). Secrets are shown once."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

import typer

from wrale.user.cli import refs
from wrale.user.cli.fleet_common import (
    JsonOpt,
    LimitOpt,
    client,
    group_id,
    list_table,
    parse_duration,
    resolve,
    say,
    sub_app,
    when,
)
from wrale.user.cli.output import console, print_json

tokens_app = sub_app("Enrollment tokens: what a board exchanges for its own credential.")
api_tokens_app = sub_app("API tokens for scripts and automation (use with WRALE_TOKEN).")


class RoleChoice(StrEnum):
    viewer = "viewer"
    operator = "operator"
    admin = "admin"


def _shown_once(label: str, secret: str) -> None:
    console.print(f"{label}: [bold]{secret}[/]", highlight=False, soft_wrap=True)
    console.print("[yellow]shown once: store it now[/]")


# ----------------------------------------------------------------------------- enrollment


@tokens_app.command("create")
def create_token(
    name: Annotated[str, typer.Option(help="what the token is for, e.g. 'rack1 batch'")],
    uses: Annotated[int, typer.Option(min=1, max=1_000_000, help="how many boards")] = 1,
    unlimited: Annotated[bool, typer.Option("--unlimited", help="any number of uses")] = False,
    expires: Annotated[str | None, typer.Option(help="lifetime, e.g. 1h, 7d")] = None,
    group: Annotated[str | None, typer.Option(help="enrolled boards join this group")] = None,
    tag: Annotated[list[str] | None, typer.Option(help="tags the boards get (repeatable)")] = None,
    rack: Annotated[str | None, typer.Option(help="boards go into this rack")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Create an enrollment token (admin)."""
    body: dict[str, Any] = {
        "name": name,
        "max_uses": None if unlimited else uses,
        "expires_in_s": parse_duration(expires) if expires else None,
        "target_tags": tag or [],
    }
    with client() as c:
        if group:
            body["target_group_id"] = group_id(c, group)
        if rack:
            body["target_rack_id"] = resolve(c, "rack", rack)
        t = c.post("/enrollment-tokens", body)
    if as_json:
        print_json(t)
        return
    uses_text = "unlimited" if t.get("max_uses") is None else str(t.get("max_uses"))
    say(
        f"enrollment token {t['name']} ({t['id']}): {uses_text} use(s), "
        f"expires {when(t.get('expires_at')) or 'never'}"
    )
    _shown_once("token", t["token"])


@tokens_app.command("list")
def list_tokens(
    active: Annotated[
        bool | None, typer.Option("--active/--inactive", help="only usable (or unusable) ones")
    ] = None,
    limit: LimitOpt = 500,
    as_json: JsonOpt = False,
) -> None:
    """Enrollment tokens, without their secrets (admin)."""
    with client() as c:
        items = list(c.iter_all("/enrollment-tokens", {"active": active}, limit=limit))
        short = refs.short_ids(c, "enrollment-token")
        short_group = refs.short_ids(c, "group")
    if as_json:
        print_json(items)
        return
    console.print(
        list_table(
            f"Enrollment tokens ({len(items)})",
            ["id", "name", "prefix", "state", "uses", "expires", "group", "tags"],
            (
                [
                    short(t["id"]),
                    t["name"],
                    t.get("prefix"),
                    t.get("state"),
                    f"{t.get('uses')}/{t.get('max_uses') or '∞'}",
                    when(t.get("expires_at")),
                    short_group(t.get("target_group_id")),
                    t.get("target_tags"),
                ]
                for t in items
            ),
        )
    )


@tokens_app.command("revoke")
def revoke_token(
    token_id: Annotated[
        str, typer.Argument(help="enrollment token id, name, or a unique part of the id")
    ],
) -> None:
    """Revoke an enrollment token; boards already enrolled keep their credentials."""
    with client() as c:
        t = c.delete(f"/enrollment-tokens/{resolve(c, 'enrollment-token', token_id)}")
    say(f"revoked enrollment token {t.get('name')} ({t.get('id')})")


# ----------------------------------------------------------------------------- API tokens


@api_tokens_app.command("create")
def create_api_token(
    name: Annotated[str, typer.Option(help="what uses it, e.g. 'grafana'")],
    role: Annotated[RoleChoice, typer.Option(help="what it may do")] = RoleChoice.viewer,
    expires: Annotated[str | None, typer.Option(help="lifetime, e.g. 30d")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Create an API token (admin)."""
    body = {
        "name": name,
        "role": role.value,
        "expires_in_s": parse_duration(expires) if expires else None,
    }
    with client() as c:
        t = c.post("/api-tokens", body)
    if as_json:
        print_json(t)
        return
    say(f"API token {t['name']} ({t['id']}), role {t['role']}")
    _shown_once("token", t["token"])


@api_tokens_app.command("list")
def list_api_tokens(limit: LimitOpt = 500, as_json: JsonOpt = False) -> None:
    """API tokens, without their secrets (admin)."""
    with client() as c:
        items = list(c.iter_all("/api-tokens", limit=limit))
        short_token = refs.short_ids(c, "token")
    if as_json:
        print_json(items)
        return
    console.print(
        list_table(
            f"API tokens ({len(items)})",
            ["id", "name", "role", "prefix", "created", "expires", "last used", "revoked"],
            (
                [
                    short_token(t["id"]),
                    t["name"],
                    t.get("role"),
                    t.get("prefix"),
                    when(t.get("created_at")),
                    when(t.get("expires_at")),
                    when(t.get("last_used_at")),
                    when(t.get("revoked_at")),
                ]
                for t in items
            ),
        )
    )


@api_tokens_app.command("revoke")
def revoke_api_token(
    token: Annotated[str, typer.Argument(help="API token id, name, or a unique part of the id")],
) -> None:
    """Revoke an API token now."""
    with client() as c:
        t = c.delete(f"/api-tokens/{resolve(c, 'token', token)}")
    say(f"revoked API token {t.get('name')} ({t.get('id')})")
