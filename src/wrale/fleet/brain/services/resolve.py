"""Finding one object of a tenant from what a person types: its name, its full id, or a
unique prefix or suffix of its id (ids are time-ordered, so the suffix is what differs),
and the shortest id suffix that names each object of a kind unambiguously.

Order: an exact full id, then an exact name, then a partial id (prefix or suffix, at least
``MIN_PARTIAL`` hex digits). Several matches at one step are a conflict that lists them.
Only the tenant's own rows are searched, so another tenant's objects do not exist here."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from wrale.fleet.brain.models import (
    ApiToken,
    Device,
    EnrollmentToken,
    Rack,
    Room,
    Site,
    User,
    Zone,
    alerts,
    commands,
    dry_runs,
    groups,
    jobs,
    maintenance,
    policies,
    recommendations,
    rollouts,
    templates,
)
from wrale.fleet.brain.services.principal import Principal, Role
from wrale.shared.errors import ConflictError, InvalidRequestError, NotFoundError

MIN_PARTIAL = 4  # hex digits of the shortest partial id accepted (and shown)
REF_MAX = 200  # longer than any name or id: refused as input, not searched
MAX_CANDIDATES = 10  # listed in an ambiguity error
_HEX = re.compile(r"^[0-9a-f]+$")
_FULL_ID = re.compile(r"^[0-9a-f]{32}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True, slots=True)
class Kind:
    """One kind of object: its model, the column people name it by (None: by id only),
    what is shown beside its id in a list of candidates, and the least role that reads it."""

    model: Any
    name_col: str | None
    label: Callable[[Any], str | None]
    role: Role = Role.VIEWER


def _attr(col: str) -> Callable[[Any], str | None]:
    return lambda row: getattr(row, col)


KINDS: dict[str, Kind] = {
    "device": Kind(Device, "name", _attr("name")),
    "site": Kind(Site, "name", _attr("name")),
    "room": Kind(Room, "name", _attr("name")),
    "rack": Kind(Rack, "name", _attr("name")),
    "zone": Kind(Zone, "name", _attr("name")),
    "group": Kind(groups.Group, "name", _attr("name")),
    "job": Kind(jobs.Job, "name", _attr("name")),
    "rollout": Kind(rollouts.Rollout, "name", _attr("name")),
    "template": Kind(templates.ConfigTemplate, "name", _attr("name")),
    "window": Kind(maintenance.MaintenanceWindow, "name", _attr("name")),
    "maintenance-rule": Kind(maintenance.MaintenanceRule, "name", _attr("name")),
    "alert-rule": Kind(alerts.AlertRule, "name", _attr("name")),
    "alert": Kind(alerts.Alert, None, _attr("message")),
    "command": Kind(commands.Command, None, _attr("op")),
    "policy": Kind(policies.Policy, None, lambda p: f"{p.scope_type} {p.kind}"),
    "task": Kind(maintenance.MaintenanceTask, None, _attr("title")),
    "recommendation": Kind(recommendations.Recommendation, None, _attr("title")),
    "dry-run": Kind(dry_runs.DryRun, None, lambda r: (r.change or {}).get("kind")),
    "user": Kind(User, "username", _attr("username"), Role.ADMIN),
    "token": Kind(ApiToken, "name", _attr("name"), Role.ADMIN),
    "enrollment-token": Kind(EnrollmentToken, "name", _attr("name"), Role.ADMIN),
    "channel": Kind(alerts.NotificationChannel, "name", _attr("name"), Role.ADMIN),
}


@dataclass(frozen=True, slots=True)
class Resolved:
    kind: str
    id: str
    name: str | None


def kind_of(kind: str, p: Principal) -> Kind:
    """The kind named ``kind`` (422 when there is none) once ``p`` may read it (403)."""
    k = KINDS.get(kind)
    if k is None:
        raise InvalidRequestError(
            f"unknown kind {kind[:40]!r}: one of {', '.join(sorted(KINDS))}", kinds=sorted(KINDS)
        )
    p.require(k.role, f"finding {words(kind)}s")
    return k


def check_ref(ref: str) -> str:
    """``ref`` stripped of surrounding blanks, refused (422) when it cannot name anything."""
    text = ref.strip()
    if not text:
        raise InvalidRequestError("an empty reference names nothing")
    if len(text) > REF_MAX:
        raise InvalidRequestError(f"a reference is at most {REF_MAX} characters")
    if _CONTROL.search(text):
        raise InvalidRequestError("a reference may not contain control characters")
    return text


def words(kind: str) -> str:
    """A kind as a message says it (``maintenance-rule`` → ``maintenance rule``)."""
    return "API token" if kind == "token" else kind.replace("-", " ")


def short(id_: str, length: int) -> str:
    """The last ``length`` hex digits of an id: what a table shows."""
    return id_[-length:]


async def resolve(session: AsyncSession, p: Principal, kind: str, ref: str) -> Resolved:
    """The one ``kind`` of ``p``'s tenant that ``ref`` names (see the module's order)."""
    k = kind_of(kind, p)
    text = check_ref(ref)
    model = k.model
    mine = model.tenant_id == p.tenant_id
    low = text.lower()
    if _FULL_ID.match(low):
        row = await session.get(model, low)
        if row is not None and row.tenant_id == p.tenant_id:
            return _found(kind, k, row)
    steps: list[ColumnElement[bool]] = []
    if k.name_col is not None:
        steps.append(getattr(model, k.name_col) == text)
    if len(low) >= MIN_PARTIAL and _HEX.match(low):
        # hex digits only, so the pattern holds no LIKE wildcard
        steps.append(or_(model.id.startswith(low), model.id.endswith(low)))
    for where in steps:
        stmt = select(model).where(mine, where).order_by(model.id).limit(MAX_CANDIDATES + 1)
        rows = list((await session.scalars(stmt)).all())
        if len(rows) == 1:
            return _found(kind, k, rows[0])
        if rows:
            raise _ambiguous(kind, k, text, rows)
    raise NotFoundError(f"no {words(kind)} matches {text[:60]!r}", kind=kind, ref=text[:60])


def _found(kind: str, k: Kind, row: Any) -> Resolved:
    return Resolved(kind, row.id, getattr(row, k.name_col) if k.name_col else k.label(row))


def _ambiguous(kind: str, k: Kind, text: str, rows: Sequence[Any]) -> ConflictError:
    length = 12  # enough to tell candidates apart in a message; the ids are given in full
    candidates = [{"id": r.id, "name": k.label(r)} for r in rows[:MAX_CANDIDATES]]
    listed = ", ".join(
        f"{c['name']} ({short(c['id'], length)})" if c["name"] else short(c["id"], length)
        for c in candidates
    )
    more = " and more" if len(rows) > MAX_CANDIDATES else ""
    return ConflictError(
        f"{text[:60]!r} matches several {words(kind)}s: {listed}{more}",
        kind=kind,
        ref=text[:60],
        candidates=candidates,
    )


async def short_length(session: AsyncSession, p: Principal, kind: str) -> int:
    """The fewest trailing hex digits (at least ``MIN_PARTIAL``) that ``resolve`` turns
    back into the same object for every ``kind`` of ``p``'s tenant."""
    k = kind_of(kind, p)
    cols = [k.model.id] + ([getattr(k.model, k.name_col)] if k.name_col else [])
    rows = (await session.execute(select(*cols).where(k.model.tenant_id == p.tenant_id))).all()
    ids = [r[0] for r in rows]
    names = {r[0]: r[1] for r in rows} if k.name_col else {}
    return shortest_unique_suffix(ids, names)


def shortest_unique_suffix(ids: Sequence[str], names: dict[str, str] | None = None) -> int:
    """The least length ``n`` (>= ``MIN_PARTIAL``) at which every id's last ``n`` digits are
    no other object's suffix, prefix or exact name (exact names and ids win over them)."""
    named = Counter((names or {}).values())
    for n in range(MIN_PARTIAL, 32):
        tails = Counter(i[-n:] for i in ids)
        heads = Counter(i[:n] for i in ids)
        if all(_unique(i, n, tails, heads, named, (names or {}).get(i)) for i in ids):
            return n
    return 32


def _unique(
    id_: str, n: int, tails: Counter[str], heads: Counter[str], named: Counter[str], own: Any
) -> bool:
    tail = id_[-n:]
    own_head = 1 if id_[:n] == tail else 0
    own_name = 1 if own == tail else 0
    return tails[tail] == 1 and heads[tail] == own_head and named[tail] == own_name
