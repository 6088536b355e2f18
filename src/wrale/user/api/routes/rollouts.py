"""``/rollouts`` (``docs/rollouts.md``): staged rollouts of a policy, a config template
version or a command, in waves gated on what the boards did. Everyone reads; operators
create (a policy rollout needs an admin), pause, resume, approve and abort. The rollout
advances in the brain's ``rollouts`` loop, never in these requests. Unknown ids are 404,
an action the rollout's state does not allow is 409, bad input is 422 naming the field."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body

from wrale.fleet.brain.services import rollouts
from wrale.user.api.deps import OperatorDep, PageDep, SessionDep, StateDep, ViewerDep
from wrale.user.api.schemas.common import Page, page_of
from wrale.user.api.schemas.rollouts import RolloutPublic, RolloutState

router = APIRouter(tags=["rollouts"])


async def _full(session: Any, r: Any) -> RolloutPublic:
    waves = await rollouts.waves_of(session, r.id)
    devices = await rollouts.devices_of(session, r.id)
    return RolloutPublic.model_validate(rollouts.rollout_view(r, waves, devices))


@router.post("/rollouts", status_code=201)
async def create_rollout(
    p: OperatorDep,
    session: SessionDep,
    state: StateDep,
    body: dict[str, Any] = Body(  # noqa: B008 - FastAPI's way of naming a body
        description='{"name", "change": {"kind": "policy", "policy_kind", "values"} | '
        '{"kind": "template", "template_id", "version"?, "variables"?} | '
        '{"kind": "command", "op", "args"?} (each with "disruptive"?: true to wait for the '
        'boards\' maintenance windows), "selector", "waves"?: [{"count"}|{"percent"}] '
        'or {"steps" | "rate": {"base_per_minute", "increment_factor", "after_succeeded", '
        '"max_per_minute"?}, "one_per_rack_first"?, "max_per_rack"?, "max_per_feed"?}, "gates"?: '
        '{"observe_s"?, "max_temp_rise_c"?, "max_failure_pct"?, "max_offline"?, '
        '"max_power_rise_w"?, "max_fan_anomalies"?, "max_alerts"?, "allow_new_throttling"?}, '
        '"on_gate_failure"?: "abort"|"pause", "require_approval"?}'
    ),
) -> RolloutPublic:
    """Plan and store a rollout; the loop starts its first wave within seconds."""
    r = await rollouts.create_rollout(session, p, body, bus=state.bus)
    return await _full(session, r)


@router.get("/rollouts")
async def list_rollouts(
    p: ViewerDep, session: SessionDep, page: PageDep, state: RolloutState | None = None
) -> Page[RolloutPublic]:
    """The organisation's rollouts, newest first (without their waves)."""
    rows = await rollouts.list_rollouts(
        session, p.tenant_id, state=state, before_id=page.after, limit=page.limit + 1
    )
    return page_of(rows, page, lambda r: RolloutPublic.model_validate(rollouts.rollout_view(r)))


@router.get("/rollouts/{rollout_id}")
async def get_rollout(rollout_id: str, p: ViewerDep, session: SessionDep) -> RolloutPublic:
    """A rollout with its waves, their boards, states and gate values."""
    return await _full(session, await rollouts.get_rollout(session, p.tenant_id, rollout_id))


@router.post("/rollouts/{rollout_id}/pause")
async def pause_rollout(
    rollout_id: str, p: OperatorDep, session: SessionDep, state: StateDep
) -> RolloutPublic:
    """Pause: no wave starts; paused time does not count in the observed wave."""
    return await _full(session, await rollouts.pause(session, p, rollout_id, bus=state.bus))


@router.post("/rollouts/{rollout_id}/resume")
async def resume_rollout(
    rollout_id: str, p: OperatorDep, session: SessionDep, state: StateDep
) -> RolloutPublic:
    """Resume a paused rollout; a wave that failed its gate retries only its failed boards."""
    return await _full(session, await rollouts.resume(session, p, rollout_id, bus=state.bus))


@router.post("/rollouts/{rollout_id}/approve")
async def approve_rollout(
    rollout_id: str, p: OperatorDep, session: SessionDep, state: StateDep
) -> RolloutPublic:
    """Let the next wave of a rollout that requires approval start."""
    return await _full(session, await rollouts.approve(session, p, rollout_id, bus=state.bus))


@router.post("/rollouts/{rollout_id}/abort")
async def abort_rollout(
    rollout_id: str, p: OperatorDep, session: SessionDep, state: StateDep
) -> RolloutPublic:
    """Abort: the loop rolls back the boards already changed; the others never get it."""
    return await _full(session, await rollouts.abort(session, p, rollout_id, bus=state.bus))
