"""``/recommendations`` (``docs/jobs.md``): the brain's recommendations, newest first
(everyone reads), accepted (its action performed, or acknowledged when it has none) or
dismissed by operators. Unknown ids are 404, one no longer open is 409."""

from __future__ import annotations

from fastapi import APIRouter

from wrale.fleet.brain.models.recommendations import Recommendation
from wrale.fleet.brain.services import recommendations
from wrale.user.api.deps import OperatorDep, PageDep, SessionDep, StateDep, ViewerDep
from wrale.user.api.schemas.common import Page, page_of
from wrale.user.api.schemas.recommendations import (
    RecommendationDismiss,
    RecommendationKind,
    RecommendationPublic,
    RecommendationState,
)

router = APIRouter(tags=["recommendations"])


def _public(r: Recommendation) -> RecommendationPublic:
    return RecommendationPublic.model_validate(recommendations.recommendation_view(r))


@router.get("/recommendations")
async def list_recommendations(
    p: ViewerDep,
    session: SessionDep,
    page: PageDep,
    state: RecommendationState | None = None,
    kind: RecommendationKind | None = None,
) -> Page[RecommendationPublic]:
    """The organisation's recommendations, newest first (``state``: only those; by
    default every state)."""
    rows = await recommendations.list_recommendations(
        session, p.tenant_id, state=state, kind=kind, before_id=page.after, limit=page.limit + 1
    )
    return page_of(rows, page, _public)


@router.post("/recommendations/{rec_id}/accept")
async def accept_recommendation(
    rec_id: str, p: OperatorDep, session: SessionDep, state: StateDep
) -> RecommendationPublic:
    """Accept an open recommendation: its action is performed (``stop_jobs`` stops the
    jobs it names, as ``DELETE /jobs/{id}`` would); one without an action is acknowledged.
    ``result`` says what was done."""
    return _public(await recommendations.accept(session, p, rec_id, bus=state.bus))


@router.post("/recommendations/{rec_id}/dismiss")
async def dismiss_recommendation(
    rec_id: str,
    p: OperatorDep,
    session: SessionDep,
    state: StateDep,
    body: RecommendationDismiss | None = None,
) -> RecommendationPublic:
    """Dismiss an open recommendation (with an optional reason); it is not raised again
    for a day unless it gets markedly worse."""
    reason = body.reason if body is not None else None
    return _public(await recommendations.dismiss(session, p, rec_id, reason, bus=state.bus))
