"""Config templates: immutable versions of a JSON body whose strings may hold ``${var}``
placeholders, with a schema of typed variables; rendering (pure, errors name the
variable); deployments of a version to a device, a group or the fleet, which write the
rendered keys into each device's twin ``config`` and track per-device status
(pending → applied | failed + reason, or superseded); and rollback to an earlier version.

A ``${name}`` that is a whole string takes the variable's typed value; inside a longer
string it is replaced by its text. ``$${`` writes a literal ``${``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from wrale.fleet.brain.bus import EventBus
from wrale.fleet.brain.models import Device
from wrale.fleet.brain.models.base import now as wall_now
from wrale.fleet.brain.models.templates import (
    ConfigDeployment,
    ConfigDeploymentDevice,
    ConfigTemplate,
    ConfigTemplateVersion,
)
from wrale.fleet.brain.services import audit, groups, twin
from wrale.fleet.brain.services.lookup import get_owned
from wrale.fleet.brain.services.principal import Principal, Role
from wrale.fleet.brain.services.template_status import contains as contains
from wrale.fleet.brain.services.template_status import (
    update_status_from_reported as update_status_from_reported,
)
from wrale.shared.errors import ConflictError, InvalidRequestError, NotFoundError

VAR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
PLACEHOLDER = re.compile(r"\$(\$)?\{([^}]*)\}")
TYPES = ("str", "int", "float", "bool")
SPEC_KEYS = ("type", "min", "max", "choices", "default", "required", "description")
TARGETS = ("device", "group", "fleet")
DEVICE_STATUSES = ("pending", "applied", "failed", "superseded")
MAX_VARIABLES = 100
MAX_STR = 1000
_UNSET = object()


# ----------------------------------------------------------------------------- pure


def _bad(name: str, message: str) -> InvalidRequestError:
    return InvalidRequestError(f"variables.{name}: {message}", variable=name)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def coerce(name: str, spec: Mapping[str, Any], value: Any) -> Any:
    """``value`` as variable ``name`` of ``spec`` wants it, or an error naming it."""
    kind = spec["type"]
    if kind == "bool":
        if not isinstance(value, bool):
            raise _bad(name, "must be true or false")
        out: Any = value
    elif kind == "str":
        if not isinstance(value, str):
            raise _bad(name, "must be a string")
        if len(value) > MAX_STR:
            raise _bad(name, f"at most {MAX_STR} characters")
        out = value
    elif kind == "int":
        if not _number(value) or (isinstance(value, float) and not value.is_integer()):
            raise _bad(name, "must be an integer")
        out = int(value)
    else:
        if not _number(value) or not math.isfinite(value):
            raise _bad(name, "must be a finite number")
        out = float(value)
    size = len(out) if kind == "str" else out
    if kind != "bool":
        if spec.get("min") is not None and size < spec["min"]:
            unit = " characters" if kind == "str" else ""
            raise _bad(name, f"must be at least {spec['min']:g}{unit}")
        if spec.get("max") is not None and size > spec["max"]:
            unit = " characters" if kind == "str" else ""
            raise _bad(name, f"must be at most {spec['max']:g}{unit}")
    if spec.get("choices") is not None and out not in spec["choices"]:
        raise _bad(name, f"must be one of {', '.join(json.dumps(c) for c in spec['choices'])}")
    return out


def check_schema(variables: Any) -> dict[str, dict[str, Any]]:
    """A normalised variables schema; errors name the variable."""
    if not isinstance(variables, dict):
        raise InvalidRequestError("variables: an object of name → {type, …}")
    if len(variables) > MAX_VARIABLES:
        raise InvalidRequestError(f"variables: at most {MAX_VARIABLES}")
    out: dict[str, dict[str, Any]] = {}
    for name, spec in variables.items():
        if not VAR_NAME.match(name):
            raise _bad(name, "names are a letter or _ then letters, digits or _ (max 64)")
        if not isinstance(spec, dict):
            raise _bad(name, "must be an object {type, min, max, choices, default, required}")
        unknown = sorted(set(spec) - set(SPEC_KEYS))
        if unknown:
            raise _bad(name, f"unknown key(s) {', '.join(unknown)}; known: {', '.join(SPEC_KEYS)}")
        kind = spec.get("type")
        if kind not in TYPES:
            raise _bad(name, f"type must be one of {', '.join(TYPES)}")
        clean: dict[str, Any] = {"type": kind}
        for bound in ("min", "max"):
            value = spec.get(bound)
            if value is None:
                continue
            if kind == "bool" or not _number(value) or not math.isfinite(value):
                raise _bad(name, f"{bound} must be a number (and only for str, int, float)")
            clean[bound] = value
        if "min" in clean and "max" in clean and clean["min"] > clean["max"]:
            raise _bad(name, "min must not exceed max")
        choices = spec.get("choices")
        if choices is not None:
            if not isinstance(choices, list) or not 0 < len(choices) <= 100:
                raise _bad(name, "choices must be a list of 1-100 values")
            bare = {"type": kind}
            clean["choices"] = [coerce(name, bare, c) for c in choices]
        required = spec.get("required")
        if required is not None and not isinstance(required, bool):
            raise _bad(name, "required must be true or false")
        if spec.get("default") is not None:
            clean["default"] = coerce(name, clean, spec["default"])
        clean["required"] = required if required is not None else "default" not in clean
        description = spec.get("description")
        if description is not None:
            if not isinstance(description, str) or len(description) > 255:
                raise _bad(name, "description must be a string of at most 255 characters")
            clean["description"] = description
        out[name] = clean
    return out


def placeholders(body: Any, path: str = "body") -> dict[str, str]:
    """Every variable a body refers to, with the first path that does."""
    found: dict[str, str] = {}
    if isinstance(body, str):
        for m in PLACEHOLDER.finditer(body):
            if m.group(1):
                continue
            name = m.group(2)
            if not VAR_NAME.match(name):
                raise InvalidRequestError(
                    f"{path}: ${{{name}}} is not a variable name (use $${{ for a literal ${{)",
                    path=path,
                )
            found.setdefault(name, path)
    elif isinstance(body, dict):
        for k, v in body.items():
            for name, where in placeholders(v, f"{path}.{k}").items():
                found.setdefault(name, where)
    elif isinstance(body, list):
        for i, v in enumerate(body):
            for name, where in placeholders(v, f"{path}.{i}").items():
                found.setdefault(name, where)
    return found


def check_template(body: Any, variables: Any) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """A body and schema that can be stored: an object with config-key names at the top,
    JSON we can keep, and every placeholder declared."""
    if not isinstance(body, dict) or not body:
        raise InvalidRequestError("body: a non-empty object (its keys become config keys)")
    twin.check_json(body, "body")
    for key in body:
        if not twin.CONFIG_KEY.match(key):
            raise InvalidRequestError(
                f"body.{key}: top-level keys are 1-64 letters, digits, _ . : -"
            )
    schema = check_schema(variables)
    for name, where in placeholders(body).items():
        if name not in schema:
            raise InvalidRequestError(
                f"{where}: ${{{name}}} is not declared in variables", variable=name
            )
    return body, schema


def resolve_values(schema: Mapping[str, Mapping[str, Any]], given: Any) -> dict[str, Any]:
    """Each variable's value: given (checked), else its default; required ones must have
    one. Unset optional variables are absent."""
    if given is None:
        given = {}
    if not isinstance(given, dict):
        raise InvalidRequestError("variables: an object of name → value")
    unknown = sorted(set(given) - set(schema))
    if unknown:
        raise _bad(unknown[0], f"not a variable of this version (variables: {', '.join(schema)})")
    values: dict[str, Any] = {}
    for name, spec in schema.items():
        if name in given and given[name] is not None:
            values[name] = coerce(name, spec, given[name])
        elif "default" in spec:
            values[name] = spec["default"]
        elif spec.get("required", True):
            raise _bad(name, "required (it has no default)")
    return values


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _substitute(value: Any, values: Mapping[str, Any]) -> Any:
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            r = _substitute(v, values)
            if r is not _UNSET:
                out[k] = r
        return out
    if isinstance(value, list):
        return [None if (r := _substitute(v, values)) is _UNSET else r for v in value]
    if not isinstance(value, str):
        return value
    whole = PLACEHOLDER.fullmatch(value)
    if whole and not whole.group(1):
        return values.get(whole.group(2), _UNSET)

    def sub(m: re.Match[str]) -> str:
        if m.group(1):
            return "${" + m.group(2) + "}"
        return _text(values[m.group(2)]) if m.group(2) in values else ""

    return PLACEHOLDER.sub(sub, value)


def render(body: Mapping[str, Any], schema: Mapping[str, Any], given: Any) -> dict[str, Any]:
    """The body with every placeholder replaced (pure); errors name the variable."""
    values = resolve_values(check_schema(dict(schema)), given)
    rendered = _substitute(dict(body), values)
    assert isinstance(rendered, dict)
    return rendered


# ----------------------------------------------------------------------------- views


def template_view(t: ConfigTemplate, latest: ConfigTemplateVersion | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": t.id,
        "name": t.name,
        "description": t.description,
        "latest_version": t.latest_version,
        "created_at": t.created_at,
        "updated_at": t.updated_at,
    }
    if latest is not None:
        out["latest"] = version_view(latest)
    return out


def version_view(v: ConfigTemplateVersion) -> dict[str, Any]:
    return {
        "template_id": v.template_id,
        "version": v.version,
        "body": v.body,
        "variables": v.variables,
        "note": v.note,
        "created_by": v.created_by,
        "created_at": v.created_at,
    }


def deployment_view(d: ConfigDeployment, counts: Mapping[str, int] | None = None) -> dict[str, Any]:
    return {
        "id": d.id,
        "template_id": d.template_id,
        "version": d.version,
        "target_type": d.target_type,
        "target_id": d.target_id or None,
        "variables": d.variables,
        "rendered": d.rendered,
        "rollback_of": d.rollback_of,
        "created_by": d.created_by,
        "created_at": d.created_at,
        "counts": {s: int((counts or {}).get(s, 0)) for s in DEVICE_STATUSES},
    }


def device_status_view(r: ConfigDeploymentDevice) -> dict[str, Any]:
    return {
        "id": r.id,
        "deployment_id": r.deployment_id,
        "device_id": r.device_id,
        "status": r.status,
        "reason": r.reason,
        "desired_version": r.desired_version,
        "updated_at": r.updated_at,
    }


async def counts(session: AsyncSession, deployment_ids: Sequence[str]) -> dict[str, dict[str, int]]:
    """Per deployment, how many of its devices are in each status."""
    out: dict[str, dict[str, int]] = {d: {} for d in deployment_ids}
    if not deployment_ids:
        return out
    rows = await session.execute(
        select(
            ConfigDeploymentDevice.deployment_id,
            ConfigDeploymentDevice.status,
            func.count(),
        )
        .where(ConfigDeploymentDevice.deployment_id.in_(list(deployment_ids)))
        .group_by(ConfigDeploymentDevice.deployment_id, ConfigDeploymentDevice.status)
    )
    for dep, status, n in rows:
        out[dep][status] = int(n)
    return out


# ----------------------------------------------------------------------------- templates


async def get_template(session: AsyncSession, tenant_id: str, template_id: str) -> ConfigTemplate:
    return await get_owned(session, ConfigTemplate, tenant_id, template_id, "config template")


async def get_version(
    session: AsyncSession, tenant_id: str, template_id: str, version: int | None = None
) -> ConfigTemplateVersion:
    """A version of the template (None: the latest)."""
    t = await get_template(session, tenant_id, template_id)
    number = t.latest_version if version is None else version
    row = await session.scalar(
        select(ConfigTemplateVersion).where(
            ConfigTemplateVersion.template_id == t.id, ConfigTemplateVersion.version == number
        )
    )
    if row is None:
        raise NotFoundError(
            f"config template {t.name!r} has no version {number} (latest: {t.latest_version})",
            version=number,
        )
    return row


async def _unique_name(session: AsyncSession, tenant_id: str, name: str) -> None:
    taken = await session.scalar(
        select(ConfigTemplate.id).where(
            ConfigTemplate.tenant_id == tenant_id, ConfigTemplate.name == name
        )
    )
    if taken:
        raise ConflictError(f"a config template named {name!r} already exists", name=name)


async def create_template(
    session: AsyncSession,
    p: Principal,
    name: str,
    body: Any,
    variables: Any,
    *,
    description: str | None = None,
    note: str | None = None,
) -> tuple[ConfigTemplate, ConfigTemplateVersion]:
    """A new template at version 1."""
    p.require(Role.OPERATOR, "creating config templates")
    clean_body, schema = check_template(body, variables)
    await _unique_name(session, p.tenant_id, name)
    at = wall_now()
    t = ConfigTemplate(
        tenant_id=p.tenant_id, name=name, description=description, latest_version=1, updated_at=at
    )
    session.add(t)
    await session.flush()
    v = ConfigTemplateVersion(
        tenant_id=p.tenant_id,
        template_id=t.id,
        version=1,
        body=clean_body,
        variables=schema,
        note=note,
        created_by=p.name,
    )
    session.add(v)
    await session.flush()
    audit.record(
        session,
        p,
        "config_template.create",
        resource_type="config_template",
        resource_id=t.id,
        after=template_view(t, v),
    )
    return t, v


async def add_version(
    session: AsyncSession,
    p: Principal,
    template_id: str,
    body: Any,
    variables: Any,
    note: str | None,
) -> ConfigTemplateVersion:
    """The template's next version (earlier ones never change)."""
    p.require(Role.OPERATOR, "changing config templates")
    t = await get_template(session, p.tenant_id, template_id)
    clean_body, schema = check_template(body, variables)
    t.latest_version += 1
    t.updated_at = wall_now()
    v = ConfigTemplateVersion(
        tenant_id=p.tenant_id,
        template_id=t.id,
        version=t.latest_version,
        body=clean_body,
        variables=schema,
        note=note,
        created_by=p.name,
    )
    session.add(v)
    await session.flush()
    audit.record(
        session,
        p,
        "config_template.version",
        resource_type="config_template",
        resource_id=t.id,
        after=version_view(v),
    )
    return v


