"""Security headers of every dashboard response: the Content-Security-Policy (no inline
script or style), framing, sniffing and referrer rules, and HSTS over https.

The API's own paths (and its /docs page, which loads Swagger UI) are left as they are.
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# /docs and /redoc serve Swagger UI / ReDoc, which need inline script: not the dashboard's
EXEMPT = ("/api/", "/openapi.json", "/docs", "/redoc")

CSP = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "font-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "frame-ancestors 'none'",
        "form-action 'self'",
    )
)
HEADERS = {
    "content-security-policy": CSP,
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
}
HSTS = "max-age=31536000; includeSubDomains"


def dashboard_path(path: str) -> bool:
    return not path.startswith(EXEMPT)


class SecurityHeadersMiddleware:
    """Adds ``HEADERS`` (and HSTS when the request came over https) to every answer on a
    dashboard path, error pages and redirects included; a header a page set wins."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not dashboard_path(scope.get("path", "")):
            await self.app(scope, receive, send)
            return
        https = scope.get("scheme") == "https"

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in HEADERS.items():
                    headers.setdefault(name, value)
                if https:
                    headers.setdefault("strict-transport-security", HSTS)
            await send(message)

        await self.app(scope, receive, send_with_headers)
