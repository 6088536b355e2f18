"""``/healthz`` (the process answers), ``/readyz`` (database reachable, schema current and,
with ``--mqtt-url``, the MQTT bridge connected with its receive loop alive)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from wrale.fleet.brain import schema
from wrale.user.api.deps import StateDep

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", response_model=None)
async def readyz(request: Request, state: StateDep) -> dict[str, Any] | JSONResponse:
    db_ok = await state.db.ping()
    current = await schema.is_current(state.db) if db_ok else False
    body: dict[str, Any] = {"database": db_ok, "migrations_current": current}
    ready = db_ok and current
    bridge = getattr(request.app.state, "mqtt_bridge", None)
    if bridge is not None:  # devices over MQTT: not ready while the bridge cannot serve them
        body["mqtt_bridge"] = bool(bridge.healthy)
        ready = ready and body["mqtt_bridge"]
    body = {"status": "ready" if ready else "not ready", **body}
    return body if ready else JSONResponse(body, status_code=503)
