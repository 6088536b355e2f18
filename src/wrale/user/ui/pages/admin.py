"""The dashboard's Administration pages (admins only): users and their roles, API tokens
(the secret shown once), and the audit log with filters. Every change goes through
``services.identity``, which checks the role and writes the audit entry; reads are paged."""

from __future__ import annotations

import calendar
import json
import math
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, ValidationError
from sqlalchemy import ColumnElement, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import FormData

from wrale.fleet.brain.models import ApiToken, AuditEntry, User
from wrale.fleet.brain.models.base import now as wall_now
from wrale.fleet.brain.services import audit, identity
from wrale.fleet.brain.services.principal import Role
from wrale.shared.errors import ConflictError, InvalidRequestError, NotFoundError
from wrale.user.api.schemas.identity import ApiTokenCreate, UserCreate
from wrale.user.ui.web import (
    AdminDep,
    SessionDep,
    Viewer,
    ViewerDep,
    is_htmx,
    page_number,
    render,
)

router = APIRouter(include_in_schema=False)

USERS_PAGE_SIZE = 100
TOKENS_PAGE_SIZE = 50
AUDIT_PAGE_SIZE = 50
ROLES = tuple(r.value for r in Role)
OUTCOMES = ("success", "denied", "failed")
TOKEN_EXPIRY: tuple[tuple[str, str], ...] = (
    ("", "Never"),
    ("86400", "1 day"),
    ("604800", "7 days"),
    ("2592000", "30 days"),
    ("7776000", "90 days"),
    ("31536000", "365 days"),
)
DEFAULT_TOKEN_EXPIRY = "7776000"  # noqa: S105 - seconds (90 days), not a secret
_ID = re.compile(r"^[0-9a-f]{1,32}$")
_FIELD_PREFIX = re.compile(r"^(\w+): (.*)$", re.DOTALL)


# ----------------------------------------------------------------------------- form helpers


def form_text(form: FormData, name: str, max_len: int = 1000) -> str:
    """A posted text field, cut at ``max_len`` (a missing or file field is '')."""
    value = form.get(name)
    return value[:max_len] if isinstance(value, str) else ""


def redirect(request: Request, location: str) -> Response:
    """After a change: htmx follows ``HX-Redirect``, a plain form the 303."""
    if is_htmx(request):
        return Response(status_code=200, headers={"HX-Redirect": location})
    return Response(status_code=303, headers={"Location": location})


def schema_errors(
    model: type[BaseModel], data: Mapping[str, Any], messages: Mapping[str, str]
) -> tuple[Any, dict[str, str]]:
    """Check ``data`` with the API's own request schema: (the model or None, field errors).

    Each field's message is ``messages[field]`` when given (plain words), else pydantic's."""
    try:
        return model.model_validate(data), {}
    except ValidationError as exc:
        errors: dict[str, str] = {}
        for err in exc.errors():
            name = str(err["loc"][0]) if err["loc"] else "form"
            errors.setdefault(name, messages.get(name, str(err["msg"])))
        return None, errors


def service_error(exc: Exception, fields: Sequence[str]) -> tuple[str | None, str]:
    """(form field or None, message) of a service error whose text may start "field: "."""
    message = str(getattr(exc, "message", exc))
    m = _FIELD_PREFIX.match(message)
    name = str(getattr(exc, "details", {}).get("field") or (m.group(1) if m else ""))
    text = m.group(2) if m and m.group(1) == name else message
    text = text[:1].upper() + text[1:]
    return (name if name in fields else None), text


def valid_id(value: str, what: str) -> str:
    """An id from a URL, or a 404 when it cannot be one (the database never sees junk)."""
    if not _ID.match(value):
        raise NotFoundError(f"no {what} {value[:40]}")
    return value


def until_text(at: float | None, now: float) -> str:
    """'in 5 h', 'in 3 d', 'never'; an instant in the past is '… ago'."""
    if at is None:
        return "never"
    s = at - now
    if s <= 0:
        s = -s
        suffix, prefix = " ago", ""
    else:
        suffix, prefix = "", "in "
    if s < 3600:
        text = f"{max(1, int(s // 60))} min"
    elif s < 86_400:
        text = f"{int(s // 3600)} h"
    else:
        text = f"{int(s // 86_400)} d"
    return f"{prefix}{text}{suffix}"


