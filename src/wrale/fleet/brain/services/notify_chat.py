"""The "chat" channel type: the same rendered notification in a chat service's own shape.
Presets: ``ntfy`` (a POST of the text to a topic URL with Title, Priority, Tags and Click
headers, optionally an access token) and ``slack`` (an incoming-webhook JSON ``{text,
blocks}``, also understood by Mattermost and Rocket.Chat). Sent through the egress-pinned
HTTP client, like webhooks."""

from __future__ import annotations

import json
from email.header import Header
from typing import Any, ClassVar, Literal

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, model_validator

from wrale.fleet.brain.services.notify_render import Rendered, render
from wrale.fleet.brain.services.notify_types import SendContext, post, validated

PRESETS = ("ntfy", "slack")
# ntfy priorities: 5 max/urgent … 1 min
NTFY_PRIORITY = {"CRITICAL": "5", "MAJOR": "4", "MINOR": "3", "WARNING": "3", "INFO": "2"}
NTFY_TAGS = {
    "CRITICAL": "rotating_light",
    "MAJOR": "warning",
    "MINOR": "warning",
    "WARNING": "warning",
    "INFO": "information_source",
}


class ChatConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    preset: Literal["ntfy", "slack"]
    url: AnyHttpUrl
    token: str | None = Field(
        default=None, min_length=8, max_length=256, pattern=r"^[!-~]+$"
    )  # ntfy access token (Authorization: Bearer); printable ASCII, no spaces
    timeout_s: float = Field(default=5.0, gt=0, le=30)

    @model_validator(mode="after")
    def _token_for_ntfy(self) -> ChatConfig:
        if self.token is not None and self.preset != "ntfy":
            raise ValueError("token: only the ntfy preset sends a token")
        return self


def _header_text(text: str) -> str:
    """A header value: ASCII as it is, otherwise RFC 2047 (ntfy decodes it)."""
    try:
        text.encode("ascii")
    except UnicodeEncodeError:
        return Header(text, "utf-8").encode(maxlinelen=10_000)
    return text


def ntfy_request(r: Rendered, token: str | None) -> tuple[bytes, dict[str, str]]:
    """ntfy's shape: the text as the body, the rest in headers."""
    tags = ["white_check_mark"] if r.resolved else [NTFY_TAGS.get(r.severity, "warning")]
    tags.append("wrale")
    headers = {
        "Content-Type": "text/plain; charset=utf-8",
        "Title": _header_text(r.title),
        "Priority": "2" if r.resolved or r.test else NTFY_PRIORITY.get(r.severity, "3"),
        "Tags": ",".join(tags),
    }
    if r.link and r.link.startswith(("http://", "https://")):
        headers["Click"] = r.link
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return "\n".join(r.lines).encode(), headers


def _mrkdwn(text: str) -> str:
    """Slack's three escapes: text from a board cannot become a link or a mention."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_request(r: Rendered) -> tuple[bytes, dict[str, str]]:
    """Slack's incoming-webhook shape: ``text`` (the fallback and what Mattermost shows)
    and ``blocks`` (a header line, the details, the dashboard link)."""
    text = _mrkdwn(r.title)
    details = "\n".join(_mrkdwn(line) for line in r.lines[1:])
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*{text}*"}},
        {"type": "section", "text": {"type": "mrkdwn", "text": details or _mrkdwn(r.lines[0])}},
    ]
    if r.link and r.link.startswith(("http://", "https://")):
        link = f"<{_mrkdwn(r.link)}|Open in the dashboard>"
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": link}]})
        text = f"{text} ({_mrkdwn(r.link)})"
    body = json.dumps({"text": text, "blocks": blocks}, separators=(",", ":"), ensure_ascii=False)
    return body.encode(), {"Content-Type": "application/json"}


class ChatChannel:
    """A chat service's incoming webhook, in the shape its ``preset`` names."""

    type: ClassVar[str] = "chat"
    secret_fields: ClassVar[tuple[str, ...]] = ("token",)

    @classmethod
    def check_config(cls, config: dict[str, Any]) -> dict[str, Any]:
        return validated(ChatConfig, config, {"token": "printable ASCII without spaces"})

    async def send(self, config: dict[str, Any], payload: dict[str, Any], ctx: SendContext) -> None:
        r = render(payload, ctx.public_url)
        if config["preset"] == "ntfy":
            body, headers = ntfy_request(r, config.get("token"))
        else:
            body, headers = slack_request(r)
        await post(ctx.http, config["url"], body, headers, float(config.get("timeout_s", 5)))
