"""Schemas of policies, their versions and a device's effective policy. Request documents
are typed per kind (every field optional, with the shared models' ranges), so the OpenAPI
document says exactly what a policy may set."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal, Union

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    StringConstraints,
    Tag,
    create_model,
)

from wrale.fleet.brain.services.policies import KINDS

Kind = Literal["thermal", "power", "security", "sampling"]
Id = Annotated[str, StringConstraints(min_length=1, max_length=32)]


def _partial(kind: str, model: type[BaseModel]) -> type[BaseModel]:
    """``model`` with every field optional (left out = inherited), nothing else allowed."""
    fields: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        annotation = (
            Annotated[(info.annotation, *info.metadata)] if info.metadata else info.annotation
        )
        fields[name] = (annotation, Field(default=None, description=info.description))
    return create_model(
        f"{kind.capitalize()}Document",
        __config__=ConfigDict(extra="forbid"),
        **fields,
    )


DOCUMENTS: dict[str, type[BaseModel]] = {k: _partial(k, m) for k, m in KINDS.items()}


def _create_model(kind: str, doc: type[BaseModel], scoped: bool) -> Any:
    """A create body: the fleet takes no scope_id, a group or device needs one."""
    scope: Any = Literal["group", "device"] if scoped else Literal["fleet"]
    tag: Any = Literal[kind]
    extra: dict[str, Any] = {"scope_id": (Id, ...)} if scoped else {}
    model = create_model(
        f"{'Scoped' if scoped else 'Fleet'}{kind.capitalize()}PolicyCreate",
        __config__=ConfigDict(extra="forbid"),
        scope_type=(scope, ...),
        kind=(tag, ...),
        document=(doc, Field(description="the fields this policy sets")),
        **extra,
    )
    return Annotated[model, Tag(f"{kind}/{'scoped' if scoped else 'fleet'}")]


def _create_form(value: Any) -> str | None:
    """Which create model a body is for (None: no kind we know, a clear 422)."""
    if isinstance(value, dict):
        kind, scope = value.get("kind"), value.get("scope_type")
    else:
        kind, scope = getattr(value, "kind", None), getattr(value, "scope_type", None)
    if kind not in DOCUMENTS:
        return None
    return f"{kind}/{'fleet' if scope == 'fleet' else 'scoped'}"


class _CreateShape(BaseModel):
    """What every create body has (for type checking; the API reads ``PolicyCreate``)."""

    scope_type: str
    kind: str
    document: BaseModel


_ANY_DOCUMENT: Any = Union[tuple(DOCUMENTS.values())]  # noqa: UP007
if TYPE_CHECKING:
    PolicyCreate = _CreateShape
else:
    PolicyCreate = Annotated[
        Union[  # noqa: UP007
            tuple(
                _create_model(k, d, scoped)
                for k, d in DOCUMENTS.items()
                for scoped in (False, True)
            )
        ],
        Discriminator(
            _create_form,
            custom_error_type="invalid_kind",
            custom_error_message="kind: use one of thermal, power, security, sampling",
        ),
    ]


class PolicyUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    document: _ANY_DOCUMENT = Field(description="the whole new document (of the policy's kind)")
    expected_version: Annotated[int, Field(ge=1)] | None = Field(
        default=None, description="refuse (409) unless the policy is still at this version"
    )


class RecomposePublic(BaseModel):
    """The twins a change recomposes: a device's at once (``id`` null, ``done``), a
    group's or the fleet's in the background (``GET /policies/recompose/{id}``)."""

    id: str | None = Field(description="null: recomposed within the request")
    scope_type: str = Field(description="fleet, group, devices (a bulk change) or device")
    scope_id: str | None
    reason: str | None
    total: int = Field(description="boards in the scope when the change was made")
    done: int = Field(description="boards recomposed so far")
    changed: int = Field(description="boards whose desired document changed (and were sent)")
    state: Literal["queued", "running", "done", "superseded", "failed"]
    error: str | None = Field(default=None, description="why the last batch failed")
    superseded_by: str | None = Field(
        default=None, description="the newer recompose that covers these boards"
    )
    created_at: float | None
    finished_at: float | None


class PolicyPublic(BaseModel):
    id: str
    scope_type: str
    scope_id: str | None
    kind: str
    document: dict[str, Any]
    version: int
    created_at: float
    updated_at: float
    updated_by: str | None
    recompose: RecomposePublic | None = Field(
        default=None, description="after a change: the recomposition of the scope's twins"
    )


class PolicyVersionPublic(BaseModel):
    version: int
    document: dict[str, Any]
    author: str | None
    created_at: float


class PolicySource(BaseModel):
    scope_type: str
    scope_id: str | None
    policy_id: str
    version: int


class EffectiveField(BaseModel):
    value: Any
    source: PolicySource | None = Field(description="null: the built-in default")


class EffectiveKind(BaseModel):
    document: dict[str, Any]
    fields: dict[str, EffectiveField]
    errors: list[str] = Field(description="cross-field problems of the merged document")


class ScopeRef(BaseModel):
    scope_type: str
    scope_id: str | None


class EffectivePolicy(BaseModel):
    device_id: str
    chain: list[ScopeRef] = Field(description="the scopes merged, farthest first")
    kinds: dict[str, EffectiveKind]
