"""``wrale watch``: a live fleet summary in the terminal, like ``top`` — devices by status,
open alerts, the hottest boards and the racks nearest their power budget — read from the
central's REST API every ``--interval`` seconds (``--once``: one frame)."""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Annotated, Any

import typer
from rich.console import Group, RenderableType
from rich.live import Live
from rich.markup import escape
from rich.text import Text

from wrale.shared.errors import WraleError
from wrale.user.cli.client import CentralClient
from wrale.user.cli.fleet_alerts import SEVERITIES, sev_cell
from wrale.user.cli.fleet_common import KEEP, Col, Styled, client, list_table, when
from wrale.user.cli.fleet_devices import STATUS_COLOUR, status_cell
from wrale.user.cli.output import console

STATUSES = ("online", "offline", "error", "maintenance", "quarantined", "unknown", "decommissioned")
STALE_S = 600.0  # a temperature older than this is not the board's now
NEAR_BUDGET = 0.8  # a rack drawing this share of its budget is near it
SHOWN = 5  # rows of each list in a frame


@dataclass
class HotBoard:
    name: str
    status: str
    temp_c: float
    at: float


@dataclass
class RackLoad:
    name: str
    draw_w: float
    budget_w: float
    reporting: int

    @property
    def share(self) -> float:
        return self.draw_w / self.budget_w if self.budget_w > 0 else 0.0


@dataclass
class Frame:
    """What one refresh read from the central."""

    url: str
    at: float
    statuses: Counter[str] = field(default_factory=Counter)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    hottest: list[HotBoard] = field(default_factory=list)
    boards_read: int = 0
    boards_live: int = 0
    racks: list[RackLoad] = field(default_factory=list)
    fleet_temp: dict[str, float] | None = None  # the newest minute's mean, min, max, devices


def read_frame(c: CentralClient, *, scan: int, now: float | None = None) -> Frame:
    """One frame from the API: every device's status, the open alerts, the latest
    ``cpu_temp_c`` of up to ``scan`` boards that are not decommissioned, and the power of
    every rack with a budget."""
    frame = Frame(url=c.base_url, at=time.time() if now is None else now)
    devices = list(c.iter_all("/devices"))
    frame.statuses = Counter(str(d.get("status")) for d in devices)
    frame.alerts = sorted(
        c.iter_all("/alerts", {"state": "open"}), key=lambda a: -float(a.get("raised_at") or 0)
    )
    live = [d for d in devices if d.get("status") != "decommissioned"]
    frame.boards_live = len(live)
    for d in live[:scan]:
        latest = c.get(f"/devices/{d['id']}/telemetry/latest").get("metrics") or {}
        temp = latest.get("cpu_temp_c")
        frame.boards_read += 1
        if temp and temp.get("value") is not None and frame.at - temp["ts"] <= STALE_S:
            frame.hottest.append(
                HotBoard(str(d["name"]), str(d.get("status")), float(temp["value"]), temp["ts"])
            )
    frame.hottest.sort(key=lambda b: -b.temp_c)
    frame.fleet_temp = _fleet_temp(c, frame.at)
    for r in c.iter_all("/racks"):
        if not r.get("power_budget_w"):
            continue
        p = c.get(f"/racks/{r['id']}/power")
        frame.racks.append(
            RackLoad(str(r["name"]), float(p["draw_w"]), float(r["power_budget_w"]),
                     int(p.get("devices_reporting") or 0))
        )  # fmt: skip
    frame.racks.sort(key=lambda r: -r.share)
    return frame


def _fleet_temp(c: CentralClient, now: float) -> dict[str, float] | None:
    """The newest minute of ``cpu_temp_c`` across the whole fleet (every board, whatever
    ``--scan``), within the last ``STALE_S`` seconds; None when no board reported."""
    series = c.get("/telemetry", metric="cpu_temp_c", start=f"{now - STALE_S:.0f}", step="1m")
    columns = series.get("columns") or []
    rows = [dict(zip(columns, p, strict=False)) for p in series.get("points") or []]
    rows = [r for r in rows if r.get("devices") and r.get("max") is not None]
    return rows[-1] if rows else None


def _rank(severity: str) -> int:
    return SEVERITIES.index(severity) if severity in SEVERITIES else len(SEVERITIES)


def _temp_cell(temp_c: float) -> Styled:
    colour = "red" if temp_c >= 80 else "yellow" if temp_c >= 70 else "green"
    return Styled(f"[{colour}]{temp_c:.1f} °C[/]")


