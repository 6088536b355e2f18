"""Fixtures shared by the whole test suite.

``sim_board`` is the project's one shared simulated board: fresh, deterministic (seed 1)
and on a ``FakeClock``, so tests advance its physics instead of sleeping.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import HealthCheck, settings

from tests.once_a_process import (
    PgCopies,
    _cli_built_once,
    _copy_sqlite,
    _endpoints_analysed_once,
    _sqlite_schema_file,
    _templates_compiled_once,
)
from wrale.metal.hw.sim import SimBoard
from wrale.shared.clock import FakeClock
from wrale.shared.config import SimSettings

# once_a_process's autouse fixtures: imported here so that pytest finds them
__all__ = ["_cli_built_once", "_endpoints_analysed_once", "_templates_compiled_once"]

if TYPE_CHECKING:
    from wrale.fleet.brain.db import Database

# CI runs the same examples every time (no flaky shrinking on a loaded machine);
# a developer's run explores new ones.
settings.register_profile(
    "ci", derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


@pytest.fixture
def sim_board() -> SimBoard:
    """A fresh simulated Pi 5 (seed 1, FakeClock, 10 % load, 25 °C, 20 Wh battery)."""
    return SimBoard(SimSettings(seed=1), clock=FakeClock())


# ----------------------------------------------------------------------------- central


@pytest.fixture(autouse=True, scope="session")
def _cheap_password_hashing() -> Iterator[None]:
    """Argon2 at its cheapest in the test process: every central test hashes and checks a
    few passwords (the first admin, each login, each new user), and at the production cost
    (3 passes over 64 MiB) that was a third of a second of CPU per test. The same code runs
    (argon2id hash, verify, a wrong password refused); processes started by tests
    (``wrale central``, ``wrale demo``) keep the production cost."""
    try:
        from argon2 import PasswordHasher

        from wrale.fleet.brain.services import identity
    except ImportError:  # a device-only install: there is no central server to test
        yield
        return
    production = identity._hasher
    identity._hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    identity._dummy_hash.cache_clear()
    yield
    identity._hasher = production
    identity._dummy_hash.cache_clear()


PG_ADMIN_DSN = os.environ.get("WRALE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


def run_sync(coro: Any) -> Any:
    """Run a coroutine to completion from sync code, even inside a running event loop."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def _pg_or_skip() -> None:
    """PostgreSQL must be there in CI; on a developer's machine its tests skip."""
    import asyncpg

    async def ping() -> None:
        conn = await asyncpg.connect(PG_ADMIN_DSN, timeout=3)
        await conn.close()

    try:
        run_sync(ping())
    except (OSError, asyncpg.PostgresError) as exc:
        msg = (
            f"PostgreSQL not reachable at {PG_ADMIN_DSN} ({exc}); start it with "
            "'pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start'"
        )
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    """A PostgreSQL database holding the schema, copied for each test (fast isolation)."""
    import asyncpg

    _pg_or_skip()
    name = f"wrale_tpl_{os.getpid()}"

    async def setup() -> None:
        from wrale.fleet.brain.db import Database
        from wrale.fleet.brain.models import Base

        admin = await asyncpg.connect(PG_ADMIN_DSN)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        await admin.execute(f'CREATE DATABASE "{name}"')
        await admin.close()
        db = Database(_pg_url(name))
        async with db.engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
        await db.dispose()

    async def teardown() -> None:
        admin = await asyncpg.connect(PG_ADMIN_DSN)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()

    run_sync(setup())
    yield name
    run_sync(teardown())


def _pg_url(name: str) -> str:
    base = PG_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    return f"{base}/{name}"


_counter = iter(range(1_000_000))


@asynccontextmanager
async def sqlite_database(folder: Path) -> AsyncIterator[Database]:
    """The central database as a SQLite file in ``folder``, with the schema in place."""
    from wrale.fleet.brain.db import Database

    path = folder / "central.db"
    _copy_sqlite(await _sqlite_schema_file(), path)
    db = Database(f"sqlite+aiosqlite:///{path}")
    try:
        yield db
    finally:
        await db.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    """The central database, on SQLite and on PostgreSQL, with the schema in place."""
    from wrale.fleet.brain.db import Database

    if request.param == "sqlite":
        async with sqlite_database(tmp_path) as db:
            yield db
        return
    copies: PgCopies = request.getfixturevalue("pg_copies")
    name = copies.take()
    db = Database(_pg_url(name))
    try:
        yield db
    finally:
        await db.dispose()
        copies.drop(name)


@pytest.fixture(scope="session")
def pg_copies(pg_template: str) -> Iterator[PgCopies]:
    """This worker's copies of the template, made one ahead and dropped behind."""
    copies = PgCopies(PG_ADMIN_DSN, pg_template)
    yield copies
    copies.close()


# A test whose subject is not SQL (a body's validation, a protocol) runs on SQLite only; a
# comment at each use says where the SQL it reaches runs on both databases.
SQLITE_ONLY = pytest.mark.parametrize("database", ["sqlite"], indirect=True)

