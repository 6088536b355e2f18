"""The dashboard's request plumbing: the browser session (cookies), CSRF protection, role
checks that redirect to the login page, and ``render`` for Jinja2 templates.

A browser session is the API's own pair of tokens kept in HttpOnly cookies: the short-lived
access token, renewed from the refresh token when it expires. Every unsafe request must
carry the CSRF token (form field ``csrf`` or header ``X-CSRF-Token``) that equals the
session's CSRF cookie once unmasked (each response shows it under a fresh random mask).
Nothing here talks to the database except through brain services.
"""

from __future__ import annotations

import base64
import hmac
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, Response
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from wrale.fleet.brain.models.alerts import Alert
from wrale.fleet.brain.services import identity
from wrale.fleet.brain.services.principal import ForbiddenError, Principal, Role, at_least
from wrale.shared.errors import AuthError
from wrale.user.api.deps import AppState, SessionDep, StateDep
from wrale.user.ui import filters, units

HERE = Path(__file__).parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"

ACCESS_COOKIE = "wrale_session"
REFRESH_COOKIE = "wrale_refresh"
CSRF_COOKIE = "wrale_csrf"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_MAX_BYTES = 64  # a session token is 32 characters


class LoginRequiredError(AuthError):
    """The browser has no valid session: the page answers with a redirect to /login."""


# ----------------------------------------------------------------------------- templates


def make_templates() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html", "svg"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        enable_async=False,
    )
    env.filters["age"] = filters.fmt_age
    env.filters["when"] = filters.fmt_time
    env.filters["num"] = filters.fmt_num
    env.filters["reading"] = units.reading  # a metric's value at its sensor's precision
    env.globals["static_version"] = str(int(time.time()))
    return env


# ----------------------------------------------------------------------------- the session


@dataclass
class Viewer:
    """The signed-in person of one request, and what the page may offer them."""

    principal: Principal
    csrf: str
    set_cookies: dict[str, tuple[str, int]] = field(default_factory=dict)
    nav_alerts: int = 0  # active critical/major alerts, for the navigation's counter

    @property
    def can_operate(self) -> bool:
        return at_least(self.principal.role, Role.OPERATOR)

    @property
    def is_admin(self) -> bool:
        return at_least(self.principal.role, Role.ADMIN)

    @property
    def tenant_id(self) -> str:
        return self.principal.tenant_id


def central_url(request: Request) -> str:
    """This server's address for the commands the dashboard prints: the ``public_url``
    setting when set (behind a proxy the browser's address may not be the boards'), else
    the address the browser reached it by (scheme, host, port, root path)."""
    state = getattr(request.app.state, "wrale", None)
    public = getattr(getattr(state, "settings", None), "public_url", None)
    if isinstance(public, str) and public:
        return public
    return str(request.base_url).rstrip("/")


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def set_cookie(response: Response, request: Request, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/",
        httponly=True,
        samesite="strict" if name == REFRESH_COOKIE else "lax",
        secure=_secure(request),
    )


def clear_session(response: Response) -> None:
    for name in (ACCESS_COOKIE, REFRESH_COOKIE, CSRF_COOKIE):
        response.delete_cookie(name, path="/")


def session_cookies(
    tokens: identity.Tokens, state: AppState, csrf: str
) -> dict[str, tuple[str, int]]:
    """The cookies of a fresh session (after login or a refresh)."""
    refresh_ttl = state.auth.refresh_ttl_s
    return {
        ACCESS_COOKIE: (tokens.access_token, refresh_ttl),  # the cookie outlives the token
        REFRESH_COOKIE: (tokens.refresh_token, refresh_ttl),
        CSRF_COOKIE: (csrf, refresh_ttl),
    }


NAV_SEVERITIES = ("CRITICAL", "MAJOR")  # as alert_rules.SEVERITIES spells them


async def nav_alert_count(session: AsyncSession, tenant_id: str) -> int:
    """Active (not yet acknowledged) critical and major alerts: the navigation's counter."""
    stmt = select(func.count()).where(
        Alert.tenant_id == tenant_id,
        Alert.state == "active",
        Alert.severity.in_(NAV_SEVERITIES),
    )
    return int(await session.scalar(stmt) or 0)


def new_csrf() -> str:
    return secrets.token_urlsafe(24)


def mask_csrf(token: str) -> str:
    """``token`` as one response shows it: base64url(pad || token XOR pad) with a fresh
    random pad, so no two responses carry the same secret bytes (BREACH)."""
    raw = token.encode()
    pad = secrets.token_bytes(len(raw))
    return base64.urlsafe_b64encode(
        pad + bytes(a ^ b for a, b in zip(raw, pad, strict=True))
    ).decode()


