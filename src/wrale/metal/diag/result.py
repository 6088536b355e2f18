"""One diagnostic finding (``DiagResult``), its type and status, and how statuses combine.

Pure values: the service stamps each result with the time and the run it belongs to.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from typing import Any

import msgspec

from wrale.metal.core.events import Severity

Reading = float | int | str | None


class DiagType(StrEnum):
    GPIO = "GPIO"
    POWER = "POWER"
    THERMAL = "THERMAL"
    SECURITY = "SECURITY"


class DiagStatus(StrEnum):
    PASS = "PASS"  # noqa: S105 - a test status, not a password
    WARNING = "WARNING"
    FAIL = "FAIL"
    SKIPPED = "SKIPPED"


# SKIPPED says nothing about the hardware, so it ranks below PASS.
_RANK = {DiagStatus.SKIPPED: 0, DiagStatus.PASS: 1, DiagStatus.WARNING: 2, DiagStatus.FAIL: 3}


def worst(statuses: Iterable[DiagStatus]) -> DiagStatus:
    """The most serious status of ``statuses`` (SKIPPED when there are none)."""
    return max(statuses, key=_RANK.__getitem__, default=DiagStatus.SKIPPED)


def severity_of(status: DiagStatus) -> Severity:
    """The event severity a run with this worst status deserves."""
    if status is DiagStatus.FAIL:
        return Severity.CRITICAL
    if status is DiagStatus.WARNING:
        return Severity.WARNING
    return Severity.INFO


class DiagResult(msgspec.Struct, frozen=True):
    """What one test found about one component; ``reading`` and ``expected`` carry units."""

    type: DiagType
    name: str
    component: str
    status: DiagStatus
    message: str
    reading: Reading = None
    expected: str | None = None
    unit: str | None = None

    def to_dict(self, *, timestamp: float, run_id: str) -> dict[str, Any]:
        return {
            "type": self.type.value,
            "name": self.name,
            "component": self.component,
            "status": self.status.value,
            "reading": self.reading,
            "expected": self.expected,
            "unit": self.unit,
            "message": self.message,
            "timestamp": timestamp,
            "run_id": run_id,
        }
