"""Request models of metald's API and ``parse``, which turns a validation failure into an
``InvalidRequestError`` saying ``<field>: <problem>``.

Numbers are strict (a bool is not a number) and finite; bodies refuse unknown fields.
"""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    ValidationError,
    model_validator,
)

from wrale.metal.core.events import EventType, Severity
from wrale.metal.hw.base import FaultKind
from wrale.shared.errors import InvalidRequestError
from wrale.shared.policy import PowerPolicy, SecurityLevel, SecurityPolicy, ThermalPolicy

M = TypeVar("M", bound=BaseModel)

Number = Annotated[float, Field(strict=True, allow_inf_nan=False)]
Percent = Annotated[float, Field(strict=True, allow_inf_nan=False, ge=0, le=100)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FanOverrideBody(_Body):
    """``PUT /v1/thermal/fan``; the policy's ``max_override_s`` bounds the duration."""

    percent: Percent
    duration_s: Annotated[Number, Field(ge=1)] = 300.0


class FreqCapBody(_Body):
    """``PUT /v1/thermal/throttle``: cap the CPU frequency (40-100 %); ``null`` lifts it."""

    max_freq_pct: Annotated[Number, Field(ge=40, le=100)] | None = None


class PoliciesBody(_Body):
    """``PUT /v1/policies``: each policy given replaces the running one, whole."""

    thermal: ThermalPolicy | None = None
    power: PowerPolicy | None = None
    security: SecurityPolicy | None = None


class ArmBody(_Body):
    level: SecurityLevel | None = None


class PwmBody(_Body):
    frequency_hz: Annotated[Number, Field(gt=0, le=10_000_000)] = 25_000.0  # fan PWM default
    duty_percent: Percent


class GpioBody(_Body):
    """``PUT /v1/gpio/{line}``: exactly one of ``value`` (0 or 1) and ``pwm``."""

    value: Annotated[StrictInt, Field(ge=0, le=1)] | None = None
    pwm: PwmBody | None = None

    @model_validator(mode="after")
    def _one(self) -> GpioBody:
        if (self.value is None) == (self.pwm is None):
            raise ValueError("give exactly one of 'value' (0 or 1) and 'pwm'")
        return self


class DiagRunBody(_Body):
    tests: Annotated[list[StrictStr], Field(max_length=100)] | None = None


class AmbientBody(_Body):
    celsius: Annotated[Number, Field(ge=-40, le=80)]


class LoadBody(_Body):
    percent: Percent


class FaultBody(BaseModel):
    """``POST /v1/sim/faults``: ``fault`` and ``duration_s``; other keys are its parameters
    (checked by the simulator)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    fault: FaultKind
    duration_s: Annotated[Number, Field(gt=0)] | None = None

    def params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class _Query(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class EventQuery(_Query):
    """``GET /v1/events``: after ``since_id`` (oldest first) or else the latest ``limit``."""

    since_id: Annotated[int, Field(ge=0)] | None = None
    limit: Annotated[int, Field(ge=1, le=1000)] = 100
    type: list[EventType] | None = None
    min_severity: Severity | None = None

    def type_names(self) -> list[str] | None:
        return [t.value for t in self.type] if self.type else None


class HistoryQuery(_Query):
    limit: Annotated[int, Field(ge=1, le=1000)] = 50


class ClearFaultsQuery(_Query):
    fault: FaultKind | None = None


def parse(model: type[M], data: Any) -> M:
    """Validate ``data`` (``None``: an empty body) as ``model``; ``InvalidRequestError`` else."""
    try:
        return model.model_validate({} if data is None else data)
    except ValidationError as exc:
        problems = [
            {"field": ".".join(str(p) for p in err["loc"]) or "body", "problem": err["msg"]}
            for err in exc.errors(include_url=False)
        ]
        message = "; ".join(f"{p['field']}: {p['problem']}" for p in problems)
        raise InvalidRequestError(message, errors=problems) from None
