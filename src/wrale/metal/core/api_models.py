"""Request models of metald's API and ``parse``, which turns a validation failure into an
``InvalidRequestError`` saying ``<field>: <problem>``.

Numbers in bodies are strict (a bool or a string is not a number) and finite; bodies refuse
unknown fields. Queries take strings for numbers and ignore parameters they do not know.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, TypeVar

import msgspec
from msgspec import Meta

from wrale.metal.core.events import EventType, Severity
from wrale.metal.hw.base import FaultKind
from wrale.shared.errors import InvalidRequestError
from wrale.shared.policy import PowerPolicy, SecurityLevel, SecurityPolicy, ThermalPolicy
from wrale.shared.structs import Doc, convert, problems

M = TypeVar("M", bound=msgspec.Struct)

Percent = Annotated[float, Meta(ge=0, le=100)]


class FanOverrideBody(Doc, frozen=True):
    """``PUT /v1/thermal/fan``; the policy's ``max_override_s`` bounds the duration."""

    percent: Percent
    duration_s: Annotated[float, Meta(ge=1)] = 300.0


class FreqCapBody(Doc, frozen=True):
    """``PUT /v1/thermal/throttle``: cap the CPU frequency (40-100 %); ``null`` lifts it."""

    max_freq_pct: Annotated[float, Meta(ge=40, le=100)] | None = None


class PoliciesBody(Doc, frozen=True):
    """``PUT /v1/policies``: each policy given replaces the running one, whole."""

    thermal: ThermalPolicy | None = None
    power: PowerPolicy | None = None
    security: SecurityPolicy | None = None


class ArmBody(Doc, frozen=True):
    level: SecurityLevel | None = None


class PwmBody(Doc, frozen=True, kw_only=True):
    frequency_hz: Annotated[float, Meta(gt=0, le=10_000_000)] = 25_000.0  # fan PWM default
    duty_percent: Percent


class GpioBody(Doc, frozen=True):
    """``PUT /v1/gpio/{line}``: exactly one of ``value`` (0 or 1) and ``pwm``."""

    value: Annotated[int, Meta(ge=0, le=1)] | None = None
    pwm: PwmBody | None = None

    def check(self) -> None:
        if (self.value is None) == (self.pwm is None):
            raise ValueError("give exactly one of 'value' (0 or 1) and 'pwm'")


class DiagRunBody(Doc, frozen=True):
    tests: Annotated[list[str], Meta(max_length=100)] | None = None


class AmbientBody(Doc, frozen=True):
    celsius: Annotated[float, Meta(ge=-40, le=80)]


class LoadBody(Doc, frozen=True):
    percent: Percent


class FaultBody(Doc, frozen=True):
    """``POST /v1/sim/faults``: ``fault`` and ``duration_s``; other keys are its parameters
    (checked by the simulator)."""

    EXTRA_INTO: ClassVar[str] = "extra"

    fault: FaultKind
    duration_s: Annotated[float, Meta(gt=0)] | None = None
    extra: dict[str, Any] = msgspec.field(default_factory=dict)

    def params(self) -> dict[str, Any]:
        return dict(self.extra)


class _Query(Doc, frozen=True, forbid_unknown_fields=False):
    """Query parameters: strings convert to numbers; unknown parameters are ignored."""


class EventQuery(_Query, frozen=True):
    """``GET /v1/events``: after ``since_id`` (oldest first) or else the latest ``limit``."""

    since_id: Annotated[int, Meta(ge=0)] | None = None
    limit: Annotated[int, Meta(ge=1, le=1000)] = 100
    type: list[EventType] | None = None
    min_severity: Severity | None = None

    def type_names(self) -> list[str] | None:
        return [t.value for t in self.type] if self.type else None


class HistoryQuery(_Query, frozen=True):
    limit: Annotated[int, Meta(ge=1, le=1000)] = 50


class ClearFaultsQuery(_Query, frozen=True):
    fault: FaultKind | None = None


def parse(model: type[M], data: Any) -> M:
    """Validate ``data`` (``None``: an empty body) as ``model``; ``InvalidRequestError`` else."""
    data = {} if data is None else data
    into = getattr(model, "EXTRA_INTO", None)
    if into is not None and isinstance(data, dict):
        known = set(model.__struct_fields__) - {into}
        data = {
            **{k: v for k, v in data.items() if k in known},
            into: {k: v for k, v in data.items() if k not in known},
        }
    try:
        return convert(data, model, strict=not issubclass(model, _Query))
    except msgspec.ValidationError as exc:
        found = problems(exc)
        for p in found:
            p["field"] = p["field"] or "body"
        message = "; ".join(f"{p['field']}: {p['problem']}" for p in found)
        raise InvalidRequestError(message, errors=found) from None
