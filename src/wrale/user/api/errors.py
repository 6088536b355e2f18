"""The one domain → HTTP translation of the central API: ``{"error": {code, message,
details}}`` with the right 4xx. Anything else is a bug, answered 500 and logged."""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import IntegrityError
from starlette.exceptions import HTTPException as StarletteHTTPException

from wrale.fleet.brain.services import audit
from wrale.fleet.brain.services.principal import ForbiddenError, Principal
from wrale.shared.errors import (
    AuthError,
    ConflictError,
    InvalidRequestError,
    NotFoundError,
    UnavailableError,
    WraleError,
)

log = logging.getLogger(__name__)

STATUS: tuple[tuple[type[WraleError], int], ...] = (
    (NotFoundError, 404),
    (InvalidRequestError, 422),
    (ConflictError, 409),
    (AuthError, 401),
    (ForbiddenError, 403),
    (UnavailableError, 503),
)


def error_json(
    status: int, code: str, message: str, details: Any = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    body = {"error": {"code": code, "message": message, "details": details or {}}}
    return JSONResponse(body, status_code=status, headers=headers)


MAX_BODY_BYTES = 4 * 1024 * 1024  # the largest API request body; the biggest real one is a
# template or policy document of a few KiB
_CHEAP_DEPTH = 256  # fewer brackets cannot nest near the parser's recursion limit (~1000)


class CheckInput:
    """ASGI middleware, before any handler: a body over ``MAX_BODY_BYTES`` is refused (413)
    without being read further; a NUL character in the path, the query string or any text
    of a JSON body, or a lone surrogate in the body's text, is refused (422) — PostgreSQL
    can neither store nor compare them, and no name or note needs one; a JSON body nested
    past the parser's recursion limit is refused (422) instead of failing in the handler.
    A body is only parsed here when its raw bytes hold a ``\\u`` escape or enough brackets
    to nest deeply, so the common case costs two substring counts."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if "\x00" in scope["path"] or b"%00" in scope.get("query_string", b""):
            await _refuse(scope, receive, send, "NUL characters are not allowed in URLs")
            return
        declared = dict(scope.get("headers", ())).get(b"content-length", b"0")
        if not declared.isdigit() or int(declared) > MAX_BODY_BYTES:
            await _too_large(scope, receive, send)
            return
        chunks: list[dict[str, Any]] = []
        size = 0
        while True:
            message = await receive()
            chunks.append(message)
            size += len(message.get("body", b""))
            if size > MAX_BODY_BYTES:
                await _too_large(scope, receive, send)
                return
            if message["type"] != "http.request" or not message.get("more_body"):
                break
        body = b"".join(m.get("body", b"") for m in chunks)
        problem = body_problem(body)
        if problem:
            await _refuse(scope, receive, send, problem)
            return

        async def replay() -> dict[str, Any]:
            return chunks.pop(0) if chunks else await receive()

        await self.app(scope, replay, send)


async def _refuse(scope: Any, receive: Any, send: Any, message: str) -> None:
    await error_json(422, "invalid_request", message)(scope, receive, send)


async def _too_large(scope: Any, receive: Any, send: Any) -> None:
    message = f"request body larger than {MAX_BODY_BYTES} bytes"
    await error_json(413, "too_large", message)(scope, receive, send)


def body_problem(body: bytes) -> str | None:
    """Why a JSON body cannot be accepted, or None (also for a body that is not JSON:
    the handler's own validation answers that)."""
    escapes = b"\\u" in body
    if not escapes and body.count(b"[") + body.count(b"{") < _CHEAP_DEPTH:
        return None
    try:
        value = json.loads(body)
    except RecursionError:
        return "JSON nested too deeply"
    except ValueError:
        return None
    return text_problem(value) if escapes else None


def text_problem(value: Any) -> str | None:
    """Whether a decoded JSON value holds, in any string or key, a NUL character or a lone
    surrogate (text no UTF-8 database can store). Iterative: any depth the parser accepted."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return "text must not contain NUL (\\u0000) characters"
            if not item.isascii():
                try:
                    item.encode("utf-8")
                except UnicodeEncodeError:
                    return "text must not contain lone surrogates (\\ud800-\\udfff)"
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return None


def _page_error(request: Request, status: int, code: str, message: str) -> Response | None:
    """The dashboard's answer for its own paths (``app.state.html_errors``, set by the
    dashboard when it is installed): a page, a fragment or a redirect to the login."""
    renderer = getattr(request.app.state, "html_errors", None)
    if renderer is None:
        return None
    answer: Response | None = renderer(request, status, code, message)
    return answer


def install(app: FastAPI) -> None:
    app.add_middleware(CheckInput)

    @app.exception_handler(WraleError)
    async def _domain(request: Request, exc: WraleError) -> Response:
        status = next((s for cls, s in STATUS if isinstance(exc, cls)), 500)
        if status == 500:
            log.error("unmapped %s: %s", type(exc).__name__, exc.message)
            return error_json(500, "internal_error", "internal error (this is a bug)")
        if isinstance(exc, ForbiddenError):
            await _audit_denied(request, exc)
        page = _page_error(request, status, exc.code, exc.message)
        if page is not None:
            return page
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        return error_json(status, exc.code, exc.message, _jsonable(exc.details), headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        errors = exc.errors()
        first = errors[0] if errors else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body", "query"))
        message = f"{where}: {first.get('msg', 'invalid')}" if where else str(first.get("msg"))
        details = [
            {
                "loc": [str(p) for p in e.get("loc", ())],
                "msg": str(e.get("msg")),
                "type": str(e.get("type")),
            }
            for e in errors
        ]
        page = _page_error(request, 422, "invalid_request", message)
        if page is not None:
            return page
        return error_json(422, "invalid_request", message, {"errors": details})

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        codes = {
            401: "unauthorized",
            403: "forbidden",
            404: "not_found",
            405: "method_not_allowed",
            409: "conflict",
            422: "invalid_request",
        }
        code = codes.get(exc.status_code, "http_error")
        page = _page_error(request, exc.status_code, code, str(exc.detail))
        if page is not None:
            return page
        return error_json(
            exc.status_code,
            code,
            str(exc.detail),
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(IntegrityError)
    async def _integrity(request: Request, exc: IntegrityError) -> JSONResponse:
        # Services check what they can; a race between two requests ends here, as a 409.
        log.info("integrity conflict on %s %s: %s", request.method, request.url.path, exc.orig)
        return error_json(
            409,
            "conflict",
            "the change conflicts with existing data "
            "(a duplicate, or something it refers to changed); retry",
        )

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return error_json(500, "internal_error", "internal error (this is a bug)")


async def _audit_denied(request: Request, exc: ForbiddenError) -> None:
    principal: Principal | None = getattr(request.state, "principal", None)
    state = getattr(request.app.state, "wrale", None)
    if principal is None or state is None:
        return
    try:
        async with state.db.session() as session:
            audit.record(
                session,
                principal,
                "auth.permission_denied",
                outcome="denied",
                details={"method": request.method, "path": request.url.path, "reason": exc.message},
            )
    except Exception:  # the denial is answered even if auditing it fails
        log.exception("could not audit a permission denial")


def _jsonable(details: dict[str, Any]) -> dict[str, Any]:
    return {
        k: v if isinstance(v, str | int | float | bool | None | list | dict) else str(v)
        for k, v in details.items()
    }
