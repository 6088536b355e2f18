"""Tenants, users, their refresh tokens, API tokens for automation, and login throttling."""

from __future__ import annotations

from sqlalchemy import Boolean, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from wrale.fleet.brain.models.base import Base, IdMixin, TenantMixin

# One length for the column, the API schemas and the dashboard's form.
USERNAME_MAX = 64
PASSWORD_MAX = 256


class Tenant(IdMixin, Base):
    __tablename__ = "tenants"

    name: Mapped[str] = mapped_column(String(100), unique=True)
    status: Mapped[str] = mapped_column(String(16), default="active")  # active | suspended
    max_devices: Mapped[int] = mapped_column(Integer, default=10_000)
    max_users: Mapped[int] = mapped_column(Integer, default=100)


class User(TenantMixin, Base):
    __tablename__ = "users"

    username: Mapped[str] = mapped_column(String(USERNAME_MAX), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))  # admin | operator | viewer
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    last_login_at: Mapped[float | None] = mapped_column(default=None)
    # carried in access tokens; bumped on a password, role or disable change, which ends
    # every session of the user at once
    token_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class RefreshToken(IdMixin, Base):
    __tablename__ = "refresh_tokens"

    user_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    expires_at: Mapped[float]
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)


class ApiToken(TenantMixin, Base):
    """A token for automation: acts with the lower of its own role and its creator's
    current one; disabled while its creator is, revoked when the creator is deleted."""

    __tablename__ = "api_tokens"

    name: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(16))
    user_id: Mapped[str | None] = mapped_column(
        String(32), ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    expires_at: Mapped[float | None] = mapped_column(default=None)
    revoked_at: Mapped[float | None] = mapped_column(default=None)
    last_used_at: Mapped[float | None] = mapped_column(default=None)


class LoginThrottle(Base):
    """Failed logins per address+username (``pair:``) and per address (``addr:``), in the
    database so every replica sees them; updated by one atomic upsert per attempt."""

    __tablename__ = "login_throttle"

    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    last_failure_at: Mapped[float] = mapped_column(default=0.0, index=True)
    blocked_until: Mapped[float] = mapped_column(default=0.0)
