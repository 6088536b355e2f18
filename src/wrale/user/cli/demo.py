"""``wrale demo``: the main job on a fresh machine — a central server on SQLite, a simulated
fleet (24 boards in 3 racks across 2 rooms by default) enrolled into its rack slots, and
scripted incidents over the first minutes, so a new user sees alerts, failovers and
recoveries happen. Prints the dashboard URL and a login; Ctrl-C stops everything.

An entry point: it wires the central server, the demo site and the fleet together. Re-run
on the same data directory it finds its admin, site, devices and credentials again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    import uvicorn

    from wrale.fleet.brain.bus import BusEvent
    from wrale.fleet.brain.db import Database
    from wrale.fleet.edge.credentials import Credentials
    from wrale.shared.central_settings import CentralSettings
    from wrale.shared.clock import Clock
    from wrale.user.simfleet.fleet import SimFleet
    from wrale.user.simfleet.incidents import Step
    from wrale.user.simfleet.plan import BoardSpec

log = logging.getLogger("wrale.demo")
PASSWORD_FILE = "demo-admin-password"  # noqa: S105 - a file name
NOISY = ("wrale.metal", "wrale.fleet.edge", "wrale.fleet.sync", "uvicorn.access")


@dataclass(frozen=True, slots=True)
class DemoOptions:
    devices: int
    host: str
    port: int
    data_dir: Path
    speed: float
    incidents: bool
    log_level: str


def demo(
    devices: Annotated[int, typer.Option(min=1, max=2000, help="simulated boards")] = 24,
    port: Annotated[int, typer.Option(help="central server port (0 picks a free one)")] = 8080,
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    data_dir: Annotated[
        Path, typer.Option(help="central database, fleet state and the demo's login")
    ] = Path("./wrale-data"),
    speed: Annotated[
        float, typer.Option(min=0.1, max=3600, help="simulated physics seconds per real second")
    ] = 1.0,
    incidents: Annotated[
        bool, typer.Option("--incidents/--no-incidents", help="run the scripted incidents")
    ] = True,
    log_level: Annotated[str, typer.Option(help="DEBUG, INFO, WARNING or ERROR")] = "WARNING",
) -> None:
    """Run the central server with a simulated fleet and scripted incidents."""
    opts = DemoOptions(devices, host, port, data_dir, speed, incidents, log_level.upper())
    raise typer.Exit(asyncio.run(run_demo(opts)))


# ----------------------------------------------------------------------------- the run


async def run_demo(opts: DemoOptions) -> int:
    from wrale.fleet.brain.db import Database
    from wrale.shared.errors import WraleError
    from wrale.shared.logging import setup_logging
    from wrale.shared.redact import redact_access_logs
    from wrale.user.cli.central_opts import central_settings, migrate_schema

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    settings = central_settings(
        None,
        host=opts.host,
        port=opts.port,
        data_dir=opts.data_dir,
        log_level=opts.log_level,
    )
    setup_logging(opts.log_level)
    redact_access_logs()  # ?token= of browser WebSockets never reaches the log
    for name in NOISY:  # thousands of boards' own chatter; the dashboard shows what matters
        logging.getLogger(name).setLevel(max(logging.ERROR, logging.getLogger().level))
    typer.echo(f"Wrale Fleet demo: preparing {settings.database_url} …")
    await migrate_schema(settings)
    db = Database(settings.database_url)
    try:
        return await _run(opts, settings, db, stop)
    except WraleError as exc:
        typer.echo(f"wrale demo: {exc.message}", err=True)
        return 1
    finally:
        await db.dispose()


async def _run(
    opts: DemoOptions, settings: CentralSettings, db: Database, stop: asyncio.Event
) -> int:
    from wrale.user.simfleet import demo_site
    from wrale.user.simfleet.fleet import SimFleet
    from wrale.user.simfleet.incidents import demo_schedule, run_schedule
    from wrale.user.simfleet.plan import Layout

    login = await _admin_login(db, settings, opts.data_dir)
    layout = Layout(boards_per_rack=8, racks_per_room=2)
    fleet = SimFleet.planned(
        opts.devices,
        opts.data_dir / "fleet",
        prefix="demo",
        seed=0,
        layout=layout,
        speed=opts.speed,
    )
    site = await demo_site.prepare_site(db, fleet.specs, layout)
    await demo_site.ensure_rules(db)
    server, serving = await _start_server(settings, db)
    if server is None:
        return 1
    url = f"http://{_display_host(opts.host)}:{server.servers[0].sockets[0].getsockname()[1]}"
    try:
        await fleet.start()
        missing = fleet.unenrolled()
        token = await demo_site.enrollment_token(db, len(missing)) if missing else None
        enrolled = await fleet.enroll(url, token, on_error=_enroll_failed)
        placements = [(cred.device_id, spec) for cred, spec in _creds(fleet)]
        await demo_site.place_boards(db, site, placements)
        agents = await fleet.attach_agents(fleet.edge_agents(url))
        steps = demo_schedule(fleet.specs) if opts.incidents else []
        _banner(url, login, fleet, enrolled, agents, steps, server_has_ui=_has_ui(server))
        names = {cred.device_id: spec.name for cred, spec in _creds(fleet)}
        unlisten = _echo_alerts(server, fleet.clock, names)
        tasks: list[asyncio.Task[Any]] = [asyncio.create_task(fleet.run(stop))]
        if steps:
            tasks.append(
                asyncio.create_task(
                    run_schedule(
                        steps,
                        fleet,
                        fleet.clock,
                        speed=opts.speed,
                        is_stopped=stop.is_set,
                        on_step=_announce,
                    )
                )
            )
        await stop.wait()
        unlisten()
        typer.echo("\nstopping the fleet and the central server …")
        await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        stop.set()
        await fleet.close()
        server.should_exit = True
        await serving
    typer.echo("stopped.")
    return 0


def _creds(fleet: SimFleet) -> list[tuple[Credentials, BoardSpec]]:
    return [
        (cred, dev.spec)
        for dev in fleet.devices.values()
        if (cred := fleet.credentials(dev)) is not None
    ]


def _enroll_failed(dev: object, exc: Exception) -> None:
    typer.echo(f"  {getattr(dev, 'name', dev)}: could not enroll: {exc}", err=True)


# ----------------------------------------------------------------------------- admin login


async def _admin_login(db: Database, settings: CentralSettings, data_dir: Path) -> str:
    """Create the admin on a fresh database and say how to log in.

    ``WRALE_ADMIN_PASSWORD`` chooses the password as on the central server's first start;
    otherwise the demo makes one up and keeps it in the data directory (mode 0600) so a
    re-run can show it again."""
    from wrale.user.simfleet.demo_site import bootstrap_admin

    chosen = settings.admin_password.get_secret_value() if settings.admin_password else None
    saved = data_dir / PASSWORD_FILE
    password = chosen or secrets.token_urlsafe(12)
    if await bootstrap_admin(db, password):
        if chosen:
            return "admin / (the password in WRALE_ADMIN_PASSWORD)"
        _save_secret(saved, password)
        return f"admin / {password}"
    if saved.exists():
        return f"admin / {saved.read_text().strip()}   (unless you changed it since)"
    if chosen:
        return "admin / (the password in WRALE_ADMIN_PASSWORD when this data directory was new)"
    return "admin / (the password printed when this data directory was first used)"


def _save_secret(path: Path, value: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(value + "\n")


# ----------------------------------------------------------------------------- the server


def _display_host(host: str) -> str:
    if host in ("0.0.0.0", "::", ""):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


async def _start_server(
    settings: CentralSettings, db: Database
) -> tuple[uvicorn.Server | None, asyncio.Task[None]]:
    """The central app under uvicorn in this event loop; None if it could not start."""
    import uvicorn

    from wrale.user.api.app import create_app
    from wrale.user.api.edge_wire import use_edge_wire
    from wrale.user.api.routes.edge import WS_MAX_SIZE
    from wrale.user.cli.central import GRACEFUL_SHUTDOWN_S
    from wrale.user.simfleet.digital_copy import DigitalCopy

    up = asyncio.Event()

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:  # the demo handles SIGINT / SIGTERM
            yield

        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            try:
                await super().startup(sockets)
            finally:
                up.set()

    app = create_app(settings, database=db, migrate=False, dry_runner=DigitalCopy())
    server = Server(
        use_edge_wire(
            uvicorn.Config(
                app,
                host=settings.host,
                port=settings.port,
                log_level="warning",
                lifespan="on",
                timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
                log_config=None,
                ws_max_size=WS_MAX_SIZE,
            ),
            app.state.hub,  # the device channel's sockets on their own protocol (edge_wire)
        )
    )
    serving = asyncio.create_task(server.serve())
    waiting = asyncio.create_task(up.wait())
    await asyncio.wait({serving, waiting}, return_when=asyncio.FIRST_COMPLETED)
    waiting.cancel()
    if not server.started:
        with contextlib.suppress(BaseException):
            await serving
        typer.echo(
            f"wrale demo: the central server could not listen on port {settings.port}", err=True
        )
        return None, serving
    return server, serving


def _has_ui(server: uvicorn.Server) -> bool:
    routes = getattr(server.config.app, "routes", [])
    return any(getattr(r, "path", None) in ("/", "/ui", "/ui/") for r in routes)


# ----------------------------------------------------------------------------- output


def _banner(
    url: str,
    login: str,
    fleet: SimFleet,
    enrolled: int,
    agents: int,
    steps: list[Step],
    *,
    server_has_ui: bool,
) -> None:
    rooms = sorted({s.room for s in fleet.specs})
    racks = sorted({s.rack for s in fleet.specs})
    lines = [
        "",
        "Wrale Fleet demo is running.",
        f"  dashboard:  {url}/" if server_has_ui else f"  central:    {url}",
        f"  API docs:   {url}/docs",
        f"  login:      {login}",
        f"  fleet:      {_n(len(fleet.specs), 'simulated board')} in {_n(len(racks), 'rack')} "
        f"across {_n(len(rooms), 'room')} ({agents} connecting, {enrolled} enrolled just now)",
        f"  state:      {fleet.state_dir}",
        "  from a terminal:",
        f"    .venv/bin/wrale login --central {url} --username admin",
        "    .venv/bin/wrale devices list      .venv/bin/wrale alerts list",
    ]
    if steps:
        lines.append("  incidents ahead (minutes after start):")
        lines += [f"    +{int(s.at_s) // 60}:{int(s.at_s) % 60:02d}  {s.title}" for s in steps]
    lines += ["  Ctrl-C stops it.", ""]
    typer.echo("\n".join(lines))


def _echo_alerts(server: uvicorn.Server, clock: Clock, names: dict[str, str]) -> Callable[[], None]:
    """Print alerts as the central server raises and clears them, those of one rule that
    come together on one line with the boards' names; returns the stop."""
    state = getattr(getattr(server.config.app, "state", None), "wrale", None)
    bus = getattr(state, "bus", None)
    if bus is None:
        return lambda: None
    t0 = clock.monotonic()
    pending: dict[tuple[str, str, str], list[str]] = {}
    loop = asyncio.get_running_loop()

    def flush() -> None:
        minutes, seconds = divmod(int(clock.monotonic() - t0), 60)
        for (kind, severity, what), boards in pending.items():
            verb = "ALERT" if kind == "alert.raised" else "cleared"
            where = f" on {_n(len(boards), 'board')}: {', '.join(sorted(boards))}" if boards else ""
            typer.echo(f"[+{minutes}:{seconds:02d}]   {verb} {severity}: {what}{where}")
        pending.clear()

    def echo(event: BusEvent) -> None:
        a = event.data
        board = names.get(str(a.get("device_id")), "")
        rule = a.get("rule_name") if a.get("rule_id") else None  # else: a board's event
        what = str(rule or a.get("message") or a.get("metric") or "")
        key = (event.kind, str(a.get("severity", "")), what)
        if not pending:
            loop.call_later(1.0, flush)
        pending.setdefault(key, [])
        if board and rule:  # a rule's message does not say which board; an event's does
            pending[key].append(board)

    stop: Callable[[], None] = bus.listen(("alert.raised", "alert.cleared"), echo)
    return stop


def _n(count: int, what: str) -> str:
    return f"{count} {what}{'' if count == 1 else 's'}"


def _announce(step: Step, done: int) -> None:
    minutes, seconds = divmod(int(step.at_s), 60)
    typer.echo(f"[+{minutes}:{seconds:02d}] {step.title} ({_n(done, 'board')})")
