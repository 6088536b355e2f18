"""HttpMetalClient: metald's operations over its HTTP API (``wrale edge``, ``wrale metal …``),
and the ``WraleError`` an error answer stands for. httpx is imported only when a client is
made, so loading this module (as ``client`` does) never loads httpx on the board.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from wrale.metal.core.client_bodies import event_query, fault_body, policies_body
from wrale.metal.core.ports import JsonDict, MetalClient
from wrale.shared.errors import (
    AuthError,
    ConflictError,
    InvalidRequestError,
    NotFoundError,
    UnavailableError,
    WraleError,
)

if TYPE_CHECKING:
    import httpx


def _error_classes() -> dict[str, type[WraleError]]:
    found: dict[str, type[WraleError]] = {}
    todo: list[type[WraleError]] = [WraleError]
    while todo:
        cls = todo.pop()
        found.setdefault(cls.code, cls)
        todo += cls.__subclasses__()
    return found


_BY_STATUS: dict[int, type[WraleError]] = {
    401: AuthError,
    403: AuthError,
    404: NotFoundError,
    409: ConflictError,
    502: UnavailableError,
    503: UnavailableError,
    504: UnavailableError,
}


def error_from_response(status: int, body: Any) -> WraleError:
    """The ``WraleError`` an error response stands for, chosen by its code (else status)."""
    err = body.get("error") if isinstance(body, dict) else None
    if isinstance(err, dict):
        code, message = str(err.get("code", "")), str(err.get("message", ""))
        raw = err.get("details")
        details = (
            {str(k): v for k, v in raw.items() if k != "message"} if isinstance(raw, dict) else {}
        )
    else:
        code, message, details = "", f"metald answered HTTP {status}", {}
    cls = _error_classes().get(code)
    if cls is None:
        cls = _BY_STATUS.get(status, InvalidRequestError if status < 500 else WraleError)
    exc = cls(message or f"metald answered HTTP {status}", **details)
    exc.details.setdefault("http_status", status)
    return exc


def _line_path(line: str) -> str:
    return f"/v1/gpio/{quote(line, safe='')}"


DIAG_TIMEOUT_S = 120.0


class HttpMetalClient(MetalClient):
    """Talks to a metald over its HTTP API (``wrale edge``, ``wrale metal …``)."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 5.0,
        stream_idle_timeout: float = 60.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        import httpx

        self._httpx = httpx
        self.base_url = base_url.rstrip("/")
        self._stream_timeout = httpx.Timeout(timeout, read=stream_idle_timeout)
        self._client = httpx.AsyncClient(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {api_key}", "Accept": "application/json"},
            timeout=timeout,
            transport=transport,
        )

    def _unreachable(self, exc: Exception) -> UnavailableError:
        return UnavailableError(f"metald at {self.base_url} cannot be reached: {exc}")

    async def _call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: dict[str, Any] | None = None,
        read_s: float | None = None,
    ) -> Any:
        wait = self._httpx.USE_CLIENT_DEFAULT if read_s is None else read_s
        try:
            resp = await self._client.request(method, path, json=body, params=params, timeout=wait)
        except self._httpx.TransportError as exc:
            raise self._unreachable(exc) from exc
        try:
            data = resp.json() if resp.content else None
        except ValueError:
            data = None
            if resp.is_success:
                raise UnavailableError(
                    f"metald at {self.base_url} sent an unreadable answer to {method} {path}"
                ) from None
        if not resp.is_success:
            raise error_from_response(resp.status_code, data)
        return data

    async def _dict(self, method: str, path: str, **kw: Any) -> JsonDict:
        data = await self._call(method, path, **kw)
        if not isinstance(data, dict):
            raise UnavailableError(f"metald at {self.base_url} sent no object for {path}")
        return data

    async def _list(self, method: str, path: str, key: str | None = None, **kw: Any) -> list[Any]:
        data = await self._call(method, path, **kw)
        if key is not None and isinstance(data, dict):
            data = data.get(key)
        if not isinstance(data, list):
            raise UnavailableError(f"metald at {self.base_url} sent no list for {path}")
        return data

    async def health(self) -> JsonDict:
        return await self._dict("GET", "/healthz")

    async def state(self) -> JsonDict:
        return await self._dict("GET", "/v1/state")

    async def thermal(self) -> JsonDict:
        return await self._dict("GET", "/v1/thermal")

    async def power(self) -> JsonDict:
        return await self._dict("GET", "/v1/power")

    async def security(self) -> JsonDict:
        return await self._dict("GET", "/v1/security")

    async def gpio(self) -> JsonDict:
        return await self._dict("GET", "/v1/gpio")

    async def set_fan(self, percent: float, duration_s: float = 300.0) -> JsonDict:
        body = {"percent": percent, "duration_s": duration_s}
        return await self._dict("PUT", "/v1/thermal/fan", body=body)

    async def clear_fan(self) -> JsonDict:
        return await self._dict("DELETE", "/v1/thermal/fan")

    async def set_throttle(self, max_freq_pct: float | None) -> JsonDict:
        body = {"max_freq_pct": max_freq_pct}
        return await self._dict("PUT", "/v1/thermal/throttle", body=body)

    async def policies(self) -> JsonDict:
        return await self._dict("GET", "/v1/policies")

    async def update_policies(
        self,
        *,
        thermal: JsonDict | None = None,
        power: JsonDict | None = None,
        security: JsonDict | None = None,
    ) -> JsonDict:
        body = policies_body(thermal, power, security)
        return await self._dict("PUT", "/v1/policies", body=body)

    async def arm(self, level: str | None = None) -> JsonDict:
        body = {} if level is None else {"level": level}
        return await self._dict("POST", "/v1/security/arm", body=body)

    async def disarm(self) -> JsonDict:
        return await self._dict("POST", "/v1/security/disarm")

    async def gpio_write(self, line: str, value: int) -> JsonDict:
        return await self._dict("PUT", _line_path(line), body={"value": value})

    async def gpio_pwm(self, line: str, frequency_hz: float, duty_percent: float) -> JsonDict:
        body = {"pwm": {"frequency_hz": frequency_hz, "duty_percent": duty_percent}}
        return await self._dict("PUT", _line_path(line), body=body)

    async def diag_tests(self) -> list[str]:
        return await self._list("GET", "/v1/diag", "tests")

    async def run_diag(self, tests: list[str] | None = None) -> list[JsonDict]:
        body = {} if tests is None else {"tests": tests}
        # Active tests (fan spin-up, loopback) take seconds of real time by nature.
        return await self._list("POST", "/v1/diag/run", "results", body=body, read_s=DIAG_TIMEOUT_S)

    async def diag_history(self, limit: int = 50) -> list[JsonDict]:
        return await self._list("GET", "/v1/diag/history", "items", params={"limit": limit})

    async def events(
        self,
        since_id: int | None = None,
        limit: int = 100,
        *,
        types: list[str] | None = None,
        min_severity: str | None = None,
    ) -> list[JsonDict]:
        params = event_query(since_id, limit, types, min_severity)
        return await self._list("GET", "/v1/events", params=params)

    async def stream_events(self, since_id: int | None = None) -> AsyncGenerator[JsonDict, None]:
        headers = {"Accept": "text/event-stream"}
        if since_id is not None:
            headers["Last-Event-ID"] = str(since_id)
        try:
            async with self._client.stream(
                "GET",
                "/v1/events",
                params={"stream": "true"},
                headers=headers,
                timeout=self._stream_timeout,
            ) as resp:
                if not resp.is_success:
                    await resp.aread()
                    try:
                        body = resp.json()
                    except ValueError:
                        body = None
                    raise error_from_response(resp.status_code, body)
                data: list[str] = []
                async for line in resp.aiter_lines():
                    if line:
                        field, _, value = line.partition(":")
                        if field == "data":
                            data.append(value.removeprefix(" "))
                    elif data:
                        yield self._sse_data(data)
                        data = []
        except self._httpx.TransportError as exc:
            raise self._unreachable(exc) from exc

    def _sse_data(self, lines: list[str]) -> JsonDict:
        try:
            event = json.loads("\n".join(lines))
        except ValueError:
            raise UnavailableError(f"metald at {self.base_url} sent an unreadable event") from None
        if not isinstance(event, dict):
            raise UnavailableError(f"metald at {self.base_url} sent an unreadable event")
        return event

    async def sim_status(self) -> JsonDict:
        return await self._dict("GET", "/v1/sim")

    async def sim_set_ambient(self, celsius: float) -> JsonDict:
        return await self._dict("PUT", "/v1/sim/ambient", body={"celsius": celsius})

    async def sim_set_load(self, percent: float) -> JsonDict:
        return await self._dict("PUT", "/v1/sim/load", body={"percent": percent})

    async def sim_set_job_load(self, percent: float) -> JsonDict:
        return await self._dict("PUT", "/v1/sim/job_load", body={"percent": percent})

    async def sim_inject_fault(
        self, fault: str, duration_s: float | None = None, **params: Any
    ) -> JsonDict:
        body = fault_body(fault, duration_s, params)
        return await self._dict("POST", "/v1/sim/faults", body=body)

    async def sim_clear_faults(self, fault: str | None = None) -> JsonDict:
        params = {} if fault is None else {"fault": fault}
        return await self._dict("DELETE", "/v1/sim/faults", params=params)

    async def aclose(self) -> None:
        await self._client.aclose()
