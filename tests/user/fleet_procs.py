"""Real processes of a fleet for end-to-end tests: `wrale central`, `wrale sim`, and the
bookkeeping that proves exactly-once delivery from the agents' stores and the central DB."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.user.metald_proc import WRALE, free_port

ADMIN_PASSWORD = "admin-password-1"


def clean_env(**extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("WRALE_")}
    return {**base, **extra}


def wait_for(what: str, check: Callable[[], Any], timeout_s: float = 90.0) -> Any:
    """Poll ``check`` until it returns something truthy; fail naming ``what``."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what} (last: {last!r})")


@dataclass
class Proc:
    """A `wrale …` process whose output goes to a log file next to its state."""

    args: list[str]
    env: dict[str, str]
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        out = self.log.open("ab")
        self.proc = subprocess.Popen(
            [WRALE, *self.args], env=self.env, stdout=out, stderr=subprocess.STDOUT
        )
        out.close()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(10)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@dataclass
class Central:
    data_dir: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    p: Proc | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def db(self) -> Path:
        return self.data_dir / "central.db"

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = clean_env(
            WRALE_ADMIN_PASSWORD=ADMIN_PASSWORD,
            WRALE_SECRET_KEY="k" * 40,
            WRALE_OFFLINE_AFTER_S="30",
            WRALE_CHANNEL_HEARTBEAT_S="2",
            **self.extra_env,
        )
        self.p = Proc(
            ["central", "--port", str(self.port), "--data-dir", str(self.data_dir)],
            env,
            self.data_dir.parent / "central.log",
        )
        self.p.start()

        def healthy() -> bool:
            assert self.p is not None
            assert self.p.alive(), self.p.output()
            try:
                return httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        wait_for("central healthy", healthy, 60)

    def headers(self) -> dict[str, str]:
        r = httpx.post(
            f"{self.url}/api/v1/auth/login",
            json={"username": "admin", "password": ADMIN_PASSWORD},
            timeout=10,
        )
        r.raise_for_status()
        return {"Authorization": f"Bearer {r.json()['access_token']}"}

    def token(self) -> str:
        r = httpx.post(
            f"{self.url}/api/v1/enrollment-tokens",
            headers=self.headers(),
            json={"name": "e2e", "max_uses": None},
            timeout=10,
        )
        assert r.status_code == 201, r.text
        return str(r.json()["token"])

    def report_every_second(self) -> None:
        """A fleet sampling policy: every board reports each second (one outbox row/s)."""
        r = httpx.post(
            f"{self.url}/api/v1/policies",
            headers=self.headers(),
            json={"scope_type": "fleet", "kind": "sampling", "document": {"report_interval_s": 1}},
            timeout=10,
        )
        assert r.status_code == 201, r.text

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        conn = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=30)
        try:
            return conn.execute(sql, params).fetchall()
        finally:
            conn.close()


# ----------------------------------------------------------------------------- agent stores


@dataclass(frozen=True)
class AgentBook:
    """What one agent's store says: its device, seqs, what is waiting, what it ever made."""

    device_id: str
    last_seq: int
    acked: int
    dropped: int
    appended_points: int
    waiting: list[tuple[int, int]]  # (seq, points) of rows still in the outbox


def agent_stores(state_dir: Path) -> list[Path]:
    return sorted(p.parent for p in state_dir.rglob("edge.db"))


def board_device_id(board_dir: Path) -> str | None:
    """The board's device id once enrolled (the credential is written atomically), else None.

    Waits use this, not :func:`read_book`: the store's file exists a moment before its
    tables do, and reading it in that moment fails with ``no such table``.
    """
    cred_file = board_dir / "credentials.json"
    if not cred_file.exists():
        return None
    return str(json.loads(cred_file.read_text())["device_id"])


def read_book(board_dir: Path) -> AgentBook:
    cred = json.loads((board_dir / "credentials.json").read_text())
    conn = sqlite3.connect(f"file:{board_dir / 'edge.db'}?mode=ro", uri=True, timeout=30)
    try:
        kv = dict(conn.execute("SELECT key, value FROM kv").fetchall())
        waiting = conn.execute(
            "SELECT seq, n FROM outbox WHERE stream = 'telemetry' ORDER BY seq"
        ).fetchall()
    finally:
        conn.close()

    def num(key: str) -> int:
        return int(json.loads(kv[key])) if key in kv else 0

    return AgentBook(
        device_id=cred["device_id"],
        last_seq=num("seq.telemetry"),
        acked=num("acked.telemetry"),
        dropped=num("dropped.telemetry"),
        appended_points=num("appended.telemetry"),
        waiting=[(int(s), int(n)) for s, n in waiting],
    )


def central_books(central: Central) -> dict[str, tuple[int, int, int]]:
    """device_id → (last stored seq, raw points, points counted by the 1-minute rollups)."""
    rows = central.query(
        """
        SELECT d.id,
               COALESCE((SELECT last_seq FROM telemetry_seq s WHERE s.device_num = d.num), 0),
               (SELECT COUNT(*) FROM telemetry_raw r WHERE r.device_num = d.num),
               COALESCE((SELECT SUM(count) FROM telemetry_1m m WHERE m.device_num = d.num), 0)
        FROM devices d
        """
    )
    return {str(r[0]): (int(r[1]), int(r[2]), int(r[3])) for r in rows}


def consistent_cut(central: Central, board: Path) -> tuple[AgentBook, tuple[int, int, int]]:
    """One agent's book and the central's for its device as of one moment. The agent keeps
    sampling (a batch a second) while the two are read, so its book is read before and after
    the central's and the pair is kept only when the agent did not move in between: an
    agent that made and sent a batch after the central was read would show an ack above
    the central's mark (seen in CI: acked 30, stored 29) though nothing was lost."""
    for _ in range(100):
        before = read_book(board)
        books = central_books(central)
        if read_book(board) == before:
            return before, books[before.device_id]
        time.sleep(0.05)
    raise AssertionError(f"{board}: its book never held still while the central was read")


def assert_exactly_once(central: Central, state_dir: Path) -> int:
    """Every point an agent made is stored once, except those still waiting in its outbox
    above the server's mark; returns the number of points checked."""
    total = 0
    stores = agent_stores(state_dir)
    assert stores, "no agent stores found"
    for board in stores:
        a, (last_stored, raw, rolled) = consistent_cut(central, board)
        assert a.dropped == 0, f"{a.device_id}: the outbox dropped {a.dropped} rows"
        assert a.acked <= last_stored <= a.last_seq, (a, last_stored)
        unsent = sum(n for seq, n in a.waiting if seq > last_stored)
        assert raw == a.appended_points - unsent, (
            f"{a.device_id}: central holds {raw} points, the agent made "
            f"{a.appended_points} with {unsent} not yet stored"
        )
        assert rolled == raw, f"{a.device_id}: rollups counted {rolled} of {raw} points twice"
        total += raw
    return total
