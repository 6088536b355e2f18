"""``ChannelContext``: what every device session of a process shares (database, bus,
settings, counters, the group-commit queue), and ``Send``, how a session reaches its device.
Holds no session's state and does no I/O of its own.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from wrale.fleet.brain.bus import EventBus
from wrale.fleet.brain.channel.board_stats import BoardStats
from wrale.fleet.brain.channel.counters import ChannelCounters, LogGate
from wrale.fleet.brain.channel.first_compose import FirstCompose
from wrale.fleet.brain.channel.group_commit import GroupCommitter
from wrale.fleet.brain.db import Database
from wrale.fleet.brain.models.base import new_id
from wrale.fleet.sync.protocol import Message
from wrale.shared.central_settings import CentralSettings

__all__ = ["ChannelContext", "Send"]

Send = Callable[[Message], Awaitable[None]]


@dataclass
class ChannelContext:
    """What every session of a process shares: database, bus, settings, who we are."""

    db: Database
    bus: EventBus
    settings: CentralSettings
    replica: str = field(default_factory=lambda: f"replica-{new_id()[-12:]}")
    clock: Callable[[], float] = time.time
    on_points: Callable[[int], None] | None = None  # stored telemetry points (metrics)
    open_max_wait_s: float = 5.0  # a Hello that waited longer for SQLite is told to retry
    # frames of many sessions in one transaction: SQLite's one writer, PostgreSQL's few
    # (``group_commit.PG_COMMITTERS`` at once); False: each session commits alone
    group_commit: bool | None = None
    counters: ChannelCounters = field(default_factory=ChannelCounters)  # refused / dropped
    log_gate: LogGate = field(default_factory=LogGate)  # one line per device per interval
    boards: BoardStats = field(default_factory=BoardStats)  # boards' backlog, ingest lag
    _committer: GroupCommitter | None = field(default=None, init=False, repr=False)
    _first_compose: FirstCompose | None = field(default=None, init=False, repr=False)

    def committer(self) -> GroupCommitter | None:
        """The process's group-commit queue, or None when sessions commit alone."""
        if self.group_commit is False:
            return None
        if self._committer is None or not self._committer.usable():
            self._committer = GroupCommitter(self.db)
        return self._committer

    def first_compose(self) -> FirstCompose:
        """The batches in which opening sessions' desired documents are composed."""
        if self._first_compose is None:
            self._first_compose = FirstCompose(self.db, self.bus, self.committer)
        return self._first_compose

    @property
    def last_seen_every_s(self) -> float:
        """How often a connected device's ``last_seen_at`` is written (spares the DB)."""
        return min(5.0, self.settings.offline_after_s / 4)
