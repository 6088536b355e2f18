"""Physical topology: sites → rooms → racks (units, power budget, cooling zone) → slots,
plus free-form zones."""

from __future__ import annotations

from sqlalchemy import ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from wrale.fleet.brain.models.base import Base, TenantMixin


class Site(TenantMixin, Base):
    __tablename__ = "sites"
    __table_args__ = (UniqueConstraint("tenant_id", "name", name="uq_sites_tenant_name"),)

    name: Mapped[str] = mapped_column(String(100))
    address: Mapped[str | None] = mapped_column(String(255), default=None)


class Room(TenantMixin, Base):
    __tablename__ = "rooms"
    __table_args__ = (UniqueConstraint("site_id", "name", name="uq_rooms_site_name"),)

    site_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("sites.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(100))


class Rack(TenantMixin, Base):
    __tablename__ = "racks"
    __table_args__ = (UniqueConstraint("room_id", "name", name="uq_racks_room_name"),)

    room_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("rooms.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(100))
    units: Mapped[int] = mapped_column(Integer, default=42)
    power_budget_w: Mapped[float | None] = mapped_column(default=None)
    cooling_zone: Mapped[str | None] = mapped_column(String(64), default=None)
    # the electrical circuit (PDU, breaker) the rack hangs on: racks sharing one share its
    # inrush, so a rollout can cap the boards restarting per feed at once
    power_feed: Mapped[str | None] = mapped_column(String(64), default=None)


class Zone(TenantMixin, Base):
    """A free-form zone (a kiosk cluster, a field site's cabinet row…)."""

    __tablename__ = "zones"
    __table_args__ = (UniqueConstraint("tenant_id", "name", name="uq_zones_tenant_name"),)

    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str | None] = mapped_column(String(255), default=None)
