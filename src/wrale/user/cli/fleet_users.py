"""``wrale users …``: the organisation's users and their roles (admin only)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from wrale.shared.errors import WraleError
from wrale.user.cli import refs
from wrale.user.cli.fleet_common import (
    JsonOpt,
    LimitOpt,
    client,
    kv_table,
    list_table,
    say,
    sub_app,
    user_id,
    when,
)
from wrale.user.cli.fleet_tokens import RoleChoice
from wrale.user.cli.output import console, print_json

users_app = sub_app("Users of the organisation and their roles (admin).")
UserArg = Annotated[str, typer.Argument(help="username or user id")]


def _show(u: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(u)
        return
    console.print(
        kv_table(
            f"User {u['username']}",
            {
                "id": u["id"],
                "username": u["username"],
                "role": u.get("role"),
                "disabled": u.get("disabled"),
                "created": when(u.get("created_at")),
                "last login": when(u.get("last_login_at")),
            },
        )
    )


@users_app.command("list")
def list_users(limit: LimitOpt = 1000, as_json: JsonOpt = False) -> None:
    """Users, oldest first."""
    with client() as c:
        items = list(c.iter_all("/users", limit=limit))
        short = refs.short_ids(c, "user")
    if as_json:
        print_json(items)
        return
    console.print(
        list_table(
            f"Users ({len(items)})",
            ["id", "username", "role", "disabled", "created", "last login"],
            (
                [
                    short(u["id"]),
                    u["username"],
                    u.get("role"),
                    u.get("disabled"),
                    when(u.get("created_at")),
                    when(u.get("last_login_at")),
                ]
                for u in items
            ),
        )
    )


@users_app.command("create")
def create_user(
    username: str,
    role: Annotated[RoleChoice, typer.Option(help="what the user may do")] = RoleChoice.viewer,
    password: Annotated[
        str,
        typer.Option(
            prompt=True, hide_input=True, confirmation_prompt=True, help="prompted when omitted"
        ),
    ] = "",
    as_json: JsonOpt = False,
) -> None:
    """Create a user (passwords: 10 characters or more)."""
    with client() as c:
        u = c.post("/users", {"username": username, "password": password, "role": role.value})
    _show(u, as_json)


@users_app.command("update")
def update_user(
    user: UserArg,
    role: Annotated[RoleChoice | None, typer.Option(help="new role")] = None,
    disabled: Annotated[
        bool | None, typer.Option("--disable/--enable", help="block or allow logging in")
    ] = None,
    password: Annotated[
        bool, typer.Option("--password", help="set a new password (prompted)")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Change a user's role, disable or enable them, or set a new password."""
    body: dict[str, Any] = {}
    if role is not None:
        body["role"] = role.value
    if disabled is not None:
        body["disabled"] = disabled
    if password:
        body["password"] = typer.prompt("New password", hide_input=True, confirmation_prompt=True)
    if not body:
        raise WraleError("nothing to change: give --role, --disable/--enable or --password")
    with client() as c:
        u = c.patch(f"/users/{user_id(c, user)}", body)
    _show(u, as_json)


@users_app.command("delete")
def delete_user(
    user: UserArg,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask")] = False,
) -> None:
    """Delete a user."""
    with client() as c:
        uid = user_id(c, user)
        if not yes:
            typer.confirm(f"delete user {user}?", abort=True)
        c.delete(f"/users/{uid}")
    say(f"deleted user {user}")
