"""The fleet benchmark's processes: a ``wrale central`` on SQLite in a scratch directory and
``wrale sim`` processes whose boards were enrolled in bulk beforehand (``fleet_bench``).

With ``heap`` set, the central runs under ``central_heap`` (tracemalloc; a snapshot per
``Central.snapshot()``, and beside it the allocator's figures, kept with the logs) to show
where its memory goes; ``BENCH_HEAP_TRACE=0`` keeps the allocator's figures only (nothing
traced: the central at full speed).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from common import free_port
from wrale.fleet.edge.credentials import Credentials
from wrale.fleet.edge.settings import CREDENTIALS_FILE
from wrale.user.simfleet.plan import BoardSpec, Layout, plan_fleet

WRALE = str(Path(sys.executable).parent / "wrale")
HEAP_TOOL = str(Path(__file__).parent / "central_heap.py")
ADMIN_PASSWORD = "bench-admin-password-1"
SECRET_KEY = "bench-secret-key-0123456789abcdef"
SHM = Path("/dev/shm")
SIM_LAYOUT = Layout(boards_per_rack=16, racks_per_room=4)  # `wrale sim` defaults
SIM_SEED = 0
LOGS = Path(tempfile.gettempdir()) / "wrale-bench-logs"
HEAP_TRACE = os.environ.get("BENCH_HEAP_TRACE", "1")  # "0": allocator figures, no tracing

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
    heap: bool = False  # under tracemalloc, for ``snapshot``
    snapshots: list[Path] = field(default_factory=list)
    settings: dict[str, str] = field(default_factory=dict)  # WRALE_* settings of the run

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
        argv = ["central", "--port", str(self.port), "--data-dir", str(self.data_dir)]
        prefix = str(self.data_dir / "heap")
        cmd = [sys.executable, HEAP_TOOL, prefix, "--", *argv] if self.heap else [WRALE, *argv]
        self.proc = subprocess.Popen(
            cmd,
            env=clean_env(
                WRALE_ADMIN_PASSWORD=ADMIN_PASSWORD,
                WRALE_SECRET_KEY=SECRET_KEY,
                WRALE_LOG_LEVEL="WARNING",
                WRALE_ACCESS_TOKEN_TTL_S="3600",
                # every simulated board connects from 127.0.0.1, a real fleet's from many
                # addresses: the per-address cap on sockets before hello (an anti-abuse
                # bound, 32 by default) would otherwise turn the storm into 429s
                WRALE_CHANNEL_MAX_PENDING_PER_ADDRESS="100000",
                WRALE_HEAP_TRACE=HEAP_TRACE,
                **self.settings,
            ),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        wait_for(lambda: _healthy(self.url), 60, "the central server to start", self.proc)

    def snapshot(self) -> Path:
        """A heap snapshot of the running central (``heap`` only): its file once written."""
        assert self.proc is not None
        assert self.heap
        path = self.data_dir / f"heap.{len(self.snapshots) + 1}.snap"
        self.proc.send_signal(signal.SIGUSR2)
        wait_for(path.exists, 600, "the heap snapshot", self.proc)
        self.snapshots.append(path)
        return path

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

    def start(self, central: Central, ramp_s: float = 0.0, metal_sample_s: float = 1.0) -> None:
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
                *("--metal-sample-s", str(metal_sample_s)),
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


def keep_logs(central: Central, sims: list[Sim]) -> None:
    """Copy the processes' logs out of the scratch directories, which are removed."""
    LOGS.mkdir(parents=True, exist_ok=True)
    for old in [*LOGS.glob("*.log"), *LOGS.glob("heap.*.json")]:
        old.unlink()
    logs = [(central.data_dir / "central.log", "central.log")]
    logs += [(p, p.name) for p in sorted(central.data_dir.glob("heap.*.json"))]
    logs += [(s.state_dir / "sim.log", f"sim-{s.prefix}.log") for s in sims]
    for src, name in logs:
        if src.exists():
            shutil.copyfile(src, LOGS / name)
    print(f"  logs of the fleet benchmark's processes: {LOGS}", flush=True)


def sim_creds(sim: Sim) -> Iterator[Credentials]:
    for spec in sim.specs:
        yield Credentials.load(sim.state_dir / "boards" / spec.name / CREDENTIALS_FILE)
