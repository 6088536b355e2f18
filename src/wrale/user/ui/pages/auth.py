"""Sign in and sign out. The session is the API's token pair in HttpOnly cookies; the
login form carries a CSRF token too (so another site cannot sign a browser in)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from wrale.fleet.brain.models.identity import PASSWORD_MAX, USERNAME_MAX
from wrale.fleet.brain.services import identity
from wrale.fleet.brain.services.login_throttle import LoginThrottledError
from wrale.shared.errors import AuthError
from wrale.user.api.deps import SessionDep, StateDep
from wrale.user.ui.web import (
    CSRF_COOKIE,
    REFRESH_COOKIE,
    check_csrf,
    clear_session,
    new_csrf,
    render,
    session_cookies,
    set_cookie,
)

router = APIRouter(include_in_schema=False)


def safe_next(target: str | None) -> str:
    """Only a path on this server (never ``//host`` or a full URL): no open redirect."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def _login_page(
    request: Request,
    csrf: str,
    *,
    next_: str,
    username: str = "",
    error: str | None = None,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    response = render(
        request,
        "auth/login.html",
        {
            "csrf": csrf,
            "next": next_,
            "username": username,
            "error": error,
            "username_max": USERNAME_MAX,
            "password_max": PASSWORD_MAX,
        },
        status_code=status_code,
    )
    response.headers.update(headers or {})
    set_cookie(response, request, CSRF_COOKIE, csrf, 3600)
    return response


@router.get("/login")
async def login_form(request: Request, next: str | None = None) -> Response:
    csrf = request.cookies.get(CSRF_COOKIE) or new_csrf()
    return _login_page(request, csrf, next_=safe_next(next))


@router.post("/login")
async def login(
    request: Request,
    state: StateDep,
    session: SessionDep,
    username: Annotated[str, Form(max_length=USERNAME_MAX)] = "",
    password: Annotated[str, Form(max_length=PASSWORD_MAX)] = "",
    next: Annotated[str, Form(max_length=2000)] = "/",
) -> Response:
    csrf = request.cookies.get(CSRF_COOKIE) or ""
    target = safe_next(next)
    try:
        await check_csrf(request, csrf)
    except Exception:
        return _login_page(
            request,
            new_csrf(),
            next_=target,
            username=username,
            status_code=403,
            error="The sign-in form expired; please try again.",
        )
    source = request.client.host if request.client else None
    try:
        tokens = await identity.login(session, username, password, state.auth, source)
    except LoginThrottledError as exc:  # the API's throttle, the API's answer: 429
        return _login_page(
            request,
            csrf,
            next_=target,
            username=username,
            error=exc.message,
            status_code=429,
            headers={"Retry-After": str(exc.retry_after_s)},
        )
    except AuthError as exc:
        return _login_page(
            request, csrf, next_=target, username=username, error=exc.message, status_code=401
        )
    await session.commit()
    response = Response(status_code=303, headers={"Location": target})
    for name, (value, max_age) in session_cookies(tokens, state, new_csrf()).items():
        set_cookie(response, request, name, value, max_age)
    return response


@router.post("/logout")
async def logout(request: Request, session: SessionDep) -> Response:
    await check_csrf(request, request.cookies.get(CSRF_COOKIE) or "")
    refresh = request.cookies.get(REFRESH_COOKIE)
    if refresh:
        await identity.logout(session, refresh)
        await session.commit()
    response = Response(status_code=303, headers={"Location": "/login"})
    clear_session(response)
    return response