def unmask_csrf(sent: str) -> bytes | None:
    """The token inside a masked one; None for anything that is not one."""
    if len(sent) > 4 * CSRF_MAX_BYTES:
        return None
    try:
        blob = base64.urlsafe_b64decode(sent.encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        return None
    half = len(blob) // 2
    if not blob or len(blob) % 2:
        return None
    pad, masked = blob[:half], blob[half:]
    return bytes(a ^ b for a, b in zip(masked, pad, strict=True))


def csrf_matches(sent: str | None, expected: str) -> bool:
    """A masked token that unmasks to the session's token (compared in constant time)."""
    if not expected or not sent:
        return False
    token = unmask_csrf(sent)
    return token is not None and hmac.compare_digest(token, expected.encode())


async def _viewer(request: Request, state: StateDep, session: SessionDep) -> Viewer:
    """The signed-in viewer; an expired access token is renewed from the refresh cookie.
    Unsafe methods must carry the CSRF token."""
    source = request.client.host if request.client else None
    access = request.cookies.get(ACCESS_COOKIE)
    csrf = request.cookies.get(CSRF_COOKIE) or ""
    principal: Principal | None = None
    renewed: dict[str, tuple[str, int]] = {}
    if access:
        try:
            principal = await identity.authenticate(session, access, state.auth, source)
        except AuthError:
            principal = None
    if principal is None:
        refresh = request.cookies.get(REFRESH_COOKIE)
        if not refresh:
            raise LoginRequiredError("sign in to continue")
        try:
            tokens = await identity.refresh(session, refresh, state.auth)
        except AuthError:
            raise LoginRequiredError("your session has ended; sign in again") from None
        await session.commit()
        principal = await identity.authenticate(session, tokens.access_token, state.auth, source)
        csrf = csrf or new_csrf()
        renewed = session_cookies(tokens, state, csrf)
    if request.method not in SAFE_METHODS:
        await check_csrf(request, csrf)
    request.state.principal = principal
    viewer = Viewer(principal, csrf, renewed, await nav_alert_count(session, principal.tenant_id))
    request.state.viewer = viewer
    return viewer


async def check_csrf(request: Request, expected: str) -> None:
    """The request must carry the session's token, masked as a page gives it out."""
    sent = request.headers.get(CSRF_HEADER)
    if sent is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        form = await request.form()
        value = form.get(CSRF_FIELD)
        sent = value if isinstance(value, str) else None
    if not csrf_matches(sent, expected):
        raise ForbiddenError("the form's security token is missing or stale; reload the page")


ViewerDep = Annotated[Viewer, Depends(_viewer)]


def require(needed: Role) -> Callable[..., Awaitable[Viewer]]:
    """A page or action for ``needed`` or better (a viewer who tries gets 403)."""

    async def dependency(request: Request, viewer: ViewerDep) -> Viewer:
        viewer.principal.require(needed, f"{request.method} {request.url.path}")
        return viewer

    return dependency


OperatorDep = Annotated[Viewer, Depends(require(Role.OPERATOR))]
AdminDep = Annotated[Viewer, Depends(require(Role.ADMIN))]

__all__ = ["AdminDep", "OperatorDep", "SessionDep", "ViewerDep", "is_htmx", "render"]


# ----------------------------------------------------------------------------- rendering


def page_number(text: str | None) -> int:
    """A ``?page=`` value: 1 when missing or not a positive number (never an error)."""
    try:
        return max(1, int(text or 1))
    except ValueError:
        return 1


def is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


def render(
    request: Request,
    template: str,
    context: Mapping[str, Any] | None = None,
    *,
    status_code: int = 200,
    headers: Mapping[str, str] | None = None,
) -> HTMLResponse:
    """Render ``template`` with the request's viewer, CSRF token and navigation."""
    env: Environment = request.app.state.ui_templates
    viewer: Viewer | None = getattr(request.state, "viewer", None)
    ctx: dict[str, Any] = {
        "request": request,
        "viewer": viewer,
        "csrf": viewer.csrf if viewer else "",
        "path": request.url.path,
        "nav_alerts": viewer.nav_alerts if viewer else 0,
        "now": time.time(),
        **(context or {}),
    }
    # every response shows the token under a fresh mask (BREACH): never the raw secret
    ctx["csrf"] = mask_csrf(ctx["csrf"]) if ctx["csrf"] else ""
    html = env.get_template(template).render(ctx)
    response = HTMLResponse(html, status_code=status_code, headers=dict(headers or {}))
    response.headers.setdefault("Cache-Control", "no-store")
    if viewer is not None:
        for name, (value, max_age) in viewer.set_cookies.items():
            set_cookie(response, request, name, value, max_age)
    return response


def login_redirect(request: Request) -> Response:
    """To the login page, coming back here afterwards (htmx: a full-page redirect)."""
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    location = "/login" if target in ("/", "/login") else f"/login?next={quote(target)}"
    if is_htmx(request):
        return Response(status_code=200, headers={"HX-Redirect": location})
    return Response(status_code=303, headers={"Location": location})
