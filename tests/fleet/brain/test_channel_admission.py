"""A connect storm's credential checks are answered by a few reads, not one each, and
batching changes no answer: a wrong, revoked or malformed secret is still refused."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from tests.fleet.brain.channel_kit import Kit, make_kit
from wrale.fleet.brain.channel.admission import CredentialChecks
from wrale.fleet.brain.db import Database
from wrale.fleet.brain.services import enrollment


@pytest.fixture
async def kit(database: Database, tmp_path: Path) -> Kit:
    return await make_kit(database, tmp_path)


async def test_a_storm_of_checks_takes_a_few_reads(kit: Kit) -> None:
    devs = await kit.devices(*(f"storm-{i}" for i in range(300)))
    checks = CredentialChecks(kit.db, kit.clock.now)
    answers = await asyncio.gather(*(checks.ok(d, secret) for d, secret in devs))
    assert answers == [True] * 300
    assert checks.reads == 1  # all 300 waited together


async def test_batched_checks_refuse_what_single_ones_refused(kit: Kit) -> None:
    (good, good_secret), (revoked, revoked_secret), (other, _) = await kit.devices(
        "good", "revoked", "other"
    )
    async with kit.db.session() as s:
        await enrollment.revoke_credentials(s, kit.admin, revoked)
    # past the revocation time (stamped with the wall clock)
    kit.clock.advance(max(1.0, time.time() - kit.clock.now() + 1))
    checks = CredentialChecks(kit.db, kit.clock.now)
    asked = [
        (good, good_secret),
        (good, good_secret + "x"),  # wrong secret
        (other, good_secret),  # another device's secret
        (revoked, revoked_secret),
        ("not-an-id", good_secret),
        (good, ""),
        (good, "s" * 500),
    ]
    answers = await asyncio.gather(*(checks.ok(d, secret) for d, secret in asked))
    assert answers == [True, False, False, False, False, False, False]
    assert checks.reads == 1  # the four well-formed ones in one read; the others in none


async def test_a_caller_gone_meanwhile_does_not_stop_the_others(kit: Kit) -> None:
    (a, secret_a), (b, secret_b) = await kit.devices("a", "b")
    checks = CredentialChecks(kit.db, kit.clock.now)
    first = asyncio.ensure_future(checks.ok(a, secret_a))
    gone = asyncio.ensure_future(checks.ok(b, secret_b))
    await asyncio.sleep(0)
    gone.cancel()
    assert await checks.ok(b, secret_b) is True
    assert await first is True
    assert gone.cancelled()
