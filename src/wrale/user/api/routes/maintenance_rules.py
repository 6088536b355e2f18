"""``/maintenance/rules`` and ``/maintenance/tasks`` (``docs/maintenance.md``): maintenance
rules — bounds on the boards' readings held for a time, combined with all/any, per fleet,
group, site, rack or board — and the tasks they open with a due date (everyone reads,
operators write; a 422 names the field, e.g. ``condition.all[1].value``)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field

from wrale.fleet.brain.models.maintenance import MaintenanceRule
from wrale.fleet.brain.services.maintenance import rules, tasks
from wrale.user.api.deps import OperatorDep, SessionDep, ViewerDep
from wrale.user.api.schemas.common import Strict

router = APIRouter(tags=["maintenance"])
RuleScope = Literal["fleet", "group", "site", "rack", "device"]
CONDITION_DOC = (
    '{"all": [...]} or {"any": [...]} (nested at most 3 deep) of bounds '
    '{"metric": "cpu_temp_c", "op": ">", "value": 75, "for_s": 7200}'
)


class RuleCreate(Strict):
    name: str = Field(min_length=1, max_length=100)
    title: str | None = Field(default=None, max_length=200, description="the task's title")
    scope: RuleScope = "fleet"
    scope_id: str | None = Field(default=None, max_length=32)
    condition: dict[str, Any] = Field(description=CONDITION_DOC)
    due_in_s: float = Field(
        default=rules.DEFAULT_DUE_S, description="a task is due this long after it opens"
    )
    enabled: bool = True


class RuleUpdate(Strict):
    name: str | None = Field(default=None, min_length=1, max_length=100)
    title: str | None = Field(default=None, max_length=200)
    scope: RuleScope | None = None
    scope_id: str | None = Field(default=None, max_length=32)
    condition: dict[str, Any] | None = Field(default=None, description=CONDITION_DOC)
    due_in_s: float | None = None
    enabled: bool | None = None


class RulePublic(BaseModel):
    id: str
    name: str
    title: str
    scope: RuleScope
    scope_id: str | None
    condition: dict[str, Any]
    due_in_s: float
    enabled: bool
    created_by: str | None
    created_at: float
    updated_at: float


class TaskPublic(BaseModel):
    id: str
    kind: Literal["task"] = "task"
    rule_id: str
    rule_name: str
    device_id: str
    device_name: str | None = None
    title: str
    state: Literal["open", "done"]
    opened_at: float
    due_at: float
    readings: dict[str, float] = Field(description="each metric's mean when it opened")
    condition_cleared_at: float | None
    closed_at: float | None
    closed_by: str | None
    close_reason: str | None = Field(description="done, or rule_deleted")
    note: str | None


class TaskDone(Strict):
    note: str | None = Field(default=None, max_length=tasks.MAX_NOTE)


def _public(r: MaintenanceRule) -> RulePublic:
    return RulePublic.model_validate(rules.rule_view(r))


@router.get("/maintenance/rules")
async def list_rules(p: ViewerDep, session: SessionDep) -> list[RulePublic]:
    """The organisation's maintenance rules (at most 200), oldest first."""
    return [_public(r) for r in await rules.list_rules(session, p.tenant_id)]


@router.post("/maintenance/rules", status_code=201)
async def create_rule(body: RuleCreate, p: OperatorDep, session: SessionDep) -> RulePublic:
    """A rule: where its condition holds on a board of its scope, a task opens there, due
    ``due_in_s`` later (one per board until it is done and the condition has ended)."""
    return _public(await rules.create_rule(session, p, body.model_dump(exclude_none=True)))


@router.get("/maintenance/rules/{rule_id}")
async def get_rule(rule_id: str, p: ViewerDep, session: SessionDep) -> RulePublic:
    return _public(await rules.get_rule(session, p.tenant_id, rule_id))


@router.patch("/maintenance/rules/{rule_id}")
async def update_rule(
    rule_id: str, body: RuleUpdate, p: OperatorDep, session: SessionDep
) -> RulePublic:
    """Change the fields given; tasks already open stay."""
    changes = body.model_dump(exclude_unset=True)
    return _public(await rules.update_rule(session, p, rule_id, changes))


@router.delete("/maintenance/rules/{rule_id}", status_code=204)
async def delete_rule(rule_id: str, p: OperatorDep, session: SessionDep) -> Response:
    """Delete the rule; its open tasks are closed (reason ``rule_deleted``)."""
    await rules.delete_rule(session, p, rule_id)
    return Response(status_code=204)


@router.get("/maintenance/tasks")
async def list_tasks(
    p: ViewerDep,
    session: SessionDep,
    state: Annotated[Literal["open", "done"] | None, Query()] = None,
    device_id: Annotated[str | None, Query(max_length=32)] = None,
) -> list[TaskPublic]:
    """The tasks (at most 1000), earliest due first; ``state`` and ``device_id`` filter."""
    found = await tasks.list_tasks(session, p.tenant_id, state, device_id)
    names = await tasks.device_names(session, p.tenant_id, [t.device_id for t in found])
    return [TaskPublic.model_validate(tasks.task_view(t, names.get(t.device_id))) for t in found]


@router.post("/maintenance/tasks/{task_id}/done")
async def task_done(
    task_id: str, body: TaskDone, p: OperatorDep, session: SessionDep
) -> TaskPublic:
    """The work is done: the task closes with the note (409 when it is closed already)."""
    t = await tasks.mark_done(session, p, task_id, body.note)
    names = await tasks.device_names(session, p.tenant_id, [t.device_id])
    return TaskPublic.model_validate(tasks.task_view(t, names.get(t.device_id)))
