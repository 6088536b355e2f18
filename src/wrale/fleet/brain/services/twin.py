"""Device twins: the desired document composed from the effective policies and the
operator's explicit overrides (changed by RFC 7386 merge patches under a version
precondition), the device's reported document, and the per-path diff between the two.

``merge_patch``, ``compose``, ``diff`` and the shape checks are pure; the rest stores twins
and publishes ``twin.desired`` / ``twin.reported`` on the bus once the change is committed.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from wrale.fleet.brain.bus import EventBus, publish_after_commit
from wrale.fleet.brain.models import Device
from wrale.fleet.brain.models.base import new_id
from wrale.fleet.brain.models.base import now as wall_now
from wrale.fleet.brain.models.twin import DeviceTwin
from wrale.fleet.brain.services import audit, policies
from wrale.fleet.brain.services.lookup import get_owned
from wrale.fleet.brain.services.principal import Principal, Role
from wrale.shared.errors import ConflictError, InvalidRequestError
from wrale.shared.policy import SecurityLevel

log = logging.getLogger("wrale.central.twin")

POLICY_SECTIONS = tuple(policies.KINDS)  # thermal, power, security, sampling
EXTRA_SECTIONS = ("fan", "tamper", "gpio", "config")
SECTIONS = (*POLICY_SECTIONS, *EXTRA_SECTIONS)
MAX_DEPTH = 16
MAX_CONFIG_BYTES = 64 * 1024
MAX_GPIO_LINES = 64
CONFIG_KEY = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
GPIO_LINE = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")


# ----------------------------------------------------------------------------- after commit

# ----------------------------------------------------------------------------- pure


def check_json(value: Any, path: str, depth: int = 0) -> None:
    """A JSON value we can store on both databases: finite numbers, bounded nesting."""
    if depth > MAX_DEPTH:
        raise InvalidRequestError(f"{path}: nested more than {MAX_DEPTH} levels", path=path)
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidRequestError(f"{path}: numbers must be finite", path=path)
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise InvalidRequestError(f"{path}: keys must be strings", path=path)
            check_json(v, f"{path}.{k}", depth + 1)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            check_json(v, f"{path}.{i}", depth + 1)
    elif value is not None and not isinstance(value, str | int | float | bool):
        raise InvalidRequestError(f"{path}: not a JSON value", path=path)


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: objects merge key by key, ``null`` deletes a key,
    anything else (lists included) replaces. Returns a new value; inputs are not changed."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def deep_merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """``over`` laid on ``base``: objects merge recursively, other values replace."""
    out = copy.deepcopy(dict(base))
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def compose(
    effective: Mapping[str, Mapping[str, Any]], overrides: Mapping[str, Any]
) -> dict[str, Any]:
    """The desired document: each policy section's effective document with the explicit
    values on top; fan, tamper and gpio only when set; config always (empty: none)."""
    doc: dict[str, Any] = {}
    for kind in POLICY_SECTIONS:
        base = effective.get(kind) or policies.defaults(kind)
        doc[kind] = deep_merge(base, overrides.get(kind) or {})
    for section in ("fan", "tamper", "gpio"):
        if section in overrides:
            doc[section] = copy.deepcopy(overrides[section])
    doc["config"] = copy.deepcopy(overrides.get("config") or {})
    return doc


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FanSection(_Section):
    """A fan override the agent holds for ``duration_s`` (metal still enforces the floor)."""

    override_pct: float | None = Field(default=None, ge=0, le=100)
    duration_s: float = Field(default=300.0, ge=1, le=86_400)


class TamperSection(_Section):
    armed: bool | None = None
    level: SecurityLevel | None = None


class GpioLevel(_Section):
    value: int = Field(ge=0, le=1)


class GpioPwm(_Section):
    frequency_hz: float = Field(gt=0, le=1_000_000)
    duty_percent: float = Field(ge=0, le=100)


def _first_error(exc: ValidationError, prefix: str) -> InvalidRequestError:
    err = exc.errors()[0]
    where = ".".join([prefix, *(str(p) for p in err.get("loc", ()))])
    return InvalidRequestError(f"desired.{where}: {err['msg']}", path=where)


def _strict(model: type[BaseModel], value: Any, prefix: str) -> None:
    """Validate ``value`` as JSON in strict mode: no coercion ("70" is not a number)."""
    if not isinstance(value, dict):
        raise InvalidRequestError(f"desired.{prefix}: must be an object", path=prefix)
    try:
        model.model_validate_json(json.dumps(value), strict=True)
    except ValidationError as exc:
        raise _first_error(exc, prefix) from None


def check_section(name: str, value: Any) -> None:
    """The shape of one section of the overrides (or of a composed policy section);
    ``InvalidRequestError`` names the path (``desired.thermal.cpu_warning_c: …``)."""
    check_json(value, f"desired.{name}")
    if name in policies.KINDS:
        _strict(policies.KINDS[name], value, name)
    elif name == "fan":
        _strict(FanSection, value, name)
    elif name == "tamper":
        _strict(TamperSection, value, name)
    elif name == "gpio":
        if not isinstance(value, dict) or len(value) > MAX_GPIO_LINES:
            raise InvalidRequestError(
                f"desired.gpio: an object of at most {MAX_GPIO_LINES} lines", path="gpio"
            )
        for line, setting in value.items():
            if not GPIO_LINE.match(line):
                raise InvalidRequestError(
                    f"desired.gpio.{line}: line names are 1-32 letters, digits, _ . -",
                    path=f"gpio.{line}",
                )
            pwm = isinstance(setting, dict) and "value" not in setting
            _strict(GpioPwm if pwm else GpioLevel, setting, f"gpio.{line}")
    elif name == "config":
        if not isinstance(value, dict):
            raise InvalidRequestError("desired.config: must be an object", path="config")
        for key in value:
            if not CONFIG_KEY.match(key):
                raise InvalidRequestError(
                    f"desired.config.{key}: keys are 1-64 letters, digits, _ . : -",
                    path=f"config.{key}",
                )
        if len(json.dumps(value)) > MAX_CONFIG_BYTES:
            raise InvalidRequestError(
                f"desired.config: larger than {MAX_CONFIG_BYTES} bytes", path="config"
            )
    else:
        raise InvalidRequestError(
            f"desired.{name}: unknown section (sections: {', '.join(SECTIONS)})", path=name
        )


def apply_patch(overrides: Mapping[str, Any], patch: Any) -> tuple[dict[str, Any], set[str]]:
    """The overrides after ``patch`` and the sections it touched (shapes checked)."""
    if not isinstance(patch, dict):
        raise InvalidRequestError("desired: a JSON merge patch object", path="")
    for name, value in patch.items():
        if name not in SECTIONS:
            raise InvalidRequestError(
                f"desired.{name}: unknown section (sections: {', '.join(SECTIONS)})", path=name
            )
        if value is not None and not isinstance(value, dict):
            raise InvalidRequestError(
                f"desired.{name}: an object (or null to drop the section)", path=name
            )
        check_json(value, f"desired.{name}")
    result = merge_patch(dict(overrides), patch)
    for name in patch:
        if name in result and name not in POLICY_SECTIONS:
            check_section(name, result[name])
    return result, set(patch)


def same_json(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(same_json(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_json(a[k], b[k]) for k in a)
    return bool(a == b)


def _rejected_reason(path: str, rejected: Mapping[str, str]) -> str | None:
    for where, why in rejected.items():
        if where == path or path.startswith(f"{where}.") or where.startswith(f"{path}."):
            return why
    return None


def diff(
    desired: Mapping[str, Any], reported: Mapping[str, Any], rejected: Mapping[str, str]
) -> list[dict[str, Any]]:
    """Every leaf of ``desired`` whose reported value differs or is missing, with the
    device's reason when it rejected it. Lists compare whole; extra reported keys
    (hardware facts, agent version) are not differences."""
    out: list[dict[str, Any]] = []

    def walk(path: str, want: Any, have: Any, present: bool) -> None:
        if isinstance(want, dict) and want:
            for key, value in want.items():
                inside = present and isinstance(have, dict) and key in have
                walk(
                    f"{path}.{key}" if path else key,
                    value,
                    have.get(key) if inside else None,
                    inside,
                )
            return
        if isinstance(want, dict):  # an empty object asks for nothing
            return
        if present and same_json(want, have):
            return
        out.append(
            {
                "path": path,
                "desired": want,
                "reported": have if present else None,
                "missing": not present,
                "rejected": _rejected_reason(path, rejected),
            }
        )

    walk("", dict(desired), dict(reported), True)
    return out


def in_sync(t: DeviceTwin, changes: list[dict[str, Any]] | None = None) -> bool:
    """The device has applied the current desired version, rejected nothing, and reports
    every desired value."""
    pending = diff(t.desired, t.reported, t.rejected) if changes is None else changes
    return (
        t.reported_version > 0
        and t.applied_desired_version >= t.desired_version
        and not t.rejected
        and not pending
    )


def twin_view(t: DeviceTwin) -> dict[str, Any]:
    changes = diff(t.desired, t.reported, t.rejected)
    return {
        "device_id": t.device_id,
        "desired": {"version": t.desired_version, "doc": t.desired},
        "reported": {"version": t.reported_version, "doc": t.reported, "at": t.reported_at},
        "overrides": t.overrides,
        "applied_desired_version": t.applied_desired_version,
        "rejected": t.rejected,
        "in_sync": in_sync(t, changes),
        "diff": changes,
        "updated_at": t.updated_at,
    }


# ----------------------------------------------------------------------------- storage


async def _twin_row(session: AsyncSession, device: Device, *, lock: bool) -> DeviceTwin:
    """The device's twin row (created empty, at version 0, if missing); ``lock`` takes
    the row lock (PostgreSQL) so concurrent writers queue instead of losing an update."""
    stmt = select(DeviceTwin).where(DeviceTwin.device_id == device.id)
    stmt = stmt.execution_options(populate_existing=True)
    if lock:
        stmt = stmt.with_for_update()
    row = await session.scalar(stmt)
    if row is not None:
        return row
    at = wall_now()
    is_pg = session.get_bind().dialect.name == "postgresql"
    insert = (pg_insert if is_pg else sqlite_insert)(DeviceTwin).values(
        id=new_id(),
        tenant_id=device.tenant_id,
        device_id=device.id,
        desired={},
        desired_version=0,
        overrides={},
        reported={},
        reported_version=0,
        applied_desired_version=0,
        rejected={},
        created_at=at,
        updated_at=at,
    )
    await session.execute(insert.on_conflict_do_nothing(index_elements=["device_id"]))
    row = await session.scalar(stmt)
    assert row is not None  # inserted above, or by a concurrent writer
    return row


async def _effective(session: AsyncSession, device: Device) -> dict[str, dict[str, Any]]:
    eff = await policies.effective_policy(session, device.tenant_id, device.id)
    return {kind: k["document"] for kind, k in eff["kinds"].items()}


def _set_desired(
    session: AsyncSession, t: DeviceTwin, doc: dict[str, Any], bus: EventBus | None
) -> bool:
    """Store ``doc`` as desired, bumping the version, if it differs; publishes."""
    if t.desired_version > 0 and same_json(t.desired, doc):
        return False
    t.desired = doc
    t.desired_version += 1
    t.updated_at = wall_now()
    publish_after_commit(
        session,
        bus,
        t.tenant_id,
        "twin.desired",
        {"device_id": t.device_id, "version": t.desired_version},
    )
    return True


async def recompose(
    session: AsyncSession, device: Device, bus: EventBus | None = None
) -> DeviceTwin:
    """Compose the device's desired document again (creating its twin if missing)."""
    return (await _current(session, device, bus, lock=False))[0]


