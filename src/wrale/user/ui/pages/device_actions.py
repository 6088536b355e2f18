"""The device page's writes: the twin's fan profile and override, commands and their
cancellation, diagnostics runs and alert acknowledgements; each through a brain service,
answered with the section it changed."""

from __future__ import annotations

import json
import math
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncSession

from wrale.fleet.brain.models import Device
from wrale.fleet.brain.services import alerts as alerts_svc
from wrale.fleet.brain.services import command_rules, device_view
from wrale.fleet.brain.services import commands as commands_svc
from wrale.fleet.brain.services import twin as twin_svc
from wrale.fleet.brain.services.alert_rules import parse_duration
from wrale.shared.errors import ConflictError, InvalidRequestError, NotFoundError
from wrale.shared.policy import ThermalPolicy
from wrale.user.api.deps import StateDep
from wrale.user.ui.pages.device_panels import as_number
from wrale.user.ui.pages.device_sections import (
    BASE,
    MAX_ARGS,
    PROFILES,
    Ctx,
    alerts_ctx,
    answer,
    commands_ctx,
    diagnostics_ctx,
    form_fields,
    int_or_none,
    owned_device,
    twin_ctx,
)
from wrale.user.ui.web import OperatorDep, SessionDep, Viewer

router = APIRouter(include_in_schema=False)


async def _twin_write(
    request: Request,
    session: AsyncSession,
    viewer: Viewer,
    device_id: str,
    bus: Any,
    version: int | None,
    patch: dict[str, Any] | None,
    errors: dict[str, str],
    form: dict[str, str],
    done: str,
) -> Response:
    """Apply ``patch`` under the form's desired ``version``; field errors answer 422, a
    stale version 409 with the fresh twin, success the twin with a notice."""
    status, message, notice = 200, None, None
    if version is None and not errors:
        message, status = "The form has no twin version; reload the page and try again.", 422
    if errors or patch is None:
        status = 422
    if status == 200:
        assert version is not None  # checked above
        assert patch is not None
        try:
            t = await twin_svc.patch_twin(session, viewer.principal, device_id, version, patch, bus)
            notice = f"{done} (desired version {t.desired_version})"
        except ConflictError as exc:
            status, message = 409, exc.message
        except InvalidRequestError as exc:
            path = str(exc.details.get("path") or "")
            field = {"fan.duration_s": "duration", "thermal.profile": "profile"}.get(
                path, "override_pct" if path.startswith("fan") else "profile"
            )
            errors[field], status = exc.message, 422
    if status != 200:
        await session.rollback()
        form = form if status == 422 else {}

    async def build(device: Device) -> Ctx:
        t = await twin_svc.get_twin(session, viewer.tenant_id, device.id, bus)
        ctx = twin_ctx(t, errors=errors, message=message, notice=notice, form=form)
        return {"device": device, **ctx}

    return await answer(
        request, session, viewer, device_id, bus, "twin", build, status=status, notice=notice
    )


@router.post(BASE + "/twin/profile")
async def set_profile(
    request: Request, device_id: str, viewer: OperatorDep, session: SessionDep, state: StateDep
) -> Response:
    """The fan profile form: quiet / balance / cool / max, under the desired version."""
    form = await form_fields(request)
    profile = form.get("profile", "").strip()
    errors: dict[str, str] = {}
    if profile not in PROFILES:
        errors["profile"] = f"Choose a fan profile: {', '.join(PROFILES)}."
    patch = {"thermal": {"profile": profile}}
    return await _twin_write(
        request,
        session,
        viewer,
        device_id,
        state.bus,
        int_or_none(form.get("version")),
        patch,
        errors,
        {},
        f"Fan profile set to {profile}",
    )


@router.post(BASE + "/twin/fan")
async def set_fan_override(
    request: Request, device_id: str, viewer: OperatorDep, session: SessionDep, state: StateDep
) -> Response:
    """The fan override form (percent and how long), or ``clear`` to drop the override."""
    form = await form_fields(request)
    version = int_or_none(form.get("version"))
    if form.get("clear"):
        return await _twin_write(
            request, session, viewer, device_id, state.bus, version, {"fan": None}, {}, {},
            "Fan override cleared",
        )  # fmt: skip
    values = {"override_pct": form.get("override_pct", "").strip()}
    values["duration"] = form.get("duration", "").strip() or "5m"
    errors: dict[str, str] = {}
    pct: float | None = None
    try:
        pct = float(values["override_pct"])
    except ValueError:
        errors["override_pct"] = "Enter the fan duty as a number from 0 to 100 %."
    else:
        if not (math.isfinite(pct) and 0 <= pct <= 100):
            errors["override_pct"] = (
                f"The fan duty must be from 0 to 100 %, not {values['override_pct']} %."
            )
    duration: float | None = None
    device = await owned_device(session, viewer, device_id)
    t = await twin_svc.get_twin(session, viewer.tenant_id, device.id, state.bus)
    thermal = (t.desired or {}).get("thermal") or {}
    longest = as_number(thermal.get("max_override_s")) or ThermalPolicy().max_override_s
    try:
        duration = parse_duration(values["duration"])
    except InvalidRequestError:
        errors["duration"] = "Enter a duration such as 90s, 5m or 1h."
    else:
        if not (math.isfinite(duration) and 1 <= duration <= longest):
            errors["duration"] = (
                f"The override may last from 1 s to {longest:g} s (the thermal policy's "
                "max_override_s)."
            )
    patch = None
    if not errors and pct is not None and duration is not None:
        patch = {"fan": {"override_pct": pct, "duration_s": duration}}
    what = f"Fan override {pct:g} % for {values['duration']}" if pct is not None else ""
    return await _twin_write(
        request, session, viewer, device_id, state.bus, version, patch, errors, values, what
    )


