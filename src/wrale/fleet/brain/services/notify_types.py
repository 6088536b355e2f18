"""What every notification channel type shares: the ``Channel`` protocol, the context a send
gets (the egress-pinned HTTP client, the egress policy, the dashboard's public URL), the
``DeliveryError`` a failed send raises, and the HTTP POST the webhook and chat types use.
No storage here (``notify``) and no channel type of its own."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import httpx
from pydantic import BaseModel, ValidationError

from wrale.fleet.brain.services.egress import EgressPolicy
from wrale.shared.errors import InvalidRequestError


class DeliveryError(Exception):
    """A channel could not deliver (the delivery is retried later)."""


@dataclass(frozen=True)
class SendContext:
    """What a send may use. ``http`` comes from ``egress.client()``; ``public_url`` is the
    dashboard's address as people reach it (links in messages), when the operator set it."""

    http: httpx.AsyncClient
    egress: EgressPolicy
    public_url: str | None = None


class Channel(Protocol):
    """A notification channel type: validates its config, sends one JSON payload."""

    type: ClassVar[str]
    secret_fields: ClassVar[tuple[str, ...]]

    @classmethod
    def check_config(cls, config: dict[str, Any]) -> dict[str, Any]:
        """The normalised config, or ``InvalidRequestError`` naming the bad field."""
        ...

    async def send(self, config: dict[str, Any], payload: dict[str, Any], ctx: SendContext) -> None:
        """Deliver or raise ``DeliveryError``."""
        ...


def validated(
    model: type[BaseModel], config: dict[str, Any], hints: dict[str, str] | None = None
) -> dict[str, Any]:
    """``config`` through ``model`` (JSON-ready), or ``InvalidRequestError`` naming the first
    bad field as ``config.<field>``. A check across fields names its field first in its
    message (``"password: …"``); ``hints`` replace a pattern's text by words per field."""
    try:
        return model.model_validate(config).model_dump(mode="json")
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"])
        msg = str(first["msg"]).removeprefix("Value error, ")
        if not where:
            head, sep, rest = msg.partition(": ")
            if sep and re.fullmatch(r"[a-z_]+", head):
                where, msg = head, rest
        elif first["type"] == "string_pattern_mismatch" and hints:
            msg = hints.get(str(first["loc"][0]), msg)
        field = f"config.{where}" if where else "config"
        raise InvalidRequestError(f"{field}: {msg}", field=field) from None


async def post(
    http: httpx.AsyncClient, url: str, body: bytes, headers: dict[str, str], deadline: float
) -> None:
    """POST within one overall deadline (connect, write and read together: a receiver
    trickling bytes cannot hold the sender); the answer's body is never read. Errors never
    show the URL (it often carries a token)."""
    try:
        async with asyncio.timeout(deadline):
            async with http.stream(
                "POST", url, content=body, headers=headers, timeout=deadline
            ) as r:
                status = r.status_code
    except TimeoutError:
        raise DeliveryError(f"no answer within {deadline:g} s") from None
    except httpx.HTTPError as exc:
        detail = str(exc).replace(str(url), "<url>")[:200]
        raise DeliveryError(f"{type(exc).__name__}: {detail}") from None
    if not 200 <= status < 300:
        raise DeliveryError(f"HTTP {status}")
