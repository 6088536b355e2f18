"""What a rollout would do, without creating it: ``rollouts.check_rollout`` (the very
checks and plan of ``create_rollout``) with each board's name and rack, the waves grouped
by rack. Nothing is written."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from wrale.fleet.brain.models import Rack
from wrale.fleet.brain.services import rollouts
from wrale.fleet.brain.services.principal import Principal, Role


@dataclass(frozen=True, slots=True)
class Board:
    id: str
    name: str
    rack_id: str | None
    rack: str | None


@dataclass(frozen=True, slots=True)
class RackShare:
    """The boards of one rack in one wave (``rack_id`` None: boards without a rack)."""

    rack_id: str | None
    rack: str | None
    boards: tuple[Board, ...]


@dataclass(frozen=True, slots=True)
class PlannedWave:
    index: int
    boards: tuple[Board, ...]
    racks: tuple[RackShare, ...]


@dataclass(frozen=True, slots=True)
class Preview:
    name: str
    change: dict[str, Any]
    gates: dict[str, Any]
    waves: tuple[PlannedWave, ...]

    @property
    def boards(self) -> int:
        return sum(len(w.boards) for w in self.waves)


def by_rack(boards: list[Board]) -> tuple[RackShare, ...]:
    """The boards grouped by rack (racks by name, boards without a rack last)."""
    shares: dict[str | None, list[Board]] = {}
    for b in boards:
        shares.setdefault(b.rack_id, []).append(b)
    keys = sorted(shares, key=lambda k: (k is None, shares[k][0].rack or "", k or ""))
    return tuple(
        RackShare(k, shares[k][0].rack, tuple(sorted(shares[k], key=lambda b: b.name)))
        for k in keys
    )


async def preview_rollout(session: AsyncSession, p: Principal, body: Any) -> Preview:
    """The waves ``body`` (as ``POST /rollouts`` takes it) would have now; bad input is an
    ``InvalidRequestError`` naming the field, as creating it would be."""
    p.require(Role.OPERATOR, "planning rollouts")
    c = await rollouts.check_rollout(session, p, body)
    devices, planned = c.devices, c.planned
    rack_ids = sorted({d.rack_id for d in devices if d.rack_id})
    racks: dict[str, str] = {}
    if rack_ids:
        rows = await session.execute(
            select(Rack.id, Rack.name).where(Rack.tenant_id == p.tenant_id, Rack.id.in_(rack_ids))
        )
        racks = {str(i): str(n) for i, n in rows.all()}
    info = {
        d.id: Board(d.id, d.name, d.rack_id, racks.get(d.rack_id) if d.rack_id else None)
        for d in devices
    }
    waves = tuple(
        PlannedWave(i, tuple(info[x] for x in wave), by_rack([info[x] for x in wave]))
        for i, wave in enumerate(planned)
    )
    return Preview(c.name, c.change, c.gates, waves)
