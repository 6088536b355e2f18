"""Quiet hours on the board's local time (the zone the OS gives, ``TZ``/``/etc/localtime``),
never UTC, and never a time of day read off a clock that was never set (a Pi without an
RTC boots in 1970): then motion is a tamper, as when no quiet hours are known."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

from wrale.metal.core.engine import MetalCore
from wrale.metal.core.events import EventType, Severity
from wrale.metal.core.store import DeviceStore
from wrale.metal.hw.base import Fault, FaultKind
from wrale.metal.hw.sim import SimBoard
from wrale.shared.clock import FakeClock
from wrale.shared.config import SimSettings
from wrale.shared.policy import SecurityPolicy

QUIET = SecurityPolicy(debounce_s=0, quiet_hours="22:00-06:00")
DAY = 86_400


async def motion_severity(zone: str, utc_hour: float, *, day0: float = 1_800_000_000) -> Severity:
    """The severity of a motion seen at ``utc_hour`` (UTC) on a board in ``zone``."""
    board = SimBoard(SimSettings(seed=8))
    assert isinstance(board.clock, FakeClock)
    target = day0 - day0 % DAY + utc_hour * 3600
    board.clock.step_wall(target - board.clock.now())
    core = MetalCore(board, store=DeviceStore(":memory:"), clock=board.clock, security=QUIET)
    await core.start()
    assert board.sim is not None
    board.sim.inject_fault(Fault(FaultKind.MOTION, {"duration_s": 5}))
    for _ in range(2):
        board.advance(1.0)
        await core.tick()
    tamper = [e for e in await core.events() if e.type is EventType.TAMPER]
    assert tamper, f"no tamper event in {zone} at {utc_hour} UTC"
    return tamper[-1].severity


Zone = Callable[[str], None]


@pytest.fixture
def zone(monkeypatch: pytest.MonkeyPatch) -> Iterator[Zone]:
    def set_zone(tz: str) -> None:
        monkeypatch.setenv("TZ", tz)
        time.tzset()

    yield set_zone
    monkeypatch.undo()
    time.tzset()


@pytest.mark.parametrize(
    ("tz", "utc_hour", "quiet"),
    [
        ("UTC0", 14, False),
        ("NZST-12", 14, True),  # 02:00 in New Zealand (standard time): quiet
        ("JST-9", 23, False),  # 08:00 in Tokyo while 23:00 UTC would be quiet
        ("EST5", 3, True),  # 22:00 on the US east coast
    ],
)
async def test_quiet_hours_follow_the_boards_local_zone(
    zone: Zone, tz: str, utc_hour: int, quiet: bool
) -> None:
    """Right before this change as well: the engine took ``time.localtime``."""
    zone(tz)
    severity = await motion_severity(tz, utc_hour)
    assert (severity is not Severity.INFO) is quiet


async def test_a_clock_never_set_knows_no_time_of_day_and_motion_is_a_tamper(
    zone: Zone,
) -> None:
    zone("UTC0")
    # 14:00 on 2 January 1970: a board without an RTC battery before NTP
    severity = await motion_severity("UTC0", 14, day0=DAY + 1)
    assert severity is not Severity.INFO
