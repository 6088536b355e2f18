"""The notification channels page (admins only, the reads): the channels with where they
send (secrets and URL paths never shown) and which board events they hear, and the form of
a channel by type (webhook, e-mail, chat). The form's own helpers — reading the posted
fields, building the channel config, placing service errors at their fields — live here
too; the writes are routes of ``admin_channel_actions``."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from wrale.fleet.brain.models.alerts import NotificationChannel
from wrale.fleet.brain.services import notify
from wrale.fleet.brain.services.alert_rules import SEVERITIES
from wrale.user.ui.pages.admin import valid_id
from wrale.user.ui.web import AdminDep, SessionDep, Viewer, render

router = APIRouter(include_in_schema=False)

TYPES = (("webhook", "Webhook (signed JSON)"), ("email", "E-mail (SMTP)"), ("chat", "Chat"))
PRESETS = (("ntfy", "ntfy (topic URL)"), ("slack", "Slack-compatible (Mattermost, Rocket.Chat)"))
SECURITY = (("starttls", "STARTTLS"), ("tls", "TLS from the start"), ("none", "None (port 25)"))
MAX_CHANNELS = 500  # listed on the page; a tenant has a handful
TEXT_MAX = 2000
_SPLIT = re.compile(r"[\s,;]+")


@dataclass
class ChannelForm:
    """The posted fields, as text (a bad value goes back to the form as typed)."""

    name: str = ""
    type: str = "webhook"
    enabled: bool = True
    url: str = ""
    secret: str = ""
    host: str = ""
    port: str = ""
    security: str = "starttls"
    username: str = ""
    password: str = ""
    from_addr: str = ""
    to: str = ""
    subject_prefix: str = ""
    preset: str = "ntfy"
    token: str = ""
    events: bool = False
    events_min_severity: str = "WARNING"
    events_tags: str = ""

    @classmethod
    def of(cls, data: Mapping[str, Any]) -> ChannelForm:
        """From a posted form or a query (missing fields take their defaults)."""
        f = cls()
        for fld in fields(cls):
            value = data.get(fld.name)
            if isinstance(getattr(f, fld.name), bool):
                setattr(f, fld.name, value in ("on", "true", "1"))
            elif isinstance(value, str):
                setattr(f, fld.name, value[:TEXT_MAX] if fld.name == "to" else value[:500])
        f.name = f.name.strip()
        return f

    def config(self, editing: bool) -> dict[str, Any]:
        """The channel config this form asks for. Editing, an empty secret or URL field
        keeps the stored one (nobody can read it back to fill the field)."""
        cfg: dict[str, Any] = {}
        if self.type == "webhook":
            if self.url.strip() or not editing:
                cfg["url"] = self.url.strip()
            if self.secret:
                cfg["secret"] = self.secret
        elif self.type == "email":
            cfg["host"] = self.host.strip()
            if self.port.strip():
                cfg["port"] = int(self.port) if self.port.strip().isdigit() else self.port
            cfg["security"] = self.security
            if self.username.strip():
                cfg["username"] = self.username.strip()
                if self.password:
                    cfg["password"] = self.password
            else:  # no user: no password either (a stored one is dropped)
                cfg["username"] = cfg["password"] = None
            cfg["from_addr"] = self.from_addr.strip()
            cfg["to"] = [a for a in _SPLIT.split(self.to) if a]
            cfg["subject_prefix"] = self.subject_prefix.strip()
        elif self.type == "chat":
            cfg["preset"] = self.preset
            if self.url.strip() or not editing:
                cfg["url"] = self.url.strip()
            if self.token:
                cfg["token"] = self.token
        if self.events:
            tags = [t for t in _SPLIT.split(self.events_tags) if t]
            cfg["events"] = {
                "min_severity": self.events_min_severity,
                "selector": {"tags_any": tags} if tags else {},
            }
        return cfg


def form_of_channel(c: NotificationChannel) -> ChannelForm:
    """The edit form of a stored channel: secrets and the URL left empty (kept if so)."""
    cfg = c.config
    route = cfg.get("events") or None
    tags = (route or {}).get("selector", {}).get("tags_any", [])
    return ChannelForm(
        name=c.name,
        type=c.type,
        enabled=c.enabled,
        host=str(cfg.get("host") or ""),
        port=str(cfg.get("port") or ""),
        security=str(cfg.get("security") or "starttls"),
        username=str(cfg.get("username") or ""),
        from_addr=str(cfg.get("from_addr") or ""),
        to="\n".join(cfg.get("to") or []),
        subject_prefix=str(cfg.get("subject_prefix") or ""),
        preset=str(cfg.get("preset") or "ntfy"),
        events=route is not None,
        events_min_severity=str((route or {}).get("min_severity", "WARNING")),
        events_tags=", ".join(tags),
    )


FORM_FIELDS = tuple(f.name for f in fields(ChannelForm))


def error_field(field: str | None) -> str | None:
    """The form field of a service error's field (``config.to.1`` → ``to``)."""
    if not field:
        return None
    parts = field.split(".")
    if parts[0] == "config" and len(parts) > 1:
        if parts[1] == "events":
            return "events_min_severity" if "min_severity" in parts else "events_tags"
        return parts[1] if parts[1] in FORM_FIELDS else None
    return parts[0] if parts[0] in FORM_FIELDS else None


