"""Declarative base, naming conventions and id/time helpers shared by every model.

Ids are 32 hex characters that sort by creation time (cursor pagination orders by id);
times are seconds since the epoch as floats, the same on SQLite and PostgreSQL.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from sqlalchemy import JSON, Float, ForeignKey, MetaData, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def new_id() -> str:
    """A time-ordered id: 14 hex digits of microseconds, then 18 random ones."""
    return f"{time.time_ns() // 1000:014x}{secrets.token_hex(9)}"


def now() -> float:
    return time.time()


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {  # noqa: RUF012 - SQLAlchemy reads it as a class attribute
        dict[str, Any]: JSON,
        list[str]: JSON,
        float: Float(precision=53),
    }


class IdMixin:
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    created_at: Mapped[float] = mapped_column(default=now)


class TenantMixin(IdMixin):
    tenant_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("tenants.id", ondelete="CASCADE"), index=True
    )
