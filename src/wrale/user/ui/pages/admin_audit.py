"""The audit log page: entries filtered by actor, action, resource, outcome and time (UTC),
paged newest first, each with its details."""

from __future__ import annotations

import calendar
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import ColumnElement, select
from sqlalchemy.ext.asyncio import AsyncSession

from wrale.fleet.brain.models import AuditEntry
from wrale.fleet.brain.services import audit
from wrale.user.ui.pages.admin import ID_RE
from wrale.user.ui.web import SessionDep, ViewerDep, render

router = APIRouter(include_in_schema=False)


AUDIT_PAGE_SIZE = 50
OUTCOMES = ("success", "denied", "failed")


# ----------------------------------------------------------------------------- audit log


# Suggestions for the filters (what the services record); any other value may be typed.
# Fixed lists: a DISTINCT over a large audit log would cost more than the page itself.
RESOURCE_TYPES = (
    "alert",
    "alert_rule",
    "api_token",
    "command",
    "command_batch",
    "config_template",
    "device",
    "enrollment_token",
    "group",
    "notification_channel",
    "policy",
    "rack",
    "room",
    "site",
    "tenant",
    "user",
    "zone",
)
ACTION_PREFIXES = (
    "auth.",
    "user.",
    "api_token.",
    "enrollment_token.",
    "device.",
    "twin.",
    "command.",
    "alert",
    "policy.",
    "group.",
    "tenant.",
)
AUDIT_FIELDS = ("actor", "action", "resource_type", "resource_id", "outcome", "since", "until")
_TIME_FORMATS = ("%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d")


def parse_utc(text: str) -> float:
    """A time typed as UTC ("2026-11-27T07:00", "2026-11-27") as seconds since the epoch."""
    value = text.strip().removesuffix("Z")
    for fmt in _TIME_FORMATS:
        try:
            return float(calendar.timegm(time.strptime(value, fmt)))
        except ValueError:
            continue
    raise ValueError(text)


def utc_input(at: float | None) -> str:
    """``at`` as a ``datetime-local`` input's value (UTC)."""
    return "" if at is None else time.strftime("%Y-%m-%dT%H:%M", time.gmtime(at))


@dataclass(frozen=True)
class AuditFilters:
    """The audit list's query: filters as typed, and a keyset cursor (older or newer)."""

    actor: str = ""
    action: str = ""
    resource_type: str = ""
    resource_id: str = ""
    outcome: str = ""
    since: str = ""
    until: str = ""
    before: str = ""  # entries older than this id
    after: str = ""  # entries newer than this id
    errors: dict[str, str] = field(default_factory=dict, compare=False)

    @classmethod
    def parse(cls, q: Mapping[str, str]) -> AuditFilters:
        def text(name: str, max_len: int) -> str:
            return (q.get(name) or "").strip()[:max_len]

        cursor = {k: text(k, 32) for k in ("before", "after")}
        f = cls(
            actor=text("actor", 100),
            action=text("action", 64),
            resource_type=text("resource_type", 32),
            resource_id=text("resource_id", 64),
            outcome=text("outcome", 16),
            since=text("since", 40),
            until=text("until", 40),
            before=cursor["before"] if ID_RE.match(cursor["before"]) else "",
            after=cursor["after"] if ID_RE.match(cursor["after"]) and not cursor["before"] else "",
        )
        errors: dict[str, str] = {}
        if f.outcome and f.outcome not in OUTCOMES:
            errors["outcome"] = "Choose success, denied or failed."
        times: dict[str, float] = {}
        for name in ("since", "until"):
            value = getattr(f, name)
            if value:
                try:
                    times[name] = parse_utc(value)
                except ValueError:
                    errors[name] = "Give a date and time as YYYY-MM-DD HH:MM (UTC)."
        if "since" in times and "until" in times and times["until"] <= times["since"]:
            errors["until"] = "The end must be after the start."
        for name, value in (
            ("actor", f.actor),
            ("action", f.action),
            ("resource_id", f.resource_id),
        ):
            if any(ord(c) < 32 for c in value):
                errors[name] = "Control characters are not allowed."
        return replace(f, errors=errors)

    def times(self) -> tuple[float | None, float | None]:
        since = parse_utc(self.since) if self.since else None
        until = parse_utc(self.until) if self.until else None
        return since, until

    @property
    def active(self) -> bool:
        return any(
            (
                self.actor,
                self.action,
                self.resource_type,
                self.resource_id,
                self.outcome,
                self.since,
                self.until,
            )
        )

    def query(self, **change: Any) -> str:
        f = replace(self, **change)
        params = {name: getattr(f, name) for name in (*AUDIT_FIELDS, "before", "after")}
        return urlencode({k: v for k, v in params.items() if v})


