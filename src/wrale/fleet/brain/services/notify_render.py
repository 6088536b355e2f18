"""One alert notification rendered for people, pure: a one-line title (severity, device,
what happened), plain-text lines and the dashboard link. The e-mail and chat channel
types shape it into their formats. Everything a board or a rule wrote is stripped of
control characters here, so no header or markup can be injected through it."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

_CONTROL = re.compile(r"[\x00-\x1f\x7f\u0080-\u009f\u2028\u2029]+")
TITLE_MAX = 200


def one_line(value: Any, most: int = 300) -> str:
    """``value`` as text on one line: control characters (CR and LF too) become a space."""
    text = _CONTROL.sub(" ", str(value if value is not None else "")).strip()
    return text if len(text) <= most else text[: most - 1] + "…"


@dataclass(frozen=True, slots=True)
class Rendered:
    title: str  # one line, no control characters
    lines: tuple[str, ...]  # the body, one line each
    severity: str  # CRITICAL | MAJOR | MINOR | WARNING | INFO
    resolved: bool
    test: bool
    link: str | None  # absolute when the public URL is known, else the dashboard path


def _when(ts: Any) -> str:
    try:
        return datetime.fromtimestamp(float(ts), UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    except (TypeError, ValueError, OverflowError, OSError):
        return "?"


def _number(v: Any) -> str | None:
    return f"{v:g}" if isinstance(v, int | float) and not isinstance(v, bool) else None


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _link(public_url: str | None, path: str) -> str:
    return f"{public_url.rstrip('/')}{path}" if public_url else path


def render(payload: dict[str, Any], public_url: str | None) -> Rendered:
    """The notification of one queued payload (``{event, action, alert, device?}``, or a
    test ``{event: "test", channel}``)."""
    if payload.get("event") == "test":
        name = one_line(payload.get("channel"), 100)
        return Rendered(
            f"[TEST] Wrale Fleet: test notification of channel {name}",
            (
                f"This is a test notification of the channel {name!r}.",
                "If you read it, alerts and board events reach you through this channel.",
            ),
            "INFO",
            False,
            True,
            _link(public_url, "/alerts"),
        )
    alert = _mapping(payload.get("alert"))
    device = _mapping(payload.get("device"))
    severity = one_line(alert.get("severity") or "WARNING", 16).upper()
    resolved = payload.get("action") == "clear" or alert.get("state") == "cleared"
    where = one_line(
        device.get("name") or alert.get("device_id") or alert.get("rack_id") or "fleet", 100
    )
    what = one_line(alert.get("message"), 255)
    if what.startswith(f"{where}: "):
        what = what[len(where) + 2 :]
    tag = f"RESOLVED {severity}" if resolved else severity
    title = one_line(f"[{tag}] {where}: {what}", TITLE_MAX)
    metric = one_line(alert.get("metric"), 64)
    source = (
        f"board event {metric.removeprefix('event:')}"
        if metric.startswith(("event:", "status:"))
        else f"rule {one_line(alert.get('rule_name'), 100)!r} on {metric}"
    )
    lines = [
        f"{severity} alert {'cleared' if resolved else 'raised'} on {where}",
        f"What: {what}",
        f"Source: {source}",
    ]
    value, threshold = _number(alert.get("value")), _number(alert.get("threshold"))
    if value is not None:
        lines.append(f"Value: {value}" + (f" (threshold {threshold})" if threshold else ""))
    if alert.get("device_id"):
        lines.append(f"Device: {where} ({one_line(alert.get('device_id'), 32)})")
    if alert.get("rack_id"):
        lines.append(f"Rack: {one_line(alert.get('rack_id'), 32)}")
    lines.append(f"Raised: {_when(alert.get('raised_at'))}")
    if resolved:
        lines.append(f"Cleared: {_when(alert.get('cleared_at') or alert.get('updated_at'))}")
    if alert.get("flapping"):
        lines.append("Flapping: notifications of this alert are held while it flaps")
    path = f"/alerts/{one_line(alert.get('id'), 32)}" if alert.get("id") else "/alerts"
    return Rendered(title, tuple(lines), severity, resolved, False, _link(public_url, path))
