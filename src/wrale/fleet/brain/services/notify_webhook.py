"""The "webhook" channel type: the alert's JSON payload POSTed as it is, signed with
HMAC-SHA256 when the channel has a secret. Sent through the egress-pinned HTTP client."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any, ClassVar

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field

from wrale.fleet.brain.services.notify_types import SendContext, post, validated
from wrale.shared.errors import InvalidRequestError

SIGNATURE_HEADER = "X-Wrale-Signature"


class WebhookConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: AnyHttpUrl
    secret: str | None = Field(default=None, min_length=8, max_length=256)
    headers: dict[str, str] = Field(default_factory=dict, max_length=20)
    timeout_s: float = Field(default=5.0, gt=0, le=30)


_FORBIDDEN_HEADERS = {"content-type", "content-length", "host", SIGNATURE_HEADER.lower()}


def sign(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class WebhookChannel:
    """HTTP POST of the JSON payload; with a secret, ``X-Wrale-Signature: sha256=<hex>`` is
    the HMAC-SHA256 of the exact body bytes."""

    type: ClassVar[str] = "webhook"
    secret_fields: ClassVar[tuple[str, ...]] = ("secret",)

    @classmethod
    def check_config(cls, config: dict[str, Any]) -> dict[str, Any]:
        cfg = validated(WebhookConfig, config)
        for name in cfg["headers"]:
            if name.lower() in _FORBIDDEN_HEADERS:
                raise InvalidRequestError(
                    f"config.headers: {name} is set by the server", field="config.headers"
                )
        return cfg

    async def send(self, config: dict[str, Any], payload: dict[str, Any], ctx: SendContext) -> None:
        body = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
        headers = {**config.get("headers", {}), "Content-Type": "application/json"}
        if config.get("secret"):
            headers[SIGNATURE_HEADER] = "sha256=" + sign(config["secret"], body)
        await post(ctx.http, config["url"], body, headers, float(config.get("timeout_s", 5)))
