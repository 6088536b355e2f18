"""The Devices page's bulk bar: what a bulk action acts on (the ticked devices or every
device of a filter, at most ``MAX_BULK``), the chosen action and its fields, and the question
naming the count that the operator confirms. The actions themselves: ``devices_bulk_actions``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import FormData, QueryParams

from wrale.fleet.brain.models.groups import Group
from wrale.fleet.brain.services import commands, device_list
from wrale.fleet.sync.protocol import COMMAND_OPS
from wrale.shared.errors import InvalidRequestError
from wrale.user.ui.pages.command_args import OP_ARGS
from wrale.user.ui.pages.devices_query import ID_RE, parse
from wrale.user.ui.web import Viewer

MAX_BULK = 10_000  # devices one bulk action may touch
ACTIONS = {
    "command": "Send a command",
    "tag_add": "Add a tag",
    "tag_remove": "Remove a tag",
    "group_add": "Add to a static group",
}


def plural(n: int) -> str:
    return f"{n:,} device" + ("" if n == 1 else "s")


def confirm_text(
    action: str, n: int, *, all_matching: bool, op: str = "", tag: str = "", group: str = ""
) -> str:
    """The question the operator answers before a bulk action: it names the count."""
    who = f"all {n:,} matching devices" if all_matching else plural(n)
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


async def read_selection(session: AsyncSession, viewer: Viewer, form: FormData) -> Selection:
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


async def bar_context(
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
                selection = await read_selection(session, viewer, form)
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
