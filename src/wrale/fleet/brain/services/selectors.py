"""Device selectors of dynamic groups and selector-targeted commands: parsing (pure,
total: any input is a clean selector or an ``InvalidRequestError``), the tenant check of
the places they name, and matching a device. No group storage here (``groups``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from wrale.fleet.brain.models import Device, Rack, Room, Site, Zone
from wrale.fleet.brain.services.registry import STATUSES as STATUSES
from wrale.fleet.brain.services.topology import get
from wrale.shared.errors import InvalidRequestError

LIST_KEYS = ("tags_all", "tags_any", "status")
ID_KEYS = {"site_id": Site, "room_id": Room, "rack_id": Rack, "zone_id": Zone}
SELECTOR_KEYS = (*LIST_KEYS, *ID_KEYS, "model")
MAX_SELECTOR_VALUES = 50  # tags or statuses in one clause (as the API's schema allows)
SELECTOR_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def _text(value: Any, most: int) -> bool:
    """A string of 1..``most`` characters, valid Unicode, no control characters."""
    if not isinstance(value, str) or not 0 < len(value) <= most:
        return False
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: not storable, not sendable as JSON
        return False
    return True


def parse_selector(selector: Any) -> dict[str, Any]:
    """A clean copy of ``selector`` (pure: ids are checked for shape, not existence).

    Accepts only the documented clauses with bounded values; anything else, of any type or
    size, is an ``InvalidRequestError`` naming the clause (never another exception)."""
    if not isinstance(selector, dict):
        raise InvalidRequestError("selector: must be an object", field="selector")
    unknown = sorted(
        ascii(k) if not _text(k, 64) else k for k in set(selector) - set(SELECTOR_KEYS)
    )
    if unknown:
        shown = ", ".join(unknown[:10])
        raise InvalidRequestError(
            f"selector: unknown key(s) {shown}; known: {', '.join(SELECTOR_KEYS)}",
            field="selector",
            unknown=unknown[:10],
        )
    clean: dict[str, Any] = {}
    for key in LIST_KEYS:
        if key not in selector or selector[key] is None:
            continue
        values = selector[key]
        if (
            not isinstance(values, list)
            or len(values) > MAX_SELECTOR_VALUES
            or not all(_text(v, 64) for v in values)
        ):
            raise InvalidRequestError(
                f"selector.{key}: a list of at most {MAX_SELECTOR_VALUES} strings "
                "(1–64 characters, no control characters)",
                field=f"selector.{key}",
            )
        if key == "status" and (bad := sorted(set(values) - set(STATUSES))):
            raise InvalidRequestError(
                f"selector.status: unknown status {', '.join(bad)}; known: {', '.join(STATUSES)}",
                field="selector.status",
            )
        clean[key] = sorted(set(values))
    for key in ID_KEYS:
        value = selector.get(key)
        if value is None:
            continue
        if not isinstance(value, str) or not SELECTOR_ID.match(value):
            raise InvalidRequestError(f"selector.{key}: must be an id", field=f"selector.{key}")
        clean[key] = value
    model_name = selector.get("model")
    if model_name is not None:
        if not _text(model_name, 100):
            raise InvalidRequestError(
                "selector.model: a string of 1–100 characters", field="selector.model"
            )
        clean["model"] = model_name
    return clean


async def validate_selector(session: AsyncSession, tenant_id: str, selector: Any) -> dict[str, Any]:
    """``parse_selector``, then each place it names must be the tenant's (404 if not)."""
    clean = parse_selector(selector)
    for key, model in ID_KEYS.items():
        if key in clean:
            await get(session, model, tenant_id, clean[key], key.removesuffix("_id"))
    return clean


@dataclass(frozen=True, slots=True)
class Place:
    room_id: str | None
    site_id: str | None


def matches(selector: dict[str, Any], device: Device, place: Place | None) -> bool:
    """Pure: does ``device`` (in rack ``place``) satisfy every clause of ``selector``?"""
    tags = set(device.tags or [])
    if "tags_all" in selector and not set(selector["tags_all"]) <= tags:
        return False
    if selector.get("tags_any") and not set(selector["tags_any"]) & tags:
        return False
    if selector.get("status") and device.status not in selector["status"]:
        return False
    if "model" in selector and device.model != selector["model"]:
        return False
    if "rack_id" in selector and device.rack_id != selector["rack_id"]:
        return False
    if "zone_id" in selector and device.zone_id != selector["zone_id"]:
        return False
    if "room_id" in selector and (place is None or place.room_id != selector["room_id"]):
        return False
    return not ("site_id" in selector and (place is None or place.site_id != selector["site_id"]))
