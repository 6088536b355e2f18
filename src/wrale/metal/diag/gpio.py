"""GPIO loopback test: drive each configured output high then low and check that the input
wired to it follows. ``pairs_from_lines`` and ``judge_loopback`` are pure; ``loopback`` does I/O."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from wrale.metal.core.engine import MetalCore
from wrale.metal.diag.limits import DiagLimits
from wrale.metal.diag.result import DiagResult, DiagStatus, DiagType
from wrale.shared.clock import Clock
from wrale.shared.config import GpioLineSettings
from wrale.shared.errors import LockdownError, WraleError

NAME = "gpio_loopback"
PATTERN = (1, 0)


def _result(
    component: str, status: DiagStatus, message: str, reading: str | None = None
) -> DiagResult:
    expected = None if reading is None else _fmt(PATTERN)
    return DiagResult(DiagType.GPIO, NAME, component, status, message, reading, expected)


def _fmt(values: Sequence[int]) -> str:
    return ",".join(str(v) for v in values)


def pairs_from_lines(lines: Mapping[str, GpioLineSettings]) -> dict[str, str]:
    """Output line name → input line name, from the lines that name a ``loopback_to``."""
    pairs: dict[str, str] = {}
    for name, cfg in lines.items():
        if cfg.loopback_to is None:
            continue
        if cfg.direction == "out":
            pairs[name] = cfg.loopback_to
        elif cfg.loopback_to not in pairs and name not in pairs.values():
            pairs[cfg.loopback_to] = name
    return pairs


def judge_loopback(out: str, inp: str, reads: Sequence[int]) -> DiagResult:
    """PASS when ``inp`` read back exactly what ``out`` drove."""
    component = f"{out}->{inp}"
    if tuple(reads) == PATTERN:
        msg = f"{inp} follows {out} ({_fmt(PATTERN)})"
        return _result(component, DiagStatus.PASS, msg, _fmt(reads))
    stuck = f" (stuck at {reads[0]})" if len(set(reads)) == 1 else ""
    msg = (
        f"{inp} read {_fmt(reads)} while {out} drove {_fmt(PATTERN)}{stuck}: "
        f"no connection between {out} and {inp}; check the loopback jumper"
    )
    return _result(component, DiagStatus.FAIL, msg, _fmt(reads))


async def loopback(
    core: MetalCore, clock: Clock, limits: DiagLimits, out: str, inp: str
) -> DiagResult:
    """Drive ``out`` through the pattern, read ``inp`` after each step, restore ``out``."""
    component = f"{out}->{inp}"
    cfg = core.gpio_lines.get(inp)
    settle = max(limits.gpio_settle_s, 1.5 * cfg.debounce_ms / 1000.0 if cfg else 0.0)
    reads: list[int] = []
    driven = False
    try:
        original = (await core.gpio_read(out)).value
        try:
            for value in PATTERN:
                await core.gpio_write(out, value)
                driven = True
                await clock.sleep(settle)  # a debounced input reports its debounced level
                reads.append((await core.gpio_read(inp)).value)
        finally:
            if driven:
                await core.gpio_write(out, original)
    except LockdownError as exc:
        return _result(component, DiagStatus.SKIPPED, f"skipped: {exc.message}")
    except WraleError as exc:
        return _result(component, DiagStatus.FAIL, f"{out} -> {inp}: {exc.message}")
    return judge_loopback(out, inp, reads)


async def loopback_all(
    core: MetalCore, clock: Clock, limits: DiagLimits, pairs: Mapping[str, str]
) -> list[DiagResult]:
    if not pairs:
        msg = "no loopback pairs configured (set loopback_to on a GPIO output)"
        return [_result("gpio", DiagStatus.SKIPPED, msg)]
    return [await loopback(core, clock, limits, out, inp) for out, inp in pairs.items()]
