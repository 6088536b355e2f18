"""The maintenance queue with the rules' open tasks merged in (``docs/maintenance.md``):
each task beside its board's worn parts; a board with tasks only joins its rack's visit (or
a new one); a board's and a visit's ``due`` is the earliest of its replace-before dates and
task dues; most urgent first again. Shared by the API's queue and the dashboard's, each
with its own visit and board objects (made by the callables given)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar

from wrale.fleet.brain.services.maintenance.tasks import PlacedTask


class QueueBoard(Protocol):
    @property
    def device_id(self) -> str: ...

    due: float | None

    @property
    def tasks(self) -> list[Any]: ...


class QueueVisit(Protocol):
    @property
    def site_id(self) -> str | None: ...

    @property
    def rack_id(self) -> str | None: ...

    due: float | None

    @property
    def devices(self) -> list[Any]: ...


V = TypeVar("V", bound=QueueVisit)


def earliest(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else min(a, b)


def urgency(due: float | None) -> float:
    return float("inf") if due is None else due


def merge_tasks(
    visits: Sequence[V],
    placed: Sequence[PlacedTask],
    new_visit: Callable[[PlacedTask], V],
    new_board: Callable[[PlacedTask], QueueBoard],
    item: Callable[[dict[str, Any]], Any],
) -> list[V]:
    """``visits`` with each open task (``item`` of its view) on its board's ``tasks``;
    ``new_visit`` and ``new_board`` make an empty visit or board for a task's place."""
    if not placed:
        return list(visits)
    by_place = {(v.site_id, v.rack_id): v for v in visits}
    for pt in placed:
        v = by_place.get((pt.site_id, pt.rack_id))
        if v is None:
            v = by_place[(pt.site_id, pt.rack_id)] = new_visit(pt)
        d: QueueBoard | None = next((d for d in v.devices if d.device_id == pt.device_id), None)
        if d is None:
            d = new_board(pt)
            v.devices.append(d)
        d.tasks.append(item(pt.task))
        d.due = earliest(d.due, pt.task["due_at"])
        v.due = earliest(v.due, pt.task["due_at"])
    for v in by_place.values():
        v.devices.sort(key=lambda d: (urgency(d.due), d.device_id))
    return sorted(
        by_place.values(), key=lambda v: (urgency(v.due), v.site_id or "", v.rack_id or "")
    )
