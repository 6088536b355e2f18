"""Policies: versioned partial documents (thermal, power, security, sampling) attached to
the fleet, a group or a device, and a device's effective policy — fleet, then its groups
from the farthest ancestor to the nearest, then the device itself; the nearest wins.

``merge`` is pure; each field of the result says which policy (and version) it came from.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from wrale.fleet.brain.bus import EventBus
from wrale.fleet.brain.models import Device
from wrale.fleet.brain.models.base import now as wall_now
from wrale.fleet.brain.models.groups import Group
from wrale.fleet.brain.models.policies import Policy, PolicyVersion
from wrale.fleet.brain.services import audit
from wrale.fleet.brain.services.lookup import get_owned
from wrale.fleet.brain.services.principal import Principal, Role
from wrale.shared.errors import ConflictError, InvalidRequestError, NotFoundError
from wrale.shared.policy_models import PowerPolicyModel, SecurityPolicyModel, ThermalPolicyModel


class SamplingPolicy(BaseModel):
    """How often a device samples its sensors and reports telemetry."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    interval_s: float = Field(default=1.0, ge=0.1, le=3600)
    report_interval_s: float = Field(default=10.0, ge=1, le=86_400)


KINDS: dict[str, type[BaseModel]] = {
    "thermal": ThermalPolicyModel,
    "power": PowerPolicyModel,
    "security": SecurityPolicyModel,
    "sampling": SamplingPolicy,
}
SCOPE_TYPES = ("fleet", "group", "device")
Source = dict[str, Any]


def _field_adapter(model: type[BaseModel], name: str) -> TypeAdapter[Any]:
    info = model.model_fields[name]
    return TypeAdapter(Annotated[info.annotation, info])  # type: ignore[arg-type]


def check_document(kind: str, document: dict[str, Any]) -> dict[str, Any]:
    """Validate a partial document field by field (ranges, types); returns it normalised.
    Rules across fields (warning < critical…) are checked on the effective policy."""
    model = KINDS.get(kind)
    if model is None:
        raise InvalidRequestError(f"kind: use one of {', '.join(KINDS)}", field="kind")
    if not isinstance(document, dict):
        raise InvalidRequestError("document: an object of fields")
    out: dict[str, Any] = {}
    for name, value in document.items():
        if name not in model.model_fields:
            raise InvalidRequestError(
                f"document.{name}: not a {kind} policy field (fields: "
                f"{', '.join(model.model_fields)})",
                field=f"document.{name}",
            )
        adapter = _field_adapter(model, name)
        try:
            parsed = adapter.validate_python(value)
        except ValidationError as exc:
            raise InvalidRequestError(
                f"document.{name}: {exc.errors()[0]['msg']}", field=f"document.{name}"
            ) from None
        out[name] = adapter.dump_python(parsed, mode="json")
    return out


def defaults(kind: str) -> dict[str, Any]:
    return KINDS[kind]().model_dump(mode="json")


