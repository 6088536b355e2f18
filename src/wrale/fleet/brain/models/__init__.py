"""Database models of the central server; importing this package registers them all."""

from wrale.fleet.brain.models.audit import AuditEntry
from wrale.fleet.brain.models.base import Base
from wrale.fleet.brain.models.identity import (
    ApiToken,
    LoginThrottle,
    RefreshToken,
    Tenant,
    User,
)

__all__ = ["ApiToken", "AuditEntry", "Base", "LoginThrottle", "RefreshToken", "Tenant", "User"]
