"""The Devices page: the fleet as a list or a grid, with search, filters, sorting and
counted pages from the server, and bulk actions (command, tag, group) on a selection.

Every bulk action is confirmed with the number of devices it will touch, and the server
refuses it when that number no longer holds. Reads go through ``device_list``; changes go
through the brain's services, which check roles and write the audit trail.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import FormData, QueryParams

from wrale.fleet.brain.models import Device
from wrale.fleet.brain.models.groups import Group
from wrale.fleet.brain.services import bulk_membership, commands, device_list, groups, registry
from wrale.fleet.brain.services.device_list import DeviceQuery
from wrale.fleet.sync.protocol import COMMAND_OPS
from wrale.shared.errors import ConflictError, InvalidRequestError, NotFoundError
from wrale.user.api.deps import AppState, StateDep
from wrale.user.ui.pages.command_args import OP_ARGS, op_args
from wrale.user.ui.web import OperatorDep, SessionDep, Viewer, ViewerDep, is_htmx, render

router = APIRouter(include_in_schema=False)

PER_PAGE = (25, 50, 100, 200)
DEFAULT_PER = 50
MAX_PAGE = 100_000
MAX_BULK = 10_000  # devices one bulk action may touch
TAG_RE = re.compile(r"^[A-Za-z0-9_.:=/@+-]{1,64}$")
ID_RE = re.compile(r"^[0-9a-f]{32}$")
CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
VIEWS = ("list", "grid")
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
ACTIONS = {
    "command": "Send a command",
    "tag_add": "Add a tag",
    "tag_remove": "Remove a tag",
    "group_add": "Add to a static group",
}


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
        bar=await _bar_context(session, viewer, None) if viewer.can_operate else None,
    )
    return render(request, "devices/index.html", ctx)


@router.get("/devices/_tags")
async def tag_choices(request: Request, viewer: ViewerDep, session: SessionDep) -> Response:
    """The tags in use, for the tag inputs' suggestions (asked for when one is focused)."""
    found = await device_list.tags(session, viewer.tenant_id)
    return render(request, "devices/_tags.html", {"tags": found})


# ----------------------------------------------------------------------------- bulk actions


def _plural(n: int) -> str:
    return f"{n:,} device" + ("" if n == 1 else "s")


def confirm_text(
    action: str, n: int, *, all_matching: bool, op: str = "", tag: str = "", group: str = ""
) -> str:
    """The question the operator answers before a bulk action: it names the count."""
    who = f"all {n:,} matching devices" if all_matching else _plural(n)
    if action == "command":
        return f"Send {op or 'the command'} to {who}?"
    if action == "tag_add":
        return f'Add tag "{tag}" to {who}?' if tag else f"Add a tag to {who}?"
    if action == "tag_remove":
        return f'Remove tag "{tag}" from {who}?' if tag else f"Remove a tag from {who}?"
    target = f'group "{group}"' if group else "a group"
    return f"Add {who} to {target}?"


_FIELDS = {
    "command": ("op",),
    "tag_add": ("tag",),
    "tag_remove": ("tag",),
    "group_add": ("group_id",),
}


@dataclass(frozen=True, slots=True)
class Selection:
    """What a bulk action acts on: the ticked devices, or every device of a filter."""

    ids: list[str]
    count: int
    all_matching: bool


async def _selection(session: AsyncSession, viewer: Viewer, form: FormData) -> Selection:
    if form.get("all_matching") == "1":
        lp = parse(QueryParams(str(form.get("filter") or "")))
        n = await device_list.count(session, viewer.tenant_id, lp.query)
        if n > MAX_BULK:
            raise InvalidRequestError(
                f"{n:,} devices match: a bulk action takes at most {MAX_BULK:,}; narrow the filter",
                field="selection",
            )
        ids = await device_list.matching_ids(session, viewer.tenant_id, lp.query, MAX_BULK)
        return Selection(ids, len(ids), True)
    ids = list(dict.fromkeys(str(i) for i in form.getlist("ids")))
    bad = [i for i in ids if not ID_RE.match(i)]
    if bad:
        raise InvalidRequestError(f"ids: {bad[0][:40]!r} is not a device id", field="selection")
    if len(ids) > MAX_BULK:
        raise InvalidRequestError(f"at most {MAX_BULK:,} devices at once", field="selection")
    return Selection(ids, len(ids), False)


