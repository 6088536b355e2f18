"""``LinkWatch``: every live device socket of a hub (``edge_link.EdgeLink``), and the one
sweep a second that ends the silent ones — no hello within ``channel_hello_timeout_s``, no
frame within ``offline_after_s`` — instead of a timer per socket."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from wrale.fleet.brain.channel.hub import ChannelHub

if TYPE_CHECKING:
    from wrale.user.api.edge_link import EdgeLink

log = logging.getLogger("wrale.central.edge")


class LinkWatch:
    """Every live link of a hub, and the one sweep that ends the silent ones."""

    TICK_S = 1.0

    def __init__(self, hub: ChannelHub) -> None:
        self.hub = hub
        self.links: set[EdgeLink] = set()
        self._task: asyncio.Task[None] | None = None

    def __len__(self) -> int:
        return len(self.links)

    def add(self, link: EdgeLink) -> None:
        self.links.add(link)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    def discard(self, link: EdgeLink) -> None:
        self.links.discard(link)

    def sweep(self, now: float) -> int:
        settings = self.hub.ctx.settings
        hello_s, offline_s = settings.channel_hello_timeout_s, settings.offline_after_s
        return sum(link.silent(now, hello_s, offline_s) for link in list(self.links))

    async def _run(self) -> None:
        try:
            while self.links:
                await asyncio.sleep(self.TICK_S)
                try:
                    self.sweep(time.monotonic())
                except Exception:  # the next tick tries again
                    log.exception("device channel: silence sweep failed")
        finally:
            self._task = None


def hub_links(hub: ChannelHub) -> LinkWatch:
    """The hub's ``LinkWatch`` (made on first use; one per hub)."""
    watch = hub.links
    if not isinstance(watch, LinkWatch):
        watch = hub.links = LinkWatch(hub)
    return watch
