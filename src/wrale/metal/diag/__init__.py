"""metal.diag: diagnostics over snapshots and active hardware tests, with a history.

Builds on ``wrale.metal.core`` only; never reaches a concrete hardware backend.
"""

from wrale.metal.diag.limits import DiagLimits
from wrale.metal.diag.result import DiagResult, DiagStatus, DiagType
from wrale.metal.diag.service import DiagnosticsService

__all__ = ["DiagLimits", "DiagResult", "DiagStatus", "DiagType", "DiagnosticsService"]
