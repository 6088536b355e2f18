"""The fleet against one central process, all real processes on this machine:

* a ``wrale central`` on SQLite (its database in a temporary directory on disk);
* ``wrale sim`` processes of ``--per-process`` simulated boards each (sim board + metal core
  + edge agent per board, sampling at 1 Hz, reporting every 10 s), their state on /dev/shm.
  The boards are enrolled beforehand in bulk through the API (``/enroll/bulk``, 1,000 per
  request: setup, not what is measured), so each ``wrale sim`` finds its credentials;
* first ``--command-devices`` boards connect, and the command round trip is measured: POST a
  command (``arm``) to a random board → its ``succeeded`` read back through the API (polled
  every 2 ms); p50 / p99 over ``--commands`` (the server's own created → finished too);
* then the rest up to ``--devices`` start, and over ``--seconds``: how many are connected
  (devices ``online`` in the central's database), the central's resident memory (peak, and
  per device above its idle size) and CPU, the simulators' CPU, and the telemetry points
  per second stored (rows added to ``telemetry_raw``).

Figures that cannot be had (a phase times out) are reported as what was reached.
Run alone: ``python bench/fleet_bench.py --devices 200 --command-devices 100 --seconds 20``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil

from common import Figure, free_port
from wrale.fleet.edge.credentials import Credentials
from wrale.fleet.edge.settings import CREDENTIALS_FILE
from wrale.user.simfleet.plan import BoardSpec, Layout, plan_fleet

WRALE = str(Path(sys.executable).parent / "wrale")
ADMIN_PASSWORD = "bench-admin-password-1"
SECRET_KEY = "bench-secret-key-0123456789abcdef"
SHM = Path("/dev/shm")
FINISHED = ("succeeded", "failed", "refused", "expired")
POINTS_PER_SAMPLE = 17  # metrics per board per sample (fleet/edge/telemetry.py)
SIM_LAYOUT = Layout(boards_per_rack=16, racks_per_room=4)  # `wrale sim` defaults
SIM_SEED = 0
COMMAND_TIMEOUT_S = 15.0
LOGS = Path(tempfile.gettempdir()) / "wrale-bench-logs"


@dataclass
class Options:
    devices: int = int(os.environ.get("BENCH_FLEET_DEVICES", "2000"))
    command_devices: int = int(os.environ.get("BENCH_FLEET_COMMAND_DEVICES", "1000"))
    per_process: int = int(os.environ.get("BENCH_FLEET_PER_PROCESS", "1000"))
    seconds: float = float(os.environ.get("BENCH_FLEET_SECONDS", "30"))
    commands: int = int(os.environ.get("BENCH_FLEET_COMMANDS", "100"))
    connect_timeout_s: float = float(os.environ.get("BENCH_FLEET_CONNECT_TIMEOUT", "150"))
    ramp_s: float = float(os.environ.get("BENCH_FLEET_RAMP_S", "0"))


# ----------------------------------------------------------------------------- the central


def prepare_database(url: str) -> None:
    """Migrate, then create what the migrations do not have yet (tables added since the
    newest revision; a no-op once the migration exists), as ``wrale central`` would."""
    from wrale.fleet.brain import schema
    from wrale.fleet.brain.db import Database
    from wrale.fleet.brain.models import Base

    async def go() -> None:
        db = Database(url)
        try:
            await schema.upgrade(db)
            async with db.engine.begin() as conn:
                await conn.run_sync(Base.metadata.create_all)
        finally:
            await db.dispose()

    asyncio.run(go())


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WRALE_")}
    return {**env, **extra}


@dataclass
class Central:
    data_dir: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def db_path(self) -> Path:
        return self.data_dir / "central.db"

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        prepare_database(f"sqlite+aiosqlite:///{self.db_path}")
        log = (self.data_dir / "central.log").open("wb")
        self.proc = subprocess.Popen(
            [WRALE, "central", "--port", str(self.port), "--data-dir", str(self.data_dir)],
            env=clean_env(
                WRALE_ADMIN_PASSWORD=ADMIN_PASSWORD,
                WRALE_SECRET_KEY=SECRET_KEY,
                WRALE_LOG_LEVEL="WARNING",
                WRALE_ACCESS_TOKEN_TTL_S="3600",
            ),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        wait_for(lambda: _healthy(self.url), 60, "the central server to start", self.proc)

    def login(self) -> httpx.Client:
        client = httpx.Client(base_url=f"{self.url}/api/v1", timeout=60)
        r = client.post("/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD})
        r.raise_for_status()
        client.headers["Authorization"] = f"Bearer {r.json()['access_token']}"
        return client

    def count(self, sql: str) -> int:
        """A count read from the database file (read-only, beside the server's writes)."""
        db = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=30)
        try:
            return int(db.execute(sql).fetchone()[0])
        finally:
            db.close()

    def online(self) -> int:
        return self.count("SELECT count(*) FROM devices WHERE status = 'online'")

    def points(self) -> int:
        return self.count("SELECT count(*) FROM telemetry_raw")


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def wait_for(
    cond: Callable[[], bool],
    timeout_s: float,
    what: str,
    proc: subprocess.Popen[bytes] | None = None,
) -> bool:
    """Poll ``cond()`` until true (True) or ``timeout_s`` (False)."""
    t0 = time.monotonic()
    while not cond():
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"waiting for {what}: the process exited {proc.returncode}")
        if time.monotonic() - t0 > timeout_s:
            print(f"  waiting for {what}: not within {timeout_s:g} s", flush=True)
            return False
        time.sleep(1)
    return True


