"""Database models of the central server; importing this package registers them all."""

from wrale.fleet.brain.models import alerts, groups, policies, telemetry
from wrale.fleet.brain.models import channel as channel
from wrale.fleet.brain.models import commands as commands
from wrale.fleet.brain.models import decision_loops as decision_loops
from wrale.fleet.brain.models import decisions as decisions
from wrale.fleet.brain.models import dry_runs as dry_runs
from wrale.fleet.brain.models import jobs as jobs
from wrale.fleet.brain.models import maintenance as maintenance
from wrale.fleet.brain.models import recommendations as recommendations
from wrale.fleet.brain.models import rollouts as rollouts
from wrale.fleet.brain.models import templates as templates
from wrale.fleet.brain.models import twin as twin
from wrale.fleet.brain.models.audit import AuditEntry
from wrale.fleet.brain.models.base import Base
from wrale.fleet.brain.models.identity import (
    ApiToken,
    LoginThrottle,
    RefreshToken,
    Tenant,
    User,
)
from wrale.fleet.brain.models.leases import Lease
from wrale.fleet.brain.models.registry import Device, DeviceCredential, EnrollmentToken
from wrale.fleet.brain.models.topology import Rack, Room, Site, Zone

__all__ = [
    "ApiToken",
    "AuditEntry",
    "Base",
    "Device",
    "DeviceCredential",
    "EnrollmentToken",
    "Lease",
    "LoginThrottle",
    "Rack",
    "RefreshToken",
    "Room",
    "Site",
    "Tenant",
    "User",
    "Zone",
    "alerts",
    "groups",
    "policies",
    "telemetry",
]
