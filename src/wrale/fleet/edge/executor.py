"""Runs the steps of a plan against the board (through ``MetalClient``) and the agent's own
held state. A step metal refuses is reported as rejected, path by path, with metal's
reason; the other steps still run. A policy with one unsafe field is applied without it.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Mapping
from typing import Any

import msgspec

from wrale.fleet.edge.reconcile import (
    Arm,
    ClearFan,
    Disarm,
    GpioPwm,
    GpioWrite,
    Reject,
    SetConfig,
    SetFanOverride,
    SetPolicy,
    SetSampling,
    Step,
)
from wrale.fleet.sync.twin import REMOVED, get_path, same, set_path
from wrale.metal.core.ports import MetalClient
from wrale.shared.errors import InvalidRequestError, WraleError

log = logging.getLogger(__name__)

Json = dict[str, Any]
MIN_SAMPLING_S = 0.05
MAX_SAMPLING_S = 3600.0
MAX_REPORT_S = 86_400.0
POLICY_ATTEMPTS = 5


class Held(msgspec.Struct):
    """What the agent itself keeps in force for the board: telemetry sampling, the fan
    override it renews, and the config document."""

    interval_s: float = 1.0
    report_interval_s: float = 10.0
    config: Json = msgspec.field(default_factory=dict)
    fan_pct: float | None = None  # the override the agent holds, if any
    fan_duration_s: float = 300.0
    fan_active: bool = False  # metal accepted the last renewal

    def sampling(self) -> Json:
        return {"interval_s": self.interval_s, "report_interval_s": self.report_interval_s}

    def fan(self) -> Json:
        return {
            "override_pct": self.fan_pct if self.fan_active else None,
            "duration_s": self.fan_duration_s,
        }


def check_sampling(interval_s: float, report_interval_s: float) -> None:
    if not (math.isfinite(interval_s) and MIN_SAMPLING_S <= interval_s <= MAX_SAMPLING_S):
        raise InvalidRequestError(
            f"interval_s must be between {MIN_SAMPLING_S:g} and {MAX_SAMPLING_S:g}",
            path="sampling.interval_s",
        )
    if not (math.isfinite(report_interval_s) and interval_s <= report_interval_s <= MAX_REPORT_S):
        raise InvalidRequestError(
            f"report_interval_s must be between interval_s and {MAX_REPORT_S:g}",
            path="sampling.report_interval_s",
        )


def error_paths(exc: WraleError, paths: tuple[str, ...]) -> dict[str, str]:
    """The desired paths an error names (``details["path"]``, or the fields of a
    validation error), each with its reason; empty when it names none of ``paths``."""
    named: list[tuple[str, str]] = []
    path = exc.details.get("path")
    if isinstance(path, str):
        named.append((path, exc.message))
    errors = exc.details.get("errors")
    if isinstance(errors, list):
        for e in errors:
            if isinstance(e, Mapping) and isinstance(e.get("field"), str):
                named.append((e["field"], str(e.get("problem") or exc.message)))
    found: dict[str, str] = {}
    for name, reason in named:
        for p in paths:
            if name == p or name.startswith(p + "."):
                found.setdefault(p, reason)
    return found


class Executor:
    """Applies steps; returns the rejected desired paths with reasons."""

    def __init__(self, metal: MetalClient, held: Held) -> None:
        self.metal = metal
        self.held = held

    async def apply(self, steps: list[Step], current: Mapping[str, Any]) -> dict[str, str]:
        rejected: dict[str, str] = {}
        for step in steps:
            try:
                if isinstance(step, SetPolicy):
                    rejected.update(await self._policy(step, current))
                else:
                    await self._run(step)
            except WraleError as exc:
                found = error_paths(exc, step.paths) or dict.fromkeys(step.paths, exc.message)
                log.warning("desired %s refused: %s", ", ".join(found), exc.message)
                rejected.update(found)
        return rejected

    async def _policy(self, step: SetPolicy, current: Mapping[str, Any]) -> dict[str, str]:
        """Apply a policy; a field metal refuses is put back to its running value and the
        rest is tried again (so one unsafe value does not hold back the safe ones)."""
        have = current.get(step.kind)
        have = have if isinstance(have, Mapping) else {}
        doc = step.document
        rejected: dict[str, str] = {}
        for _ in range(POLICY_ATTEMPTS):
            if same(doc, have):
                return rejected
            try:
                await self.metal.update_policies(**{step.kind: doc})
                return rejected
            except WraleError as exc:
                found = error_paths(exc, step.paths)
                if not found or all(p in rejected for p in found):
                    rejected.update({p: exc.message for p in step.paths if p not in rejected})
                    return rejected
                for p, reason in found.items():
                    rejected[p] = reason
                    rel = p.removeprefix(step.kind + ".")
                    doc = set_path(doc, rel, get_path(have, rel, REMOVED))
        rejected.update({p: "refused" for p in step.paths if p not in rejected})
        return rejected

    async def _run(self, step: Step) -> None:
        m, held = self.metal, self.held
        match step:
            case SetSampling(interval_s=interval, report_interval_s=report):
                check_sampling(interval, report)
                held.interval_s, held.report_interval_s = interval, report
            case SetConfig(config=config):
                held.config = dict(config)
            case Arm(level=level):
                await m.arm(level)
            case Disarm():
                await m.disarm()
            case SetFanOverride(percent=pct, duration_s=duration):
                held.fan_pct, held.fan_duration_s, held.fan_active = pct, duration, False
                try:
                    await m.set_fan(pct, duration)
                except WraleError:
                    # The override desired before is desired no more: back to the curve.
                    with contextlib.suppress(WraleError):
                        await m.clear_fan()
                    raise
                held.fan_active = True
            case ClearFan():
                held.fan_pct, held.fan_active = None, False
                await m.clear_fan()
            case GpioWrite(line=line, value=value):
                await m.gpio_write(line, value)
            case GpioPwm(line=line, frequency_hz=freq, duty_percent=duty):
                await m.gpio_pwm(line, freq, duty)
            case Reject(reason=reason):
                raise InvalidRequestError(reason)
            case SetPolicy():  # pragma: no cover - handled by apply
                raise AssertionError("policies go through _policy")
