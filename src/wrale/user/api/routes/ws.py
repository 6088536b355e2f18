"""``/api/v1/ws``: the live event stream. A client authenticates like the REST API, then
subscribes to event kinds (globs) with filters; it receives its tenant's matching bus events.

One bounded outbound queue per connection: a client that cannot keep up is disconnected
(close 1013) rather than growing the server's memory. Bad authentication closes with 4401.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import json
import logging
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

from wrale.fleet.brain.bus import BusEvent
from wrale.fleet.brain.services import groups, identity
from wrale.fleet.brain.services.principal import Principal
from wrale.shared.errors import AuthError, NotFoundError
from wrale.user.api.deps import AppState
from wrale.user.api.metrics import metrics_of

log = logging.getLogger("wrale.central.ws")
router = APIRouter()

CLOSE_AUTH = 4401  # authentication missing, invalid or expired
CLOSE_SLOW = 1013  # "try again later": the client did not keep up with its events
OUTBOUND_SIZE = 256  # frames waiting for a client before it counts as slow
AUTH_TIMEOUT_S = 10.0  # to send {"type": "auth"} when the token is not in the request
REAUTH_S = 60.0  # the token is checked again this often (expiry, disabled user, revocation)
MAX_SUBSCRIPTIONS = 50
SEVERITIES = {"critical", "major", "minor", "warning", "info"}


class _Msg(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Filters(_Msg):
    device_ids: list[Annotated[str, Field(max_length=64)]] | None = Field(None, max_length=1000)
    group_id: str | None = Field(None, max_length=64)
    severity: list[str] | None = Field(None, max_length=5)

    @field_validator("severity")
    @classmethod
    def _known(cls, value: list[str] | None) -> list[str] | None:
        unknown = {s.lower() for s in value or []} - SEVERITIES
        if unknown:
            raise ValueError(f"unknown severity {sorted(unknown)}; use {sorted(SEVERITIES)}")
        return value


class Subscribe(_Msg):
    type: Literal["subscribe"]
    id: str = Field(min_length=1, max_length=64)
    kinds: list[Annotated[str, Field(min_length=1, max_length=100)]] = Field(
        min_length=1, max_length=32
    )
    filters: Filters = Filters()


class Unsubscribe(_Msg):
    type: Literal["unsubscribe"]
    id: str = Field(min_length=1, max_length=64)


class Ping(_Msg):
    type: Literal["ping"]


class Auth(_Msg):
    type: Literal["auth"]
    token: str = Field(min_length=1, max_length=4096)


ClientMessage = TypeAdapter(
    Annotated[Subscribe | Unsubscribe | Ping | Auth, Field(discriminator="type")]
)


@dataclass(frozen=True)
class Subscription:
    """A subscribe message and, for a group filter, the group's devices when it was resolved."""

    msg: Subscribe
    members: frozenset[str] = frozenset()


def device_of(event: BusEvent) -> Any:
    """The device an event is about: ``device_id``, or ``id`` in a ``device.*`` event."""
    if "device_id" in event.data:
        return event.data["device_id"]
    return event.data.get("id") if event.kind.startswith("device.") else None


def matches(sub: Subscription, event: BusEvent) -> bool:
    """Kind glob and filters over the event's data: its device, group and severity."""
    if not any(fnmatch.fnmatchcase(event.kind, k) for k in sub.msg.kinds):
        return False
    f, data = sub.msg.filters, event.data
    if f.device_ids is not None and device_of(event) not in f.device_ids:
        return False
    if f.group_id is not None:
        in_group = data.get("group_id") == f.group_id or f.group_id in (data.get("group_ids") or [])
        if not in_group and device_of(event) not in sub.members:
            return False
    if f.severity is not None:
        wanted = {s.lower() for s in f.severity}
        if str(data.get("severity", "")).lower() not in wanted:
            return False
    return True


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False):
        loc = ".".join(str(p) for p in err["loc"])
        parts.append(f"{loc}: {err['msg']}" if loc else err["msg"])
    return "; ".join(parts)


class CloseConnectionError(Exception):
    """The server ends the connection: close code, reason, and whether to say so in a frame."""

    def __init__(self, code: int, reason: str, *, frame: bool = True) -> None:
        self.code, self.reason, self.frame = code, reason, frame


