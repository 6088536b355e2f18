"""What a rollout delivers to one board, through the existing services: a policy (a
device-scoped policy of that kind, its values over the board's own policy document if it
had one), a config template version (deployed to the board), or a command (queued for the
board). A disruptive change — a command whose op is disruptive (reboot, shutdown), or any
change marked ``"disruptive": true`` (a policy or template that needs a restart) — reaches a
board only inside its maintenance window (``disruptive``; the loop asks ``may_disrupt``).
Each application records what the board had before, so that an abort restores it: the
board's own policy document (or none: the override is deleted), the template version
deployed to it before (or none: the template's keys are removed). A command cannot be
undone; its rollout is aborted without a rollback.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from wrale.fleet.brain.bus import EventBus
from wrale.fleet.brain.models import Device
from wrale.fleet.brain.models.commands import Command
from wrale.fleet.brain.models.policies import Policy
from wrale.fleet.brain.models.templates import ConfigDeployment, ConfigDeploymentDevice
from wrale.fleet.brain.services import commands, policies, templates, twin
from wrale.fleet.brain.services.maintenance.conditions import DISRUPTIVE_OPS
from wrale.fleet.brain.services.principal import Principal, Role
from wrale.fleet.sync.protocol import COMMAND_OPS
from wrale.shared.errors import InvalidRequestError, WraleError

KINDS = ("policy", "template", "command")
FAILED_COMMAND = ("failed", "refused", "expired")
OPEN_COMMAND = ("queued", "sent")


def _bad(field: str, message: str) -> InvalidRequestError:
    return InvalidRequestError(f"{field}: {message}", field=field)


def disruptive(change: dict[str, Any]) -> bool:
    """Whether ``change`` must wait for each board's maintenance window."""
    if change.get("disruptive") is True:
        return True
    return change.get("kind") == "command" and change.get("op") in DISRUPTIVE_OPS


async def check_change(session: AsyncSession, p: Principal, raw: Any) -> dict[str, Any]:
    """A clean change from hostile input (``InvalidRequestError`` naming the field; the
    role each kind needs is checked: a policy needs an admin, as policies do). Every kind
    takes ``"disruptive"``: true to wait for the boards' maintenance windows."""
    if not isinstance(raw, dict):
        raise _bad("change", "an object with a kind: policy, template or command")
    flag = raw.get("disruptive", False)
    if not isinstance(flag, bool):
        raise _bad("change.disruptive", "true or false")
    clean = await _check_kind(session, p, {k: v for k, v in raw.items() if k != "disruptive"})
    return {**clean, "disruptive": True} if flag else clean


async def _check_kind(session: AsyncSession, p: Principal, raw: dict[str, Any]) -> dict[str, Any]:
    kind = raw.get("kind")
    if kind not in KINDS:
        raise _bad("change.kind", f"one of {', '.join(KINDS)}")
    if kind == "policy":
        p.require(Role.ADMIN, "rolling out policies")
        unknown = set(raw) - {"kind", "policy_kind", "values"}
        if unknown:
            raise _bad("change", f"unknown key(s) {', '.join(sorted(map(str, unknown)))[:80]}")
        pk = raw.get("policy_kind")
        if pk not in policies.KINDS:
            raise _bad("change.policy_kind", f"one of {', '.join(policies.KINDS)}")
        values = raw.get("values")
        if not isinstance(values, dict) or not values:
            raise _bad("change.values", "an object of the policy's fields")
        try:
            clean = policies.check_document(pk, values)
        except InvalidRequestError as e:
            raise _bad("change.values", str(e)) from e
        return {"kind": kind, "policy_kind": pk, "values": clean}
    p.require(Role.OPERATOR, "rolling out changes")
    if kind == "template":
        unknown = set(raw) - {"kind", "template_id", "version", "variables"}
        if unknown:
            raise _bad("change", f"unknown key(s) {', '.join(sorted(map(str, unknown)))[:80]}")
        tid, version, variables = raw.get("template_id"), raw.get("version"), raw.get("variables")
        if not isinstance(tid, str) or not 0 < len(tid) <= 64:
            raise _bad("change.template_id", "a template id")
        if version is not None and (
            isinstance(version, bool) or not isinstance(version, int) or version < 1
        ):
            raise _bad("change.version", "a version number (1 or more)")
        if variables is not None and not isinstance(variables, dict):
            raise _bad("change.variables", "an object")
        v = await templates.get_version(session, p.tenant_id, tid, version)
        try:
            templates.render(v.body, v.variables, variables)
        except WraleError as e:
            raise _bad("change.variables", str(e)) from e
        return {
            "kind": kind,
            "template_id": v.template_id,
            "version": v.version,
            "variables": dict(variables or {}),
        }
    unknown = set(raw) - {"kind", "op", "args"}
    if unknown:
        raise _bad("change", f"unknown key(s) {', '.join(sorted(map(str, unknown)))[:80]}")
    op = raw.get("op")
    if not isinstance(op, str) or op not in COMMAND_OPS:
        raise _bad("change.op", f"one of {', '.join(sorted(COMMAND_OPS))}")
    if op in commands.ADMIN_OPS:
        p.require(Role.ADMIN, f"the {op} command")
    try:
        args = commands.check_args(op, raw.get("args") or {})
    except InvalidRequestError as e:
        raise _bad("change.args", str(e)) from e
    return {"kind": kind, "op": op, "args": args}


