"""Schemas of authentication, users, API tokens and the audit log."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, Field, StringConstraints

from wrale.fleet.brain.models.identity import PASSWORD_MAX, USERNAME_MAX
from wrale.fleet.brain.services.principal import Role
from wrale.user.api.schemas.common import Strict

Username = Annotated[str, StringConstraints(pattern=rf"^[a-zA-Z0-9_.@-]{{2,{USERNAME_MAX}}}$")]
Password = Annotated[str, Field(min_length=10, max_length=PASSWORD_MAX)]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]


class LoginRequest(Strict):
    username: Annotated[str, Field(min_length=1, max_length=USERNAME_MAX)]
    password: Annotated[str, Field(min_length=1, max_length=PASSWORD_MAX)]


class RefreshRequest(Strict):
    refresh_token: Annotated[str, Field(min_length=1, max_length=256)]


class TokenResponse(BaseModel):
    access_token: str
    token_type: str = "bearer"  # noqa: S105 - the OAuth token type, not a secret
    expires_in: int
    refresh_token: str
    user: UserPublic


class UserPublic(BaseModel):
    id: str
    username: str
    role: Role
    disabled: bool
    created_at: float
    last_login_at: float | None = None


class UserCreate(Strict):
    username: Username
    password: Password
    role: Role = Role.VIEWER


class UserUpdate(Strict):
    role: Role | None = None
    disabled: bool | None = None
    password: Password | None = None


class ApiTokenCreate(Strict):
    name: Name
    role: Role = Role.VIEWER
    expires_in_s: Annotated[float, Field(gt=0, le=10 * 365 * 86_400)] | None = None


class ApiTokenPublic(BaseModel):
    id: str
    name: str
    role: Role
    prefix: str
    created_at: float
    expires_at: float | None = None
    revoked_at: float | None = None
    last_used_at: float | None = None


class ApiTokenCreated(ApiTokenPublic):
    token: str = Field(description="shown once; store it now")


class AuditPublic(BaseModel):
    id: str
    at: float
    actor_type: str
    actor_id: str | None
    actor_name: str | None
    action: str
    resource_type: str | None
    resource_id: str | None
    outcome: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    source_ip: str | None
    details: dict[str, Any] | None


class MePublic(BaseModel):
    tenant_id: str
    role: Role
    actor_type: str
    actor_id: str
    name: str


TokenResponse.model_rebuild()
