"""Schemas of the brain's recommendations (``docs/jobs.md``): a recommendation as listed,
and the optional reason of a dismissal."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from wrale.user.api.schemas.common import Strict

RecommendationState = Literal["open", "accepted", "dismissed", "expired"]
RecommendationKind = Literal["rack_hot", "fan_failed", "fan_wear", "battery_runtime"]


class RecommendationPublic(BaseModel):
    id: str
    kind: str = Field(description="rack_hot, fan_failed, fan_wear, battery_runtime")
    subject: str = Field(description="the rack, board or room it is about (an id)")
    title: str
    advice: str = Field(description="what a person should do")
    evidence: dict[str, Any] = Field(description="the figures it is based on")
    score: float = Field(description="0-100: how much it matters, the list's rank")
    severity: Literal["info", "warning", "critical"]
    action: dict[str, Any] | None = Field(
        description='what accepting it does, e.g. {"kind": "stop_jobs", "job_ids": [...]}; '
        "null: nothing automatic (accepting it acknowledges it)"
    )
    state: RecommendationState
    created_at: float
    updated_at: float = Field(description="when the loop last found it applies (or it was decided)")
    decided_by: str | None
    decided_at: float | None
    result: str | None = Field(description="what accepting or dismissing it did")


class RecommendationDismiss(Strict):
    reason: str | None = Field(default=None, max_length=300, description="why (optional)")
