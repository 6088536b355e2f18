"""Notification channels and the delivery queue. A channel type is a class registered by
name (``CHANNEL_TYPES``) that validates its config and sends one payload; "webhook" is the
first, "email" and "chat" slot in beside it. Deliveries are queued rows retried with backoff,
sent by ``delivery.deliver_pending`` — never from inside alert evaluation."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from typing import Any, ClassVar, Protocol

import httpx
from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from wrale.fleet.brain.models.alerts import AlertRule, NotificationChannel, NotificationDelivery
from wrale.fleet.brain.models.base import now as wall_now
from wrale.fleet.brain.services import audit
from wrale.fleet.brain.services.egress import EgressPolicy
from wrale.fleet.brain.services.lookup import get_owned
from wrale.fleet.brain.services.principal import Principal, Role
from wrale.shared.errors import ConflictError, InvalidRequestError

MAX_ATTEMPTS = 5
BASE_BACKOFF_S = 10.0
MAX_BACKOFF_S = 900.0
SIGNATURE_HEADER = "X-Wrale-Signature"


class DeliveryError(Exception):
    """A channel could not deliver (the delivery is retried later)."""


class Channel(Protocol):
    """A notification channel type: validates its config, sends one JSON payload."""

    type: ClassVar[str]
    secret_fields: ClassVar[tuple[str, ...]]

    @classmethod
    def check_config(cls, config: dict[str, Any]) -> dict[str, Any]:
        """The normalised config, or ``InvalidRequestError`` naming the bad field."""
        ...

    async def send(
        self, config: dict[str, Any], payload: dict[str, Any], http: httpx.AsyncClient
    ) -> None:
        """Deliver or raise ``DeliveryError``."""
        ...


class WebhookConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: AnyHttpUrl
    secret: str | None = Field(default=None, min_length=8, max_length=256)
    headers: dict[str, str] = Field(default_factory=dict, max_length=20)
    timeout_s: float = Field(default=5.0, gt=0, le=30)


_FORBIDDEN_HEADERS = {"content-type", "content-length", "host", SIGNATURE_HEADER.lower()}


class WebhookChannel:
    """HTTP POST of the JSON payload; with a secret, ``X-Wrale-Signature: sha256=<hex>`` is
    the HMAC-SHA256 of the exact body bytes."""

    type: ClassVar[str] = "webhook"
    secret_fields: ClassVar[tuple[str, ...]] = ("secret",)

    @classmethod
    def check_config(cls, config: dict[str, Any]) -> dict[str, Any]:
        try:
            cfg = WebhookConfig.model_validate(config)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise InvalidRequestError(f"config.{where}: {first['msg']}") from None
        for name in cfg.headers:
            if name.lower() in _FORBIDDEN_HEADERS:
                raise InvalidRequestError(f"config.headers: {name} is set by the server")
        return cfg.model_dump(mode="json")

    async def send(
        self, config: dict[str, Any], payload: dict[str, Any], http: httpx.AsyncClient
    ) -> None:
        """POST within one overall deadline (connect, write and read together: a receiver
        trickling bytes cannot hold the sender); the answer's body is never read."""
        body = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
        headers = {**config.get("headers", {}), "Content-Type": "application/json"}
        if config.get("secret"):
            headers[SIGNATURE_HEADER] = "sha256=" + sign(config["secret"], body)
        deadline = float(config.get("timeout_s", 5))
        try:
            async with asyncio.timeout(deadline):
                async with http.stream(
                    "POST", config["url"], content=body, headers=headers, timeout=deadline
                ) as r:
                    status = r.status_code
        except TimeoutError:
            raise DeliveryError(f"no answer within {deadline:g} s") from None
        except httpx.HTTPError as exc:
            detail = str(exc).replace(str(config["url"]), "<url>")[:200]
            raise DeliveryError(f"{type(exc).__name__}: {detail}") from None
        if not 200 <= status < 300:
            raise DeliveryError(f"HTTP {status}")