@router.post(BASE + "/commands")
async def send_command(
    request: Request, device_id: str, viewer: OperatorDep, session: SessionDep, state: StateDep
) -> Response:
    """The command form: an operation, its arguments as a JSON object, an optional timeout."""
    form = await form_fields(request)
    values = {k: form.get(k, "").strip() for k in ("op", "args", "timeout")}
    errors: dict[str, str] = {}
    status, message, notice = 200, None, None
    op = values["op"]
    if op not in command_rules.OPS:
        errors["op"] = f"Choose an operation ({', '.join(command_rules.OPS)})."
    args: Any = {}
    if values["args"]:
        try:
            args = json.loads(values["args"][:MAX_ARGS])
        except ValueError:
            errors["args"] = 'The arguments must be a JSON object, e.g. {"percent": 60}.'
        else:
            if not isinstance(args, dict):
                errors["args"] = 'The arguments must be a JSON object, e.g. {"percent": 60}.'
    timeout: float | None = None
    if values["timeout"]:
        try:
            timeout = parse_duration(values["timeout"])
        except InvalidRequestError:
            errors["timeout"] = "Enter a timeout such as 90s, 5m or 1h (or leave it empty)."
    if errors:
        status = 422
    else:
        try:
            cmd = await commands_svc.create_command(
                session, viewer.principal, device_id, op, args, timeout_s=timeout, bus=state.bus
            )
            notice = f"Queued {cmd.op} (command {cmd.id[:8]}…)"
        except InvalidRequestError as exc:
            field = str(exc.details.get("field") or "args")
            key = "op" if field == "op" else "timeout" if field == "timeout_s" else "args"
            errors[key], status = exc.message, 422
        except ConflictError as exc:  # held, tamper lockdown, a sim_* op on a real board
            message, status = exc.message, 409
    if status != 200:
        await session.rollback()

    async def build(device: Device) -> Ctx:
        t = await twin_svc.get_twin(session, viewer.tenant_id, device.id, state.bus)
        ctx = await commands_ctx(
            session,
            viewer,
            device,
            t,
            errors=errors,
            message=message,
            notice=notice,
            form=values if status != 200 else None,
        )
        return {"device": device, **ctx}

    return await answer(
        request, session, viewer, device_id, state.bus, "commands", build,
        status=status, notice=notice,
    )  # fmt: skip


async def _own_command(session: AsyncSession, viewer: Viewer, device_id: str, cid: str) -> None:
    cmd = await commands_svc.get_command(session, viewer.tenant_id, cid)
    if cmd.device_id != device_id:
        raise NotFoundError(f"no command {cid} on this device", command_id=cid)


@router.post(BASE + "/commands/{command_id:wrale_id}/cancel")
async def cancel_command(
    request: Request,
    device_id: str,
    command_id: str,
    viewer: OperatorDep,
    session: SessionDep,
    state: StateDep,
) -> Response:
    await owned_device(session, viewer, device_id)
    await _own_command(session, viewer, device_id, command_id)
    await commands_svc.cancel(session, viewer.principal, command_id, state.bus)

    async def build(device: Device) -> Ctx:
        t = await twin_svc.get_twin(session, viewer.tenant_id, device.id, state.bus)
        return {"device": device, **await commands_ctx(session, viewer, device, t)}

    return await answer(
        request, session, viewer, device_id, state.bus, "commands", build,
        notice=f"Command {command_id[:8]}… cancelled",
    )  # fmt: skip


@router.post(BASE + "/diagnostics")
async def run_diagnostics(
    request: Request, device_id: str, viewer: OperatorDep, session: SessionDep, state: StateDep
) -> Response:
    """Queue ``run_diag`` (every test the board has)."""
    cmd = await commands_svc.create_command(
        session, viewer.principal, device_id, device_view.DIAG_OP, {}, bus=state.bus
    )
    notice = f"Diagnostics queued (command {cmd.id[:8]}…)"

    async def build(device: Device) -> Ctx:
        return {"device": device, **await diagnostics_ctx(session, device, notice)}

    return await answer(
        request, session, viewer, device_id, state.bus, "diagnostics", build, notice=notice
    )


@router.post(BASE + "/alerts/{alert_id:wrale_id}/ack")
async def ack_alert(
    request: Request,
    device_id: str,
    alert_id: str,
    viewer: OperatorDep,
    session: SessionDep,
    state: StateDep,
) -> Response:
    device = await owned_device(session, viewer, device_id)
    alert = await alerts_svc.get_alert(session, viewer.tenant_id, alert_id)
    if alert.device_id != device.id:
        raise NotFoundError(f"no alert {alert_id} on this device", alert_id=alert_id)
    note = (await form_fields(request)).get("note", "").strip()[:1000] or None
    await alerts_svc.acknowledge(session, viewer.principal, alert_id, note, state.bus)

    async def build(device: Device) -> Ctx:
        return {"device": device, **await alerts_ctx(session, device)}

    return await answer(
        request, session, viewer, device_id, state.bus, "alerts", build,
        notice=f"Alert acknowledged: {alert.rule_name}",
    )  # fmt: skip
