"""The alert-rule editor's contexts and answers: the form checked against the
tenant's devices, racks, groups and channels, the scopes' choices and labels, a rule's row, the
form page, and a rule saved through ``services.alerts``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from wrale.fleet.brain.models import Rack, Zone
from wrale.fleet.brain.models.alerts import AlertRule, NotificationChannel
from wrale.fleet.brain.models.base import now as wall_now
from wrale.fleet.brain.models.groups import Group
from wrale.fleet.brain.services import alerts
from wrale.fleet.brain.services.alert_rules import OPS, SCOPES, SEVERITIES
from wrale.shared.errors import ConflictError, InvalidRequestError
from wrale.user.ui.pages.alerts_common import (
    METRICS,
    OP_WORDS,
    OPTIONS_MAX,
    RACK_METRICS,
    RACK_POWER,
    SCOPE_WORDS,
    device_names,
    find_device,
    metric_label,
    rack_options,
    redirect,
)
from wrale.user.ui.pages.alerts_rule_form import (
    RuleForm,
    check_condition,
    error_message,
    format_duration,
    preview_text,
)
from wrale.user.ui.web import Viewer, is_htmx, render


async def _check_form(
    session: AsyncSession, viewer: Viewer, f: RuleForm
) -> tuple[dict[str, Any], dict[str, str]]:
    """The service's fields for the form, and every field's error (empty: fit to save)."""
    cond, errors = check_condition(f)
    name = f.name.strip()
    if not name:
        errors["name"] = "Give the rule a name."
    elif len(name) > 100:
        errors["name"] = "At most 100 characters."
    if len(f.description) > 255:
        errors["description"] = "At most 255 characters."
    if f.severity not in SEVERITIES:
        errors["severity"] = f"Choose one of {', '.join(SEVERITIES)}."
    scope_id: str | None = None
    if f.scope_type not in SCOPES:
        errors["scope_type"] = f"Choose one of {', '.join(SCOPES)}."
    elif f.is_rack and f.scope_type not in ("rack", "fleet"):
        errors["scope_type"] = "A rack rule applies to one rack or to the whole fleet."
    elif f.scope_type != "fleet":
        scope_id, problem = await _scope_id(session, viewer.tenant_id, f.scope_type, f.scope_id)
        if problem:
            errors["scope_id"] = problem
    fields: dict[str, Any] = {
        "name": name,
        "description": f.description.strip() or None,
        "severity": f.severity,
        "scope_type": f.scope_type,
        "scope_id": scope_id,
        "enabled": f.enabled,
    }
    if cond is not None:
        fields.update(
            metric=cond.metric,
            op=cond.op,
            threshold="budget" if cond.threshold is None else cond.threshold,
            aggregate=cond.aggregate,
            for_s=cond.for_s,
        )
    if viewer.is_admin:  # channels are the admins' (as in the API); others keep them as they are
        fields["channel_ids"] = f.channel_ids
    return fields, errors


SCOPE_MODELS: dict[str, type[Group] | type[Rack] | type[Zone]] = {
    "group": Group,
    "rack": Rack,
    "zone": Zone,
}


async def _scope_id(
    session: AsyncSession, tenant_id: str, scope_type: str, typed: str
) -> tuple[str | None, str | None]:
    """(the scope object's id, or the problem with what was chosen)."""
    what = scope_type
    if not typed:
        return None, f"Choose the {what} the rule watches."
    if scope_type == "device":
        found = await find_device(session, tenant_id, typed)
        return (found, None) if found else (None, f"No device named {typed!r}.")
    model = SCOPE_MODELS[scope_type]
    owner = await session.scalar(select(model.tenant_id).where(model.id == typed))
    return (typed, None) if owner == tenant_id else (None, f"No such {what}.")


async def scope_choices(
    session: AsyncSession, tenant_id: str, scope_type: str
) -> list[tuple[str, str]]:
    if scope_type == "rack":
        return await rack_options(session, tenant_id)
    if scope_type in ("group", "zone"):
        model = Group if scope_type == "group" else Zone
        rows = await session.execute(
            select(model.id, model.name)
            .where(model.tenant_id == tenant_id)
            .order_by(model.name)
            .limit(OPTIONS_MAX)
        )
        return [(i, n) for i, n in rows.all()]
    return []


async def scope_label_map(
    session: AsyncSession, tenant_id: str, rules: Sequence[AlertRule]
) -> dict[str, str]:
    """The names of the rules' scope objects (one query per scope type in use)."""
    by_type: dict[str, set[str]] = {}
    for r in rules:
        if r.scope_id:
            by_type.setdefault(r.scope_type, set()).add(r.scope_id)
    labels: dict[str, str] = {}
    for scope_type, ids in by_type.items():
        if scope_type == "device":
            labels |= await device_names(session, tenant_id, ids)
        elif scope_type == "rack":
            labels |= dict(await rack_options(session, tenant_id, ids))
        elif scope_type in ("group", "zone"):
            model = Group if scope_type == "group" else Zone
            rows = await session.execute(
                select(model.id, model.name).where(
                    model.tenant_id == tenant_id, model.id.in_(sorted(ids))
                )
            )
            labels |= dict(rows.all())
    return labels


async def _channel_options(session: AsyncSession, viewer: Viewer) -> list[tuple[str, str]]:
    if not viewer.is_admin:
        return []
    rows = await session.execute(
        select(NotificationChannel.id, NotificationChannel.name)
        .where(NotificationChannel.tenant_id == viewer.tenant_id)
        .order_by(NotificationChannel.name)
    )
    return [(i, n) for i, n in rows.all()]


def rule_row(r: AlertRule, labels: dict[str, str]) -> dict[str, Any]:
    view = alerts.rule_view(r)
    label = labels.get(r.scope_id or "", r.scope_id or "")
    view["scope_text"] = "fleet" if r.scope_type == "fleet" else f"{r.scope_type}: {label}"
    view["for_text"] = format_duration(r.for_s)
    return view


async def form_page(
    request: Request,
    session: AsyncSession,
    viewer: Viewer,
    f: RuleForm,
    *,
    rule: AlertRule | None,
    errors: dict[str, str] | None = None,
    form_error: str | None = None,
    status_code: int = 200,
) -> Response:
    preview, problem = preview_text(f)
    ctx = {
        "form": f,
        "rule": rule,
        "action": f"/alerts/rules/{rule.id}/edit" if rule else "/alerts/rules/new",
        "errors": errors or {},
        "form_error": form_error,
        "metrics": [(m, metric_label(m, what)) for m, what in METRICS],
        "rack_metrics": RACK_METRICS,
        "custom_metric": f.metric
        if f.metric and f.metric not in dict(METRICS) and f.metric not in dict(RACK_METRICS)
        else None,
        "ops": [(op, OP_WORDS[op]) for op in OPS],
        "severities": SEVERITIES,
        "scopes": [(s, SCOPE_WORDS[s]) for s in ("fleet", "group", "rack", "zone", "device")],
        "scope_options": await scope_choices(session, viewer.tenant_id, f.scope_type),
        "channels": await _channel_options(session, viewer),
        "preview": preview,
        "preview_problem": problem,
        "rack_power": RACK_POWER,
    }
    template = "alerts/_rule_form.html" if is_htmx(request) else "alerts/rule_edit.html"
    return render(request, template, ctx, status_code=status_code)


async def save_rule(
    request: Request, session: AsyncSession, viewer: Viewer, rule: AlertRule | None
) -> Response:
    """Check the posted form; save it through the service only when every field is right."""
    rule_id = rule.id if rule is not None else None  # the object expires on a rollback
    f = RuleForm.of_form(await request.form())
    fields, errors = await _check_form(session, viewer, f)
    form_error = None
    if not errors:
        try:
            if rule_id is None:
                saved = await alerts.create_rule(session, viewer.principal, fields)
            else:
                saved = await alerts.update_rule(
                    session, viewer.principal, rule_id, fields, wall_now()
                )
        except (InvalidRequestError, ConflictError) as exc:
            name, text = error_message(exc)
            if name:
                errors[name] = text
            else:
                form_error = text
        else:
            return redirect(request, f"/alerts/rules?saved={quote(saved.name)}")
    await session.rollback()  # nothing of a refused form is kept
    if rule_id is not None:
        rule = await alerts.get_rule(session, viewer.tenant_id, rule_id)
    return await form_page(
        request,
        session,
        viewer,
        f,
        rule=rule,
        errors=errors,
        form_error=form_error or "The rule was not saved: correct the fields marked below.",
        status_code=422,
    )
