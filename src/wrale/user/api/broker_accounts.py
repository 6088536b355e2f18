"""The API's side of MQTT broker accounts: enrollment and rotation give a device its
account before they commit, revocation and deletion take it away (see
``fleet/brain/channel/broker_accounts.py``). Without broker accounts these do nothing."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from fastapi import Request

from wrale.shared.errors import UnavailableError

if TYPE_CHECKING:
    from wrale.fleet.brain.channel.broker_accounts import BrokerAccounts

log = logging.getLogger("wrale.central.broker")


async def provision_broker(request: Request, accounts_of: Sequence[tuple[str, str, str]]) -> None:
    """Give each ``(device_id, secret, credential_id)`` its MQTT broker account (with
    broker accounts configured), before the enrollment or rotation commits: a broker that
    cannot take it is a 503 and the change is undone (the token keeps its use), never a
    device that cannot connect."""
    accounts: BrokerAccounts | None = getattr(request.app.state, "broker_accounts", None)
    if accounts is not None and accounts_of:
        await accounts.provision_many(accounts_of)


async def bar_broker(request: Request, device_id: str, *, delete: bool = False) -> None:
    """Disable (revoked credentials) or delete (deleted device) the device's broker
    account now; a broker that cannot be reached is brought in line by the reconcile loop."""
    accounts: BrokerAccounts | None = getattr(request.app.state, "broker_accounts", None)
    if accounts is None:
        return
    try:
        await (accounts.delete(device_id) if delete else accounts.disable(device_id))
    except UnavailableError as exc:
        log.warning("broker account of %s: %s (the reconcile loop retries)", device_id, exc)
