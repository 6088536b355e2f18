"""``/alert-rules``, ``/alerts`` (acknowledge, assign, clear, history) and
``/notification-channels``. Viewers read alerts and rules; operators manage them;
channels are the admins'."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from sqlalchemy import select

from wrale.fleet.brain.models.alerts import Alert, AlertRule, NotificationChannel
from wrale.fleet.brain.models.base import now
from wrale.fleet.brain.services import alerts, notify, notify_route
from wrale.fleet.brain.services.egress import EgressPolicy
from wrale.fleet.brain.services.notify_types import SendContext
from wrale.user.api.deps import (
    AdminDep,
    OperatorDep,
    PageDep,
    SessionDep,
    StateDep,
    ViewerDep,
)
from wrale.user.api.schemas.alerts import (
    AlertAssign,
    AlertDetail,
    AlertEventPublic,
    AlertNote,
    AlertPublic,
    AlertRuleCreate,
    AlertRulePublic,
    AlertRuleUpdate,
    ChannelCreate,
    ChannelPublic,
    ChannelTestResult,
    ChannelUpdate,
    ScopeType,
    Severity,
)
from wrale.user.api.schemas.common import Page, fetch_page, page_of

router = APIRouter()
IdQuery = Annotated[str | None, Query(max_length=32)]


def _rule(r: AlertRule) -> AlertRulePublic:
    return AlertRulePublic.model_validate(alerts.rule_view(r))


def _alert(a: Alert) -> AlertPublic:
    return AlertPublic.model_validate(alerts.alert_view(a))


# ----------------------------------------------------------------------------- rules


@router.get("/alert-rules", tags=["alerts"])
async def list_rules(
    p: ViewerDep,
    session: SessionDep,
    page: PageDep,
    enabled: bool | None = None,
    severity: Severity | None = None,
    scope_type: ScopeType | None = None,
    scope_id: IdQuery = None,
    metric: Annotated[str | None, Query(max_length=64)] = None,
) -> Page[AlertRulePublic]:
    stmt = select(AlertRule).where(AlertRule.tenant_id == p.tenant_id)
    if enabled is not None:
        stmt = stmt.where(AlertRule.enabled.is_(enabled))
    if severity:
        stmt = stmt.where(AlertRule.severity == severity)
    if scope_type:
        stmt = stmt.where(AlertRule.scope_type == scope_type)
    if scope_id:
        stmt = stmt.where(AlertRule.scope_id == scope_id)
    if metric:
        stmt = stmt.where(AlertRule.metric == metric)
    rows = await fetch_page(session, stmt, AlertRule.id, page)
    return page_of(rows, page, _rule)


@router.post("/alert-rules", status_code=201, tags=["alerts"])
async def create_rule(
    body: AlertRuleCreate, p: OperatorDep, session: SessionDep
) -> AlertRulePublic:
    """Create a rule from an ``expression`` or from metric / op / threshold / for_s."""
    rule = await alerts.create_rule(session, p, body.model_dump())
    return _rule(rule)


@router.get("/alert-rules/{rule_id}", tags=["alerts"])
async def get_rule(rule_id: str, p: ViewerDep, session: SessionDep) -> AlertRulePublic:
    return _rule(await alerts.get_rule(session, p.tenant_id, rule_id))


@router.patch("/alert-rules/{rule_id}", tags=["alerts"])
async def update_rule(
    rule_id: str, body: AlertRuleUpdate, p: OperatorDep, session: SessionDep
) -> AlertRulePublic:
    fields = body.model_dump(exclude_unset=True)
    return _rule(await alerts.update_rule(session, p, rule_id, fields, now()))


@router.delete("/alert-rules/{rule_id}", status_code=204, tags=["alerts"])
async def delete_rule(rule_id: str, p: OperatorDep, session: SessionDep) -> Response:
    """Delete a rule; its open alerts are cleared and kept."""
    await alerts.delete_rule(session, p, rule_id, now())
    return Response(status_code=204)


# ----------------------------------------------------------------------------- alerts


@router.get("/alerts", tags=["alerts"])
async def list_alerts(
    p: ViewerDep,
    session: SessionDep,
    page: PageDep,
    state: Annotated[str | None, Query(pattern="^(active|acknowledged|cleared|open)$")] = None,
    severity: Severity | None = None,
    device_id: IdQuery = None,
    rule_id: IdQuery = None,
    rack_id: IdQuery = None,
    assignee_id: IdQuery = None,
) -> Page[AlertPublic]:
    """Alerts, oldest first; ``state=open`` means active or acknowledged."""
    stmt = select(Alert).where(Alert.tenant_id == p.tenant_id)
    if state == "open":
        stmt = stmt.where(Alert.state.in_(alerts.OPEN_STATES))
    elif state:
        stmt = stmt.where(Alert.state == state)
    for column, value in (
        (Alert.severity, severity),
        (Alert.device_id, device_id),
        (Alert.rule_id, rule_id),
        (Alert.rack_id, rack_id),
        (Alert.assignee_id, assignee_id),
    ):
        if value:
            stmt = stmt.where(column == value)
    rows = await fetch_page(session, stmt, Alert.id, page)
    return page_of(rows, page, _alert)


@router.get("/alerts/{alert_id}", tags=["alerts"])
async def get_alert(alert_id: str, p: ViewerDep, session: SessionDep) -> AlertDetail:
    """An alert with its history (state changes, assignments: who, when, note)."""
    a = await alerts.get_alert(session, p.tenant_id, alert_id)
    events = await alerts.history(session, a.id)
    return AlertDetail(
        **alerts.alert_view(a),
        history=[AlertEventPublic.model_validate(alerts.event_view(e)) for e in events],
    )


@router.post("/alerts/{alert_id}/acknowledge", tags=["alerts"])
async def acknowledge(
    alert_id: str, body: AlertNote, p: OperatorDep, session: SessionDep, state: StateDep
) -> AlertPublic:
    return _alert(await alerts.acknowledge(session, p, alert_id, body.note, state.bus))


@router.post("/alerts/{alert_id}/assign", tags=["alerts"])
async def assign(
    alert_id: str, body: AlertAssign, p: OperatorDep, session: SessionDep, state: StateDep
) -> AlertPublic:
    return _alert(await alerts.assign(session, p, alert_id, body.user_id, state.bus))


@router.post("/alerts/{alert_id}/clear", tags=["alerts"])
async def clear(
    alert_id: str, body: AlertNote, p: OperatorDep, session: SessionDep, state: StateDep
) -> AlertPublic:
    """Clear by hand; if the condition still holds, the next evaluation raises a new alert."""
    return _alert(await alerts.clear(session, p, alert_id, body.note, state.bus))


# ----------------------------------------------------------------------------- channels


def _channel(c: NotificationChannel) -> ChannelPublic:
    return ChannelPublic.model_validate(notify.channel_view(c))


@router.get("/notification-channels", tags=["notifications"])
async def list_channels(p: AdminDep, session: SessionDep, page: PageDep) -> Page[ChannelPublic]:
    stmt = select(NotificationChannel).where(NotificationChannel.tenant_id == p.tenant_id)
    return page_of(await fetch_page(session, stmt, NotificationChannel.id, page), page, _channel)


@router.post("/notification-channels", status_code=201, tags=["notifications"])
async def create_channel(
    body: ChannelCreate, p: AdminDep, session: SessionDep, state: StateDep
) -> ChannelPublic:
    """A channel's URL must reach a public address (or a host the operator allows)."""
    c = await notify.create_channel(
        session,
        p,
        body.name,
        body.type,
        body.config,
        body.enabled,
        egress=EgressPolicy.from_settings(state.settings),
    )
    return _channel(c)


