"""The alert-rule editor's pages (the reads, ``GET``): the rules, a new rule's form, the
scope field for a scope type, a rule's form to edit. The writes are routes of
``alerts_rule_actions``."""

from __future__ import annotations

import math

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import func, select

from wrale.fleet.brain.models.alerts import AlertRule
from wrale.fleet.brain.services import alerts
from wrale.fleet.brain.services.alert_rules import SCOPES
from wrale.user.ui.pages.alerts_common import RULES_PAGE_SIZE, device_names
from wrale.user.ui.pages.alerts_rule_form import RuleForm
from wrale.user.ui.pages.alerts_rule_sections import (
    form_page,
    rule_row,
    scope_choices,
    scope_label_map,
)
from wrale.user.ui.web import OperatorDep, SessionDep, ViewerDep, page_number, render

router = APIRouter(include_in_schema=False)


@router.get("/alerts/rules")
async def rule_list(
    request: Request,
    viewer: ViewerDep,
    session: SessionDep,
    page: str | None = None,
    saved: str | None = None,
    deleted: str | None = None,
) -> Response:
    tenant = viewer.tenant_id
    total = int(
        await session.scalar(select(func.count()).where(AlertRule.tenant_id == tenant)) or 0
    )
    pages = max(1, math.ceil(total / RULES_PAGE_SIZE))
    number = min(page_number(page), pages)
    rules = list(
        await session.scalars(
            select(AlertRule)
            .where(AlertRule.tenant_id == tenant)
            .order_by(AlertRule.name, AlertRule.id)
            .limit(RULES_PAGE_SIZE)
            .offset((number - 1) * RULES_PAGE_SIZE)
        )
    )
    labels = await scope_label_map(session, tenant, rules)
    notice = None
    if saved:
        notice = f"Rule “{saved[:100]}” saved."
    elif deleted:
        notice = f"Rule “{deleted[:100]}” deleted; its open alerts were cleared."
    ctx = {
        "rules": [rule_row(r, labels) for r in rules],
        "total": total,
        "page": number,
        "pages": pages,
        "notice": notice,
    }
    return render(request, "alerts/rules.html", ctx)


@router.get("/alerts/rules/new")
async def rule_new(request: Request, viewer: OperatorDep, session: SessionDep) -> Response:
    return await form_page(request, session, viewer, RuleForm(), rule=None)


@router.get("/alerts/rules/_scope")
async def rule_scope_field(
    request: Request,
    viewer: OperatorDep,
    session: SessionDep,
    scope_type: str = "fleet",
) -> Response:
    """The scope_id field for a scope type (a select, or a device name with suggestions)."""
    f = RuleForm(scope_type=scope_type if scope_type in SCOPES else "fleet")
    ctx = {
        "form": f,
        "errors": {},
        "scope_options": await scope_choices(session, viewer.tenant_id, f.scope_type),
    }
    return render(request, "alerts/_scope_field.html", ctx)


@router.get("/alerts/rules/{rule_id}/edit")
async def rule_edit(
    request: Request, rule_id: str, viewer: OperatorDep, session: SessionDep
) -> Response:
    rule = await alerts.get_rule(session, viewer.tenant_id, rule_id)
    scope_text = rule.scope_id or ""
    if rule.scope_type == "device" and rule.scope_id:
        names = await device_names(session, viewer.tenant_id, [rule.scope_id])
        scope_text = names.get(rule.scope_id, rule.scope_id)
    return await form_page(request, session, viewer, RuleForm.of_rule(rule, scope_text), rule=rule)
