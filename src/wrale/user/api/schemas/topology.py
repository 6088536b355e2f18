"""Schemas of the physical topology: sites, rooms, racks, zones, placement, the tree and
rack power."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field, StringConstraints

from wrale.user.api.schemas.common import Strict

# Printable text only (no control characters: PostgreSQL refuses NUL).
# No leading or trailing space either (the schema says so, so clients know before asking).
Name = Annotated[
    str,
    StringConstraints(
        min_length=1,
        max_length=100,
        pattern=r"^[^\x00-\x20\x7f](?:[^\x00-\x1f\x7f]*[^\x00-\x20\x7f])?$",
    ),
]
Text = Annotated[str, StringConstraints(max_length=255, pattern=r"^[^\x00-\x1f\x7f]*$")]
Id = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{1,32}$")]
Units = Annotated[int, Field(ge=1, le=60, description="rack height in U (1–60)")]
Watts = Annotated[float, Field(ge=0, le=1_000_000, description="watts, 0 or more")]
CoolingZone = Annotated[str, StringConstraints(max_length=64, pattern=r"^[^\x00-\x1f\x7f]*$")]


class SiteCreate(Strict):
    name: Name
    address: Text | None = None


class SiteUpdate(Strict):
    name: Name | None = None
    address: Text | None = None


class SitePublic(BaseModel):
    id: str
    name: str
    address: str | None
    created_at: float


class RoomCreate(Strict):
    site_id: Id
    name: Name


class RoomUpdate(Strict):
    site_id: Id | None = None
    name: Name | None = None


class RoomPublic(BaseModel):
    id: str
    site_id: str
    name: str
    created_at: float


class RackCreate(Strict):
    room_id: Id
    name: Name
    units: Units = 42
    power_budget_w: Watts | None = None
    cooling_zone: CoolingZone | None = None
    power_feed: CoolingZone | None = None


class RackUpdate(Strict):
    room_id: Id | None = None
    name: Name | None = None
    units: Units | None = None
    power_budget_w: Watts | None = None
    cooling_zone: CoolingZone | None = None
    power_feed: CoolingZone | None = None


class RackPublic(BaseModel):
    id: str
    room_id: str
    name: str
    units: int
    power_budget_w: float | None
    cooling_zone: str | None
    power_feed: str | None = None
    created_at: float


class ZoneCreate(Strict):
    name: Name
    description: Text | None = None


class ZoneUpdate(Strict):
    name: Name | None = None
    description: Text | None = None


class ZonePublic(BaseModel):
    id: str
    name: str
    description: str | None
    created_at: float


class LocationUpdate(Strict):
    """Fields given are set (null clears); ``rack_id`` and ``slot_u`` go together."""

    rack_id: Id | None = None
    slot_u: Annotated[int, Field(ge=1, le=60)] | None = None
    zone_id: Id | None = None


class LocationPublic(BaseModel):
    device_id: str
    rack_id: str | None
    slot_u: int | None
    zone_id: str | None


class SlotDevice(BaseModel):
    id: str
    name: str
    slot_u: int | None
    status: str


class RackNode(RackPublic):
    devices: list[SlotDevice]


class RoomNode(RoomPublic):
    racks: list[RackNode]


class SiteNode(SitePublic):
    rooms: list[RoomNode]


class ZoneNode(ZonePublic):
    device_count: int


class TopologyTree(BaseModel):
    sites: list[SiteNode]
    zones: list[ZoneNode]
    unplaced_devices: int = Field(description="devices in no rack and no zone")


class RackDevicePower(BaseModel):
    id: str
    name: str
    slot_u: int | None
    power_w: float | None = Field(description="latest reading, null if none")
    at: float | None = Field(description="unix seconds of that reading")


class RackPowerPublic(BaseModel):
    rack_id: str
    budget_w: float | None
    draw_w: float
    devices_reporting: int
    devices: list[RackDevicePower]
    headroom_w: float | None
    over_budget: bool
