"""Schemas of staged rollouts (``docs/rollouts.md``): a rollout as shown, with its waves,
their boards, states and gate values. The creation body is checked by the service (every
field named in its 422), so it is taken as a JSON object here."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

RolloutState = Literal[
    "running", "waiting_approval", "paused", "succeeded", "aborted", "rolled_back"
]


class RolloutWavePublic(BaseModel):
    index: int
    state: str = Field(description="pending, observing, passed, failed, rolled_back, skipped")
    attempt: int = Field(description="how many times its failed boards were retried")
    devices: list[str] = Field(description="the ids of its boards")
    device_states: dict[str, dict[str, Any]] = Field(
        description="per board: state (pending, applying, applied, failed, rolled_back), detail"
    )
    started_at: float | None
    finished_at: float | None
    paused_s: float = Field(description="paused time during its observation (not counted)")
    gate: dict[str, Any] = Field(
        description="the measured values (failure_pct, offline, temp_rise_c, weather_rise_c, "
        "power_rise_w, new_throttling, alerts…), passed, reasons, offenders"
    )


class RolloutPublic(BaseModel):
    id: str
    name: str
    state: RolloutState
    change: dict[str, Any]
    selector: dict[str, Any]
    waves_spec: dict[str, Any] | None = Field(
        default=None,
        description="the waves asked for: steps or rate, one_per_rack_first, max_per_rack, "
        "max_per_feed",
    )
    gates: dict[str, Any]
    on_gate_failure: Literal["abort", "pause"]
    require_approval: bool
    current_wave: int
    reason: str | None
    created_by: str
    created_at: float
    updated_at: float
    finished_at: float | None
    waves: list[RolloutWavePublic] | None = None