async def _static_groups(session: AsyncSession, tenant_id: str) -> list[Group]:
    rows = await session.scalars(
        select(Group)
        .where(Group.tenant_id == tenant_id, Group.kind == "static")
        .order_by(Group.name)
    )
    return list(rows)


async def _bar_context(
    session: AsyncSession,
    viewer: Viewer,
    form: FormData | None,
    errors: dict[str, str] | None = None,
    selection: Selection | None = None,
) -> dict[str, Any]:
    """The bulk bar: the chosen action and its fields, the count and the confirmation."""
    values: dict[str, str] = {
        k: str(v) for k, v in (form or {}).items() if isinstance(v, str) and k != "csrf"
    }
    errors = dict(errors or {})
    if selection is None:
        selection = Selection([], 0, False)
        if form is not None:
            try:
                selection = await _selection(session, viewer, form)
            except InvalidRequestError as exc:
                errors.setdefault("selection", exc.message)
    action = values.get("action", "command")
    action = action if action in ACTIONS else "command"
    ops = [op for op in COMMAND_OPS if viewer.is_admin or op not in commands.ADMIN_OPS]
    op = values.get("op", "reboot")
    op = op if op in ops else "reboot"
    static = await _static_groups(session, viewer.tenant_id)
    group = next((g for g in static if g.id == values.get("group_id")), None)
    shown = {"selection", "action", *_FIELDS[action]}
    if action == "command":
        shown |= {f"arg_{f.name}" for f in OP_ARGS.get(op, ())}
    for name in [k for k in errors if k not in shown]:  # a field the bar does not show
        problem = errors.pop(name)
        errors["action"] = f"{errors['action']}; {problem}" if "action" in errors else problem
    return {
        "values": values,
        "errors": errors,
        "selection": selection,
        "action": action,
        "actions": ACTIONS,
        "ops": ops,
        "op": op,
        "op_args": OP_ARGS.get(op, ()),
        "static_groups": static,
        "confirm": confirm_text(
            action,
            selection.count,
            all_matching=selection.all_matching,
            op=op,
            tag=values.get("tag", "").strip(),
            group=group.name if group else "",
        ),
        "max_bulk": MAX_BULK,
    }


def _bar(
    request: Request, ctx: dict[str, Any], status_code: int = 200, *, retarget: bool = False
) -> Response:
    headers = {"HX-Retarget": "#bulk-body", "HX-Reswap": "outerHTML"} if retarget else {}
    return render(
        request, "devices/_bulk.html", {"bar": ctx}, status_code=status_code, headers=headers
    )


@router.post("/devices/bulk/bar")
async def bulk_bar(request: Request, viewer: OperatorDep, session: SessionDep) -> Response:
    """The bulk bar again, for the current selection and action (counts, fields, question)."""
    form = await request.form()
    return _bar(request, await _bar_context(session, viewer, form))