async def update_template(
    session: AsyncSession, p: Principal, template_id: str, changes: dict[str, Any]
) -> ConfigTemplate:
    """Rename or describe (the body changes only by adding a version)."""
    p.require(Role.OPERATOR, "changing config templates")
    t = await get_template(session, p.tenant_id, template_id)
    before = template_view(t)
    name = changes.get("name")
    if name is not None and name != t.name:
        await _unique_name(session, p.tenant_id, name)
        t.name = name
    if "description" in changes:
        t.description = changes["description"]
    if before != template_view(t):
        t.updated_at = wall_now()
        audit.record(
            session,
            p,
            "config_template.update",
            resource_type="config_template",
            resource_id=t.id,
            before=before,
            after=template_view(t),
        )
    return t


async def delete_template(session: AsyncSession, p: Principal, template_id: str) -> None:
    """Delete the template, its versions and deployment records (admin). Config already
    written into twins stays there."""
    p.require(Role.ADMIN, "deleting config templates")
    t = await get_template(session, p.tenant_id, template_id)
    audit.record(
        session,
        p,
        "config_template.delete",
        resource_type="config_template",
        resource_id=t.id,
        before=template_view(t),
    )
    await session.delete(t)


# ----------------------------------------------------------------------------- deployments


async def get_deployment(
    session: AsyncSession, tenant_id: str, template_id: str, deployment_id: str
) -> ConfigDeployment:
    dep = await get_owned(session, ConfigDeployment, tenant_id, deployment_id, "deployment")
    if dep.template_id != template_id:
        raise NotFoundError(f"no deployment {deployment_id}", deployment_id=deployment_id)
    return dep


