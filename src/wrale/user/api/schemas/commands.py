"""Schemas of commands: one to a device, a batch to a group or to a selector, and the
command as it moves through queued → sent → succeeded | failed | refused | expired."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, model_validator

from wrale.fleet.sync.protocol import CommandOp
from wrale.user.api.schemas.common import Strict
from wrale.user.api.schemas.groups import Selector, Tag

Op = CommandOp
CommandStatus = Literal["queued", "sent", "succeeded", "failed", "refused", "expired"]
ARGS_DOC = (
    "set_fan {percent 0-100, duration_s 1-86400 = 300}; clear_fan {}; "
    "set_throttle {max_freq_pct 40-100 | null}; run_diag {tests?}; arm {level?}; disarm {} "
    "(admin); reboot / shutdown {delay_s? 0-3600}; safe_mode {on}; simulated boards only: "
    "sim_fault {fault, duration_s?, params?}, sim_clear {fault?}, sim_load {percent}, "
    "sim_ambient {celsius -40..80}"
)


class CommandCreate(Strict):
    op: Op
    args: dict[str, Any] = Field(default_factory=dict, description=ARGS_DOC)
    deadline: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = Field(
        default=None, description="unix seconds (default: now + 300 s, at most 7 days ahead)"
    )
    timeout_s: Annotated[float, Field(gt=0, le=7 * 86_400, allow_inf_nan=False)] | None = Field(
        default=None, description="instead of deadline: seconds from now"
    )


class DeviceCommandCreate(CommandCreate):
    override_window: bool = Field(
        default=False,
        description="send a disruptive command (reboot, shutdown) outside the device's "
        "maintenance windows; needs override_reason (audited)",
    )
    override_reason: str | None = Field(default=None, max_length=500)

    @model_validator(mode="after")
    def _reason(self) -> DeviceCommandCreate:
        if self.override_window and not (self.override_reason or "").strip():
            raise ValueError("override_reason: required with override_window")
        if self.override_reason is not None and not self.override_window:
            raise ValueError("override_reason: only with override_window")
        return self


class CommandSelector(Selector):
    tags: Annotated[list[Tag], Field(max_length=50)] | None = Field(
        default=None, description="all of these tags (same as tags_all)"
    )


class SelectorCommandCreate(CommandCreate):
    selector: CommandSelector = Field(description="which devices (at least one clause)")


class CommandPublic(BaseModel):
    id: str
    device_id: str
    batch_id: str | None
    op: str
    args: dict[str, Any]
    status: CommandStatus
    reason: str | None
    result: dict[str, Any] | None
    deadline: float
    created_by: str | None
    created_at: float
    sent_at: float | None
    finished_at: float | None


class RefusedDevice(BaseModel):
    device_id: str
    name: str
    reason: str


class CommandBatch(BaseModel):
    batch_id: str
    count: int = Field(description="commands queued")
    commands: list[CommandPublic]
    refused: list[RefusedDevice] = Field(description="devices that cannot take it now, and why")
