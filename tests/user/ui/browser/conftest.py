"""Fixtures of the browser tests: one `wrale demo` fleet shared by the browser modules,
Chromium per module, a fresh browser context per sign-in, and each test's numbered
screenshots (plus one of every open page when a test fails)."""

from __future__ import annotations

import contextlib
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.user.ui.browser.harness import (
    CHROMIUM_ARGS,
    Demo,
    Pages,
    Shots,
    World,
    artifacts_dir,
    chromium_or_skip,
    prepare_world,
)


@pytest.fixture(scope="session")
def chromium() -> str:
    return chromium_or_skip()


@pytest.fixture(scope="session")
def screenshots() -> Path:
    """The screenshot folder, emptied of the previous run's pictures."""
    folder = artifacts_dir()
    for old in folder.iterdir():
        if re.match(r"^[a-z]+-\d\d-.*\.png$", old.name) or old.name == "console-errors.txt":
            old.unlink()
    return folder


@pytest.fixture(scope="session")
def fleet_holder() -> Iterator[dict[str, World]]:
    """Holds the one fleet of the session; stops it at the end if ``world`` has not."""
    held: dict[str, World] = {}
    yield held
    if "world" in held:
        _stop(held.pop("world").demo)


def _stop(demo: Demo) -> None:
    demo.stop()
    if demo.log.exists():  # the server's side of what the screenshots show
        shutil.copyfile(demo.log, artifacts_dir() / "demo.log")


@pytest.fixture(scope="module")
def world(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    fleet_holder: dict[str, World],
    chromium: str,
) -> Iterator[World]:
    """A real central server with 12 simulated boards in two racks, one rack heated until
    a rule on it fires, and a viewer and an operator besides the admin.

    Started once for every module that uses it, and stopped after the last of them, so
    the rest of the suite does not run beside a busy fleet."""
    if "world" not in fleet_holder:
        demo = Demo(tmp_path_factory.mktemp("demo"))
        try:
            demo.start()
            fleet_holder["world"] = prepare_world(demo)
        except BaseException:
            _stop(demo)
            raise
    yield fleet_holder["world"]
    items = request.session.items
    mine = [i for i, item in enumerate(items) if getattr(item, "module", None) is request.module]
    later = items[max(mine) + 1 :] if mine else []
    if not any("world" in getattr(item, "fixturenames", ()) for item in later):
        _stop(fleet_holder.pop("world").demo)


@pytest.fixture(scope="module")
def browser(chromium: str) -> Iterator[Any]:
    """Chromium for one test module. Not for the session: the sync API keeps an event loop
    running in this thread, and the async tests of the next modules need it free."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Remember each phase's report on the test, so fixtures know whether it failed."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture
def pages(request: pytest.FixtureRequest, browser: Any, world: World) -> Iterator[Pages]:
    p = Pages(browser, world.url)
    yield p
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:  # what the browser showed when it failed
        prefix = request.node.name.removeprefix("test_").split("_")[0]
        for n, page in enumerate(pg for ctx in p.contexts for pg in ctx.pages):
            with contextlib.suppress(Exception):
                page.screenshot(
                    path=str(artifacts_dir() / f"{prefix}-99-failed-{n}.png"), full_page=True
                )
    p.close()
    if p.console_errors:  # e.g. a refused request: kept for a person, not a failure
        with (artifacts_dir() / "console-errors.txt").open("a") as f:
            f.write(f"# {request.node.nodeid}\n" + "\n".join(p.console_errors) + "\n")
    assert not p.js_errors, "uncaught JavaScript errors:\n" + "\n".join(p.js_errors)
    csp = [e for e in p.console_errors if "Content Security Policy" in e]
    assert not csp, "Content-Security-Policy violations:\n" + "\n".join(csp)


@pytest.fixture
def shots(request: pytest.FixtureRequest, screenshots: Path) -> Shots:
    """Screenshots named after the test's first word: test_viewer_… → viewer-01-….png."""
    return Shots(request.node.name.removeprefix("test_").split("_")[0], screenshots)
