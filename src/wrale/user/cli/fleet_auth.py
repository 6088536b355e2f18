"""``wrale login``, ``wrale logout`` and ``wrale whoami``: the CLI's session with a central
server (stored by ``session``; nothing here talks HTTP beyond the auth endpoints)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from wrale.shared.errors import WraleError
from wrale.user.cli import session
from wrale.user.cli.client import CentralClient
from wrale.user.cli.fleet_common import JsonOpt, client, kv_table, say
from wrale.user.cli.output import console, err_console, print_json


def _check_url(value: str | None) -> str:
    """The URL given, or the last central logged in to (checked before any prompt)."""
    if value is None:
        stored = session.load()
        if stored is None:
            raise typer.BadParameter("which central? give --central URL (e.g. http://host:8080)")
        return stored.central_url
    if not value.startswith(("http://", "https://")):
        raise typer.BadParameter(f"must be an http:// or https:// URL, not {value!r}")
    return value.rstrip("/")


def login(
    central: Annotated[
        str | None,
        typer.Option(
            "--central",
            envvar=session.URL_ENV,
            callback=_check_url,
            help="the central server, e.g. http://host:8080 (default: the last one)",
        ),
    ] = None,
    username: Annotated[str, typer.Option(prompt=True, help="default: admin")] = "admin",
    password: Annotated[
        str, typer.Option(prompt=True, hide_input=True, help="prompted for when omitted")
    ] = "",
) -> None:
    """Log in to a central server and keep the session (in ~/.config/wrale, mode 0600)."""
    url = str(central)  # the callback filled it in
    with CentralClient(url) as c:
        tokens = c.request(
            "POST", "/auth/login", json={"username": username, "password": password}, auth=False
        )
    user = tokens.get("user") or {}
    path = session.save(
        session.Login(
            central_url=url,
            access_token=tokens["access_token"],
            refresh_token=tokens.get("refresh_token"),
            username=user.get("username", username),
        )
    )
    say(
        f"logged in to {url} as {user.get('username', username)} "
        f"({user.get('role', '?')}); session in {path}"
    )


def logout() -> None:
    """End the session on the central (the refresh token is spent) and forget it here."""
    stored = session.load()
    if stored is None:
        console.print("not logged in")
        return
    if stored.refresh_token:
        try:
            with CentralClient(stored.central_url) as c:
                c.request(
                    "POST",
                    "/auth/logout",
                    json={"refresh_token": stored.refresh_token},
                    auth=False,
                )
        except WraleError as exc:
            err_console.print(
                f"[yellow]warning:[/yellow] {escape(exc.message)} (forgotten here anyway)"
            )
    session.clear()
    say(f"logged out of {stored.central_url}")


def whoami(as_json: JsonOpt = False) -> None:
    """Who the CLI acts as on which central server."""
    with client() as c:
        me = c.get("/auth/me")
        url = c.base_url
    if as_json:
        print_json({"central_url": url, **me})
        return
    console.print(
        kv_table(
            "Session",
            {
                "central": url,
                "name": me.get("name"),
                "role": me.get("role"),
                "actor": me.get("actor_type"),
                "id": me.get("actor_id"),
                "tenant": me.get("tenant_id"),
            },
        )
    )
