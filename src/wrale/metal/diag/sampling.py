"""Fresh snapshots for a diagnostic run: wait one sampling interval, then take a sample.

Taking the sample ourselves (``core.tick``) works with a ``FakeClock`` nobody else moves
and is safe beside a running sampler loop, since ``tick`` holds the core's lock.
"""

from __future__ import annotations

from wrale.metal.core.engine import MetalCore
from wrale.metal.core.snapshot import Snapshot
from wrale.shared.clock import Clock


async def sample(core: MetalCore, clock: Clock, count: int) -> list[Snapshot]:
    """``count`` new snapshots, one sampling interval apart, oldest first."""
    snaps: list[Snapshot] = []
    for _ in range(count):
        await clock.sleep(core.sample_interval_s)
        snaps.append(await core.tick())
    return snaps