def merge(kind: str, layers: Sequence[tuple[Source, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Fold ``layers`` (farthest first) over the kind's defaults: for every field its
    value and the source that set it (None for a default)."""
    fields: dict[str, dict[str, Any]] = {
        k: {"value": v, "source": None} for k, v in defaults(kind).items()
    }
    for source, document in layers:
        for k, v in document.items():
            if k in fields:
                fields[k] = {"value": v, "source": source}
    return fields


def check_merged(kind: str, fields: dict[str, dict[str, Any]]) -> list[str]:
    """The cross-field problems of a merged document (empty when it is consistent)."""
    try:
        KINDS[kind].model_validate({k: f["value"] for k, f in fields.items()})
    except ValidationError as exc:
        return [str(e["msg"]) for e in exc.errors()]
    return []


# ----------------------------------------------------------------------------- storage


def policy_view(p: Policy) -> dict[str, Any]:
    return {
        "id": p.id,
        "scope_type": p.scope_type,
        "scope_id": p.scope_id or None,
        "kind": p.kind,
        "document": p.document,
        "version": p.version,
        "created_at": p.created_at,
        "updated_at": p.updated_at,
        "updated_by": p.updated_by,
    }


async def get_policy(session: AsyncSession, tenant_id: str, policy_id: str) -> Policy:
    return await get_owned(session, Policy, tenant_id, policy_id, "policy")


async def _check_scope(
    session: AsyncSession, tenant_id: str, scope_type: str, scope_id: str | None
) -> str:
    if scope_type not in SCOPE_TYPES:
        raise InvalidRequestError(f"scope_type: use one of {', '.join(SCOPE_TYPES)}")
    if scope_type == "fleet":
        if scope_id:
            raise InvalidRequestError("scope_id: the fleet scope takes no scope_id")
        return ""
    if not scope_id:
        raise InvalidRequestError(f"scope_id: a {scope_type} policy needs the {scope_type}'s id")
    model: type[Group] | type[Device] = Group if scope_type == "group" else Device
    owner = await session.scalar(select(model.tenant_id).where(model.id == scope_id))
    if owner != tenant_id:
        raise NotFoundError(f"no {scope_type} {scope_id}")
    return scope_id


def _version(p: Policy, author: str) -> PolicyVersion:
    return PolicyVersion(
        tenant_id=p.tenant_id,
        policy_id=p.id,
        version=p.version,
        document=p.document,
        author=author,
    )


async def create_policy(
    session: AsyncSession,
    pr: Principal,
    scope_type: str,
    scope_id: str | None,
    kind: str,
    document: dict[str, Any],
    bus: EventBus | None = None,
) -> Policy:
    pr.require(Role.ADMIN, "creating policies")
    key = await _check_scope(session, pr.tenant_id, scope_type, scope_id)
    doc = check_document(kind, document)
    clash = await session.scalar(
        select(Policy.id).where(
            Policy.tenant_id == pr.tenant_id,
            Policy.scope_type == scope_type,
            Policy.scope_id == key,
            Policy.kind == kind,
        )
    )
    if clash:
        raise ConflictError(
            f"this {scope_type} already has a {kind} policy ({clash}); update it instead",
            policy_id=clash,
        )
    p = Policy(
        tenant_id=pr.tenant_id,
        scope_type=scope_type,
        scope_id=key,
        kind=kind,
        document=doc,
        version=1,
        updated_at=wall_now(),
        updated_by=pr.name,
    )
    session.add(p)
    await session.flush()
    session.add(_version(p, pr.name))
    audit.record(
        session, pr, "policy.create", resource_type="policy", resource_id=p.id, after=policy_view(p)
    )
    await refresh_twins(session, p.tenant_id, p.scope_type, p.scope_id, bus)
    return p


async def update_policy(
    session: AsyncSession,
    pr: Principal,
    policy_id: str,
    document: dict[str, Any],
    expected_version: int | None = None,
    bus: EventBus | None = None,
) -> Policy:
    """Replace the document, creating the next version; a stale ``expected_version`` is 409."""
    pr.require(Role.ADMIN, "changing policies")
    p = await get_policy(session, pr.tenant_id, policy_id)
    if expected_version is not None and expected_version != p.version:
        raise ConflictError(
            f"the policy is at version {p.version}, not {expected_version}", version=p.version
        )
    doc = check_document(p.kind, document)
    before = policy_view(p)
    p.document, p.version = doc, p.version + 1
    p.updated_at, p.updated_by = wall_now(), pr.name
    session.add(_version(p, pr.name))
    audit.record(
        session,
        pr,
        "policy.update",
        resource_type="policy",
        resource_id=p.id,
        before=before,
        after=policy_view(p),
    )
    await refresh_twins(session, p.tenant_id, p.scope_type, p.scope_id, bus)
    return p


async def delete_policy(
    session: AsyncSession, pr: Principal, policy_id: str, bus: EventBus | None = None
) -> None:
    pr.require(Role.ADMIN, "deleting policies")
    p = await get_policy(session, pr.tenant_id, policy_id)
    audit.record(
        session,
        pr,
        "policy.delete",
        resource_type="policy",
        resource_id=p.id,
        before=policy_view(p),
    )
    scope = (p.tenant_id, p.scope_type, p.scope_id)
    await session.delete(p)
    await refresh_twins(session, *scope, bus)


async def refresh_twins(
    session: AsyncSession, tenant_id: str, scope_type: str, scope_id: str, bus: EventBus | None
) -> None:
    """Effective policies flow into desired state: recompose the twins in the scope."""
    from wrale.fleet.brain.services import twin
    from wrale.fleet.brain.services.groups import devices_in_group

    ids: list[str] | None = None
    if scope_type == "group":
        found = await devices_in_group(session, tenant_id, scope_id, recursive=True)
        ids = [d.id for d in found]
    elif scope_type == "device":
        ids = [scope_id]
    await twin.refresh(session, tenant_id, ids, bus)


async def versions(
    session: AsyncSession, tenant_id: str, policy_id: str, after_id: str | None, limit: int
) -> list[PolicyVersion]:
    """Oldest first (ids grow with versions); ``after_id`` continues a page."""
    await get_policy(session, tenant_id, policy_id)
    stmt = select(PolicyVersion).where(PolicyVersion.policy_id == policy_id)
    if after_id:
        stmt = stmt.where(PolicyVersion.id > after_id)
    rows = await session.scalars(stmt.order_by(PolicyVersion.id).limit(limit))
    return list(rows)


# ----------------------------------------------------------------------------- effective


async def _group_chain(session: AsyncSession, device: Device) -> list[Group]:
    """The device's groups and their ancestors, farthest (shallowest) first; groups at the
    same depth in id order, so the result is deterministic."""
    from wrale.fleet.brain.services.groups import group_ancestors, groups_of_device

    depth: dict[str, tuple[int, Group]] = {}
    for g in await groups_of_device(session, device):
        chain = [g, *await group_ancestors(session, g.id)]  # nearest first
        for i, member in enumerate(chain):
            depth.setdefault(member.id, (len(chain) - 1 - i, member))
    return [g for _, g in sorted(depth.values(), key=lambda x: (x[0], x[1].id))]


def merge_policies(ordered: Sequence[Policy]) -> dict[str, dict[str, Any]]:
    """Per kind, the policies merged in the order given (nearest last): each field with its
    value and source, the resulting document, and what is inconsistent in it."""
    kinds: dict[str, dict[str, Any]] = {}
    for kind in KINDS:
        layers = [
            (
                {
                    "scope_type": p.scope_type,
                    "scope_id": p.scope_id or None,
                    "policy_id": p.id,
                    "version": p.version,
                },
                p.document,
            )
            for p in ordered
            if p.kind == kind
        ]
        fields = merge(kind, layers)
        kinds[kind] = {
            "fields": fields,
            "document": {k: f["value"] for k, f in fields.items()},
            "errors": check_merged(kind, fields),
        }
    return kinds


async def effective_policy(session: AsyncSession, tenant_id: str, device_id: str) -> dict[str, Any]:
    device = await get_owned(session, Device, tenant_id, device_id, "device")
    groups = await _group_chain(session, device)
    order = [("fleet", ""), *[("group", g.id) for g in groups], ("device", device.id)]
    rank = {scope: i for i, scope in enumerate(order)}
    rows = await session.scalars(select(Policy).where(Policy.tenant_id == tenant_id))
    found = [p for p in rows if (p.scope_type, p.scope_id) in rank]
    found.sort(key=lambda p: rank[(p.scope_type, p.scope_id)])
    kinds = merge_policies(found)
    return {
        "device_id": device.id,
        "chain": [{"scope_type": t, "scope_id": i or None} for t, i in order],
        "kinds": kinds,
    }
