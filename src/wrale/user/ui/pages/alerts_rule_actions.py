"""The alert-rule editor's writes (and the live preview a form posts): create,
edit, turn on or off and delete a rule, each through ``services.alerts`` as an operator."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import Response

from wrale.fleet.brain.models.base import now as wall_now
from wrale.fleet.brain.services import alerts
from wrale.user.ui.pages.alerts_common import form_str, redirect
from wrale.user.ui.pages.alerts_rule_form import RuleForm, preview_text
from wrale.user.ui.pages.alerts_rule_sections import rule_row, save_rule, scope_label_map
from wrale.user.ui.web import OperatorDep, SessionDep, is_htmx, render

router = APIRouter(include_in_schema=False)


@router.post("/alerts/rules/new")
async def rule_create(request: Request, viewer: OperatorDep, session: SessionDep) -> Response:
    return await save_rule(request, session, viewer, None)


@router.post("/alerts/rules/_preview")
async def rule_preview(request: Request, viewer: OperatorDep) -> Response:
    """The condition as the form stands (a live preview while typing)."""
    preview, problem = preview_text(RuleForm.of_form(await request.form()))
    return render(
        request, "alerts/_rule_preview.html", {"preview": preview, "preview_problem": problem}
    )


@router.post("/alerts/rules/{rule_id}/edit")
async def rule_update(
    request: Request, rule_id: str, viewer: OperatorDep, session: SessionDep
) -> Response:
    rule = await alerts.get_rule(session, viewer.tenant_id, rule_id)
    return await save_rule(request, session, viewer, rule)


@router.post("/alerts/rules/{rule_id}/enabled")
async def rule_enable(
    request: Request, rule_id: str, viewer: OperatorDep, session: SessionDep
) -> Response:
    """Turn a rule on or off (``enabled`` = "1" / "0"); disabling clears its open alerts."""
    form = await request.form()
    on = form_str(form, "enabled") in ("1", "true", "on")
    rule = await alerts.update_rule(session, viewer.principal, rule_id, {"enabled": on}, wall_now())
    if not is_htmx(request):
        return redirect(request, "/alerts/rules")
    labels = await scope_label_map(session, viewer.tenant_id, [rule])
    return render(request, "alerts/_rule_row.html", {"r": rule_row(rule, labels)})


@router.post("/alerts/rules/{rule_id}/delete")
async def rule_delete(
    request: Request, rule_id: str, viewer: OperatorDep, session: SessionDep
) -> Response:
    """Delete a rule; its open alerts are cleared and kept."""
    rule = await alerts.get_rule(session, viewer.tenant_id, rule_id)
    name = rule.name
    await alerts.delete_rule(session, viewer.principal, rule_id, wall_now())
    if is_htmx(request):
        return Response(status_code=200, content="")  # the row goes
    return redirect(request, f"/alerts/rules?deleted={quote(name)}")
