"""The request bodies and query parameters both MetalClients build from their arguments,
shared so that the in-process and the HTTP client send metald the same thing. Pure: no I/O,
and nothing heavier than ``ports`` is imported (metald loads this).
"""

from __future__ import annotations

from typing import Any

from wrale.metal.core.ports import JsonDict


def fault_body(fault: str, duration_s: float | None, params: dict[str, Any]) -> JsonDict:
    body: JsonDict = {"fault": fault, **params}
    if duration_s is not None:
        body["duration_s"] = duration_s
    return body


def policies_body(
    thermal: JsonDict | None, power: JsonDict | None, security: JsonDict | None
) -> JsonDict:
    given = {"thermal": thermal, "power": power, "security": security}
    return {k: v for k, v in given.items() if v is not None}


def event_query(
    since_id: int | None, limit: int, types: list[str] | None, min_severity: str | None
) -> JsonDict:
    q: JsonDict = {"since_id": since_id, "limit": limit, "min_severity": min_severity}
    if types:
        q["type"] = types
    return {k: v for k, v in q.items() if v is not None}