@router.post("/devices/bulk")
async def bulk_apply(
    request: Request, viewer: OperatorDep, session: SessionDep, state: StateDep
) -> Response:
    """Apply a confirmed bulk action; the answer says what happened to each device."""
    form = await request.form()
    try:
        selection = await _selection(session, viewer, form)
    except InvalidRequestError as exc:
        ctx = await _bar_context(session, viewer, form, {"selection": exc.message})
        return _bar(request, ctx, 422, retarget=True)
    expected = str(form.get("expected") or "")
    if not selection.count:
        ctx = await _bar_context(
            session, viewer, form, {"selection": "select devices first"}, selection
        )
        return _bar(request, ctx, 422, retarget=True)
    if not expected:
        problem = "confirm the action first: the confirmation names the devices it touches"
        ctx = await _bar_context(session, viewer, form, {"selection": problem}, selection)
        return _bar(request, ctx, 422, retarget=True)
    if expected != str(selection.count):
        ctx = await _bar_context(
            session,
            viewer,
            form,
            {
                "selection": f"the selection is now {_plural(selection.count)}, not what was "
                "confirmed; check it and apply again"
            },
            selection,
        )
        return _bar(request, ctx, 409, retarget=True)
    action = str(form.get("action") or "")
    try:
        if action == "command":
            result = await _command(session, viewer, state, form, selection)
        elif action in ("tag_add", "tag_remove"):
            result = await _tag(session, viewer, form, selection, add=action == "tag_add")
        elif action == "group_add":
            result = await _group(session, viewer, form, selection)
        else:
            raise InvalidRequestError(f"action: use one of {', '.join(ACTIONS)}", field="action")
    except (InvalidRequestError, ConflictError, NotFoundError) as exc:
        field = str(exc.details.get("field") or "action").replace("args.", "arg_")
        await session.rollback()  # all or nothing: no device is half done
        ctx = await _bar_context(session, viewer, form, {field: exc.message}, selection)
        status = 422 if isinstance(exc, InvalidRequestError) else 409
        return _bar(request, ctx, status, retarget=True)
    return render(
        request,
        "devices/_bulk_result.html",
        {"result": result},
        headers={"HX-Trigger": "wrale-devices-changed"},
    )


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a bulk action did: a headline, then the devices it skipped and why."""

    headline: str
    done: int
    skipped: list[tuple[str, str]]  # (device name, why)
    kind: str = "ok"
    detail: str = ""


async def _devices(session: AsyncSession, tenant_id: str, ids: Sequence[str]) -> list[Device]:
    found: dict[str, Device] = {}
    for i in range(0, len(ids), 500):
        rows = await session.scalars(
            select(Device).where(Device.tenant_id == tenant_id, Device.id.in_(ids[i : i + 500]))
        )
        found.update((d.id, d) for d in rows)
    return [found[i] for i in ids if i in found]


async def _command(
    session: AsyncSession, viewer: Viewer, state: AppState, form: FormData, sel: Selection
) -> Outcome:
    op = str(form.get("op") or "")
    if op not in COMMAND_OPS:
        raise InvalidRequestError(f"op: use one of {', '.join(COMMAND_OPS)}", field="op")
    args = op_args(op, form)
    devices = await _devices(session, viewer.tenant_id, sel.ids)
    gone = len(sel.ids) - len(devices)
    batch, made, refused = await commands.create_batch(
        session,
        viewer.principal,
        devices,
        op,
        args,
        bus=state.bus,
        target={"dashboard": "all matching" if sel.all_matching else "selected"},
    )
    skipped = [(str(r["name"]), str(r["reason"])) for r in refused]
    headline = f"{op}: {len(made):,} queued, {len(refused):,} refused"
    if gone:
        headline += f", {gone:,} no longer exist"
    return Outcome(headline, len(made), skipped, "ok" if not refused else "info", f"batch {batch}")


async def _tag(
    session: AsyncSession, viewer: Viewer, form: FormData, sel: Selection, *, add: bool
) -> Outcome:
    tag = str(form.get("tag") or "").strip()
    done = await bulk_membership.change_tag(session, viewer.principal, sel.ids, tag, add=add)
    verb = f'Tag "{tag}" added to' if add else f'Tag "{tag}" removed from'
    headline = f"{verb} {_plural(done.changed)}; {len(done.skipped):,} unchanged"
    if done.missing:
        headline += f", {len(done.missing):,} no longer exist"
    return Outcome(headline, done.changed, done.skipped)


async def _group(session: AsyncSession, viewer: Viewer, form: FormData, sel: Selection) -> Outcome:
    group_id = str(form.get("group_id") or "")
    if not ID_RE.match(group_id):
        raise InvalidRequestError("group: choose a static group", field="group_id")
    try:
        group = await groups.get_group(session, viewer.tenant_id, group_id)
        done = await bulk_membership.change_group(
            session, viewer.principal, group.id, sel.ids, add=True
        )
    except (ConflictError, NotFoundError) as exc:  # gone, or dynamic: say so at the field
        raise type(exc)(exc.message, field="group_id") from exc
    return Outcome(
        f'{_plural(done.changed)} added to group "{group.name}"; '
        f"{len(done.skipped):,} were members already",
        done.changed,
        done.skipped,
    )
