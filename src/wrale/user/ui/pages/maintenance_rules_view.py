"""The "Rules" section of ``/maintenance``: the organisation's maintenance rules (name,
scope by name, the condition in words, due time, open tasks) and the new-rule form's
context (the groups, sites, racks and boards a rule may cover, by name)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from wrale.fleet.brain.models import Device, Rack, Site
from wrale.fleet.brain.models.groups import Group
from wrale.fleet.brain.models.maintenance import MaintenanceTask
from wrale.fleet.brain.services.maintenance import rules
from wrale.fleet.brain.services.maintenance.rules import KNOWN_METRICS
from wrale.user.ui.pages.maintenance_rules_form import (
    BLANK,
    FIELDS,
    MODES,
    OP_CHOICES,
    ROWS,
    SCOPES,
    condition_text,
    due_text,
)
from wrale.user.ui.web import Viewer

MAX_CHOICES = 500  # per kind: the pickers stay usable; the API takes any id


async def rule_choices(session: AsyncSession, tenant_id: str) -> dict[str, list[tuple[str, str]]]:
    """What a rule may cover: {scope: [(id, name)]} by name."""
    out: dict[str, list[tuple[str, str]]] = {}
    models: tuple[tuple[str, Any], ...] = (
        ("group", Group),
        ("site", Site),
        ("rack", Rack),
        ("device", Device),
    )
    for scope, model in models:
        rows = await session.execute(
            select(model.id, model.name)
            .where(model.tenant_id == tenant_id)
            .order_by(model.name, model.id)
            .limit(MAX_CHOICES)
        )
        out[scope] = [(str(i), str(n)) for i, n in rows.all()]
    return out


def rule_form(
    viewer: Viewer,
    choices: Mapping[str, Any],
    values: Mapping[str, str] | None = None,
    errors: Mapping[str, str] | None = None,
    message: str = "",
) -> dict[str, Any]:
    blank = dict.fromkeys(FIELDS, "") | BLANK
    return {
        "rform": {
            "values": blank | dict(values or {}),
            "errors": dict(errors or {}),
            "message": message,
            "scopes": SCOPES,
            "modes": MODES,
            "ops": OP_CHOICES,
            "rows": range(ROWS),
            "metrics": sorted(KNOWN_METRICS),
            "choices": choices,
        },
        "can_edit": viewer.can_operate,
    }


async def open_counts(session: AsyncSession, tenant_id: str) -> dict[str, int]:
    rows = await session.execute(
        select(MaintenanceTask.rule_id, func.count())
        .where(MaintenanceTask.tenant_id == tenant_id, MaintenanceTask.state == "open")
        .group_by(MaintenanceTask.rule_id)
    )
    return {str(r): int(n) for r, n in rows.all()}


async def rules_ctx(
    session: AsyncSession,
    viewer: Viewer,
    values: Mapping[str, str] | None = None,
    errors: Mapping[str, str] | None = None,
    message: str = "",
) -> dict[str, Any]:
    """The rules as the page lists them, and the form."""
    choices = await rule_choices(session, viewer.tenant_id)
    names = {i: n for pairs in choices.values() for i, n in pairs}
    counts = await open_counts(session, viewer.tenant_id)
    found = await rules.list_rules(session, viewer.tenant_id)
    rows = [
        {
            "r": r,
            "scope_name": "the whole fleet"
            if r.scope == "fleet"
            else f"{'board' if r.scope == 'device' else r.scope} "
            f"{names.get(r.scope_id or '', r.scope_id or '?')}",
            "condition": condition_text(r.condition),
            "due": due_text(r.due_in_s),
            "open": counts.get(r.id, 0),
        }
        for r in found
    ]
    return {"rule_rows": rows} | rule_form(viewer, choices, values, errors, message)
