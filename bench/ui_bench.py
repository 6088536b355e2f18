"""The dashboard: server time to render the fleet overview (``/``) and the device list
(``/devices``) at 1,000 and 10,000 devices (a paper fleet on SQLite in a temporary
directory, a real app through ``create_app`` and httpx's ASGI transport, signed in through
``/login``): median and p95 of 20 requests after a warm-up, in ms, target < 150 at 10,000.

Then the page weight: for every dashboard page, the JavaScript and CSS it loads
(``<script src>`` and ``<link rel=stylesheet>``, summed once per page) and its own HTML;
the largest page counts (target < 300 kB of JS+CSS). Pages that answer 404 are not built
yet: they are skipped and named. Run alone: ``python bench/ui_bench.py``.
"""

from __future__ import annotations

import asyncio
import os
import re
import statistics
import tempfile
import time
from html.parser import HTMLParser
from pathlib import Path

import httpx
from fastapi import FastAPI

from common import Figure, write_results
from wrale.fleet.brain.db import Database
from wrale.fleet.brain.models import Base
from wrale.shared.central_settings import CentralSettings
from wrale.user.api.app import create_app, settle_heap
from wrale.user.simfleet import paper

SIZES = tuple(int(n) for n in os.environ.get("BENCH_UI_DEVICES", "1000,10000").split(","))
REQUESTS = int(os.environ.get("BENCH_UI_REQUESTS", "20"))
WARMUP = 3
ADMIN_PASSWORD = "bench-admin-password-1"
RENDER_TARGET = "< 150"
WEIGHT_TARGET = "< 300"
PAGES = (
    "/",
    "/physical",
    "/devices",
    "/devices?view=grid",
    "/devices/{device}",
    "/alerts",
    "/alerts/rules",
    "/alerts/rules/new",
    "/policies",
    "/groups",
    "/enrollment",
    "/admin",
    "/login",
)


