"""Who is acting: a user (password login) or an API token, always inside one tenant.

Roles rank viewer < operator < admin; ``require`` raises ``ForbiddenError`` below the rank.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from wrale.shared.errors import WraleError


class Role(StrEnum):
    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"


_RANK = {Role.VIEWER: 0, Role.OPERATOR: 1, Role.ADMIN: 2}


def at_least(role: Role, needed: Role) -> bool:
    return _RANK[role] >= _RANK[needed]


class ForbiddenError(WraleError):
    """Authenticated, but the role does not allow it (HTTP 403)."""

    code = "forbidden"


@dataclass(frozen=True, slots=True)
class Principal:
    tenant_id: str
    role: Role
    actor_type: str  # "user" | "token"
    actor_id: str
    name: str
    source_ip: str | None = None

    def require(self, needed: Role, action: str) -> None:
        if not at_least(self.role, needed):
            raise ForbiddenError(
                f"{action} needs the {needed.value} role; you are {self.role.value}",
                needed=needed.value,
                role=self.role.value,
            )
