"""How the dashboard answers an error on its own paths: a sign-in redirect for a missing
session, a toast for an htmx action that failed, an error page for a page that failed.
The API's paths (``/api``, ``/openapi.json``, ``/docs``) keep their JSON errors."""

from __future__ import annotations

import json

from fastapi import Request
from fastapi.responses import Response

from wrale.user.ui.web import is_htmx, login_redirect, render

API_PATHS = ("/api/", "/openapi.json", "/docs", "/healthz", "/readyz", "/metrics", "/static/")
TITLES = {
    400: "Bad request",
    401: "Sign in",
    403: "Not allowed",
    404: "Not found",
    409: "Conflict",
    422: "Invalid input",
    429: "Too many requests",
}


def html_error(request: Request, status: int, code: str, message: str) -> Response | None:
    path = request.url.path
    if path.startswith(API_PATHS) or (path == "/ui/events" and status != 401):
        return None
    if status == 401 and path != "/login":
        return login_redirect(request)
    if is_htmx(request):
        # the page stays as it is; wrale.js shows the message as a toast
        return Response(
            status_code=status,
            headers={"HX-Reswap": "none", "HX-Trigger": json.dumps({"wrale-error": message})},
        )
    title = TITLES.get(status, "Error")
    return render(
        request,
        "error.html",
        {"status_code": status, "title": title, "message": message, "code": code},
        status_code=status,
    )