async def _changed(session: AsyncSession, device: Device, bus: EventBus | None) -> bool:
    before = await session.scalar(
        select(DeviceTwin.desired_version).where(DeviceTwin.device_id == device.id)
    )
    t = await recompose(session, device, bus)
    return t.desired_version != (before or 0)


async def _current(
    session: AsyncSession, device: Device, bus: EventBus | None, *, lock: bool
) -> tuple[DeviceTwin, dict[str, dict[str, Any]]]:
    """The twin with its desired document composed now, and the effective policy
    documents it was composed from. The row lock is taken when writing anyway, or when
    the composed document changed (reads stay lock-free)."""
    effective = await _effective(session, device)
    t = await _twin_row(session, device, lock=lock)
    doc = compose(effective, t.overrides)
    if t.desired_version == 0 or not same_json(t.desired, doc):
        if not lock:
            t = await _twin_row(session, device, lock=True)
            doc = compose(effective, t.overrides)
        _set_desired(session, t, doc, bus)
    return t, effective


async def desired_for(
    session: AsyncSession, device: Device, bus: EventBus | None = None
) -> tuple[int, dict[str, Any]]:
    """The desired version and document to send to ``device`` (composed now, so group
    membership changed since the last policy change is included)."""
    t = await recompose(session, device, bus)
    return t.desired_version, t.desired


