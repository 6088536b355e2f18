"""The Devices page: the fleet as a list or a grid, with search, filters, sorting and
counted pages from the server. Its query string is ``devices_query``; the bulk bar is
``devices_bulk`` and the bulk actions ``devices_bulk_actions``. Reads go through ``device_list``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncSession

from wrale.fleet.brain.services import device_list, registry
from wrale.user.ui.pages.devices_bulk import MAX_BULK, bar_context
from wrale.user.ui.pages.devices_query import (
    ID_RE,
    PER_PAGE,
    ListParams,
    filter_items,
    list_url,
    parse,
)
from wrale.user.ui.web import SessionDep, Viewer, ViewerDep, is_htmx, render

router = APIRouter(include_in_schema=False)

SORT_LABELS = {
    "name": "Name",
    "status": "Status",
    "last_seen": "Last seen",
    "cpu_temp": "CPU temperature",
    "power": "Power",
    "fan": "Fan",
}
ALERT_LABELS = {
    "open": "Has an open alert",
    "active": "Has an unacknowledged alert",
    "none": "No open alert",
}


# ----------------------------------------------------------------------------- the page


def _fragment(request: Request) -> bool:
    """An htmx request for the results (a history restore wants the whole page)."""
    return is_htmx(request) and request.headers.get("hx-history-restore-request") != "true"


async def _results_context(
    session: AsyncSession,
    viewer: Viewer,
    lp: ListParams,
    picked: Sequence[str] = (),
    all_matching: bool = False,
) -> dict[str, Any]:
    found = await device_list.page(
        session, viewer.tenant_id, lp.query, (lp.page - 1) * lp.per, lp.per
    )
    page = found.offset // lp.per + 1
    pages = max(1, math.ceil(found.total / lp.per))
    lp = replace(lp, page=page)
    first = found.offset + 1 if found.total else 0
    last = found.offset + len(found.rows)
    return {
        "lp": lp,
        "rows": found.rows,
        "total": found.total,
        "first": first,
        "last": last,
        "page": page,
        "pages": pages,
        "url": lambda **kw: list_url(lp, **kw),
        "filter_qs": urlencode(filter_items(lp.query)),
        "picked": set(picked) if not all_matching else set(),
        "all_matching": all_matching and 0 < found.total <= MAX_BULK,
        "max_bulk": MAX_BULK,
        "sort_labels": SORT_LABELS,
    }


@router.get("/devices")
async def devices_page(request: Request, viewer: ViewerDep, session: SessionDep) -> Response:
    lp = parse(request.query_params)
    picked = [i for i in request.query_params.getlist("ids") if ID_RE.match(i)]
    all_matching = request.query_params.get("all_matching") == "1"
    ctx = await _results_context(session, viewer, lp, picked, all_matching)
    if _fragment(request):
        headers = {}
        if request.headers.get("hx-trigger") == "filters":  # bookmarkable, without empty fields
            headers["HX-Push-Url"] = ctx["url"]()
        return render(request, "devices/_results.html", ctx, headers=headers)
    choices = await device_list.choices(session, viewer.tenant_id)
    ctx.update(
        choices=choices,
        alert_labels=ALERT_LABELS,
        per_page=PER_PAGE,
        statuses=registry.STATUSES,
        bar=await bar_context(session, viewer, None) if viewer.can_operate else None,
    )
    return render(request, "devices/index.html", ctx)


@router.get("/devices/_tags")
async def tag_choices(request: Request, viewer: ViewerDep, session: SessionDep) -> Response:
    """The tags in use, for the tag inputs' suggestions (asked for when one is focused)."""
    found = await device_list.tags(session, viewer.tenant_id)
    return render(request, "devices/_tags.html", {"tags": found})
