"""The Devices page's query string: the filters, order, page and view it names, parsed and
checked (a bad one is a 422 naming it), and the short ``/devices?…`` URL for a change of them.
Pure: no database, no request."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from starlette.datastructures import QueryParams

from wrale.fleet.brain.services import device_list, registry
from wrale.fleet.brain.services.device_list import DeviceQuery
from wrale.shared.errors import InvalidRequestError

PER_PAGE = (25, 50, 100, 200)
DEFAULT_PER = 50
MAX_PAGE = 100_000
TAG_RE = re.compile(r"^[A-Za-z0-9_.:=/@+-]{1,64}$")
ID_RE = re.compile(r"^[0-9a-f]{32}$")
CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
VIEWS = ("list", "grid")


# ----------------------------------------------------------------------------- the list's URL


@dataclass(frozen=True, slots=True)
class ListParams:
    """The page's query string, parsed: the filters, the order and the page shown."""

    query: DeviceQuery
    page: int = 1
    per: int = DEFAULT_PER
    view: str = "list"


def _one(params: QueryParams, name: str) -> str | None:
    values = [v.strip() for v in params.getlist(name) if v.strip()]
    if len(values) > 1:
        raise InvalidRequestError(f"{name}: give it once", field=name)
    return values[0] if values else None


def _id(params: QueryParams, name: str) -> str | None:
    value = _one(params, name)
    if value is not None and not ID_RE.match(value):
        raise InvalidRequestError(f"{name}: not an id (32 hex digits)", field=name)
    return value


def _int(params: QueryParams, name: str, default: int, low: int, high: int) -> int:
    value = _one(params, name)
    if value is None:
        return default
    if not value.isdigit() or not low <= int(value) <= high:
        raise InvalidRequestError(f"{name}: a whole number from {low} to {high}", field=name)
    return int(value)


def _choice(params: QueryParams, name: str, allowed: Sequence[str], default: str) -> str:
    value = _one(params, name) or default
    if value not in allowed:
        raise InvalidRequestError(f"{name}: use one of {', '.join(allowed)}", field=name)
    return value


def parse(params: QueryParams) -> ListParams:
    """The list's parameters; ``InvalidRequestError`` (422) names the first bad one."""
    q = _one(params, "q")
    if q is not None and (len(q) > 100 or CONTROL_RE.search(q)):
        raise InvalidRequestError("q: at most 100 printable characters", field="q")
    statuses = tuple(dict.fromkeys(s for s in params.getlist("status") if s))
    bad = [s for s in statuses if s not in registry.STATUSES]
    if bad:
        raise InvalidRequestError(
            f"status: {bad[0]!r} is not a status; use {', '.join(registry.STATUSES)}",
            field="status",
        )
    tags = tuple(
        dict.fromkeys(t for raw in params.getlist("tag") for t in re.split(r"[\s,]+", raw) if t)
    )
    for t in tags:
        if not TAG_RE.match(t):
            raise InvalidRequestError(
                f"tag: {t[:64]!r} is not a tag (letters, digits and _.:=/@+- up to 64)",
                field="tag",
            )
    if len(tags) > 10:
        raise InvalidRequestError("tag: at most 10 tags", field="tag")
    alert = _one(params, "alert")
    if alert is not None and alert not in device_list.ALERT_FILTERS:
        raise InvalidRequestError(
            f"alert: use one of {', '.join(device_list.ALERT_FILTERS)}", field="alert"
        )
    order = _choice(params, "order", ("asc", "desc"), "asc")
    query = DeviceQuery(
        q=q,
        status=statuses,
        tags=tags,
        group_id=_id(params, "group"),
        rack_id=_id(params, "rack"),
        room_id=_id(params, "room"),
        site_id=_id(params, "site"),
        alert=alert,
        sort=_choice(params, "sort", device_list.SORTS, "name"),
        desc=order == "desc",
    )
    per = _int(params, "per", DEFAULT_PER, 1, max(PER_PAGE))
    if per not in PER_PAGE:
        raise InvalidRequestError(
            f"per: {', '.join(str(n) for n in PER_PAGE)} devices a page", field="per"
        )
    return ListParams(
        query=query,
        page=_int(params, "page", 1, 1, MAX_PAGE),
        per=per,
        view=_choice(params, "view", VIEWS, "list"),
    )


def filter_items(query: DeviceQuery) -> list[tuple[str, str]]:
    """The filters of ``query`` as query-string pairs (what "all matching" acts on)."""
    items: list[tuple[str, str]] = []
    if query.q:
        items.append(("q", query.q))
    items += [("status", s) for s in query.status]
    if query.tags:
        items.append(("tag", " ".join(query.tags)))
    for name, value in (
        ("group", query.group_id),
        ("site", query.site_id),
        ("room", query.room_id),
        ("rack", query.rack_id),
        ("alert", query.alert),
    ):
        if value:
            items.append((name, value))
    return items


def list_url(lp: ListParams, **changes: Any) -> str:
    """``/devices?…`` for ``lp`` with ``changes`` (sort, order, page, per, view), defaults
    left out so that bookmarks stay short."""
    sort = changes.get("sort", lp.query.sort)
    order = changes.get("order", "desc" if lp.query.desc else "asc")
    page = changes.get("page", lp.page)
    per = changes.get("per", lp.per)
    view = changes.get("view", lp.view)
    items = filter_items(lp.query)
    if sort != "name":
        items.append(("sort", sort))
    if order != "asc":
        items.append(("order", order))
    if per != DEFAULT_PER:
        items.append(("per", str(per)))
    if view != "list":
        items.append(("view", view))
    if page != 1:
        items.append(("page", str(page)))
    return "/devices" + (f"?{urlencode(items)}" if items else "")