class Assets(HTMLParser):
    """The scripts and stylesheets a page loads."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "script" and a.get("src"):
            self.urls.append(str(a["src"]))
        elif tag == "link" and a.get("href") and "stylesheet" in (a.get("rel") or "").split():
            self.urls.append(str(a["href"]))


def kb(n: int) -> float:
    return n / 1000


async def _signed_in(app: FastAPI) -> httpx.AsyncClient:
    http = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, raise_app_exceptions=False), base_url="http://bench"
    )
    page = await http.get("/login")
    token = re.search(r'name="csrf" value="([^"]+)"', page.text)
    if token is None:
        raise RuntimeError(f"no login form at /login ({page.status_code})")
    r = await http.post(
        "/login",
        data={"csrf": token.group(1), "username": "admin", "password": ADMIN_PASSWORD},
    )
    if r.status_code != 303:
        raise RuntimeError(f"signing in failed: {r.status_code} {r.text[:200]}")
    return http


async def _timed(http: httpx.AsyncClient, path: str) -> tuple[float, float, float]:
    """Median and p95 of the wall time (ms) of REQUESTS renders of ``path`` after WARMUP,
    and the median CPU time of this process per render (ms: the server and the in-process
    client; steadier than wall time on a shared machine)."""
    for _ in range(WARMUP):
        r = await http.get(path)
        if r.status_code != 200:
            raise RuntimeError(f"{path} answered {r.status_code}")
    times, cpu = [], []
    for _ in range(REQUESTS):
        t, c = time.perf_counter(), time.process_time()
        r = await http.get(path)
        times.append((time.perf_counter() - t) * 1000)
        cpu.append((time.process_time() - c) * 1000)
        if r.status_code != 200:
            raise RuntimeError(f"{path} answered {r.status_code}")
    times.sort()
    p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
    return statistics.median(times), p95, statistics.median(cpu)


async def _weights(app: FastAPI, http: httpx.AsyncClient, device_id: str) -> list[Figure]:
    """JS+CSS and HTML of every page; the heaviest counts."""
    sizes: dict[str, int] = {}
    heaviest = ("", 0)
    html_max = ("", 0)
    skipped = []
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as anon:
        for template in PAGES:
            path = template.format(device=device_id)
            client = anon if path == "/login" else http
            r = await client.get(path)
            if r.status_code == 404:
                skipped.append(path)
                continue
            if r.status_code != 200:
                print(f"  {path:<28} answered {r.status_code}: not weighed", flush=True)
                skipped.append(f"{path} ({r.status_code})")
                continue
            parser = Assets()
            parser.feed(r.text)
            total = 0
            for url in dict.fromkeys(parser.urls):
                if url not in sizes:
                    asset = await client.get(url)
                    sizes[url] = len(asset.content) if asset.status_code == 200 else 0
                total += sizes[url]
            html = len(r.content)
            print(
                f"  {path:<28} JS+CSS {kb(total):7.1f} kB in {len(parser.urls)} files,"
                f" HTML {kb(html):6.1f} kB",
                flush=True,
            )
            if total > heaviest[1]:
                heaviest = (path, total)
            if html > html_max[1]:
                html_max = (path, html)
    if skipped:
        print(f"  not built yet (skipped): {', '.join(skipped)}", flush=True)
    weighed = len(PAGES) - len(skipped)
    return [
        Figure(
            "ui.page_weight_js_css_max_kb",
            kb(heaviest[1]),
            f"kB of JS+CSS, heaviest of {weighed} pages ({heaviest[0]})",
            WEIGHT_TARGET,
        ),
        Figure(
            "ui.page_html_max_kb",
            kb(html_max[1]),
            f"kB of HTML, largest of {weighed} pages ({html_max[0]}, uncompressed)",
        ),
    ]


async def _size(devices: int, weigh: bool) -> list[Figure]:
    with tempfile.TemporaryDirectory(prefix="wrale-ui-bench-") as tmp:
        db = Database(f"sqlite+aiosqlite:///{Path(tmp) / 'central.db'}")
        async with db.engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
        settings = CentralSettings(
            data_dir=Path(tmp),
            secret_key="bench-secret-key-0123456789abcdef",
            admin_password=ADMIN_PASSWORD,
            maintenance_interval_s=3600,  # no background jobs while measuring
            log_level="WARNING",
        )
        app = create_app(settings, database=db, migrate=False)
        figures: list[Figure] = []
        async with app.router.lifespan_context(app):
            t = time.perf_counter()
            fleet = await paper.seed(db, devices=devices)
            seeded = time.perf_counter() - t
            label = f"{devices // 1000}k" if devices % 1000 == 0 else str(devices)
            print(
                f"  paper fleet of {devices:,} devices in {len(fleet.rack_ids)} racks: "
                f"{seeded:.1f} s",
                flush=True,
            )
            figures.append(Figure(f"ui.paper_fleet_seed_{label}_s", seeded, "s (bulk insert)"))
            settle_heap()  # as `wrale central` does once it is set up
            http = await _signed_in(app)
            try:
                target = RENDER_TARGET if devices >= 10_000 else ""
                for name, path in (
                    ("overview", "/"),
                    ("devices", "/devices"),
                    ("devices_hottest", "/devices?sort=cpu_temp&order=desc&status=online"),
                ):
                    median, p95, cpu = await _timed(http, path)
                    key = f"ui.{name}_render_{label}"
                    figures += [
                        Figure(f"{key}_ms", median, f"ms (median of {REQUESTS}; {path})", target),
                        Figure(f"{key}_p95_ms", p95, "ms (p95)", target),
                        Figure(f"{key}_cpu_ms", cpu, "ms of CPU per render (median)"),
                    ]
                if weigh:
                    figures += await _weights(app, http, fleet.device_ids[0])
            finally:
                await http.aclose()
        await db.dispose()
        return figures


def run() -> list[Figure]:
    async def go() -> list[Figure]:
        figures: list[Figure] = []
        for i, n in enumerate(SIZES):
            figures += await _size(n, weigh=i == 0)
        return figures

    return asyncio.run(go())


if __name__ == "__main__":  # alone: print the figures and merge them into the results
    figures = run()
    for figure in figures:
        print(figure.line())
    write_results(figures)
