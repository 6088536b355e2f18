"""A small synchronous client of the central REST API for the ``wrale`` CLI: base URL,
bearer auth, one retry after refreshing on 401, JSON errors turned into ``ApiError``
and cursor pagination followed by ``iter_all``. It knows HTTP, not the commands."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx

from wrale.shared.errors import UnavailableError, WraleError

API = "/api/v1"


class ApiError(WraleError):
    """The central answered with an error: its HTTP status, code and message."""

    def __init__(
        self, status: int, code: str, message: str, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.details = details or {}
        self.status = status
        self.code = code


def error_of(response: httpx.Response) -> ApiError:
    """The ``{"error": {code, message, details}}`` body as an ``ApiError`` (or a plain one)."""
    try:
        body = response.json()
    except ValueError:
        body = None
    err = body.get("error") if isinstance(body, dict) else None
    if isinstance(err, dict):
        raw = err.get("details")
        details: dict[str, Any] = raw if isinstance(raw, dict) else {}
        message = str(err.get("message") or response.reason_phrase)
        return ApiError(response.status_code, str(err.get("code", "error")), message, details)
    text = response.text.strip()[:200] or response.reason_phrase
    return ApiError(response.status_code, "http_error", f"HTTP {response.status_code}: {text}")


class CentralClient:
    """Calls ``/api/v1`` of one central server.

    ``on_unauthorized`` is asked for a new access token when a call gets 401 (once per
    call); it returns None when it has none to give, and the 401 stands.
    """

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        on_unauthorized: Callable[[CentralClient], str | None] | None = None,
        transport: httpx.BaseTransport | None = None,
        timeout_s: float = 30.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.on_unauthorized = on_unauthorized
        self.http = httpx.Client(base_url=self.base_url, transport=transport, timeout=timeout_s)

    def __enter__(self) -> CentralClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        auth: bool = True,
    ) -> Any:
        """The decoded JSON answer (None for 204); ``ApiError`` for 4xx/5xx and
        ``UnavailableError`` when the central cannot be reached."""
        response = self._send(method, path, json, params, auth)
        if response.status_code == 401 and auth and self.on_unauthorized is not None:
            token = self.on_unauthorized(self)
            if token is not None:
                self.token = token
                response = self._send(method, path, json, params, auth)
        if response.status_code >= 400:
            raise error_of(response)
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    def _send(
        self, method: str, path: str, json: Any, params: dict[str, Any] | None, auth: bool
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}"} if auth and self.token else {}
        clean = {k: v for k, v in (params or {}).items() if v is not None and v != []}
        try:
            return self.http.request(method, API + path, json=json, params=clean, headers=headers)
        except httpx.TimeoutException:
            raise UnavailableError(
                f"the central at {self.base_url} did not answer in time"
            ) from None
        except httpx.TransportError as exc:
            raise UnavailableError(
                f"cannot reach the central at {self.base_url} ({exc or type(exc).__name__})"
            ) from None

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params)

    def post(self, path: str, body: Any = None, **params: Any) -> Any:
        return self.request("POST", path, json=body, params=params)

    def patch(self, path: str, body: Any) -> Any:
        return self.request("PATCH", path, json=body)

    def put(self, path: str, body: Any) -> Any:
        return self.request("PUT", path, json=body)

    def delete(self, path: str, **params: Any) -> Any:
        return self.request("DELETE", path, params=params)

    def iter_all(
        self,
        path: str,
        params: dict[str, Any] | None = None,
        *,
        limit: int | None = None,
        page_size: int = 200,
    ) -> Iterator[dict[str, Any]]:
        """Every item of a paginated list (following ``next_cursor``), at most ``limit``."""
        query = dict(params or {})
        seen = 0
        cursor: str | None = None
        while True:
            want = page_size if limit is None else min(page_size, limit - seen)
            if want <= 0:
                return
            page = self.get(path, **query, limit=want, cursor=cursor)
            for item in page.get("items", []):
                yield item
                seen += 1
            cursor = page.get("next_cursor")
            if not cursor:
                return