async def _targets(
    session: AsyncSession, tenant_id: str, target_type: str, target_id: str | None
) -> tuple[str, list[Device]]:
    if target_type not in TARGETS:
        raise InvalidRequestError(f"target_type: one of {', '.join(TARGETS)}", field="target_type")
    if target_type == "fleet":
        if target_id:
            raise InvalidRequestError("target_id: the fleet takes none", field="target_id")
        rows = await session.scalars(
            select(Device).where(Device.tenant_id == tenant_id).order_by(Device.id)
        )
        devices = list(rows)
        key = ""
    elif not target_id:
        raise InvalidRequestError(f"target_id: the {target_type}'s id", field="target_id")
    elif target_type == "group":
        devices = await groups.devices_in_group(session, tenant_id, target_id, recursive=True)
        key = target_id
    else:
        devices = [await get_owned(session, Device, tenant_id, target_id, "device")]
        key = target_id
    return key, [d for d in devices if d.status != "decommissioned"]


async def _previous_keys(session: AsyncSession, template_id: str, device_id: str) -> set[str]:
    """The config keys this template last wrote into the device's twin."""
    rendered = await session.scalar(
        select(ConfigDeployment.rendered)
        .join(ConfigDeploymentDevice, ConfigDeploymentDevice.deployment_id == ConfigDeployment.id)
        .where(
            ConfigDeploymentDevice.device_id == device_id,
            ConfigDeployment.template_id == template_id,
        )
        .order_by(ConfigDeployment.id.desc())
        .limit(1)
    )
    return set(rendered or {})


