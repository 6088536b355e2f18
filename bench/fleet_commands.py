"""The fleet benchmark's command round trip (``fleet_bench.py``): ``arm`` sent to random
boards through the API, each read back through the API's long poll until it succeeded."""

from __future__ import annotations

import random
import statistics
import time

import httpx

from common import Figure

FINISHED = ("succeeded", "failed", "refused", "expired")
COMMAND_TIMEOUT_S = 15.0
SENT_MS: list[float] = []  # created → delivery began (the board woken), per command
ROUNDS = 3  # command rounds in a row, the p99 target holds for each
# after the storm's round, before the three: one report interval, every board's first
# report and backlog in (the storm is measured by connect_first_s and its own round)
SETTLE_S = 10.0


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
        while (
            body["status"] not in FINISHED
            and (left := COMMAND_TIMEOUT_S - (time.perf_counter() - t0)) > 0
        ):  # the API's long poll: answered once the result is stored
            body = api.get(f"/commands/{cid}", params={"wait_s": round(left, 3)}).json()
        t1 = time.perf_counter()
        if i < 10:
            continue
        if body["status"] != "succeeded":
            missed += 1
            continue
        client_ms.append((t1 - t0) * 1000)
        server_ms.append((body["finished_at"] - body["created_at"]) * 1000)
        SENT_MS.append(((body.get("sent_at") or body["created_at"]) - body["created_at"]) * 1000)
    return client_ms, server_ms, missed


def command_figures(api: httpx.Client, ids: list[str], n: int, online: int) -> list[Figure]:
    """The command round trip. One round of ``n`` right after the connect storm (its p99:
    ``fleet.command_rtt_storm_p99_ms``, while the boards' first reports and backlogs are
    still being stored); then, ``SETTLE_S`` later with telemetry flowing, ``ROUNDS`` rounds
    of ``n`` in a row: p50 over all, p99 the worst round's (each round's named), the
    server's own p99 over all."""
    storm = command_rtts(api, ids, n)
    SENT_MS.clear()
    time.sleep(SETTLE_S)
    rounds = [command_rtts(api, ids, n) for _ in range(ROUNDS)]
    client = [ms for r in rounds for ms in r[0]]
    server = [ms for r in rounds for ms in r[1]]
    missed = sum(r[2] for r in rounds)
    p99s = [percentile(r[0], 99) for r in rounds]
    return [
        Figure(
            "fleet.command_rtt_storm_p99_ms",
            percentile(storm[0], 99),
            f"ms (one round of {n} right after the first {online} connected; p50 "
            f"{statistics.median(storm[0]) if storm[0] else float('nan'):.0f} ms)",
            "",
        ),
        Figure(
            "fleet.command_rtt_p50_ms",
            statistics.median(client) if client else float("nan"),
            f"ms (at {online} devices online, POST → succeeded via API)",
            "",
        ),
        Figure(
            "fleet.command_rtt_p99_ms",
            max(p99s),
            f"ms (worst of {ROUNDS} rounds of {n}: {', '.join(f'{p:.0f}' for p in p99s)}; "
            f"{missed} not done in {COMMAND_TIMEOUT_S:g} s)",
            "< 100",
        ),
        Figure(
            "fleet.command_server_p99_ms",
            percentile(server, 99),
            "ms (created → result stored, server clock)",
            "",
        ),
        Figure(
            "fleet.command_wake_p99_ms",
            percentile(SENT_MS, 99),
            "ms (created → its delivery began, server clock)",
            "",
        ),
    ]


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]
