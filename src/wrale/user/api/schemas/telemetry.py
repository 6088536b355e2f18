"""Request and response bodies of the telemetry API (batches in, series and newest values out)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from wrale.user.api.schemas.common import Strict

Step = Literal["1m", "5m", "15m", "1h", "6h", "1d"]
METRIC_PATTERN = r"^[a-z][a-z0-9_]{0,63}$"


class TelemetryPointIn(Strict):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    metric: str = Field(max_length=64, description="e.g. cpu_temp_c (a unit suffix)")
    ts: float = Field(description="unix seconds")
    value: float


class TelemetryBatchIn(Strict):
    seq: int = Field(ge=0, le=2**53 - 1, description="per-device, increasing")
    points: Annotated[list[TelemetryPointIn], Field(max_length=10_000)]


class IngestResultPublic(BaseModel):
    stored: bool
    duplicate: bool = Field(description="seq was not above the last stored: nothing stored")
    acked_seq: int = Field(description="safe to drop from the device's outbox")
    last_seq: int = Field(description="the highest seq stored for the device")
    points: int = Field(description="points stored by this request")


class SeriesPublic(BaseModel):
    metric: str
    device_id: str
    step: str | None = Field(description="null: raw points")
    start: float
    end: float
    columns: list[str] = Field(description="raw: ts, value; stepped: ts, mean, min, max, last")
    points: list[list[float]]


class FleetSeriesPublic(BaseModel):
    metric: str
    group_id: str | None
    rack_id: str | None
    device_ids: list[str]
    devices: int = Field(description="devices matching every filter")
    step: str
    start: float
    end: float
    columns: list[str] = Field(description="ts, mean, min, max, devices (reporting)")
    points: list[list[float]]


class LatestValue(BaseModel):
    ts: float
    value: float


class DeviceLatestPublic(BaseModel):
    device_id: str
    metrics: dict[str, LatestValue]
