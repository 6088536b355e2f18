"""Per-device accounts on a Mosquitto broker with the dynamic-security plugin.

The central holds the broker's admin account and, over ``$CONTROL/dynamic-security/v1``,
mirrors the database onto the broker: one client per device (username = device id,
password = the device secret, text description = the credential it came from) with its own
role confining it to ``<root>/<device_id>/<kind>``; a role for the central's bridge that
reaches every device's topics. It never decides who may connect: the database does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Final

from wrale.fleet.brain.channel.broker_verdicts import allowed_clients
from wrale.fleet.sync.transport.mqtt import (
    DOWN,
    SOCKET_OPTIONS,
    UP,
    BrokerUrl,
    connect_properties,
    parse_broker_url,
    tls_context,
)
from wrale.shared.errors import UnavailableError

if TYPE_CHECKING:
    from wrale.fleet.brain.bus import BusEvent, EventBus
    from wrale.fleet.brain.db import Database

log = logging.getLogger("wrale.central.broker")

CONTROL: Final = "$CONTROL/dynamic-security/v1"
CENTRAL_ROLE: Final = "wrale-central"
ROLE_PREFIX: Final = "wrale-device-"
CREDENTIAL_TAG: Final = "wrale credential "
ANSWER_S: Final = 10.0  # a hang guard for one control exchange
EXISTS: Final = ("already exists",)


class BrokerAccountError(UnavailableError):
    """The broker did not accept or answer a dynamic-security command."""


def device_role(device_id: str) -> str:
    return f"{ROLE_PREFIX}{device_id}"


def device_acls(root: str, device_id: str) -> list[dict[str, Any]]:
    """Publish only on the device's own upstream topics, subscribe only to its own
    downstream ones (everything else falls to the broker's default: deny)."""
    own = f"{root}/{device_id}"
    send = [{"acltype": "publishClientSend", "topic": f"{own}/{k}", "allow": True} for k in UP]
    sub = [{"acltype": "subscribeLiteral", "topic": f"{own}/{k}", "allow": True} for k in DOWN]
    return send + sub


def central_acls(root: str) -> list[dict[str, Any]]:
    """The bridge reads and writes every device's topics (shared subscriptions too)."""
    return [
        {"acltype": "publishClientSend", "topic": f"{root}/#", "allow": True},
        {"acltype": "publishClientReceive", "topic": f"{root}/#", "allow": True},
        {"acltype": "subscribePattern", "topic": f"{root}/#", "allow": True},
        {"acltype": "subscribePattern", "topic": f"$share/+/{root}/#", "allow": True},
    ]


def credential_of(client: dict[str, Any]) -> str | None:
    """The credential id a broker client was provisioned from (its text description)."""
    text = str(client.get("textname") or client.get("textdescription") or "")
    return text[len(CREDENTIAL_TAG) :] if text.startswith(CREDENTIAL_TAG) else None


class BrokerAccounts:
    """The dynamic-security control client of one central replica.

    ``url`` is the broker URL of the bridge (host, port, TLS, topic root; its username is
    the bridge's account); ``admin_username`` / ``admin_password`` the broker's admin
    account (``mosquitto_ctrl dynsec init``). Every method is idempotent.
    """

    def __init__(self, url: str, admin_username: str, admin_password: str) -> None:
        self.broker: BrokerUrl = parse_broker_url(url)
        self.admin_username = admin_username
        self._admin_password = admin_password
        self._tls = tls_context(self.broker.ca_file) if self.broker.tls else None
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._pending: set[asyncio.Task[None]] = set()
        self._unlisten: Callable[[], None] | None = None

    # ------------------------------------------------------------------ control channel

    async def run(self, commands: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """Send ``commands`` in one control message; their answers, in order.
        ``BrokerAccountError`` when the broker cannot be reached or does not answer."""
        import aiomqtt

        tag = secrets.token_hex(8)
        sent = [{**c, "correlationData": f"{tag}-{i}"} for i, c in enumerate(commands)]
        try:
            async with self._lock, self._client() as client:
                await client.subscribe(f"{CONTROL}/response", qos=1)
                await client.publish(CONTROL, json.dumps({"commands": sent}), qos=1)
                async with asyncio.timeout(ANSWER_S):
                    async for msg in client.messages:
                        body = json.loads(bytes(msg.payload or b"") if not isinstance(
                            msg.payload, str) else msg.payload.encode())  # fmt: skip
                        answers = body.get("responses") or []
                        if answers and str(answers[0].get("correlationData", "")).startswith(tag):
                            return [dict(a) for a in answers]
        except (aiomqtt.MqttError, TimeoutError, OSError, ValueError) as exc:
            raise BrokerAccountError(
                f"the MQTT broker's dynamic security did not answer: {exc}"
            ) from None
        raise BrokerAccountError("the MQTT broker closed the control connection")

    def _client(self) -> Any:
        import aiomqtt

        return aiomqtt.Client(
            self.broker.host,
            self.broker.port,
            identifier=f"wrale-dynsec-{secrets.token_hex(4)}",
            username=self.admin_username,
            password=self._admin_password,
            protocol=aiomqtt.ProtocolVersion.V5,
            properties=connect_properties(),
            tls_context=self._tls,
            timeout=ANSWER_S,
            socket_options=SOCKET_OPTIONS,
        )

    async def _checked(
        self, commands: Sequence[dict[str, Any]], *, tolerate: tuple[str, ...] = ()
    ) -> list[dict[str, Any]]:
        answers = await self.run(commands)
        for a in answers:
            error = str(a.get("error") or "")
            if error and not any(t in error.lower() for t in tolerate):
                raise BrokerAccountError(f"broker refused {a.get('command')}: {error}")
        return answers

    # ------------------------------------------------------------------ accounts

    async def ensure_central(self, password: str | None = None) -> None:
        """The central's role, and the bridge's account with it (created with ``password``
        when missing), unless the bridge uses the admin account. Safe to repeat."""
        root = self.broker.root
        await self._checked(
            [{"command": "createRole", "rolename": CENTRAL_ROLE, "acls": central_acls(root)}],
            tolerate=EXISTS,
        )
        user = self.broker.username
        if not user or user == self.admin_username:
            return
        (found,) = await self._checked(
            [{"command": "getClient", "username": user}], tolerate=("not found",)
        )
        client = (found.get("data") or {}).get("client")
        if not isinstance(client, dict):
            if not password:
                raise BrokerAccountError(f"the bridge's account {user!r} is not on the broker")
            await self._checked(
                [
                    {
                        "command": "createClient",
                        "username": user,
                        "password": password,
                        "roles": [{"rolename": CENTRAL_ROLE}],
                    }
                ]
            )
        elif CENTRAL_ROLE not in {r.get("rolename") for r in client.get("roles") or []}:
            await self._checked(
                [{"command": "addClientRole", "username": user, "rolename": CENTRAL_ROLE}]
            )

    async def provision(self, device_id: str, secret: str, credential_id: str) -> None:
        """Create or re-key the device's client (password = its secret) and enable it."""
        await self.provision_many([(device_id, secret, credential_id)])

    async def provision_many(self, devices: Sequence[tuple[str, str, str]]) -> None:
        """``provision`` for many ``(device_id, secret, credential_id)`` in few messages."""
        for i in range(0, len(devices), 100):
            chunk = devices[i : i + 100]
            await self._checked(
                [
                    {
                        "command": "createRole",
                        "rolename": device_role(d),
                        "acls": device_acls(self.broker.root, d),
                    }
                    for d, _, _ in chunk
                ],
                tolerate=EXISTS,
            )
            created = await self._checked(
                [
                    {
                        "command": "createClient",
                        "username": d,
                        "password": secret,
                        "textdescription": f"{CREDENTIAL_TAG}{cred}",
                        "roles": [{"rolename": device_role(d)}],
                    }
                    for d, secret, cred in chunk
                ],
                tolerate=EXISTS,
            )
            again: list[dict[str, Any]] = []
            for (d, secret, cred), answer in zip(chunk, created, strict=True):
                if answer.get("error"):  # it existed: new password and credential, enabled
                    again += [
                        {"command": "setClientPassword", "username": d, "password": secret},
                        {
                            "command": "modifyClient",
                            "username": d,
                            "textdescription": f"{CREDENTIAL_TAG}{cred}",
                        },
                        {"command": "enableClient", "username": d},
                    ]
            if again:
                await self._checked(again, tolerate=("already",))

    async def disable(self, device_id: str) -> None:
        """The device can no longer connect; its broker connection is dropped now."""
        await self._checked(
            [{"command": "disableClient", "username": device_id}], tolerate=("not found",)
        )

    async def enable(self, device_id: str) -> None:
        await self._checked(
            [{"command": "enableClient", "username": device_id}], tolerate=("not found",)
        )

    async def delete(self, device_id: str) -> None:
        await self._checked(
            [
                {"command": "deleteClient", "username": device_id},
                {"command": "deleteRole", "rolename": device_role(device_id)},
            ],
            tolerate=("not found",),
        )

    async def clients(self) -> list[dict[str, Any]]:
        """The broker's device clients (those with a ``wrale-device-`` role)."""
        (answer,) = await self._checked([{"command": "listClients", "verbose": True}])
        found = (answer.get("data") or {}).get("clients") or []
        return [
            c
            for c in found
            if isinstance(c, dict)
            and any(
                r.get("rolename") == device_role(str(c.get("username")))
                for r in c.get("roles") or []
            )
        ]

    # ------------------------------------------------------------------ the database's view

    async def reconcile(self, db: Database) -> dict[str, int]:
        """Make the broker agree with the database: a device's client is enabled only while
        the device exists, is neither quarantined nor decommissioned (maintenance still
        connects, to be told it is held), its organisation is active and the credential
        it was provisioned from is still valid; deleted devices lose their client."""
        done = {"disabled": 0, "enabled": 0, "deleted": 0}
        listed = await self.clients()
        if not listed:
            return done
        allowed = await allowed_clients(
            db, [(str(c["username"]), credential_of(c)) for c in listed]
        )
        for c in listed:
            device_id = str(c["username"])
            verdict = allowed.get(device_id)
            disabled = bool(c.get("disabled"))
            if verdict is None:
                await self.delete(device_id)
                done["deleted"] += 1
            elif not verdict and not disabled:
                await self.disable(device_id)
                done["disabled"] += 1
            elif verdict and disabled:
                await self.enable(device_id)
                done["enabled"] += 1
        if any(done.values()):
            log.info("broker accounts reconciled: %s", done)
        return done

    async def sync_device(self, db: Database, device_id: str) -> None:
        """Bring one device's client in line with the database (see ``reconcile``)."""
        (answer,) = await self._checked(
            [{"command": "getClient", "username": device_id}], tolerate=("not found",)
        )
        client = (answer.get("data") or {}).get("client")
        if not isinstance(client, dict):
            return
        verdict = (await allowed_clients(db, [(device_id, credential_of(client))])).get(device_id)
        if verdict is None:
            await self.delete(device_id)
        elif verdict == bool(client.get("disabled")):
            await (self.enable(device_id) if verdict else self.disable(device_id))

    # ------------------------------------------------------------------ life

    def start(self, db: Database, bus: EventBus, every_s: float) -> None:
        """Reconcile every ``every_s`` (safe on every replica: each step is idempotent) and
        at once for a device whose status changes (quarantine, decommission)."""
        if self._task is not None:
            return
        self._task = asyncio.create_task(self._loop(db, every_s), name="wrale-broker-accounts")

        def changed(event: BusEvent) -> None:
            device_id = str(event.data.get("id") or event.data.get("device_id") or "")
            if device_id and self._task is not None:
                task = asyncio.get_running_loop().create_task(self._quietly(db, device_id))
                self._pending.add(task)
                task.add_done_callback(self._pending.discard)

        self._unlisten = bus.listen(["device.status"], changed)

    async def stop(self) -> None:
        if self._unlisten is not None:
            self._unlisten()
            self._unlisten = None
        tasks = [t for t in (self._task, *self._pending) if t is not None]
        self._task = None
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t

    async def _quietly(self, db: Database, device_id: str) -> None:
        try:
            await self.sync_device(db, device_id)
        except BrokerAccountError as exc:
            log.warning("broker account of %s not updated (retried later): %s", device_id, exc)

    async def _loop(self, db: Database, every_s: float) -> None:
        central_ready = False
        while True:
            try:
                if not central_ready:
                    await self.ensure_central(self.broker.password)
                    central_ready = True
                await self.reconcile(db)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the broker or the database is down: next round
                log.warning("broker accounts: %s", exc)
            await asyncio.sleep(every_s)