# ----------------------------------------------------------------------------- users


USER_FIELDS = ("username", "password", "role")
USER_MESSAGES = {
    "username": "Use 2 to 64 letters, digits or _ . @ - (no spaces).",
    "password": "Use 10 to 256 characters.",
    "role": "Choose viewer, operator or admin.",
}


@dataclass
class UserForm:
    username: str = ""
    password: str = ""
    role: str = Role.VIEWER.value

    @classmethod
    def of_form(cls, form: FormData) -> UserForm:
        return cls(
            username=form_text(form, "username", 200).strip(),
            password=form_text(form, "password", 300),
            role=form_text(form, "role", 20),
        )


async def _users_context(session: AsyncSession, viewer: Viewer, page: str | None) -> dict[str, Any]:
    tenant = viewer.tenant_id
    total = int(await session.scalar(select(func.count()).where(User.tenant_id == tenant)) or 0)
    pages = max(1, math.ceil(total / USERS_PAGE_SIZE))
    number = min(page_number(page), pages)
    users = await session.scalars(
        select(User)
        .where(User.tenant_id == tenant)
        .order_by(User.username)
        .limit(USERS_PAGE_SIZE)
        .offset((number - 1) * USERS_PAGE_SIZE)
    )
    return {
        "users": [identity.user_view(u) for u in users],
        "total": total,
        "page": number,
        "pages": pages,
        "roles": ROLES,
        "me": viewer.principal.actor_id,
    }


async def _users_page(
    request: Request,
    session: AsyncSession,
    viewer: Viewer,
    *,
    form: UserForm | None = None,
    errors: dict[str, str] | None = None,
    form_error: str | None = None,
    notice: str | None = None,
    page: str | None = None,
    status_code: int = 200,
) -> Response:
    ctx = {
        "tab": "users",
        "form": form or UserForm(),
        "errors": errors or {},
        "form_error": form_error,
        "notice": notice,
        **await _users_context(session, viewer, page),
    }
    if is_htmx(request) and status_code == 422:
        return render(request, "admin/_user_form.html", ctx, status_code=status_code)
    return render(request, "admin/users.html", ctx, status_code=status_code)


def _user_notice(request: Request) -> str | None:
    q = request.query_params
    for key, text in (
        ("created", "User “{}” created."),
        ("deleted", "User “{}” deleted."),
    ):
        if q.get(key):
            return text.format(q[key][:64])
    return None


@router.get("/admin")
async def users(
    request: Request, viewer: AdminDep, session: SessionDep, page: str | None = None
) -> Response:
    return await _users_page(request, session, viewer, notice=_user_notice(request), page=page)


@router.get("/admin/users")
async def users_alias(viewer: AdminDep) -> Response:
    return Response(status_code=307, headers={"Location": "/admin"})


@router.post("/admin/users")
async def user_create(request: Request, viewer: AdminDep, session: SessionDep) -> Response:
    """Create a user; a refused form comes back (422) with each error at its field."""
    f = UserForm.of_form(await request.form())
    body, errors = schema_errors(
        UserCreate,
        {"username": f.username, "password": f.password, "role": f.role},
        USER_MESSAGES,
    )
    if "password" not in errors:
        try:
            identity.check_password_strength(f.password)
        except InvalidRequestError as exc:
            errors["password"] = service_error(exc, USER_FIELDS)[1]
    form_error = None
    if not errors and isinstance(body, UserCreate):
        try:
            user = await identity.create_user(
                session, viewer.principal, body.username, body.password, body.role
            )
        except (InvalidRequestError, ConflictError) as exc:
            name, text = service_error(exc, USER_FIELDS)
            if name is None and "username" in text.lower():
                name = "username"
            if name:
                errors[name] = text
            else:
                form_error = text
        else:
            return redirect(request, f"/admin?created={quote(user.username)}")
    await session.rollback()
    if "password" in errors:
        f = replace(f, password="")  # a refused password is typed again, never echoed
    return await _users_page(
        request,
        session,
        viewer,
        form=f,
        errors=errors,
        form_error=form_error or "The user was not created: correct the fields marked below.",
        status_code=422,
    )


