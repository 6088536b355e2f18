"""Schemas of config templates, their immutable versions, rendering, deployments and
each target device's deployment status."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StringConstraints

from wrale.user.api.schemas.common import Strict
from wrale.user.api.schemas.topology import Id, Name, Text

VarName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")]
Scalar = str | int | float | bool
VersionNumber = Annotated[int, Field(ge=1, le=2**31 - 1)]
Note = Annotated[str, StringConstraints(max_length=255, pattern=r"^[^\x00-\x1f\x7f]*$")]
DeviceStatus = Literal["pending", "applied", "failed", "superseded"]


class VariableSpec(Strict):
    """A typed variable: for str, ``min``/``max`` bound its length."""

    type: Literal["str", "int", "float", "bool"]
    min: Annotated[float, Field(allow_inf_nan=False)] | None = None
    max: Annotated[float, Field(allow_inf_nan=False)] | None = None
    choices: Annotated[list[Scalar], Field(min_length=1, max_length=100)] | None = None
    default: Scalar | None = None
    required: bool | None = Field(
        default=None, description="must have a value (given or default); default: no default"
    )
    description: Text | None = None


Variables = Annotated[dict[VarName, VariableSpec], Field(max_length=100)]
BODY_DOC = (
    "a JSON object; its top-level keys become config keys; strings may hold ${var} "
    "(a whole-string placeholder keeps the variable's type; $${ is a literal ${)"
)


class TemplateCreate(Strict):
    name: Name
    description: Text | None = None
    body: dict[str, Any] = Field(description=BODY_DOC)
    variables: Variables = Field(default_factory=dict)
    note: Note | None = None


class TemplateUpdate(Strict):
    name: Name | None = None
    description: Text | None = None


class VersionCreate(Strict):
    body: dict[str, Any] = Field(description=BODY_DOC)
    variables: Variables = Field(default_factory=dict)
    note: Note | None = None


class VersionPublic(BaseModel):
    template_id: str
    version: int
    body: dict[str, Any]
    variables: dict[str, dict[str, Any]]
    note: str | None
    created_by: str | None
    created_at: float


class TemplatePublic(BaseModel):
    id: str
    name: str
    description: str | None
    latest_version: int
    created_at: float
    updated_at: float
    latest: VersionPublic | None = None


class RenderRequest(Strict):
    version: VersionNumber | None = Field(default=None, description="default: the latest")
    variables: dict[str, Any] = Field(default_factory=dict)


class Rendered(BaseModel):
    template_id: str
    version: int
    rendered: dict[str, Any]


class DeploymentCreate(Strict):
    version: VersionNumber | None = Field(default=None, description="default: the latest")
    target_type: Literal["device", "group", "fleet"]
    target_id: Id | None = Field(default=None, description="the device or group (not fleet)")
    variables: dict[str, Any] = Field(default_factory=dict)


class RollbackRequest(Strict):
    version: VersionNumber | None = Field(
        default=None,
        description="default: the version deployed to the target before, else the one below",
    )
    variables: dict[str, Any] | None = Field(
        default=None, description="default: those of the deployment rolled back to"
    )


class DeploymentPublic(BaseModel):
    id: str
    template_id: str
    version: int
    target_type: str
    target_id: str | None
    variables: dict[str, Any]
    rendered: dict[str, Any]
    rollback_of: str | None
    created_by: str | None
    created_at: float
    counts: dict[str, int] = Field(description="devices per status")


class DeploymentDevicePublic(BaseModel):
    id: str
    deployment_id: str
    device_id: str
    status: DeviceStatus
    reason: str | None
    desired_version: int = Field(description="the twin's desired version carrying it")
    updated_at: float
