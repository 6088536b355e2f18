"""Login throttling: counters per address+username and per address, kept in the database
(one atomic upsert per attempt, so replicas and concurrent requests share them) with an
exponential back-off instead of a lockout. Knows nothing of passwords or users."""

from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass

from sqlalchemy import case, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from wrale.fleet.brain.models import LoginThrottle
from wrale.shared.errors import AuthError


class LoginThrottledError(AuthError):
    """Too many failed logins from this address (for this username, or in all); the API
    answers 429 with ``Retry-After``."""

    code = "too_many_attempts"

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(
            f"too many failed logins; try again in {retry_after_s} s",
            retry_after_s=retry_after_s,
        )
        self.retry_after_s = retry_after_s


@dataclass(frozen=True, slots=True)
class ThrottleLimits:
    pair_max: int  # failures per address+username before the back-off starts
    address_max: int  # failures per address, whatever the usernames
    base_s: int  # the first back-off; it doubles with every further failure
    max_s: int  # the longest back-off

    @property
    def forget_after_s(self) -> float:
        """A counter whose last failure is older than this starts again from zero."""
        return 2.0 * max(self.max_s, self.base_s)


def address_key(source_ip: str | None) -> str:
    """The address a limit applies to: IPv4 as is, IPv6 by its /64 (one subscriber's
    network, whose interface ids cost nothing to change)."""
    if not source_ip:
        return "unknown"
    try:
        ip = ipaddress.ip_address(source_ip)
    except ValueError:
        return source_ip[:45]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False).network_address) + "/64"
    return str(ip)


def back_off_s(failures: int, *, limit: int, base_s: int, max_s: int) -> int:
    """How long to wait after ``failures`` failures: 0 below ``limit``, then ``base_s``
    doubling with every further failure, never more than ``max_s``."""
    if failures < limit:
        return 0
    return int(min(base_s * 2 ** min(failures - limit, 40), max_s))


def keys_for(source_ip: str | None, username: str) -> tuple[str, str]:
    address = address_key(source_ip)
    return f"pair:{address}|{username}", f"addr:{address}"


async def blocked_for(session: AsyncSession, keys: tuple[str, str], t: float) -> int:
    """Seconds until an attempt may be made (0: now); a read, to refuse cheaply."""
    until = await session.scalar(
        select(LoginThrottle.blocked_until)
        .where(LoginThrottle.key.in_(keys))
        .order_by(LoginThrottle.blocked_until.desc())
        .limit(1)
    )
    return math.ceil(until - t) if until is not None and until > t else 0


async def count_attempt(
    session: AsyncSession, keys: tuple[str, str], t: float, limits: ThrottleLimits
) -> int:
    """Count one attempt against both counters before the password is checked; returns
    how long the attempt must wait (0: go ahead, the caller commits at once).

    The upsert locks the counter's row (PostgreSQL) or the database (SQLite) until the
    caller commits, so concurrent attempts are counted one after the other; the attempt
    that reaches a limit sets the back-off before its password is checked (a right
    password lifts it), so no more than the limit are ever checked."""
    pair_key, addr_key = keys
    checks = ((pair_key, limits.pair_max), (addr_key, limits.address_max))
    counted: list[str] = []
    blocks: list[tuple[str, float]] = []
    for key, limit in checks:
        failures, blocked_until = await _increment(session, key, t, limits.forget_after_s)
        counted.append(key)
        if blocked_until > t:
            for done in counted:
                await _add(session, done, -1)
            return math.ceil(blocked_until - t)
        wait = back_off_s(failures, limit=limit, base_s=limits.base_s, max_s=limits.max_s)
        if wait:
            blocks.append((key, t + wait))
    for key, until in blocks:
        await session.execute(
            update(LoginThrottle).where(LoginThrottle.key == key).values(blocked_until=until)
        )
    return 0


async def backed_off(
    session: AsyncSession, keys: tuple[str, str], t: float, limits: ThrottleLimits
) -> int:
    """After a wrong password: the back-off it started or lengthened (0: none). Counters
    nobody has touched for long are dropped on the way (guessed usernames pile up)."""
    wait = await blocked_for(session, keys, t)
    await session.execute(
        delete(LoginThrottle).where(
            LoginThrottle.last_failure_at < t - limits.forget_after_s,
            LoginThrottle.blocked_until < t,
        )
    )
    return wait


async def record_success(session: AsyncSession, keys: tuple[str, str]) -> None:
    """A right password: this address+username starts afresh (its back-off too); the
    attempt no longer counts against the address, whose back-off stays."""
    pair_key, addr_key = keys
    await session.execute(delete(LoginThrottle).where(LoginThrottle.key == pair_key))
    await _add(session, addr_key, -1)


async def _increment(
    session: AsyncSession, key: str, t: float, forget_after_s: float
) -> tuple[int, float]:
    """One more failure on ``key`` (from one, when the last is long past): the new count
    and the back-off already in force."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    values = insert(LoginThrottle).values(key=key, failures=1, last_failure_at=t, blocked_until=0.0)
    stmt = values.on_conflict_do_update(
        index_elements=[LoginThrottle.key],
        set_={
            "failures": case(
                (LoginThrottle.last_failure_at < t - forget_after_s, 1),
                else_=LoginThrottle.failures + 1,
            ),
            "last_failure_at": t,
        },
    ).returning(LoginThrottle.failures, LoginThrottle.blocked_until)
    failures, blocked_until = (await session.execute(stmt)).one()
    return int(failures), float(blocked_until)


async def _add(session: AsyncSession, key: str, delta: int) -> None:
    await session.execute(
        update(LoginThrottle)
        .where(LoginThrottle.key == key, LoginThrottle.failures + delta >= 0)
        .values(failures=LoginThrottle.failures + delta)
    )