class Connection:
    """One client: its principal, subscriptions and outbound queue."""

    def __init__(self, ws: WebSocket, state: AppState, principal: Principal, token: str) -> None:
        self.ws, self.state = ws, state
        self.principal, self.token = principal, token
        self.subs: dict[str, Subscription] = {}
        self.outbound: asyncio.Queue[dict[str, Any]] = asyncio.Queue(OUTBOUND_SIZE)
        self.events: asyncio.Queue[BusEvent] | None = None  # the bus's, once subscribed

    def push(self, frame: dict[str, Any]) -> None:
        try:
            self.outbound.put_nowait(frame)
        except asyncio.QueueFull:
            # no farewell frame: it would queue behind what the client is not reading
            raise CloseConnectionError(
                CLOSE_SLOW, "too slow: events were not read in time", frame=False
            ) from None

    async def receive(self) -> None:
        while True:
            raw = await self.ws.receive_text()
            try:
                msg = ClientMessage.validate_json(raw)
            except ValidationError as exc:
                self.push({"type": "error", "message": f"invalid message: {_describe(exc)}"})
                continue
            if isinstance(msg, Ping):  # after every event published before it
                self.forward_pending()
                self.push({"type": "pong"})
            elif isinstance(msg, Subscribe):
                if msg.id not in self.subs and len(self.subs) >= MAX_SUBSCRIPTIONS:
                    self.push({"type": "error", "message": "too many subscriptions", "id": msg.id})
                    continue
                try:
                    self.subs[msg.id] = await self.resolve(msg)
                except NotFoundError as exc:
                    self.push({"type": "error", "message": exc.message, "id": msg.id})
                    continue
                self.push({"type": "subscribed", "id": msg.id})
            elif isinstance(msg, Unsubscribe):
                if self.subs.pop(msg.id, None) is None:
                    self.push({"type": "error", "message": f"no subscription {msg.id!r}"})
                else:
                    self.push({"type": "unsubscribed", "id": msg.id})
            else:  # a fresh token before the current one expires
                principal = await authenticate(self.ws, self.state, msg.token)
                if principal.tenant_id != self.principal.tenant_id:
                    raise CloseConnectionError(
                        CLOSE_AUTH, "the new token belongs to another organisation"
                    )
                self.principal, self.token = principal, msg.token
                self.push({"type": "authenticated", "role": principal.role.value})

    async def resolve(self, msg: Subscribe) -> Subscription:
        """The subscription with its group's devices (recursively, dynamic groups included)."""
        if msg.filters.group_id is None:
            return Subscription(msg)
        async with self.state.db.session() as session:
            devices = await groups.devices_in_group(
                session, self.principal.tenant_id, msg.filters.group_id, recursive=True
            )
        return Subscription(msg, frozenset(d.id for d in devices))

    async def pump(self, events: asyncio.Queue[BusEvent]) -> None:
        while True:
            self.forward(await events.get())

    def forward_pending(self) -> None:
        """The events already handed to this connection, queued now: a pong then follows
        every event published before the ping (the pump task may not have run yet)."""
        while self.events is not None and not self.events.empty():
            self.forward(self.events.get_nowait())

    def forward(self, event: BusEvent) -> None:
        for sid, sub in list(self.subs.items()):
            if matches(sub, event):
                self.push(
                    {
                        "type": "event",
                        "subscription": sid,
                        "kind": event.kind,
                        "data": event.data,
                        "at": event.at,
                    }
                )

    async def send(self) -> None:
        while True:
            frame = await self.outbound.get()
            await self.ws.send_text(json.dumps(frame, default=str))

    async def recheck(self) -> None:
        """The token again (it may have expired or been revoked) and group memberships."""
        while True:
            await asyncio.sleep(REAUTH_S)
            await authenticate(self.ws, self.state, self.token)
            for sid, sub in list(self.subs.items()):
                if sub.msg.filters.group_id is not None:
                    with contextlib.suppress(NotFoundError):  # a deleted group: no more members
                        fresh = await self.resolve(sub.msg)
                        if self.subs.get(sid) is sub:
                            self.subs[sid] = fresh

    async def run(self) -> CloseConnectionError | None:
        """Until the client leaves (None) or the server ends the connection (why)."""
        # on the bus before "ready" is sent: nothing published after it is missed
        async with self.state.bus.subscribe(self.principal.tenant_id) as events:
            self.events = events
            self.push(
                {"type": "ready", "user": self.principal.name, "role": self.principal.role.value}
            )
            tasks = [
                asyncio.create_task(self.receive()),
                asyncio.create_task(self.pump(events)),
                asyncio.create_task(self.send()),
                asyncio.create_task(self.recheck()),
            ]
            try:
                done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for t in tasks:
                    t.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
        for exc in (t.exception() for t in done):
            if isinstance(exc, CloseConnectionError):
                return exc
            if isinstance(exc, AuthError):
                return CloseConnectionError(CLOSE_AUTH, exc.message)
            if exc is not None and not isinstance(exc, WebSocketDisconnect):
                raise exc
        return None


def _token_of(ws: WebSocket) -> str | None:
    scheme, _, token = ws.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return ws.query_params.get("token") or None


async def authenticate(ws: WebSocket, state: AppState, token: str) -> Principal:
    source = ws.client.host if ws.client else None
    async with state.db.session() as session:
        return await identity.authenticate(session, token, state.auth, source)


async def _first_token(ws: WebSocket) -> str:
    try:
        raw = await asyncio.wait_for(ws.receive_text(), AUTH_TIMEOUT_S)
        msg = ClientMessage.validate_json(raw)
    except TimeoutError:
        raise AuthError("no token: send {'type': 'auth', 'token': …} first") from None
    except ValidationError:
        msg = None
    if not isinstance(msg, Auth):
        raise AuthError("authenticate first: a bearer token, ?token= or {'type': 'auth'}")
    return msg.token


async def _close(ws: WebSocket, closed: CloseConnectionError) -> None:
    if closed.frame:
        with contextlib.suppress(Exception):  # the client may be gone already
            await ws.send_text(json.dumps({"type": "error", "message": closed.reason}))
    with contextlib.suppress(Exception):
        # a close frame's reason has at most 123 bytes
        await ws.close(closed.code, closed.reason.encode()[:120].decode(errors="ignore"))


@router.websocket("/ws", name="events")
async def events(ws: WebSocket) -> None:
    state: AppState = ws.app.state.wrale
    await ws.accept()
    try:
        token = _token_of(ws) or await _first_token(ws)
        principal = await authenticate(ws, state, token)
    except AuthError as exc:
        await _close(ws, CloseConnectionError(CLOSE_AUTH, exc.message))
        return
    except WebSocketDisconnect:
        return
    metrics = metrics_of(ws)
    metrics.websocket_connections += 1
    try:
        closed = await Connection(ws, state, principal, token).run()
    finally:
        metrics.websocket_connections -= 1
    if closed is not None:
        log.info("closing event stream of %s: %s", principal.name, closed.reason)
        await _close(ws, closed)