def sign(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


CHANNEL_TYPES: dict[str, Channel] = {"webhook": WebhookChannel()}


def backoff_s(attempts: int) -> float:
    """Delay before the next try after ``attempts`` failures: 10 s, 20 s, 40 s… ≤ 15 min."""
    return float(min(MAX_BACKOFF_S, BASE_BACKOFF_S * 2 ** max(0, attempts - 1)))


# ----------------------------------------------------------------------------- channels


def redact_url(url: str) -> str:
    """``scheme://host[:port]/…``: where a URL goes, without its path, query or userinfo
    (webhook URLs often carry a token)."""
    try:
        u = httpx.URL(url)
    except (httpx.InvalidURL, TypeError):
        return "…"
    host = f"[{u.host}]" if ":" in u.host else u.host
    port = f":{u.port}" if u.port else ""
    return f"{u.scheme}://{host}{port}/…"


def channel_view(c: NotificationChannel) -> dict[str, Any]:
    """What anyone may see of a channel, the audit log included: secrets, header values and
    the URL's path and query never appear (``has_secret``, ``header_names`` instead)."""
    kind = CHANNEL_TYPES.get(c.type)
    hidden = kind.secret_fields if kind else ()
    config = {k: v for k, v in c.config.items() if k not in hidden and k not in ("url", "headers")}
    config.update({f"has_{k}": bool(c.config.get(k)) for k in hidden})
    if isinstance(c.config.get("url"), str):
        config["url"] = redact_url(c.config["url"])
    if isinstance(c.config.get("headers"), dict):
        config["header_names"] = sorted(c.config["headers"])
    return {
        "id": c.id,
        "name": c.name,
        "type": c.type,
        "config": config,
        "enabled": c.enabled,
        "created_at": c.created_at,
        "updated_at": c.updated_at,
    }


def _kind(type_: str) -> Channel:
    kind = CHANNEL_TYPES.get(type_)
    if kind is None:
        raise InvalidRequestError(f"type: use one of {', '.join(CHANNEL_TYPES)}", field="type")
    return kind


async def _check_reach(config: dict[str, Any], egress: EgressPolicy | None) -> None:
    """A URL in a channel's config must point where outbound requests may go."""
    if isinstance(config.get("url"), str):
        await (egress or EgressPolicy()).check_url(config["url"])


async def get_channel(
    session: AsyncSession, tenant_id: str, channel_id: str
) -> NotificationChannel:
    return await get_owned(
        session, NotificationChannel, tenant_id, channel_id, "notification channel"
    )


async def _name_free(session: AsyncSession, tenant_id: str, name: str, own: str | None) -> None:
    stmt = select(NotificationChannel.id).where(
        NotificationChannel.tenant_id == tenant_id, NotificationChannel.name == name
    )
    found = await session.scalar(stmt)
    if found and found != own:
        raise ConflictError(f"a notification channel named {name!r} exists")


async def create_channel(
    session: AsyncSession,
    p: Principal,
    name: str,
    type_: str,
    config: dict[str, Any],
    enabled: bool = True,
    *,
    egress: EgressPolicy | None = None,
) -> NotificationChannel:
    """``egress``: where a channel may point (default: public addresses only)."""
    p.require(Role.ADMIN, "creating notification channels")
    cfg = _kind(type_).check_config(config)
    await _check_reach(cfg, egress)
    await _name_free(session, p.tenant_id, name, None)
    c = NotificationChannel(
        tenant_id=p.tenant_id, name=name, type=type_, config=cfg, enabled=enabled
    )
    session.add(c)
    await session.flush()
    audit.record(
        session,
        p,
        "notification_channel.create",
        resource_type="notification_channel",
        resource_id=c.id,
        after=channel_view(c),
    )
    return c


async def update_channel(
    session: AsyncSession,
    p: Principal,
    channel_id: str,
    *,
    name: str | None = None,
    config: dict[str, Any] | None = None,
    enabled: bool | None = None,
    egress: EgressPolicy | None = None,
) -> NotificationChannel:
    p.require(Role.ADMIN, "changing notification channels")
    c = await get_channel(session, p.tenant_id, channel_id)
    before = channel_view(c)
    if name is not None:
        await _name_free(session, p.tenant_id, name, c.id)
        c.name = name
    if config is not None:
        merged = dict(config)
        kind = _kind(c.type)
        # a secret or the headers left out of an update are kept (no one can read them back)
        for k in (*kind.secret_fields, "headers"):
            if k not in merged and c.config.get(k):
                merged[k] = c.config[k]
        cfg = kind.check_config(merged)
        await _check_reach(cfg, egress)
        c.config = cfg
    if enabled is not None:
        c.enabled = enabled
    c.updated_at = wall_now()
    audit.record(
        session,
        p,
        "notification_channel.update",
        resource_type="notification_channel",
        resource_id=c.id,
        before=before,
        after=channel_view(c),
    )
    return c


async def delete_channel(session: AsyncSession, p: Principal, channel_id: str) -> None:
    p.require(Role.ADMIN, "deleting notification channels")
    c = await get_channel(session, p.tenant_id, channel_id)
    audit.record(
        session,
        p,
        "notification_channel.delete",
        resource_type="notification_channel",
        resource_id=c.id,
        before=channel_view(c),
    )
    rules = await session.scalars(select(AlertRule).where(AlertRule.tenant_id == p.tenant_id))
    for rule in rules:  # rules stop naming the channel
        if c.id in (rule.channel_ids or []):
            rule.channel_ids = [i for i in rule.channel_ids if i != c.id]
    await session.delete(c)


# ----------------------------------------------------------------------------- deliveries


async def queue(
    session: AsyncSession,
    tenant_id: str,
    channel_ids: list[str],
    event: str,
    payload: dict[str, Any],
    now: float,
    alert_id: str | None = None,
) -> int:
    """Queue one delivery per enabled channel of the tenant; unknown ids are skipped."""
    if not channel_ids:
        return 0
    stmt = select(NotificationChannel).where(
        NotificationChannel.tenant_id == tenant_id,
        NotificationChannel.id.in_(channel_ids),
        NotificationChannel.enabled.is_(True),
    )
    n = 0
    for c in (await session.scalars(stmt)).all():
        session.add(
            NotificationDelivery(
                tenant_id=tenant_id,
                channel_id=c.id,
                alert_id=alert_id,
                event=event,
                payload=payload,
                next_attempt_at=now,
            )
        )
        n += 1
    return n
