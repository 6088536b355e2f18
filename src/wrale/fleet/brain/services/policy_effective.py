"""The kinds of policy documents (thermal, power, security, sampling), their field checks
and inheritance merge, and a device's effective policy — fleet, then its groups from the
farthest ancestor to the nearest, then the device itself; the nearest wins.

``effective_documents`` answers the same for a batch of devices in a constant number of
queries (a fleet-wide change recomposes thousands of twins). Reads only: storing policies
(and recomposing twins when they change) is ``policies``'; the twin composes desired state
from what this module answers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from wrale.fleet.brain.models import Device
from wrale.fleet.brain.models.groups import Group
from wrale.fleet.brain.models.policies import Policy
from wrale.fleet.brain.services.group_chains import group_chains
from wrale.fleet.brain.services.groups import group_ancestors, groups_of_device
from wrale.fleet.brain.services.lookup import get_owned
from wrale.shared.errors import InvalidRequestError
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


# ----------------------------------------------------------------------------- effective


async def _group_chain(session: AsyncSession, device: Device) -> list[Group]:
    """The device's groups and their ancestors, farthest (shallowest) first; groups at the
    same depth in id order, so the result is deterministic."""
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


Documents = dict[str, dict[str, Any]]  # kind → effective document


async def effective_documents(
    session: AsyncSession, tenant_id: str, devices: Sequence[Device]
) -> dict[str, Documents]:
    """device id → kind → effective document, as ``effective_policy`` composes it, for a
    batch of the tenant's devices: the tenant's policies and groups are read once, and
    devices whose chains carry the same policies share one merge (treat as read-only)."""
    chains = await group_chains(session, tenant_id, devices)
    by_scope: dict[tuple[str, str], list[Policy]] = {}
    for p in await session.scalars(
        select(Policy).where(Policy.tenant_id == tenant_id).order_by(Policy.id)
    ):
        by_scope.setdefault((p.scope_type, p.scope_id), []).append(p)
    merged: dict[tuple[tuple[str, str], ...], Documents] = {}
    out: dict[str, Documents] = {}
    for d in devices:
        order = [("fleet", ""), *[("group", g.id) for g in chains[d.id]], ("device", d.id)]
        key = tuple(scope for scope in order if scope in by_scope)
        if key not in merged:
            found = [p for scope in key for p in by_scope[scope]]
            kinds = merge_policies(found)
            merged[key] = {kind: k["document"] for kind, k in kinds.items()}
        out[d.id] = merged[key]
    return out
