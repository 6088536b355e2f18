"""Schemas of a device's twin: desired and reported documents with their versions, the
diff between them, and the merge patch an operator sends with the version it saw."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, Field

from wrale.user.api.schemas.common import Strict

Section = dict[str, Any] | None


class DesiredPatch(Strict):
    """An RFC 7386 JSON merge patch of the explicit desired values: objects merge, ``null``
    removes a value (or a whole section), anything else replaces. Policy sections are
    laid over the device's effective policy."""

    thermal: Section = Field(default=None, description="ThermalPolicy fields")
    power: Section = Field(default=None, description="PowerPolicy fields")
    security: Section = Field(default=None, description="SecurityPolicy fields")
    sampling: Section = Field(default=None, description="interval_s, report_interval_s")
    fan: Section = Field(
        default=None, description="override_pct (0-100 or null), duration_s (1-86400)"
    )
    tamper: Section = Field(default=None, description="armed, level (low|medium|high)")
    gpio: Section = Field(
        default=None,
        description='per line: {"value": 0|1} or {"frequency_hz": f, "duty_percent": d}',
    )
    config: Section = Field(default=None, description="config keys (usually from templates)")


class TwinPatch(Strict):
    version: Annotated[int, Field(ge=0, le=2**62)] = Field(
        description="the desired version this change is based on (409 if it moved on)"
    )
    desired: DesiredPatch


class DesiredPublic(BaseModel):
    version: int
    doc: dict[str, Any]


class ReportedPublic(BaseModel):
    version: int
    doc: dict[str, Any]
    at: float | None = Field(description="when the server received it")


class TwinDiffItem(BaseModel):
    path: str = Field(description="dotted path, e.g. thermal.cpu_warning_c")
    desired: Any
    reported: Any = Field(description="null when missing")
    missing: bool = Field(description="the device does not report this value")
    rejected: str | None = Field(description="the device's reason, when it rejected it")


class TwinPublic(BaseModel):
    device_id: str
    desired: DesiredPublic
    reported: ReportedPublic
    overrides: dict[str, Any] = Field(description="the explicit values desired is built from")
    applied_desired_version: int
    rejected: dict[str, str] = Field(description="dotted path → the device's reason")
    in_sync: bool
    diff: list[TwinDiffItem]
    updated_at: float