@router.get("/notification-channels/{channel_id}", tags=["notifications"])
async def get_channel(channel_id: str, p: AdminDep, session: SessionDep) -> ChannelPublic:
    return _channel(await notify.get_channel(session, p.tenant_id, channel_id))


@router.patch("/notification-channels/{channel_id}", tags=["notifications"])
async def update_channel(
    channel_id: str, body: ChannelUpdate, p: AdminDep, session: SessionDep, state: StateDep
) -> ChannelPublic:
    """Change a channel; a config without its secret keeps the stored one."""
    c = await notify.update_channel(
        session,
        p,
        channel_id,
        name=body.name,
        config=body.config,
        enabled=body.enabled,
        egress=EgressPolicy.from_settings(state.settings),
    )
    return _channel(c)


@router.post("/notification-channels/{channel_id}/test", tags=["notifications"])
async def test_channel(
    channel_id: str, p: AdminDep, session: SessionDep, state: StateDep
) -> ChannelTestResult:
    """Send one test notification through the channel now (not queued, not retried)."""
    egress = EgressPolicy.from_settings(state.settings)
    public_url = getattr(state.settings, "public_url", None)
    async with egress.client() as http:
        error = await notify_route.send_test(
            session, p, channel_id, SendContext(http, egress, public_url)
        )
    return ChannelTestResult(delivered=error is None, error=error)


@router.delete("/notification-channels/{channel_id}", status_code=204, tags=["notifications"])
async def delete_channel(channel_id: str, p: AdminDep, session: SessionDep) -> Response:
    await notify.delete_channel(session, p, channel_id)
    return Response(status_code=204)