# ----------------------------------------------------------------------------- the fleet


def enroll_in_bulk(
    api: httpx.Client, central: Central, specs: list[BoardSpec], state: Path
) -> None:
    """Enroll the boards 1,000 per request and write each one's ``credentials.json`` where
    ``wrale sim --state-dir STATE`` looks for it."""
    for i in range(0, len(specs), 1000):
        chunk = specs[i : i + 1000]
        body = {
            "devices": [
                {
                    "name": s.name,
                    "model": s.hardware.model,
                    "hardware_profile": s.hardware.key,
                    "tags": list(s.tags),
                    "capabilities": list(s.hardware.capabilities),
                }
                for s in chunk
            ]
        }
        r = api.post("/enroll/bulk", json=body, timeout=300)
        r.raise_for_status()
        for spec, item in zip(chunk, r.json()["items"], strict=True):
            cred = Credentials(central.url, item["device_id"], item["device_secret"], spec.name)
            cred.save(state / "boards" / spec.name / CREDENTIALS_FILE)


@dataclass
class Sim:
    n: int
    state_dir: Path
    prefix: str
    specs: list[BoardSpec]
    proc: subprocess.Popen[bytes] | None = None

    def start(self, central: Central, ramp_s: float = 0.0) -> None:
        log = (self.state_dir / "sim.log").open("wb")
        self.proc = subprocess.Popen(
            [
                WRALE,
                "sim",
                *("--devices", str(self.n), "--central", central.url),
                *("--state-dir", str(self.state_dir), "--name-prefix", self.prefix),
                *("--seed", str(SIM_SEED)),
                *("--boards-per-rack", str(SIM_LAYOUT.boards_per_rack)),
                *("--racks-per-room", str(SIM_LAYOUT.racks_per_room)),
                *("--ramp-s", str(ramp_s)),
            ],
            env=clean_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def make_sims(api: httpx.Client, central: Central, root: Path, n: int, per: int) -> list[Sim]:
    sims = []
    while sum(s.n for s in sims) < n:
        k = len(sims)
        count = min(per, n - sum(s.n for s in sims))
        prefix = f"b{k}"
        state = root / f"s{k}"
        specs = plan_fleet(count, prefix=prefix, layout=SIM_LAYOUT, seed=SIM_SEED)
        enroll_in_bulk(api, central, specs, state)
        sims.append(Sim(count, state, prefix, specs))
    return sims


def stop(proc: subprocess.Popen[bytes] | None, timeout_s: float = 60) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


@contextlib.contextmanager
def scratch() -> Iterator[tuple[Path, Path]]:
    """A directory on disk for the central database, one on /dev/shm for the boards."""
    with tempfile.TemporaryDirectory(prefix="wrale-bench-") as disk:
        if not SHM.is_dir():
            yield Path(disk) / "central", Path(disk) / "fleet"
            return
        with tempfile.TemporaryDirectory(prefix="wrale-bench-", dir=SHM) as shm:
            yield Path(disk) / "central", Path(shm)


# ----------------------------------------------------------------------------- measures


def command_rtts(api: httpx.Client, ids: list[str], n: int) -> tuple[list[float], list[float], int]:
    """Client-seen round trips (POST → ``succeeded`` read back) and the server's own
    (``finished_at - created_at``), in ms, over ``n`` commands to random boards; and how
    many did not succeed within ``COMMAND_TIMEOUT_S``."""
    rng = random.Random(1)
    client_ms: list[float] = []
    server_ms: list[float] = []
    missed = 0
    for i in range(n + 10):  # the first 10 warm up
        device = rng.choice(ids)
        t0 = time.perf_counter()
        r = api.post(f"/devices/{device}/commands", json={"op": "arm", "args": {"level": "medium"}})
        r.raise_for_status()
        cid = r.json()["id"]
        body = r.json()
        while body["status"] not in FINISHED and time.perf_counter() - t0 < COMMAND_TIMEOUT_S:
            time.sleep(0.002)
            body = api.get(f"/commands/{cid}").json()
        t1 = time.perf_counter()
        if i < 10:
            continue
        if body["status"] != "succeeded":
            missed += 1
            continue
        client_ms.append((t1 - t0) * 1000)
        server_ms.append((body["finished_at"] - body["created_at"]) * 1000)
    return client_ms, server_ms, missed


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def window(central: Central, sims: list[Sim], seconds: float) -> dict[str, float]:
    """Central RSS (peak) and CPU, sims' CPU, points stored per second over ``seconds``."""
    assert central.proc is not None
    cp = psutil.Process(central.proc.pid)
    sp = [psutil.Process(s.proc.pid) for s in sims if s.proc is not None]
    c0, s0 = cp.cpu_times(), [p.cpu_times() for p in sp]
    pts0, t0 = central.points(), time.monotonic()
    rss: list[int] = []
    online: list[int] = []
    while time.monotonic() - t0 < seconds:
        rss.append(cp.memory_info().rss)
        online.append(central.online())
        time.sleep(2)
    pts1, t1 = central.points(), time.monotonic()
    c1, s1 = cp.cpu_times(), [p.cpu_times() for p in sp]
    dt = t1 - t0

    def used(a: psutil._common.pcputimes, b: psutil._common.pcputimes) -> float:
        return (b.user - a.user) + (b.system - a.system)

    return {
        "rss": float(max(rss)),
        "online_min": float(min(online)),
        "online_end": float(central.online()),
        "central_cpu": 100 * used(c0, c1) / dt,
        "sim_cpu": 100 * sum(used(a, b) for a, b in zip(s0, s1, strict=True)) / dt,
        "points_s": (pts1 - pts0) / dt,
    }


# ----------------------------------------------------------------------------- the run


def run(opts: Options | None = None) -> list[Figure]:
    opts = opts or Options()
    figures: list[Figure] = []
    sims: list[Sim] = []
    first = min(opts.command_devices, opts.devices)
    with scratch() as (central_dir, fleet_dir):
        central = Central(central_dir)
        try:
            central.start()
            assert central.proc is not None
            time.sleep(3)
            idle_rss = psutil.Process(central.proc.pid).memory_info().rss
            api = central.login()
            sims = make_sims(api, central, fleet_dir, opts.devices, opts.per_process)

            # Phase 1: the boards of the command test, and the command round trip.
            t0, started = time.monotonic(), 0
            for sim in sims:
                if started >= first:
                    break
                sim.start(central, opts.ramp_s)
                started += sim.n
            wait_for(
                lambda: central.online() >= started, opts.connect_timeout_s, f"{started} online"
            )
            online = central.online()
            figures.append(
                Figure(
                    "fleet.connect_first_s",
                    time.monotonic() - t0,
                    f"s ({online} of {started} boards online)",
                )
            )
            ids = [cred.device_id for s in sims if s.proc is not None for cred in _creds(s)]
            client_ms, server_ms, missed = command_rtts(api, ids, opts.commands)
            figures += [
                Figure(
                    "fleet.command_rtt_p50_ms",
                    statistics.median(client_ms) if client_ms else float("nan"),
                    f"ms (at {online} devices online, POST → succeeded via API)",
                    "",
                ),
                Figure(
                    "fleet.command_rtt_p99_ms",
                    percentile(client_ms, 99),
                    f"ms ({len(client_ms)} commands, {missed} not done in {COMMAND_TIMEOUT_S:g} s)",
                    "< 100",
                ),
                Figure(
                    "fleet.command_server_p99_ms",
                    percentile(server_ms, 99),
                    "ms (created → result stored, server clock)",
                    "",
                ),
            ]

            # Phase 2: the rest of the fleet, then the steady state.
            t1 = time.monotonic()
            for sim in sims:
                if sim.proc is None:
                    sim.start(central, opts.ramp_s)
            wait_for(
                lambda: central.online() >= opts.devices,
                opts.connect_timeout_s,
                f"{opts.devices} online",
            )
            figures.append(
                Figure(
                    "fleet.connect_all_s",
                    time.monotonic() - t1,
                    f"s (the other {opts.devices - started})",
                )
            )
            time.sleep(10)  # past the first reports' burst
            w = window(central, sims, opts.seconds)
            connected = w["online_end"]
            figures += [
                Figure(
                    "fleet.devices_connected",
                    connected,
                    f"devices (of {opts.devices}, one central)",
                    f">= {opts.devices}",
                ),
                Figure(
                    "fleet.devices_connected_min",
                    w["online_min"],
                    "devices (lowest in the window)",
                    "",
                ),
                Figure("fleet.central_rss_mib", w["rss"] / 2**20, "MiB (peak resident)", ""),
                Figure(
                    "fleet.central_mib_per_device",
                    (w["rss"] - idle_rss) / 2**20 / max(connected, 1),
                    "MiB/device (above the idle server)",
                    "",
                ),
                Figure("fleet.central_cpu_pct", w["central_cpu"], "% of one core", ""),
                Figure(
                    "fleet.sim_cpu_pct",
                    w["sim_cpu"],
                    f"% of one core ({len(sims)} sim processes)",
                    "",
                ),
                Figure(
                    "fleet.telemetry_points_s",
                    w["points_s"],
                    f"points/s stored (offered {connected * POINTS_PER_SAMPLE:.0f}/s)",
                    "",
                ),
            ]
        finally:
            for sim in sims:
                stop(sim.proc)
            stop(central.proc)
            keep_logs(central, sims)
    return figures


def keep_logs(central: Central, sims: list[Sim]) -> None:
    """Copy the processes' logs out of the scratch directories, which are removed."""
    LOGS.mkdir(parents=True, exist_ok=True)
    for old in LOGS.glob("*.log"):
        old.unlink()
    logs = [(central.data_dir / "central.log", "central.log")]
    logs += [(s.state_dir / "sim.log", f"sim-{s.prefix}.log") for s in sims]
    for src, name in logs:
        if src.exists():
            shutil.copyfile(src, LOGS / name)
    print(f"  logs of the fleet benchmark's processes: {LOGS}", flush=True)


def _creds(sim: Sim) -> Iterator[Credentials]:
    for spec in sim.specs:
        yield Credentials.load(sim.state_dir / "boards" / spec.name / CREDENTIALS_FILE)


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    d = Options()
    p.add_argument("--devices", type=int, default=d.devices)
    p.add_argument("--command-devices", type=int, default=d.command_devices)
    p.add_argument("--per-process", type=int, default=d.per_process)
    p.add_argument("--seconds", type=float, default=d.seconds)
    p.add_argument("--commands", type=int, default=d.commands)
    p.add_argument("--connect-timeout", type=float, default=d.connect_timeout_s)
    p.add_argument("--ramp-s", type=float, default=d.ramp_s, help="spread each sim's dials")
    a = p.parse_args()
    opts = Options(
        a.devices,
        a.command_devices,
        a.per_process,
        a.seconds,
        a.commands,
        a.connect_timeout,
        a.ramp_s,
    )
    for f in run(opts):
        print(f.line(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
