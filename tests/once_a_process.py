"""What the tests build once a process instead of once a test, with the same code under test.

Each central test makes its own database and app, as a process does once: the schema, the
dashboard's compiled templates, FastAPI's analysis of each endpoint and the ``wrale``
command's click tree were built again for every test (most of the suite's fixture time).
Here they are built once a worker and reused; PostgreSQL's per-test copies are made one
ahead and dropped behind on a background thread. ``tests/conftest.py`` imports these.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(autouse=True, scope="session")
def _templates_compiled_once() -> Iterator[None]:
    """The dashboard's templates compiled once a process, not once an app: each test's app
    makes its own Jinja environment (as a process does once), which compiled every page it
    rendered again (a third of the page tests' time). The environments share an in-memory
    bytecode cache, keyed by template and checked against its source; everything else about
    the environment (filters, globals, autoescape, StrictUndefined) is the app's own."""
    try:
        from jinja2 import BytecodeCache
        from jinja2.bccache import Bucket

        from wrale.user.ui import web
    except ImportError:  # a device-only install: there is no dashboard to test
        yield
        return

    class MemoryBytecodeCache(BytecodeCache):
        def __init__(self) -> None:
            self.code: dict[str, bytes] = {}

        def load_bytecode(self, bucket: Bucket) -> None:
            code = self.code.get(bucket.key)
            if code is not None:
                bucket.bytecode_from_string(code)

        def dump_bytecode(self, bucket: Bucket) -> None:
            self.code[bucket.key] = bucket.bytecode_to_string()

    cache = MemoryBytecodeCache()
    production = web.make_templates

    def make_templates() -> Any:
        env = production()
        env.bytecode_cache = cache
        return env

    web.make_templates = make_templates
    yield
    web.make_templates = production


@pytest.fixture(autouse=True, scope="session")
def _endpoints_analysed_once() -> Iterator[None]:
    """FastAPI's analysis of an endpoint's signature done once a process, not once an app.

    FastAPI builds each route's dependency tree (``get_dependant``: the signature, its
    ``Depends`` and their pydantic fields) lazily for each app, at its first requests; a
    process does it once, but the tests make an app per test, and that was most of the
    central's fixture time (~0.4 s of CPU a test, over a thousand tests). The tree depends
    only on the path, the endpoint and the route's dependencies, which are the same objects
    in every app (the routers are module-level), so each app reuses the first one's."""
    try:
        from fastapi import routing
    except ImportError:  # a device-only install: there is no central server to test
        yield
        return
    build = getattr(routing, "_build_dependant_with_parameterless_dependencies", None)
    if build is None:  # another FastAPI: nothing to reuse
        yield
        return
    built: dict[Any, Any] = {}

    def build_once(*, path: str, call: Any, dependencies: Any) -> Any:
        try:
            key = (path, call, tuple(dependencies))
            hash(key)
        except TypeError:
            return build(path=path, call=call, dependencies=dependencies)
        if key not in built:
            built[key] = build(path=path, call=call, dependencies=dependencies)
        return built[key]

    routing._build_dependant_with_parameterless_dependencies = build_once
    yield
    routing._build_dependant_with_parameterless_dependencies = build


@pytest.fixture(autouse=True, scope="session")
def _cli_built_once() -> Iterator[None]:
    """The ``wrale`` command's click tree built once a process, as the ``wrale`` process
    does, not once an invocation: Typer's ``CliRunner.invoke`` rebuilt the whole tree
    (every command's signature and annotations) each time, ~0.1 s of CPU a call, and the
    CLI tests make thousands of calls. Each invocation still parses and runs afresh."""
    try:
        from typer import testing
    except ImportError:  # a device-only install: no CLI extra
        yield
        return
    production = testing._get_command
    built: dict[int, tuple[Any, Any]] = {}

    def get_command(app: Any) -> Any:
        if id(app) not in built:  # the app is kept with its command: its id stays its own
            built[id(app)] = (app, production(app))
        return built[id(app)][1]

    testing._get_command = get_command
    yield
    testing._get_command = production


_sqlite_schema: list[Path] = []  # this process's SQLite file holding only the schema


async def _sqlite_schema_file() -> Path:
    """A SQLite file with the schema made by ``create_all``, once a process: each test's
    database is a copy of it (like PostgreSQL's template), not ``create_all`` again (a
    quarter of a second of CPU a test, over a thousand SQLite tests)."""
    if _sqlite_schema:
        return _sqlite_schema[0]
    import atexit
    import shutil
    import tempfile

    from wrale.fleet.brain.db import Database
    from wrale.fleet.brain.models import Base

    folder = Path(tempfile.mkdtemp(prefix="wrale-sqlite-schema-"))
    atexit.register(shutil.rmtree, folder, True)
    db = Database(f"sqlite+aiosqlite:///{folder / 'schema.db'}")
    async with db.engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    await db.dispose()
    _sqlite_schema.append(folder / "schema.db")
    return _sqlite_schema[0]


def _copy_sqlite(source: Path, target: Path) -> None:
    """SQLite's backup API: a consistent copy whatever its WAL holds (WAL mode included)."""
    import sqlite3

    target.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)
    src.close()
    dst.close()


class PgCopies:
    """Per-test copies of the PostgreSQL template: the next one is made while a test runs
    and a used one is dropped after it, on one background thread, so ``CREATE DATABASE``
    and ``DROP DATABASE`` (a few hundred milliseconds of server I/O each) are off the
    tests' path. Each test still gets a fresh database of its own."""

    def __init__(self, admin_dsn: str, template: str) -> None:
        self.admin_dsn = admin_dsn
        self.template = template
        self.names = (f"wrale_t_{os.getpid()}_{n}" for n in range(1_000_000))
        self.worker = ThreadPoolExecutor(1, thread_name_prefix="pg-copies")
        self.drops: list[Future[None]] = []
        self.next = self.worker.submit(self._create)

    def _admin(self, sql: str) -> None:
        import asyncpg

        async def run() -> None:
            admin = await asyncpg.connect(self.admin_dsn)
            try:
                await admin.execute(sql)
            finally:
                await admin.close()

        asyncio.run(run())

    def _create(self) -> str:
        name = next(self.names)
        self._admin(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"')
        return name

    def take(self) -> str:
        """A fresh copy of the template for one test (the next is started right away)."""
        name = self.next.result()
        self.next = self.worker.submit(self._create)
        return name

    def drop(self, name: str) -> None:
        self.drops = [f for f in self.drops if not f.done() or f.result() is not None]
        self.drops.append(
            self.worker.submit(self._admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        )

    def close(self) -> None:
        try:
            self.drop(self.next.result())
        finally:
            self.worker.shutdown(wait=True)
        for f in self.drops:
            f.result()  # a failed drop is reported, not left unseen