async def _user_row(request: Request, viewer: Viewer, user: User) -> Response:
    ctx = {"u": identity.user_view(user), "roles": ROLES, "me": viewer.principal.actor_id}
    return render(request, "admin/_user_row.html", ctx)


async def _user_changed(request: Request, viewer: Viewer, user: User, notice: str) -> Response:
    if is_htmx(request):
        response = await _user_row(request, viewer, user)
        response.headers["HX-Trigger"] = json.dumps({"wrale-notice": notice})
        return response
    return Response(status_code=303, headers={"Location": "/admin"})


@router.post("/admin/users/{user_id}/role")
async def user_role(
    user_id: str, request: Request, viewer: AdminDep, session: SessionDep
) -> Response:
    form = await request.form()
    role = form_text(form, "role", 20)
    if role not in ROLES:
        raise InvalidRequestError("role: choose viewer, operator or admin")
    user = await identity.update_user(
        session, viewer.principal, valid_id(user_id, "user"), role=Role(role)
    )
    return await _user_changed(request, viewer, user, f"{user.username} is now {role}.")


@router.post("/admin/users/{user_id}/disable")
async def user_disable(
    user_id: str, request: Request, viewer: AdminDep, session: SessionDep
) -> Response:
    user = await identity.update_user(
        session, viewer.principal, valid_id(user_id, "user"), disabled=True
    )
    return await _user_changed(request, viewer, user, f"{user.username} is disabled.")


@router.post("/admin/users/{user_id}/enable")
async def user_enable(
    user_id: str, request: Request, viewer: AdminDep, session: SessionDep
) -> Response:
    user = await identity.update_user(
        session, viewer.principal, valid_id(user_id, "user"), disabled=False
    )
    return await _user_changed(request, viewer, user, f"{user.username} is enabled again.")


@router.post("/admin/users/{user_id}/delete")
async def user_delete(
    user_id: str, request: Request, viewer: AdminDep, session: SessionDep
) -> Response:
    user = await identity.get_user(session, viewer.tenant_id, valid_id(user_id, "user"))
    name = user.username
    await identity.delete_user(session, viewer.principal, user.id)
    if is_htmx(request):  # the row goes away
        return Response(
            status_code=200,
            headers={"HX-Trigger": json.dumps({"wrale-notice": f"User {name} deleted."})},
        )
    return Response(status_code=303, headers={"Location": f"/admin?deleted={quote(name)}"})


# ----------------------------------------------------------------------------- API tokens


TOKEN_FIELDS = ("name", "role", "expires_in_s")
TOKEN_MESSAGES = {
    "name": "Give the token a name of 1 to 100 characters.",
    "role": "Choose viewer, operator or admin.",
    "expires_in_s": "Choose one of the expiry times offered.",
}


@dataclass
class TokenForm:
    name: str = ""
    role: str = Role.VIEWER.value
    expires_in_s: str = DEFAULT_TOKEN_EXPIRY

    @classmethod
    def of_form(cls, form: FormData) -> TokenForm:
        return cls(
            name=form_text(form, "name", 200).strip(),
            role=form_text(form, "role", 20),
            expires_in_s=form_text(form, "expires_in_s", 20),
        )


def api_token_state(t: Mapping[str, Any], at: float) -> str:
    """active | expired | revoked."""
    if t["revoked_at"] is not None:
        return "revoked"
    if t["expires_at"] is not None and t["expires_at"] <= at:
        return "expired"
    return "active"


def _token_row(t: ApiToken, creator: str | None, at: float) -> dict[str, Any]:
    view = identity.token_view(t)
    return {**view, "state": api_token_state(view, at), "creator": creator}


async def _tokens_context(
    session: AsyncSession, viewer: Viewer, page: str | None
) -> dict[str, Any]:
    tenant = viewer.tenant_id
    total = int(await session.scalar(select(func.count()).where(ApiToken.tenant_id == tenant)) or 0)
    pages = max(1, math.ceil(total / TOKENS_PAGE_SIZE))
    number = min(page_number(page), pages)
    rows = await session.execute(
        select(ApiToken, User.username)
        .outerjoin(User, User.id == ApiToken.user_id)
        .where(ApiToken.tenant_id == tenant)
        .order_by(ApiToken.id.desc())
        .limit(TOKENS_PAGE_SIZE)
        .offset((number - 1) * TOKENS_PAGE_SIZE)
    )
    at = wall_now()
    return {
        "tokens": [_token_row(t, name, at) for t, name in rows.all()],
        "total": total,
        "page": number,
        "pages": pages,
    }