def _prefix(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


async def audit_page(
    session: AsyncSession, tenant_id: str, f: AuditFilters, limit: int = AUDIT_PAGE_SIZE
) -> tuple[list[AuditEntry], bool, bool]:
    """One page of the tenant's audit log, newest first: (entries, newer exist, older exist).

    Like ``services.audit.query`` but with an action *prefix* ("user." finds every user
    change) and a cursor both ways; the primary key (time-ordered ids) orders the rows."""
    where: list[ColumnElement[bool]] = [AuditEntry.tenant_id == tenant_id]
    if f.actor:
        where.append(AuditEntry.actor_name == f.actor)
    if f.action:
        where.append(AuditEntry.action.like(_prefix(f.action), escape="\\"))
    if f.resource_type:
        where.append(AuditEntry.resource_type == f.resource_type)
    if f.resource_id:
        where.append(AuditEntry.resource_id == f.resource_id)
    if f.outcome:
        where.append(AuditEntry.outcome == f.outcome)
    since, until = f.times()
    if since is not None:
        where.append(AuditEntry.created_at >= since)
    if until is not None:
        where.append(AuditEntry.created_at < until)
    stmt = select(AuditEntry).where(*where).limit(limit + 1)
    if f.after:
        rows = list(
            await session.scalars(stmt.where(AuditEntry.id > f.after).order_by(AuditEntry.id.asc()))
        )
        more = len(rows) > limit
        return list(reversed(rows[:limit])), more, True
    if f.before:
        stmt = stmt.where(AuditEntry.id < f.before)
    rows = list(await session.scalars(stmt.order_by(AuditEntry.id.desc())))
    return rows[:limit], bool(f.before), len(rows) > limit


def _pretty(value: Mapping[str, Any] | None) -> str | None:
    if value is None:
        return None
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)


def audit_row(e: AuditEntry) -> dict[str, Any]:
    """What one row shows, with the keys whose value changed between before and after."""
    changed: list[str] = []
    if e.before is not None and e.after is not None:
        keys = sorted(set(e.before) | set(e.after))
        changed = [k for k in keys if e.before.get(k) != e.after.get(k)]
    return {
        "id": e.id,
        "at": e.created_at,
        "actor_type": e.actor_type,
        "actor_name": e.actor_name,
        "action": e.action,
        "resource_type": e.resource_type,
        "resource_id": e.resource_id,
        "outcome": e.outcome,
        "source_ip": e.source_ip,
        "changed": changed,
        "before": _pretty(e.before),
        "after": _pretty(e.after),
        "details": _pretty(e.details),
    }


@router.get("/admin/audit")
async def audit_log(request: Request, viewer: ViewerDep, session: SessionDep) -> Response:
    """The audit log, newest first, filtered; a bad filter is a 422 with its field marked.
    Who may read it is one rule, ``services.audit.require_read``, as in the API."""
    audit.require_read(viewer.principal)
    f = AuditFilters.parse(request.query_params)
    rows: list[AuditEntry] = []
    newer = older = False
    if not f.errors:
        rows, newer, older = await audit_page(session, viewer.tenant_id, f)
    ctx = {
        "tab": "audit",
        "f": f,
        "errors": f.errors,
        "outcomes": OUTCOMES,
        "resource_types": RESOURCE_TYPES,
        "action_prefixes": ACTION_PREFIXES,
        "rows": [audit_row(e) for e in rows],
        "newer": newer,
        "older": older,
        "newer_query": f.query(after=rows[0].id, before="") if rows else "",
        "older_query": f.query(before=rows[-1].id, after="") if rows else "",
        "newest_query": f.query(before="", after=""),
        "page_size": AUDIT_PAGE_SIZE,
    }
    return render(request, "admin/audit.html", ctx, status_code=422 if f.errors else 200)