ADMIN_PASSWORD = "admin-password-1"


@pytest.fixture
async def central(database: Database, tmp_path: Path) -> AsyncIterator[Central]:
    """The central API in process (real database, real app), with its first admin logged in."""
    import httpx

    from wrale.shared.central_settings import CentralSettings
    from wrale.user.api.app import create_app

    settings = CentralSettings(
        data_dir=tmp_path,
        secret_key="test-secret-key-0123456789abcdef",
        admin_password=ADMIN_PASSWORD,
        dev=True,
    )
    app = create_app(settings, database=database, migrate=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://central") as http:
            c = Central(http=http, db=database, app=app)
            c.admin = await c.login("admin", ADMIN_PASSWORD)
            yield c


@dataclass
class Central:
    http: Any
    db: Database
    app: Any
    admin: dict[str, str] = field(default_factory=dict)

    async def login(self, username: str, password: str) -> dict[str, str]:
        r = await self.http.post(
            "/api/v1/auth/login", json={"username": username, "password": password}
        )
        assert r.status_code == 200, r.text
        return {"Authorization": f"Bearer {r.json()['access_token']}"}

    async def user(self, role: str, username: str | None = None) -> dict[str, str]:
        """A new user with ``role`` in the admin's tenant, logged in; returns its headers."""
        name = username or f"{role}-{next(_counter)}"
        r = await self.http.post(
            "/api/v1/users",
            headers=self.admin,
            json={"username": name, "password": "password-123", "role": role},
        )
        assert r.status_code == 201, r.text
        return await self.login(name, "password-123")

    async def other_tenant_admin(self) -> dict[str, str]:
        """An admin of a second tenant (made directly in the database)."""
        from wrale.fleet.brain.models import Tenant, User
        from wrale.fleet.brain.services.identity import hash_password

        name = f"other-{next(_counter)}"
        async with self.db.session() as s:
            t = Tenant(name=name)
            s.add(t)
            await s.flush()
            s.add(
                User(
                    tenant_id=t.id,
                    username=name,
                    role="admin",
                    password_hash=hash_password("password-123"),
                )
            )
        return await self.login(name, "password-123")


# ----------------------------------------------------------------------------- mqtt

MQTT_HOST, MQTT_PORT = "127.0.0.1", 1883


def mqtt_or_skip() -> None:
    """Mosquitto must be there in CI; on a developer's machine its tests skip."""
    import socket

    try:
        with socket.create_connection((MQTT_HOST, MQTT_PORT), timeout=3):
            pass
    except OSError as exc:
        msg = (
            f"Mosquitto not reachable at {MQTT_HOST}:{MQTT_PORT} ({exc}); start it with "
            "'mosquitto -d -c /etc/mosquitto/mosquitto.conf'"
        )
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)


@pytest.fixture
def mqtt_url() -> str:
    """The test broker with a topic root of this test's own (parallel runs never meet)."""
    import uuid

    mqtt_or_skip()
    return f"mqtt://{MQTT_HOST}:{MQTT_PORT}/wrale-test/{uuid.uuid4().hex[:12]}/v1"


# ----------------------------------------------------------------------------- xdist

# Module fixtures that start a world of their own (a server, a Debian root, a fleet): their
# tests stay on one worker (``--dist loadgroup``), or each worker would start it again.
# The browser tests' ``world`` (one ``wrale demo`` fleet) is shared across their modules.
BROWSER_DIR = "tests/user/ui/browser"


def _xdist_group(item: pytest.Item) -> str | None:
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return None
    params = getattr(getattr(item, "callspec", None), "params", {})
    for name in info.names_closure:
        defs = info.name2fixturedefs.get(name)
        if not defs or defs[-1].scope not in ("module", "package") or not defs[-1].baseid:
            continue
        if defs[-1].baseid.startswith(BROWSER_DIR):
            return "browser-world"
        module = item.nodeid.split("::", 1)[0]
        return f"{module}[{params[name]}]" if name in params else module
    return None


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the groups
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Slow tests first, and each module world's tests together on one worker.

    Under ``--dist loadgroup`` xdist hands out the largest groups first, then single tests
    in this order: the minutes-long end-to-end tests start early instead of being the
    tail that one worker runs alone while the other is idle."""
    grouping = bool(config.getoption("loadgroup", False))  # set on an xdist worker
    for item in items:
        group = _xdist_group(item)
        if group is not None:
            item.add_marker(pytest.mark.xdist_group(group))
            if grouping:
                _suffix_group(item, group)
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


def _suffix_group(item: pytest.Item, group: str) -> None:
    """The ``@group`` suffix xdist's worker puts on a grouped test's id, which its scheduler
    reads: xdist 3.8 sets ``item._nodeid``, which pytest 9 no longer reads (the id lives in
    ``item._id``), so without this every test went alone and each worker built each module
    world again (the Debian root three times, ~75 s each)."""
    if not hasattr(item, "_id") or "@" in item.nodeid:
        return
    from _pytest.nodeid import coerce_node_id

    item._id = coerce_node_id(f"{item.nodeid}@{group}")
