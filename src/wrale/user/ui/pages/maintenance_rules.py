"""The maintenance page's rules and tasks (``docs/maintenance.md``): operators create
maintenance rules with a form (a 422 names the field) and delete them, and close a
board's open task with "Done" and a note. Everything goes through
``services.maintenance.rules`` and ``tasks`` (same checks, roles and audit as the API)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from wrale.fleet.brain.services.maintenance import rules, tasks
from wrale.shared.errors import InvalidRequestError, NotFoundError
from wrale.user.ui.pages.maintenance import page, redirect
from wrale.user.ui.pages.maintenance_rules_form import rule_body, rule_field_of, rule_form_values
from wrale.user.ui.pages.maintenance_rules_view import rule_choices, rule_form
from wrale.user.ui.web import OperatorDep, SessionDep, is_htmx, render

router = APIRouter(include_in_schema=False)


@router.post("/maintenance/rules")
async def rule_create(request: Request, viewer: OperatorDep, session: SessionDep) -> Response:
    values = rule_form_values(await request.form())
    errors: dict[str, str] = {}
    rows: list[int] = []
    try:
        body, rows = rule_body(values)
        await rules.create_rule(session, viewer.principal, body)
    except (InvalidRequestError, NotFoundError) as exc:
        errors[rule_field_of(exc, values.get("scope", ""), rows)] = exc.message
    else:
        return redirect(request, "/maintenance")
    await session.rollback()  # nothing of a refused form is kept
    message = errors.pop("form", "") or "The rule was not created: correct the field marked."
    if is_htmx(request):
        choices = await rule_choices(session, viewer.tenant_id)
        ctx = rule_form(viewer, choices, values, errors, message)
        return render(request, "maintenance/_rule_form.html", ctx, status_code=422)
    return await page(request, session, viewer, rule=(values, errors, message), status_code=422)


@router.post("/maintenance/rules/{rule_id}/delete")
async def rule_delete(
    request: Request, viewer: OperatorDep, session: SessionDep, rule_id: str
) -> Response:
    """Delete the rule; its open tasks are closed."""
    await rules.delete_rule(session, viewer.principal, rule_id)
    return redirect(request, "/maintenance")


@router.post("/maintenance/tasks/{task_id}/done")
async def task_done(
    request: Request, viewer: OperatorDep, session: SessionDep, task_id: str
) -> Response:
    """The work is done: the task closes with the note (409 when it is closed already)."""
    note = (await request.form()).get("note")
    text = note.strip() if isinstance(note, str) else ""
    t = await tasks.mark_done(session, viewer.principal, task_id, text or None)
    if request.query_params.get("from") == "device":
        return redirect(request, f"/devices/{t.device_id}")
    return redirect(request, "/maintenance")