@dataclass(frozen=True, slots=True)
class Applied:
    """What applying did: the board's previous value (``before``), a handle (the command
    or deployment id), or why it failed (``error``, nothing written)."""

    before: dict[str, Any] | None = None
    handle: str | None = None
    error: str | None = None


async def _device_policy(session: AsyncSession, device: Device, kind: str) -> Policy | None:
    return await session.scalar(
        select(Policy).where(
            Policy.tenant_id == device.tenant_id,
            Policy.scope_type == "device",
            Policy.scope_id == device.id,
            Policy.kind == kind,
        )
    )


async def apply(
    session: AsyncSession,
    p: Principal,
    change: dict[str, Any],
    device: Device,
    bus: EventBus | None,
) -> Applied:
    """Deliver ``change`` to ``device``; a refusal of the services is an ``error``."""
    try:
        if change["kind"] == "policy":
            kind, values = change["policy_kind"], change["values"]
            own = await _device_policy(session, device, kind)
            if own is None:
                made = await policies.create_policy(session, p, "device", device.id, kind, values)
                return Applied({"document": None}, made.id)
            before = dict(own.document)
            await policies.update_policy(session, p, own.id, {**before, **values}, bus=bus)
            return Applied({"document": before}, own.id)
        if change["kind"] == "template":
            prior = await _prior_deployment(session, change["template_id"], device.id)
            dep = await templates.deploy(
                session,
                p,
                change["template_id"],
                target_type="device",
                target_id=device.id,
                variables=change.get("variables"),
                version=change.get("version"),
                bus=bus,
            )
            return Applied(prior, dep.id)
        cmd = await commands.create_command(
            session, p, device.id, change["op"], change.get("args") or {}, bus=bus
        )
        return Applied(None, cmd.id)
    except WraleError as e:
        return Applied(error=str(e)[:500])


async def _prior_deployment(
    session: AsyncSession, template_id: str, device_id: str
) -> dict[str, Any]:
    row = await session.scalar(
        select(ConfigDeployment)
        .join(ConfigDeploymentDevice, ConfigDeploymentDevice.deployment_id == ConfigDeployment.id)
        .where(
            ConfigDeploymentDevice.device_id == device_id,
            ConfigDeploymentDevice.template_id == template_id,
        )
        .order_by(ConfigDeployment.id.desc())
        .limit(1)
    )
    if row is None:
        return {"deployment_id": None}
    return {"deployment_id": row.id, "version": row.version, "variables": row.variables}


async def restore(
    session: AsyncSession,
    p: Principal,
    change: dict[str, Any],
    device: Device,
    before: dict[str, Any],
    handle: str | None,
    bus: EventBus | None,
) -> str | None:
    """Put back what ``device`` had before; returns why it could not (``None``: done)."""
    try:
        if change["kind"] == "policy":
            own = await _device_policy(session, device, change["policy_kind"])
            doc = before.get("document")
            if doc is None:
                if own is not None:
                    await policies.delete_policy(session, p, own.id, bus)
            elif own is None:
                await policies.create_policy(
                    session, p, "device", device.id, change["policy_kind"], doc, bus
                )
            else:
                await policies.update_policy(session, p, own.id, doc, bus=bus)
            return None
        if change["kind"] == "template":
            if before.get("deployment_id") is not None:
                await templates.deploy(
                    session,
                    p,
                    change["template_id"],
                    target_type="device",
                    target_id=device.id,
                    variables=before.get("variables"),
                    version=before.get("version"),
                    bus=bus,
                )
                return None
            dep = await session.get(ConfigDeployment, handle) if handle else None
            keys = set(dep.rendered) if dep is not None else set()
            await twin.set_config(session, device, {}, keys, bus)
            return None
        return "a command cannot be undone"
    except WraleError as e:
        return str(e)[:500]


async def outcome(session: AsyncSession, change: dict[str, Any], handle: str | None) -> str | None:
    """How the board took the change: ``"open"`` (a command not finished yet), a failure
    reason, or ``None`` (taken)."""
    if handle is None:
        return None
    if change["kind"] == "command":
        cmd = await session.get(Command, handle)
        if cmd is None:
            return "the command is gone"
        if cmd.status in OPEN_COMMAND:
            return "open"
        if cmd.status in FAILED_COMMAND:
            return f"command {cmd.status}: {cmd.reason or ''}"[:500]
        return None
    if change["kind"] == "template":
        row = await session.scalar(
            select(ConfigDeploymentDevice).where(ConfigDeploymentDevice.deployment_id == handle)
        )
        if row is not None and row.status == "failed":
            return f"config failed: {row.reason or ''}"[:500]
    return None
