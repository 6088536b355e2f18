"""Schemas of device groups: static and dynamic (selector), nested under a parent."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field

from wrale.user.api.schemas.common import Strict
from wrale.user.api.schemas.policies import RecomposePublic
from wrale.user.api.schemas.topology import Id, Name, Text

Tag = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[^\x00-\x1f\x7f]+$")]
Status = Literal[
    "unknown", "online", "offline", "error", "maintenance", "decommissioned", "quarantined"
]


class Selector(Strict):
    """Every clause given must hold (AND); ``tags_any`` needs one of its tags."""

    tags_all: Annotated[list[Tag], Field(max_length=50)] | None = None
    tags_any: Annotated[list[Tag], Field(max_length=50)] | None = None
    status: Annotated[list[Status], Field(max_length=7)] | None = None
    site_id: Id | None = None
    room_id: Id | None = None
    rack_id: Id | None = None
    zone_id: Id | None = None
    model: Name | None = None


class StaticGroupCreate(Strict):
    """A group whose members are listed explicitly."""

    name: Name
    description: Text | None = None
    kind: Literal["static"] = "static"
    parent_id: Id | None = None


class DynamicGroupCreate(Strict):
    """A group whose members are the devices matching ``selector`` (empty: every device)."""

    name: Name
    description: Text | None = None
    kind: Literal["dynamic"]
    selector: Selector = Field(default_factory=lambda: Selector())
    parent_id: Id | None = None


GroupCreate = StaticGroupCreate | DynamicGroupCreate


class GroupUpdate(Strict):
    name: Name | None = None
    description: Text | None = None
    selector: Selector | None = None
    parent_id: Id | None = None


class GroupPublic(BaseModel):
    id: str
    name: str
    description: str | None
    kind: str
    selector: dict[str, object] | None
    parent_id: str | None
    created_at: float


class DeviceGroupPublic(GroupPublic):
    direct: bool = Field(description="false when the device is in it through a subgroup")


MAX_BULK = 10_000  # devices one bulk change may name (bulk_membership.MAX_SELECTION)


class MembersAdd(Strict):
    device_ids: Annotated[list[Id], Field(min_length=1, max_length=MAX_BULK)]


class MembersAdded(BaseModel):
    added: int
    already: int
    recompose: RecomposePublic | None = Field(
        default=None,
        description="the background recomposition of the boards' twins, when "
        "a policy sits on the group or one of its ancestors",
    )


class MembersRemoved(BaseModel):
    removed: int
    absent: int = Field(description="devices that were not members")
    recompose: RecomposePublic | None = None


class TagsBulk(Strict):
    """Add a tag to (or remove it from) many devices at once."""

    device_ids: Annotated[list[Id], Field(min_length=1, max_length=MAX_BULK)]
    tag: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.:=/@+-]{1,64}$")]
    remove: bool = Field(default=False, description="take the tag off instead")


class TagsBulkResult(BaseModel):
    changed: int
    unchanged: int = Field(description="had it already (or did not have it), or were full")
    recompose: RecomposePublic | None = Field(
        default=None, description="when a dynamic group selecting the tag carries a policy"
    )


class GroupDevice(BaseModel):
    id: str
    name: str
    status: str
    model: str | None
    tags: list[str]
    rack_id: str | None
    slot_u: int | None
    zone_id: str | None
