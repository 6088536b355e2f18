"""Notification channels and the delivery queue. A channel type is a class registered by
name (``CHANNEL_TYPES``: "webhook", "email", "chat") that validates its config and sends one
payload. Deliveries are queued rows retried with backoff, sent by ``delivery.deliver_pending``
— never from inside alert evaluation. A channel's optional ``events`` route (minimum
severity, device selector) picks the board-event alerts it receives (``notify_route``)."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from wrale.fleet.brain.models.alerts import AlertRule, NotificationChannel, NotificationDelivery
from wrale.fleet.brain.models.base import now as wall_now
from wrale.fleet.brain.services import audit
from wrale.fleet.brain.services.egress import EgressPolicy, EgressRefusedError
from wrale.fleet.brain.services.lookup import get_owned
from wrale.fleet.brain.services.notify_chat import ChatChannel
from wrale.fleet.brain.services.notify_email import EmailChannel
from wrale.fleet.brain.services.notify_types import Channel, DeliveryError, SendContext
from wrale.fleet.brain.services.notify_webhook import (
    SIGNATURE_HEADER,
    WebhookChannel,
    WebhookConfig,
    sign,
)
from wrale.fleet.brain.services.principal import Principal, Role
from wrale.fleet.brain.services.selectors import parse_selector, validate_selector
from wrale.shared.errors import ConflictError, InvalidRequestError

__all__ = [
    "CHANNEL_TYPES",
    "SIGNATURE_HEADER",
    "Channel",
    "DeliveryError",
    "SendContext",
    "WebhookConfig",
    "sign",
]

CHANNEL_TYPES: dict[str, Channel] = {
    "webhook": WebhookChannel(),
    "email": EmailChannel(),
    "chat": ChatChannel(),
}
MAX_ATTEMPTS = 5
BASE_BACKOFF_S = 10.0
MAX_BACKOFF_S = 900.0
SEVERITY_RANK = {"INFO": 0, "WARNING": 1, "MINOR": 2, "MAJOR": 3, "CRITICAL": 4}
# board-event alerts a channel receives: {"min_severity": "WARNING", "selector": {...}};
# absent: none (rule alerts go to the channels their rule names)
EVENTS_KEY = "events"


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
    the URL's path and query never appear (``has_secret``/``has_password``/``has_token``,
    ``header_names`` instead)."""
    kind = CHANNEL_TYPES.get(c.type)
    hidden = kind.secret_fields if kind else ()
    config = {k: v for k, v in c.config.items() if k not in hidden and k not in ("url", "headers")}
    config.setdefault(EVENTS_KEY, None)
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


def check_route(route: Any) -> dict[str, Any] | None:
    """A clean ``events`` route (pure), None for none, or ``InvalidRequestError``."""
    if route is None:
        return None
    if not isinstance(route, dict) or set(route) - {"min_severity", "selector"}:
        raise InvalidRequestError(
            "config.events: an object of min_severity and selector", field="config.events"
        )
    severity = route.get("min_severity", "WARNING")
    if severity not in SEVERITY_RANK:
        raise InvalidRequestError(
            f"config.events.min_severity: use one of {', '.join(SEVERITY_RANK)}",
            field="config.events.min_severity",
        )
    try:
        selector = parse_selector(route.get("selector") or {})
    except InvalidRequestError as exc:
        field = f"config.events.{exc.details.get('field', 'selector')}"
        raise InvalidRequestError(f"config.events.{exc.message}", field=field) from None
    return {"min_severity": severity, "selector": selector}


def check_config(type_: str, config: dict[str, Any]) -> dict[str, Any]:
    """The type's own config plus the common ``events`` route."""
    rest = {k: v for k, v in config.items() if k != EVENTS_KEY}
    cfg = _kind(type_).check_config(rest)
    route = check_route(config.get(EVENTS_KEY))
    if route is not None:
        cfg[EVENTS_KEY] = route
    return cfg


async def _check_places(session: AsyncSession, tenant_id: str, cfg: dict[str, Any]) -> None:
    """The places an ``events`` selector names must be the tenant's (404 if not)."""
    route = cfg.get(EVENTS_KEY)
    if route and route.get("selector"):
        await validate_selector(session, tenant_id, route["selector"])


async def _check_reach(config: dict[str, Any], egress: EgressPolicy | None) -> None:
    """A URL or SMTP host in a channel's config must point where outbound connections may
    go. A name that does not resolve now is accepted: it is checked again at every send."""
    policy = egress or EgressPolicy()
    if isinstance(config.get("url"), str):
        await policy.check_url(config["url"])
    if isinstance(config.get("host"), str) and isinstance(config.get("port"), int):
        try:
            await policy.addresses(config["host"], config["port"], field="config.host")
        except EgressRefusedError:
            raise
        except (OSError, TimeoutError, UnicodeError):
            return


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
    cfg = check_config(type_, config)
    await _check_reach(cfg, egress)
    await _check_places(session, p.tenant_id, cfg)
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
        cfg = check_config(c.type, _kept(c, config))
        await _check_reach(cfg, egress)
        await _check_places(session, p.tenant_id, cfg)
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


def _kept(c: NotificationChannel, config: dict[str, Any]) -> dict[str, Any]:
    """An update's config with what no one can read back (secrets, the URL, header values)
    kept when left out. A credential sent to a server (the SMTP password, the ntfy token) is
    kept only while the server stays the same: a new host or URL needs it given again."""
    merged = dict(config)
    kind = _kind(c.type)
    for k in (*kind.secret_fields, "headers", "url"):
        if k not in merged and c.config.get(k):
            merged[k] = c.config[k]
    moved = any(merged.get(k) != c.config.get(k) for k in ("host", "url") if k in c.config)
    for k in ("password", "token"):
        if moved and k in kind.secret_fields and k not in config and c.config.get(k):
            raise InvalidRequestError(
                f"config.{k}: give it again when the server changes", field=f"config.{k}"
            )
    return merged


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
