"""The browser tests' world: a real `wrale demo` process (central server on SQLite with a
simulated fleet in racks), REST helpers to shape it (users, a hot rack, alert rules), the
system's Chromium under Playwright, and full-page screenshots for people to look at."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.user.fleet_procs import Proc, clean_env, wait_for
from tests.user.metald_proc import free_port

REPO = Path(__file__).resolve().parents[4]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ADMIN_PASSWORD = "admin-password-1"
PASSWORDS = {"viewer": "viewer-password-1", "operator": "operator-password-1"}
HOT_C = 72.0  # the heated rack's boards reach this before the tests start (they settle ~77)
BANNER = re.compile(r"(?:dashboard|central):\s+(http://\S+?)/?\s*$", re.MULTILINE)


def artifacts_dir() -> Path:
    """Where screenshots go: $WRALE_ARTIFACTS_DIR, else <repo>/test-artifacts/screenshots."""
    chosen = os.environ.get("WRALE_ARTIFACTS_DIR")
    path = Path(chosen) if chosen else REPO / "test-artifacts" / "screenshots"
    path.mkdir(parents=True, exist_ok=True)
    return path


def chromium_or_skip() -> str:
    """The system's Chromium; CI fails without it, a developer's machine skips."""
    if Path(CHROMIUM).exists() and os.access(CHROMIUM, os.X_OK):
        return CHROMIUM
    msg = (
        f"the browser tests need the system's Chromium at {CHROMIUM}: "
        "install it with 'apt-get install chromium'"
    )
    if os.environ.get("CI"):
        pytest.fail(msg)
    pytest.skip(msg)


# ----------------------------------------------------------------------------- the demo


@dataclass
class Demo:
    """`wrale demo` as a process on a fixed port, so it can be stopped and started again on
    the same port and data directory (the browser's page must find it again)."""

    root: Path
    devices: int = 12
    speed: float = 5.0
    port: int = field(default_factory=free_port)
    p: Proc | None = None
    _mark: int = 0  # where the current run's output starts in the log
    _token: str = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def log(self) -> Path:
        return self.root / "demo.log"

    def start(self, timeout_s: float = 120.0) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self._mark = self.log.stat().st_size if self.log.exists() else 0
        env = clean_env(
            WRALE_ADMIN_PASSWORD=ADMIN_PASSWORD,
            WRALE_CHANNEL_HEARTBEAT_S="2",
            WRALE_MAINTENANCE_INTERVAL_S="3",  # alert rules evaluated every 3 s
        )
        self.p = Proc(
            [
                "demo",
                "--port",
                str(self.port),
                "--data-dir",
                str(self.data_dir),
                "--devices",
                str(self.devices),
                "--speed",
                str(self.speed),
                "--no-incidents",
                "--log-level",
                "WARNING",
            ],
            env,
            self.log,
        )
        self.p.start()

        def running() -> bool:
            assert self.p is not None
            assert self.p.alive(), f"wrale demo exited:\n{self.output()[-4000:]}"
            m = BANNER.search(self.output())
            if m:
                assert m.group(1) == self.url, (m.group(1), self.url)
            return m is not None

        wait_for("wrale demo's banner", running, timeout_s)
        self._token = ""
        self.wait_online(self.devices, timeout_s)

    def stop(self) -> int:
        return self.p.stop() if self.p else 0

    def output(self) -> str:
        """What the current run printed so far."""
        if not self.log.exists():
            return ""
        with self.log.open("rb") as f:
            f.seek(self._mark)
            return f.read().decode(errors="replace")

    # ------------------------------------------------------------------------- REST API

    def token(self) -> str:
        if not self._token:
            self._token = login_token(self.url, "admin", ADMIN_PASSWORD)
        return self._token

    def api(self, method: str, path: str, **kw: Any) -> Any:
        """Call the REST API as the admin; returns the JSON body (None for 204)."""
        r = httpx.request(
            method,
            f"{self.url}/api/v1{path}",
            headers={"Authorization": f"Bearer {self.token()}"},
            timeout=30,
            **kw,
        )
        assert r.status_code < 300, f"{method} {path}: {r.status_code} {r.text}"
        return r.json() if r.content else None

    def items(self, path: str, **params: Any) -> list[dict[str, Any]]:
        """Every item of a paginated list."""
        out: list[dict[str, Any]] = []
        cursor = None
        while True:
            q = {"limit": 200, **params, **({"cursor": cursor} if cursor else {})}
            page = self.api("GET", path, params=q)
            out += page["items"]
            cursor = page.get("next_cursor")
            if not cursor:
                return out

    def wait_online(self, n: int, timeout_s: float = 120.0) -> list[dict[str, Any]]:
        def online() -> list[dict[str, Any]] | None:
            found = [d for d in self.items("/devices") if d["status"] == "online"]
            return found if len(found) >= n else None

        result: list[dict[str, Any]] = wait_for(f"{n} devices online", online, timeout_s)
        return result

    def create_user(self, username: str, role: str) -> None:
        self.api(
            "POST",
            "/users",
            json={"username": username, "password": PASSWORDS[role], "role": role},
        )

    def send(self, op: str, args: dict[str, Any], **selector: Any) -> dict[str, Any]:
        """Queue a command for the devices matching ``selector`` (e.g. rack_id=…)."""
        batch: dict[str, Any] = self.api(
            "POST",
            "/commands",
            json={"op": op, "args": args, "selector": selector, "timeout_s": 120},
        )
        assert batch["count"] > 0, batch
        assert not batch["refused"], batch
        return batch

    def send_to(self, device_id: str, op: str, args: dict[str, Any]) -> dict[str, Any]:
        """Queue a command for one device."""
        cmd: dict[str, Any] = self.api(
            "POST", f"/devices/{device_id}/commands", json={"op": op, "args": args}
        )
        return cmd

    def cpu_temp(self, device_id: str) -> float:
        """The device's newest reported CPU temperature (-inf before its first report)."""
        body = self.api("GET", f"/devices/{device_id}/telemetry/latest")
        reading = body["metrics"].get("cpu_temp_c") or {}
        value = reading.get("value")
        return float(value) if isinstance(value, int | float) else float("-inf")


def login_token(url: str, username: str, password: str) -> str:
    r = httpx.post(
        f"{url}/api/v1/auth/login",
        json={"username": username, "password": password},
        timeout=30,
    )
    r.raise_for_status()
    return str(r.json()["access_token"])


# ----------------------------------------------------------------------------- the fleet


@dataclass
class World:
    """What the tests know about the fleet they drive."""

    demo: Demo
    hot_rack_id: str
    hot_rack_name: str
    racks: dict[str, str]  # id -> name
    devices: dict[str, dict[str, Any]]  # id -> device
    rule_id: str  # the rule that fires on the hot rack
    threshold_c: float

    @property
    def url(self) -> str:
        return self.demo.url

    def hot_devices(self) -> list[str]:
        return [
            d["id"]
            for d in self.devices.values()
            if (d.get("location") or {}).get("rack_id") == self.hot_rack_id
        ]

    def alerts(self, **params: Any) -> list[dict[str, Any]]:
        return self.demo.items("/alerts", **params)

    def restart(self) -> None:
        """Stop the central server and its fleet, start them again on the same port and
        data directory, and heat the rack again (the boards' physics start afresh)."""
        code = self.demo.stop()
        assert code == 0, f"wrale demo exited with {code}:\n{self.demo.output()[-4000:]}"
        self.demo.start()
        heat_rack(self.demo, self.hot_rack_id)


def heat_rack(demo: Demo, rack_id: str) -> None:
    """Make one rack's boards run hot: warm air and full load."""
    demo.send("sim_ambient", {"celsius": 50}, rack_id=rack_id)
    demo.send("sim_load", {"percent": 100}, rack_id=rack_id)


def prepare_world(demo: Demo, *, threshold_c: float = 60.0) -> World:
    """Users, a hot rack, and a rule on it that fires; waits until a board there is alerting."""
    demo.api(  # fresher readings: every board reports each 2 s
        "POST",
        "/policies",
        json={"scope_type": "fleet", "kind": "sampling", "document": {"report_interval_s": 2}},
    )
    demo.create_user("viewer", "viewer")
    demo.create_user("operator", "operator")
    racks = {r["id"]: r["name"] for r in demo.items("/racks")}
    devices = {d["id"]: d for d in demo.items("/devices")}
    per_rack: dict[str, int] = {}
    for d in devices.values():
        rid = (d.get("location") or {}).get("rack_id")
        if rid:
            per_rack[rid] = per_rack.get(rid, 0) + 1
    assert len(per_rack) >= 2, f"the fleet should span two racks at least: {per_rack}"
    hot = min(per_rack, key=lambda rid: racks[rid])  # the first rack by name ("Rack A1")
    heat_rack(demo, hot)
    rule = demo.api(
        "POST",
        "/alert-rules",
        json={
            "name": "e2e: hot rack",
            "expression": f"cpu_temp_c > {threshold_c:g}",
            "severity": "MAJOR",
            "scope_type": "rack",
            "scope_id": hot,
        },
    )
    world = World(demo, hot, racks[hot], racks, devices, rule["id"], threshold_c)

    def alerting() -> bool:
        found = {a["device_id"] for a in world.alerts(rule_id=rule["id"], state="active")}
        return found >= set(world.hot_devices())

    wait_for("an alert on each board of the hot rack", alerting, 180)

    def heated() -> bool:  # the physical view marks a rack hot from 70 °C: keep a margin
        return all(demo.cpu_temp(d) >= HOT_C for d in world.hot_devices())

    wait_for(f"every board of the hot rack at {HOT_C:g} °C", heated, 180)
    return world


# ----------------------------------------------------------------------------- the browser


def sign_in(page: Any, username: str, password: str | None = None) -> None:
    """Sign in through the login form; lands on the page it was sent to."""
    password = password or (ADMIN_PASSWORD if username == "admin" else PASSWORDS[username])
    page.goto("/login")
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("form[action='/login'] button[type=submit]")
    page.wait_for_url(lambda url: "/login" not in url)


def live(page: Any, timeout_s: float = 30.0) -> None:
    """Wait until the page's live stream is open."""
    page.wait_for_selector('#live-state[data-state="open"]', timeout=timeout_s * 1000)


def status(response: Any) -> int:
    """The HTTP status of a ``page.goto`` (0 when there was no response)."""
    return int(response.status) if response is not None else 0


def settle(page: Any, seconds: float = 0.6) -> None:
    """Let a page finish loading: the load event, htmx's own requests, and a moment for
    scripts that draw (charts)."""
    page.wait_for_load_state("load")
    page.wait_for_timeout(int(seconds * 1000))
    page.wait_for_function("() => !document.querySelector('.htmx-request')", timeout=10_000)


def alert_count(page: Any) -> int:
    return int(page.get_attribute("#alert-count", "data-count") or 0)


VIEWPORT = {"width": 1280, "height": 800}


class Pages:
    """Browser contexts of one test (each a separate sign-in); JS errors are collected."""

    def __init__(self, browser: Any, url: str) -> None:
        self.browser = browser
        self.url = url
        self.contexts: list[Any] = []
        self.js_errors: list[str] = []
        self.console_errors: list[str] = []

    def new(self, *, color_scheme: str = "light") -> Any:
        ctx = self.browser.new_context(
            base_url=self.url, viewport=VIEWPORT, color_scheme=color_scheme
        )
        ctx.set_default_timeout(15_000)
        self.contexts.append(ctx)
        page = ctx.new_page()
        page.on("pageerror", lambda exc: self.js_errors.append(f"{page.url}: {exc}"))
        page.on(
            "console",
            lambda msg: (
                self.console_errors.append(f"{page.url}: {msg.text}")
                if msg.type == "error"
                else None
            ),
        )
        return page

    def close(self) -> None:
        for ctx in self.contexts:
            ctx.close()


# ----------------------------------------------------------------------------- screenshots


@dataclass
class Shots:
    """Numbered full-page screenshots of one test: ``<prefix>-NN-<name>[-dark].png``."""

    prefix: str
    folder: Path = field(default_factory=artifacts_dir)
    n: int = 0
    taken: list[Path] = field(default_factory=list)

    def take(self, page: Any, name: str, *, themes: bool = False) -> None:
        """Screenshot ``page`` as it is; with ``themes``, once in light and once in dark."""
        self.n += 1
        base = f"{self.prefix}-{self.n:02d}-{name}"
        if not themes:
            self._shot(page, base)
            return
        with theme(page, "light"):
            self._shot(page, base + "-light")
        with theme(page, "dark"):
            self._shot(page, base + "-dark")

    def _shot(self, page: Any, base: str) -> None:
        path = self.folder / f"{base}.png"
        page.evaluate("window.scrollTo(0, 0)")  # a sticky header is drawn where it is
        page.screenshot(path=str(path), full_page=True, animations="disabled")
        self.taken.append(path)


@contextmanager
def theme(page: Any, name: str) -> Iterator[None]:
    """Show ``page`` in the light or dark theme (the app's own switch: data-theme), and
    the colour scheme the browser reports, then put both back."""
    before = page.evaluate("document.documentElement.getAttribute('data-theme')")
    page.emulate_media(color_scheme=name)
    page.evaluate("t => document.documentElement.setAttribute('data-theme', t)", name)
    page.wait_for_timeout(150)
    try:
        yield
    finally:
        page.evaluate("t => document.documentElement.setAttribute('data-theme', t)", before)
        page.emulate_media(color_scheme="light")