async def refresh(
    session: AsyncSession,
    tenant_id: str,
    device_ids: Iterable[str] | None = None,
    bus: EventBus | None = None,
) -> int:
    """Recompose the twins of ``device_ids`` (None: every device of the tenant) after a
    policy change; returns how many desired documents changed (each bumped once)."""
    stmt = select(Device).where(Device.tenant_id == tenant_id)
    if device_ids is not None:
        ids = sorted(set(device_ids))
        if not ids:
            return 0
        stmt = stmt.where(Device.id.in_(ids))
    changed = 0
    for device in list(await session.scalars(stmt.order_by(Device.id))):
        changed += await _changed(session, device, bus)
    return changed


async def get_twin(
    session: AsyncSession, tenant_id: str, device_id: str, bus: EventBus | None = None
) -> DeviceTwin:
    device = await get_owned(session, Device, tenant_id, device_id, "device")
    return await recompose(session, device, bus)


def _validate_composed(doc: Mapping[str, Any], touched: Iterable[str]) -> None:
    """Each policy section the write touched must be a valid policy once composed."""
    for name in touched:
        if name in POLICY_SECTIONS:
            check_section(name, doc[name])


async def patch_twin(
    session: AsyncSession,
    p: Principal,
    device_id: str,
    version: int,
    patch: Any,
    bus: EventBus | None = None,
) -> DeviceTwin:
    """Apply an RFC 7386 merge patch to the device's explicit desired values, if the
    client saw the current desired ``version`` (else 409 with the current one)."""
    p.require(Role.OPERATOR, "changing a device's desired state")
    device = await get_owned(session, Device, p.tenant_id, device_id, "device")
    t, effective = await _current(session, device, bus, lock=True)
    if version != t.desired_version:
        raise ConflictError(
            f"the twin's desired state is at version {t.desired_version}, not {version}: "
            "read it again and retry",
            version=t.desired_version,
        )
    overrides, touched = apply_patch(t.overrides, patch)
    doc = compose(effective, overrides)
    _validate_composed(doc, touched)
    before = {"version": t.desired_version, "overrides": t.overrides}
    t.overrides = overrides
    t.updated_at = wall_now()
    _set_desired(session, t, doc, bus)
    audit.record(
        session,
        p,
        "twin.update",
        resource_type="device",
        resource_id=device.id,
        before=before,
        after={"version": t.desired_version, "overrides": overrides},
        details={"patch": patch},
    )
    return t


