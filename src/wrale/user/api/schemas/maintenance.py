"""Schemas of maintenance windows (``docs/maintenance.md``): a window as written and as
read, and a board's maintenance status. The service checks the values again (cron, time
zone, bounds) and names the field that is wrong."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from wrale.user.api.schemas.common import Strict

Scope = Literal["fleet", "site", "group"]
Pct = Annotated[float, Field(ge=0, le=100, allow_inf_nan=False)]
Celsius = Annotated[float, Field(ge=-40, le=80, allow_inf_nan=False)]
Seconds = Annotated[float, Field(ge=60, le=7 * 86_400, allow_inf_nan=False)]
CRON_DOC = "five fields: minute hour day-of-month month day-of-week, e.g. '0 2 * * 1-5'"


class WindowConditions(Strict):
    not_on_battery: bool = Field(default=False, description="the board runs on mains")
    battery_min_pct: Pct | None = Field(default=None, description="battery at least this %")
    ambient_max_c: Celsius | None = Field(default=None, description="ambient below this °C")
    case_closed: bool = Field(default=False, description="the case switch reads closed")
    rack_under_budget: bool = Field(
        default=False, description="the rack's fresh draw is below its power budget"
    )


class WindowCreate(Strict):
    name: str = Field(min_length=1, max_length=100)
    scope: Scope = "fleet"
    scope_id: str | None = Field(default=None, max_length=32, description="the site or group")
    cron: str = Field(min_length=1, max_length=100, description=CRON_DOC)
    duration_s: Seconds
    timezone: str = Field(default="UTC", max_length=64, description="IANA, e.g. Europe/Berlin")
    conditions: WindowConditions = Field(default_factory=WindowConditions)
    enabled: bool = True


class WindowUpdate(Strict):
    name: str | None = Field(default=None, min_length=1, max_length=100)
    scope: Scope | None = None
    scope_id: str | None = Field(default=None, max_length=32)
    cron: str | None = Field(default=None, min_length=1, max_length=100, description=CRON_DOC)
    duration_s: Seconds | None = None
    timezone: str | None = Field(default=None, max_length=64)
    conditions: WindowConditions | None = None
    enabled: bool | None = None


class WindowPublic(BaseModel):
    id: str
    name: str
    scope: Scope
    scope_id: str | None
    cron: str
    duration_s: float
    timezone: str
    conditions: dict[str, Any]
    enabled: bool
    created_by: str | None
    created_at: float
    updated_at: float


class WindowVerdict(BaseModel):
    id: str
    name: str
    open: bool
    opened_at: float | None
    closes_at: float | None
    conditions_met: bool = Field(description="only meaningful while open")
    failing: list[str] = Field(description="why each failing condition fails")
    next_open: float | None = Field(description="the next start after now (unix seconds)")


class DeviceMaintenance(BaseModel):
    device_id: str
    may_disrupt: bool = Field(description="disruptive commands (reboot, shutdown) go now")
    reason: str | None = Field(description="why not, when not")
    windows: list[WindowVerdict] = Field(description="the windows that apply to the board")
    next_open: float | None