def channel_row(c: NotificationChannel) -> dict[str, Any]:
    """What the table shows of a channel (``notify.channel_view``: nothing secret)."""
    view = notify.channel_view(c)
    cfg = view["config"]
    if c.type == "email":
        where = f"{', '.join(cfg.get('to') or [])} via {cfg.get('host')}:{cfg.get('port')}"
        how = f"SMTP, {cfg.get('security')}" + (", signed in" if cfg.get("has_password") else "")
    elif c.type == "chat":
        where, how = str(cfg.get("url") or ""), str(cfg.get("preset") or "")
    else:
        where = str(cfg.get("url") or "")
        how = "signed" if cfg.get("has_secret") else "unsigned"
    route = cfg.get("events")
    if route:
        tags = route.get("selector", {}).get("tags_any")
        events = f"{route['min_severity']} and above" + (
            f", tags any of {', '.join(tags)}" if tags else ""
        )
        if set(route.get("selector", {})) - {"tags_any"}:
            events += " (selector set by the API)"
    else:
        events = None
    return {**view, "where": where, "how": how, "events": events}


async def channels_context(session: AsyncSession, viewer: Viewer) -> dict[str, Any]:
    rows = await session.scalars(
        select(NotificationChannel)
        .where(NotificationChannel.tenant_id == viewer.tenant_id)
        .order_by(NotificationChannel.name)
        .limit(MAX_CHANNELS)
    )
    channels = [channel_row(c) for c in rows]
    return {"channels": channels, "total": len(channels)}


def form_context(
    f: ChannelForm,
    *,
    channel: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    form_error: str | None = None,
) -> dict[str, Any]:
    return {
        "form": f,
        "channel": channel,
        "errors": errors or {},
        "form_error": form_error,
        "types": TYPES,
        "presets": PRESETS,
        "securities": SECURITY,
        "severities": SEVERITIES,
    }


def _notice(request: Request) -> str | None:
    q = request.query_params
    for key, text in (("created", "Channel “{}” created."), ("updated", "Channel “{}” saved.")):
        if q.get(key):
            return text.format(q[key][:100])
    return None


@router.get("/admin/channels")
async def channels(request: Request, viewer: AdminDep, session: SessionDep) -> Response:
    ctx = {
        "tab": "channels",
        "notice": _notice(request),
        **form_context(ChannelForm()),
        **await channels_context(session, viewer),
    }
    return render(request, "admin/channels.html", ctx)


@router.get("/admin/channels/_table")
async def channels_table(request: Request, viewer: AdminDep, session: SessionDep) -> Response:
    return render(request, "admin/_channels.html", await channels_context(session, viewer))


@router.get("/admin/channels/_form")
async def channel_form(request: Request, viewer: AdminDep, session: SessionDep) -> Response:
    """The form again for another type (htmx, when the type changes); ``channel_id`` keeps
    it an edit form."""
    f = ChannelForm.of(request.query_params)
    channel = None
    raw_id = request.query_params.get("channel_id")
    if raw_id:
        c = await notify.get_channel(
            session, viewer.tenant_id, valid_id(raw_id, "notification channel")
        )
        channel = channel_row(c)
        f.type = c.type  # a channel keeps its type
    return render(request, "admin/_channel_form.html", form_context(f, channel=channel))


@router.get("/admin/channels/{channel_id}")
async def channel_edit(
    channel_id: str, request: Request, viewer: AdminDep, session: SessionDep
) -> Response:
    c = await notify.get_channel(
        session, viewer.tenant_id, valid_id(channel_id, "notification channel")
    )
    ctx = {"tab": "channels", **form_context(form_of_channel(c), channel=channel_row(c))}
    return render(request, "admin/channel_edit.html", ctx)