async def set_config(
    session: AsyncSession,
    device: Device,
    values: Mapping[str, Any],
    remove: Iterable[str] = (),
    bus: EventBus | None = None,
) -> DeviceTwin:
    """Replace config keys of the device's explicit desired values (config templates):
    drop ``remove``, then set each key of ``values``. The caller audits."""
    t, effective = await _current(session, device, bus, lock=True)
    gone = set(remove)
    config = {k: v for k, v in (t.overrides.get("config") or {}).items() if k not in gone}
    config.update(copy.deepcopy(dict(values)))
    check_section("config", config)
    overrides = {**t.overrides, "config": config}
    if not config:
        overrides.pop("config")
    t.overrides = overrides
    _set_desired(session, t, compose(effective, overrides), bus)
    return t


async def agent_connected(session: AsyncSession, device: Device, reported_version: int) -> None:
    """A new session says the agent's reported version: below the stored one means its
    store was reset (a reinstalled board), so its counter restarts and the next report is
    accepted instead of being ignored as stale."""
    t = await _twin_row(session, device, lock=True)
    if reported_version < t.reported_version:
        log.info(
            "device %s: the agent's reported version restarted at %d (was %d)",
            device.id,
            reported_version,
            t.reported_version,
        )
        t.reported_version = reported_version


async def record_reported(
    session: AsyncSession,
    device: Device,
    version: int,
    doc: dict[str, Any],
    applied_desired_version: int,
    rejected: dict[str, str],
    now: float,
    bus: EventBus | None = None,
) -> None:
    """Store what the device reports; a version at or below the stored one is stale
    (a redelivery or a reordering) and is ignored."""
    t = await _twin_row(session, device, lock=True)
    if version <= t.reported_version:
        log.debug(
            "device %s: reported version %d is not newer than %d; ignored",
            device.id,
            version,
            t.reported_version,
        )
        return
    if t.desired_version == 0:
        _set_desired(session, t, compose(await _effective(session, device), t.overrides), bus)
    t.reported = dict(doc)
    t.reported_version = version
    t.applied_desired_version = applied_desired_version
    t.rejected = dict(rejected)
    t.reported_at = now
    if rejected:
        log.info("device %s rejected desired values: %s", device.id, rejected)
    from wrale.fleet.brain.services import templates  # it imports this module

    await templates.update_status_from_reported(
        session, device, t.reported, t.rejected, applied_desired_version, now
    )
    publish_after_commit(
        session,
        bus,
        device.tenant_id,
        "twin.reported",
        {
            "device_id": device.id,
            "version": version,
            "applied_desired_version": applied_desired_version,
            "in_sync": in_sync(t),
        },
    )


async def reported_of(session: AsyncSession, device_id: str) -> dict[str, Any]:
    """The last reported document of a device ({} before its first report)."""
    doc = await session.scalar(select(DeviceTwin.reported).where(DeviceTwin.device_id == device_id))
    return dict(doc or {})
