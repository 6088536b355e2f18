"""``/metrics``: Prometheus scrape endpoint, open like ``/healthz`` on the central port.

It reveals no tenant data: fleet counts are summed over all tenants, never labelled by one.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from wrale.user.api.deps import StateDep
from wrale.user.api.metrics import CONTENT_TYPE, fleet_gauges, metrics_of, render

router = APIRouter(tags=["health"])


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE: {}}, "description": "Prometheus text format"}},
)
async def metrics(request: Request, state: StateDep) -> Response:
    async with state.db.session() as session:
        fleet = await fleet_gauges(session)
    fleet += request.app.state.hub.ctx.counters.prometheus()  # the device channel's refusals
    ctx = request.app.state.hub.ctx
    fleet += ctx.boards.prometheus(ctx.settings.offline_after_s)  # boards' backlog, ingest lag
    relay = getattr(request.app.state, "relay", None)  # PostgreSQL: events across replicas
    if relay is not None:
        fleet += relay.stats.prometheus()
    return Response(render(metrics_of(request), fleet), media_type=CONTENT_TYPE)
