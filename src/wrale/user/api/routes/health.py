"""``/healthz`` (the process answers), ``/readyz`` (database reachable, schema current)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from wrale.fleet.brain import schema
from wrale.user.api.deps import StateDep

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", response_model=None)
async def readyz(state: StateDep) -> dict[str, Any] | JSONResponse:
    db_ok = await state.db.ping()
    current = await schema.is_current(state.db) if db_ok else False
    body = {
        "status": "ready" if db_ok and current else "not ready",
        "database": db_ok,
        "migrations_current": current,
    }
    return body if db_ok and current else JSONResponse(body, status_code=503)
