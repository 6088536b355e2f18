"""Leases: named, expiring claims in the database that let every replica run the same
background jobs while each job runs once per interval fleet-wide (see ``background.py``)."""

from __future__ import annotations

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from wrale.fleet.brain.models.base import Base


class Lease(Base):
    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(128))
    expires_at: Mapped[float]
    acquired_at: Mapped[float]