def _share_cell(rack: RackLoad) -> Styled:
    colour = "red" if rack.share > 1 else "yellow" if rack.share >= NEAR_BUDGET else "green"
    return Styled(f"[{colour}]{rack.share * 100:.0f} %[/]")


def render(frame: Frame, problem: str | None = None) -> RenderableType:
    """A frame as the terminal shows it; ``problem`` is a line saying the last refresh
    failed (the frame is then the last one read)."""
    total = sum(frame.statuses.values())
    parts: list[RenderableType] = [
        Text.from_markup(
            f"[bold]Wrale fleet[/] · {escape(frame.url)} · {when(frame.at)}", overflow="fold"
        )
    ]
    if problem:
        parts.append(Text.from_markup(f"[red]{escape(problem)}[/]", overflow="fold"))
    counts = " · ".join(  # online and offline always; the rest when there are any
        f"[{STATUS_COLOUR.get(s, 'white')}]{s} {frame.statuses.get(s, 0)}[/]"
        for s in STATUSES
        if s in ("online", "offline") or frame.statuses.get(s)
    )
    others = sum(n for s, n in frame.statuses.items() if s not in STATUSES)
    parts.append(
        Text.from_markup(
            f"[bold]{total} devices[/]: {counts}" + (f" · other {others}" if others else "")
        )
    )
    counts_by = Counter(str(a.get("severity")) for a in frame.alerts)
    if frame.fleet_temp:
        t = frame.fleet_temp
        parts.append(
            Text.from_markup(
                f"[bold]cpu temp[/] (newest minute, {t['devices']:.0f} boards): "
                f"mean {t['mean']:.1f} °C · max {t['max']:.1f} °C · min {t['min']:.1f} °C"
            )
        )
    severities = sorted(counts_by.items(), key=lambda sn: _rank(sn[0]))
    parts.append(
        list_table(
            f"Open alerts ({len(frame.alerts)}: "
            + (", ".join(f"{n} {s.lower()}" for s, n in severities) or "none")
            + ")",
            [Col("severity", KEEP), Col("message", KEEP), Col("raised", 1)],
            (
                [sev_cell(a.get("severity")), a.get("message"), when(a.get("raised_at"))]
                for a in frame.alerts[:SHOWN]
            ),
        )
    )
    scanned = (
        f" of the first {frame.boards_read} of {frame.boards_live}"
        if frame.boards_read < frame.boards_live
        else ""
    )
    parts.append(
        list_table(
            f"Hottest boards{scanned}",
            [Col("board", KEEP), Col("cpu temp", KEEP), Col("status", 1)],
            ([b.name, _temp_cell(b.temp_c), status_cell(b.status)] for b in frame.hottest[:SHOWN]),
        )
    )
    parts.append(
        list_table(
            f"Racks by power drawn of budget (near: {NEAR_BUDGET * 100:.0f} %)",
            [Col("rack", KEEP), Col("draw W", KEEP), Col("budget W", 2), Col("share", KEEP),
             Col("boards reporting", 3)],
            (
                [r.name, round(r.draw_w, 1), r.budget_w, _share_cell(r), r.reporting]
                for r in frame.racks[:SHOWN]
            ),
        )
    )  # fmt: skip
    return Group(*parts)


def watch(
    interval: Annotated[float, typer.Option(min=0.5, help="seconds between refreshes")] = 5.0,
    once: Annotated[bool, typer.Option("--once", help="print one frame and exit")] = False,
    scan: Annotated[
        int,
        typer.Option(min=1, max=10_000, help="boards whose temperature is read, at most"),
    ] = 200,
) -> None:
    """A live fleet summary, like top: devices by status, open alerts, the hottest boards
    and the racks nearest their power budget. Ctrl-C ends it."""  # fmt: skip
    with client() as c:
        if once:
            console.print(render(read_frame(c, scan=scan)))
            return
        with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C ends it, not a traceback
            _live(c, interval, scan)


def _live(c: CentralClient, interval: float, scan: int) -> None:
    """Refresh until interrupted; a failed refresh keeps the last frame under a line
    saying what failed and when the next try is."""
    last: Frame | None = None
    with Live(console=console, auto_refresh=False, transient=False) as live:
        while True:
            problem = None
            try:
                last = read_frame(c, scan=scan)
            except WraleError as exc:
                problem = f"{exc.message} — retrying every {interval:g} s"
            if last is None:
                live.update(Text(problem or "", style="red"), refresh=True)
            else:
                live.update(render(last, problem), refresh=True)
            time.sleep(interval)
