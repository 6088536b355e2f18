"""Schemas of alert rules, alerts with their history, and notification channels."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Discriminator, Field, StringConstraints, Tag

from wrale.user.api.schemas.common import Strict

Name = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100, pattern=r"\S")
]
Id = Annotated[str, StringConstraints(min_length=1, max_length=32)]
Op = Literal[">", ">=", "<", "<=", "==", "!="]
Severity = Literal["CRITICAL", "MAJOR", "MINOR", "WARNING", "INFO"]
ScopeType = Literal["device", "group", "rack", "zone", "fleet"]
Threshold = Annotated[float, Field(allow_inf_nan=False)] | Literal["budget"]
Note = Annotated[str, Field(max_length=1000)]


_NUM = r"[0-9]+(\.[0-9]+)?"
# Advertised in the OpenAPI document; the parser checks it (with a clearer message).
_OP = r"\s*(>=|<=|==|!=|>|<)\s*"
_FOR = rf"(\s+for\s+({_NUM}|({_NUM}d)?({_NUM}h)?({_NUM}m)?({_NUM}s)?))?"
EXPRESSION = (
    rf"^\s*(rack\s+power_w{_OP}budget|(rack\s+)?[a-z][a-z0-9_]{{0,63}}{_OP}"
    rf"[-+]?{_NUM}([eE][-+]?[0-9]+)?){_FOR}\s*$"
)
Expression = Annotated[
    str,
    Field(
        min_length=1,
        max_length=200,
        json_schema_extra={"pattern": EXPRESSION},
        description="e.g. 'cpu_temp_c > 70 for 5m' or 'rack power_w > budget'",
    ),
]
Metric = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
Seconds = Annotated[float, Field(ge=0, le=7 * 86_400, allow_inf_nan=False)]


class _RuleCommon(Strict):
    name: Name
    description: Annotated[str, Field(max_length=255)] | None = None
    severity: Severity = "WARNING"
    scope_type: ScopeType = "fleet"
    scope_id: Id | None = Field(default=None, description="none for the fleet scope")
    enabled: bool = True
    channel_ids: Annotated[list[Id], Field(max_length=20)] = Field(default_factory=list)
    flap_window_s: Annotated[float, Field(ge=0, le=86_400)] = 600.0
    flap_threshold: Annotated[int, Field(ge=2, le=100)] = 3


class ExpressionRuleCreate(_RuleCommon):
    """A rule given as ``metric op threshold [for duration]``."""

    expression: Expression
    for_s: Seconds | None = Field(default=None, description="overrides the expression's 'for'")


class ExplicitRuleCreate(_RuleCommon):
    """A rule given field by field."""

    metric: Metric
    op: Op
    threshold: Threshold
    aggregate: Literal["device", "rack_sum"] = "device"
    for_s: Seconds = Field(default=0.0, description="0, or 5 s to 7 days")


def _rule_form(value: Any) -> str:
    has = (isinstance(value, dict) and "expression" in value) or hasattr(value, "expression")
    return "expression" if has else "fields"


AlertRuleCreate = Annotated[
    Annotated[ExpressionRuleCreate, Tag("expression")]
    | Annotated[ExplicitRuleCreate, Tag("fields")],
    Discriminator(_rule_form),
]


class AlertRuleUpdate(Strict):
    name: Name | None = None
    description: Annotated[str, Field(max_length=255)] | None = None
    expression: Expression | None = None
    metric: Metric | None = None
    op: Op | None = None
    threshold: Threshold | None = None
    aggregate: Literal["device", "rack_sum"] | None = None
    for_s: Seconds | None = None
    severity: Severity | None = None
    scope_type: ScopeType | None = None
    scope_id: Id | None = None
    enabled: bool | None = None
    channel_ids: Annotated[list[Id], Field(max_length=20)] | None = None
    flap_window_s: Annotated[float, Field(ge=0, le=86_400)] | None = None
    flap_threshold: Annotated[int, Field(ge=2, le=100)] | None = None


class AlertRulePublic(BaseModel):
    id: str
    name: str
    description: str | None
    expression: str
    metric: str
    op: str
    threshold: float | Literal["budget"]
    aggregate: str
    for_s: float
    severity: str
    scope_type: str
    scope_id: str | None
    enabled: bool
    channel_ids: list[str]
    flap_window_s: float
    flap_threshold: int
    created_at: float
    updated_at: float | None


class AlertPublic(BaseModel):
    id: str
    rule_id: str | None
    rule_name: str
    key: str
    device_id: str | None
    rack_id: str | None
    metric: str
    severity: str
    state: Literal["active", "acknowledged", "cleared"]
    value: float | None
    threshold: float | None
    message: str
    raised_at: float
    updated_at: float
    acknowledged_at: float | None
    acknowledged_by: str | None
    cleared_at: float | None
    cleared_by: str | None
    assignee_id: str | None
    flap_count: int
    flapping: bool


class AlertEventPublic(BaseModel):
    at: float
    action: str
    from_state: str | None
    to_state: str | None
    actor_name: str | None
    actor_id: str | None
    note: str | None
    value: float | None


class AlertDetail(AlertPublic):
    history: list[AlertEventPublic]


class AlertNote(Strict):
    note: Note | None = None


class AlertAssign(Strict):
    user_id: Id | None = Field(description="a user of the organisation; null unassigns")


ChannelType = Literal["webhook", "email", "chat"]
CHANNEL_CONFIG = (
    "by type — webhook: {url, secret?, headers?, timeout_s?}; email: {host, port?, "
    "security: starttls|tls|none, username?, password?, from_addr, to: [..], "
    "subject_prefix?, timeout_s?}; chat: {preset: ntfy|slack, url, token? (ntfy), "
    "timeout_s?}; any type: events {min_severity, selector} to receive board-event alerts"
)


class ChannelCreate(Strict):
    name: Name
    type: ChannelType = "webhook"
    config: dict[str, Any] = Field(
        description=f"{CHANNEL_CONFIG}. Secrets (secret, password, token), the URL and "
        "header values are stored, never shown"
    )
    enabled: bool = True


class ChannelUpdate(Strict):
    name: Name | None = None
    config: dict[str, Any] | None = Field(
        default=None,
        description="the whole config; one without its secret, URL or headers keeps them "
        "(a password or token must be given again when the host or URL changes)",
    )
    enabled: bool | None = None


class ChannelTestResult(BaseModel):
    delivered: bool
    error: str | None = Field(description="why the test notification was not delivered")


class ChannelPublic(BaseModel):
    id: str
    name: str
    type: str
    config: dict[str, Any] = Field(
        description="redacted: the URL as scheme://host[:port]/…, header names only, "
        "has_secret / has_password / has_token instead of the secrets"
    )
    enabled: bool
    created_at: float
    updated_at: float | None
