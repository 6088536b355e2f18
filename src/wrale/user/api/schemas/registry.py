"""Schemas of devices, enrollment tokens, enrollment and device credentials."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, Field, StringConstraints, model_validator

from wrale.user.api.schemas.common import Strict

Status = Literal[
    "unknown", "online", "offline", "error", "maintenance", "decommissioned", "quarantined"
]
OperatorStatus = Literal["unknown", "maintenance", "decommissioned"]
PRINTABLE = r"^[^\x00-\x1f\x7f]+$"  # no control characters (PostgreSQL refuses NUL)


def _text(max_length: int) -> Any:
    return StringConstraints(min_length=1, max_length=max_length, pattern=PRINTABLE)


Name = Annotated[str, _text(100)]
DeviceName = Annotated[str, _text(100)]
Tag = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:=/@+-]{1,64}$")]
Capability = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Za-z][A-Za-z0-9_]{0,31}$"),
    AfterValidator(str.upper),
]
Text64 = Annotated[str, _text(64)]
Text100 = Annotated[str, _text(100)]
Version = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.+-]{1,32}$")]
ID = r"^[0-9a-f]{32}$"
Id = Annotated[str, StringConstraints(pattern=ID)]
Tags = Annotated[list[Tag], Field(max_length=50)]
Capabilities = Annotated[list[Capability], Field(max_length=50)]


def _unique(values: list[str] | None) -> list[str] | None:
    return list(dict.fromkeys(values)) if values is not None else None


# ----------------------------------------------------------------------------- devices


class LocationPublic(BaseModel):
    rack_id: str | None = None
    slot_u: int | None = None
    zone_id: str | None = None


class DevicePublic(BaseModel):
    id: str
    name: str
    model: str | None = None
    hardware_profile: str | None = None
    tags: list[str]
    proposed_tags: list[str] = Field(
        default_factory=list,
        description="untrusted: tags the board proposed at enrollment, for an operator to "
        "review; never used by selectors, groups, policies or commands",
    )
    status: Status
    last_seen_at: float | None = None
    agent_version: str | None = None
    capabilities: list[str]
    location: LocationPublic
    created_at: float


class DeviceFields(Strict):
    model: Text100 | None = None
    hardware_profile: Text64 | None = None
    tags: Tags | None = None
    capabilities: Capabilities | None = None

    @model_validator(mode="after")
    def _dedupe(self) -> DeviceFields:
        self.tags = _unique(self.tags)
        self.capabilities = _unique(self.capabilities)
        return self


class DeviceCreate(DeviceFields):
    name: DeviceName | None = Field(None, description="default: device-<n>")


class DeviceUpdate(DeviceFields):
    """Fields left out stay; ``null`` clears model, profile, tags, capabilities."""

    name: DeviceName | None = Field(None, description="null: unchanged")


class DeviceStatusChange(Strict):
    status: OperatorStatus = Field(description="online/offline/error come from the device")
    reason: Annotated[str, _text(500)] | None = None


# ----------------------------------------------------------------------------- tokens


class EnrollmentTokenCreate(Strict):
    name: Name
    max_uses: Annotated[int, Field(ge=1, le=1_000_000)] | None = Field(
        1, description="1: single use (default); null: unlimited"
    )
    expires_in_s: Annotated[float, Field(gt=0, le=365 * 86_400)] | None = None
    target_group_id: Id | None = None
    target_tags: Tags = Field(default_factory=list)
    target_rack_id: Id | None = None


class EnrollmentTokenPublic(BaseModel):
    id: str
    name: str
    prefix: str
    max_uses: int | None
    uses: int
    expires_at: float | None
    revoked: bool
    state: Literal["active", "revoked", "expired", "used_up"]
    target_group_id: str | None
    target_tags: list[str]
    target_rack_id: str | None
    created_at: float


class EnrollmentTokenCreated(EnrollmentTokenPublic):
    token: str = Field(description="shown once; give it to the devices now")


# ----------------------------------------------------------------------------- enrollment


class EnrollDevice(DeviceCreate):
    agent_version: Version | None = None


class EnrollRequest(EnrollDevice):
    token: Annotated[str, Field(min_length=1, max_length=200)]


class Enrolled(BaseModel):
    device_id: str
    device_secret: str = Field(description="the device's own secret, shown once")
    device: DevicePublic
    target_group_id: str | None = Field(
        None, description="the token's static group the device joined"
    )
    mqtt_broker_auth: bool = Field(
        False,
        description="the MQTT broker authenticates the device (username = device id, "
        "password = device secret): its hello carries no secret",
    )


class BulkEnrollRequest(Strict):
    """With ``token_id`` or ``token`` (both: they must name the same token) the devices
    use the token; without, they are simply created with credentials."""

    token_id: Id | None = None
    token: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    devices: Annotated[list[EnrollDevice], Field(min_length=1, max_length=1000)]


class BulkEnrolled(BaseModel):
    items: list[Enrolled]
    token_id: str | None = None


# ----------------------------------------------------------------------------- credentials


class CredentialRotate(Strict):
    grace_s: Annotated[float, Field(ge=0, le=7 * 86_400)] = Field(
        0, description="how long the previous secrets stay valid (default: revoked now)"
    )


class CredentialPublic(BaseModel):
    id: str
    device_id: str
    created_at: float
    revoked_at: float | None
    last_used_at: float | None
    active: bool


class CredentialIssued(BaseModel):
    device_id: str
    device_secret: str = Field(description="shown once")
    credential: CredentialPublic


class CredentialsRevoked(BaseModel):
    device_id: str
    revoked: int