async def _supersede(
    session: AsyncSession, dep: ConfigDeployment, device_id: str, at: float
) -> None:
    """Pending rows of the device that this deployment overwrites can never apply."""
    rows = await session.execute(
        select(ConfigDeploymentDevice, ConfigDeployment.rendered)
        .join(ConfigDeployment, ConfigDeployment.id == ConfigDeploymentDevice.deployment_id)
        .where(
            ConfigDeploymentDevice.device_id == device_id,
            ConfigDeploymentDevice.status == "pending",
            ConfigDeploymentDevice.deployment_id != dep.id,
        )
    )
    for row, rendered in rows:
        if row.template_id == dep.template_id or set(rendered or {}) & set(dep.rendered):
            row.status = "superseded"
            row.reason = f"superseded by deployment {dep.id}"
            row.updated_at = at


async def deploy(
    session: AsyncSession,
    p: Principal,
    template_id: str,
    *,
    target_type: str,
    target_id: str | None,
    variables: Any = None,
    version: int | None = None,
    bus: EventBus | None = None,
    rollback_of: str | None = None,
) -> ConfigDeployment:
    """Render a version with ``variables`` and write it into the config of every target
    device's twin (bumping its desired version); each device starts ``pending``.
    Decommissioned devices are left out."""
    p.require(Role.OPERATOR, "deploying config templates")
    v = await get_version(session, p.tenant_id, template_id, version)
    rendered = render(v.body, v.variables, variables)
    key, devices = await _targets(session, p.tenant_id, target_type, target_id)
    dep = ConfigDeployment(
        tenant_id=p.tenant_id,
        template_id=v.template_id,
        version=v.version,
        target_type=target_type,
        target_id=key,
        variables=dict(variables or {}),
        rendered=rendered,
        rollback_of=rollback_of,
        created_by=p.name,
    )
    session.add(dep)
    await session.flush()
    at = wall_now()
    for device in devices:
        remove = await _previous_keys(session, v.template_id, device.id) - set(rendered)
        t = await twin.set_config(session, device, rendered, remove, bus)
        await _supersede(session, dep, device.id, at)
        row = ConfigDeploymentDevice(
            tenant_id=p.tenant_id,
            deployment_id=dep.id,
            device_id=device.id,
            template_id=v.template_id,
            status="pending",
            desired_version=t.desired_version,
            updated_at=at,
        )
        if t.reported_version and contains(t.reported.get("config"), rendered):
            row.status = "applied"
        session.add(row)
    await session.flush()
    audit.record(
        session,
        p,
        "config_template.rollback" if rollback_of else "config_template.deploy",
        resource_type="config_template",
        resource_id=v.template_id,
        after={**deployment_view(dep), "devices": len(devices)},
    )
    return dep


