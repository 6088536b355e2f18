"""Request dependencies as ``Annotated`` aliases: the app state, a database session, the
authenticated principal and pagination parameters."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Query, Request
from sqlalchemy.ext.asyncio import AsyncSession

from wrale.fleet.brain.bus import EventBus
from wrale.fleet.brain.db import Database
from wrale.fleet.brain.services import audit, identity
from wrale.fleet.brain.services.identity import AuthConfig
from wrale.fleet.brain.services.principal import Principal, Role
from wrale.shared.central_settings import CentralSettings
from wrale.shared.errors import AuthError


@dataclass
class AppState:
    settings: CentralSettings
    db: Database
    auth: AuthConfig
    bus: EventBus


def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.wrale
    return state


StateDep = Annotated[AppState, Depends(get_state)]


READING = frozenset({"GET", "HEAD", "OPTIONS"})


async def get_session(request: Request, state: StateDep) -> AsyncIterator[AsyncSession]:
    """The request's unit of work. A change (POST, PUT, PATCH, DELETE) takes an urgent
    writer turn on SQLite (``Database.serial_session``): it goes before the channel's next
    telemetry commit instead of busy-waiting on the file lock; reads need no turn."""
    if request.method in READING:
        async with state.db.session() as session:
            yield session
        return
    async with state.db.serial_session(urgent=True) as session:
        yield session


# "function" scope: the unit of work commits before the response is sent, so a client
# never sees a 2xx for a change that then fails to commit.
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]


def bearer_of(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthError("missing bearer token (Authorization: Bearer …)")
    return token.strip()


async def get_principal(request: Request, state: StateDep, session: SessionDep) -> Principal:
    source = request.client.host if request.client else None
    principal = await identity.authenticate(session, bearer_of(request), state.auth, source)
    request.state.principal = principal
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def require(needed: Role) -> Callable[..., Awaitable[Principal]]:
    """A dependency that admits ``needed`` or better, checked before the body is validated
    (so a viewer learns "403", not what a valid request would look like)."""

    async def dependency(request: Request, p: PrincipalDep) -> Principal:
        p.require(needed, f"{request.method} {request.url.path}")
        return p

    return dependency


ViewerDep = PrincipalDep
OperatorDep = Annotated[Principal, Depends(require(Role.OPERATOR))]
AdminDep = Annotated[Principal, Depends(require(Role.ADMIN))]


async def audit_reader(p: PrincipalDep) -> Principal:
    """The audit log's readers (``services.audit.require_read``, the dashboard's rule too)."""
    audit.require_read(p)
    return p


AuditReaderDep = Annotated[Principal, Depends(audit_reader)]


# ----------------------------------------------------------------------------- pagination


@dataclass(frozen=True)
class PageParams:
    after: str | None
    limit: int


CURSOR_PATTERN = r"^[0-9a-f]{32}$"


def encode_cursor(last_id: str) -> str:
    """A cursor is the last id of the page (time-ordered, 32 hex digits)."""
    return last_id


def page_params(
    cursor: Annotated[
        str | None, Query(pattern=CURSOR_PATTERN, description="next_cursor of the previous page")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> PageParams:
    return PageParams(cursor, limit)


PageDep = Annotated[PageParams, Depends(page_params)]