def _token_form_context(
    request: Request,
    f: TokenForm,
    *,
    errors: dict[str, str] | None = None,
    form_error: str | None = None,
    created: dict[str, Any] | None = None,
) -> dict[str, Any]:
    base = str(request.base_url).rstrip("/")
    return {
        "form": f,
        "errors": errors or {},
        "form_error": form_error,
        "created": created,
        "roles": ROLES,
        "expiry_choices": TOKEN_EXPIRY,
        "api_url": f"{base}/api/v1",
    }


@router.get("/admin/tokens")
async def tokens(
    request: Request, viewer: AdminDep, session: SessionDep, page: str | None = None
) -> Response:
    ctx = {
        "tab": "tokens",
        **_token_form_context(request, TokenForm()),
        **await _tokens_context(session, viewer, page),
    }
    return render(request, "admin/tokens.html", ctx)


@router.get("/admin/tokens/_table")
async def tokens_table(
    request: Request, viewer: AdminDep, session: SessionDep, page: str | None = None
) -> Response:
    return render(request, "admin/_tokens.html", await _tokens_context(session, viewer, page))


@router.post("/admin/tokens")
async def token_create(request: Request, viewer: AdminDep, session: SessionDep) -> Response:
    """Create an API token: its secret is in this answer only (stored hashed)."""
    f = TokenForm.of_form(await request.form())
    errors: dict[str, str] = {}
    if f.expires_in_s not in dict(TOKEN_EXPIRY):
        errors["expires_in_s"] = TOKEN_MESSAGES["expires_in_s"]
    data = {
        "name": f.name,
        "role": f.role,
        "expires_in_s": float(f.expires_in_s) if f.expires_in_s and not errors else None,
    }
    body, more = schema_errors(ApiTokenCreate, data, TOKEN_MESSAGES)
    errors = more | errors
    form_error = None
    created = None
    if not errors and isinstance(body, ApiTokenCreate):
        try:
            token, secret = await identity.create_api_token(
                session, viewer.principal, body.name, body.role, body.expires_in_s
            )
        except (InvalidRequestError, ConflictError) as exc:
            name, text = service_error(exc, TOKEN_FIELDS)
            if name is None and "rights" in text:
                name = "role"
            if name:
                errors[name] = text
            else:
                form_error = text
        else:
            created = {**_token_row(token, viewer.principal.name, wall_now()), "secret": secret}
    status = 200
    if created is None:
        await session.rollback()
        form_error = form_error or "The token was not created: correct the fields marked below."
        status = 422
    ctx = {
        "tab": "tokens",
        **_token_form_context(
            request,
            TokenForm() if created else f,
            errors=errors,
            form_error=form_error,
            created=created,
        ),
    }
    if is_htmx(request):
        headers = {"HX-Trigger": "admin-tokens-changed"} if created else None
        return render(request, "admin/_token_form.html", ctx, status_code=status, headers=headers)
    ctx.update(await _tokens_context(session, viewer, None))
    return render(request, "admin/tokens.html", ctx, status_code=status)


@router.post("/admin/tokens/{token_id}/revoke")
async def token_revoke(
    token_id: str, request: Request, viewer: AdminDep, session: SessionDep
) -> Response:
    token = await identity.revoke_api_token(
        session, viewer.principal, valid_id(token_id, "API token")
    )
    if not is_htmx(request):
        return Response(status_code=303, headers={"Location": "/admin/tokens"})
    creator = await session.scalar(select(User.username).where(User.id == token.user_id))
    return render(
        request,
        "admin/_token_row.html",
        {"t": _token_row(token, creator, wall_now())},
        headers={"HX-Trigger": json.dumps({"wrale-notice": f"Token {token.name} revoked."})},
    )


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
            before=cursor["before"] if _ID.match(cursor["before"]) else "",
            after=cursor["after"] if _ID.match(cursor["after"]) and not cursor["before"] else "",
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