async def rollback(
    session: AsyncSession,
    p: Principal,
    template_id: str,
    deployment_id: str,
    *,
    version: int | None = None,
    variables: Any = None,
    bus: EventBus | None = None,
) -> ConfigDeployment:
    """Deploy an earlier version to the deployment's target. Without ``version``: the
    version deployed to that target before this one (with its variables), else the
    version just below this one."""
    p.require(Role.OPERATOR, "rolling back config templates")
    dep = await get_deployment(session, p.tenant_id, template_id, deployment_id)
    chosen_vars = variables
    if version is None:
        prior = await session.scalar(
            select(ConfigDeployment)
            .where(
                ConfigDeployment.template_id == dep.template_id,
                ConfigDeployment.target_type == dep.target_type,
                ConfigDeployment.target_id == dep.target_id,
                ConfigDeployment.version != dep.version,
                ConfigDeployment.id < dep.id,
            )
            .order_by(ConfigDeployment.id.desc())
            .limit(1)
        )
        if prior is not None:
            version = prior.version
            chosen_vars = prior.variables if variables is None else variables
        elif dep.version > 1:
            version = dep.version - 1
        else:
            raise ConflictError(
                "this deployment is of version 1 and nothing else was deployed to its target "
                "before: there is no earlier version to roll back to"
            )
    if chosen_vars is None:
        chosen_vars = dep.variables
    return await deploy(
        session,
        p,
        template_id,
        target_type=dep.target_type,
        target_id=dep.target_id or None,
        variables=chosen_vars,
        version=version,
        bus=bus,
        rollback_of=dep.id,
    )
