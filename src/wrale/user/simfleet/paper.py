"""A "paper fleet": thousands of devices written straight into the central database (no
boards, no agents) with a site, rooms, 42U racks, tags, statuses, latest telemetry and alerts.

For benchmarks and tests of what reads the fleet (dashboard pages, queries) at scale. It
writes rows in bulk, so it bypasses the services' per-row checks: never for real fleets.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, insert, select

from wrale.fleet.brain.db import Database
from wrale.fleet.brain.models import Device, Rack, Site, Tenant, User
from wrale.fleet.brain.models.alerts import Alert, AlertEvent, AlertRule, AlertRuleState
from wrale.fleet.brain.models.base import new_id
from wrale.fleet.brain.services import alerts, audit, identity, registry, telemetry_store
from wrale.fleet.brain.services import topology as topo
from wrale.fleet.brain.services.principal import Principal, Role
from wrale.shared.errors import ConflictError
from wrale.user.simfleet.plan import RACK_MIX, room_label

SITE_NAME = "Paper site"
RACK_UNITS = 42
BOARDS_PER_RACK = 40  # slots 1-40; the top 2U hold the switch and the PDU
BOARD_PEAK_W = 7.0  # a Pi 5 under full load
HOT_C = 75.0
METRICS = (
    "cpu_temp_c",
    "gpu_temp_c",
    "ambient_temp_c",
    "fan_pct",
    "fan_rpm",
    "power_w",
    "battery_pct",
    "on_battery",
)
# status → share of the fleet (the rest is online)
STATUS_MIX = (
    ("offline", 0.03),
    ("error", 0.01),
    ("maintenance", 0.015),
    ("unknown", 0.01),
    ("decommissioned", 0.005),
    ("quarantined", 0.002),
)
ENVS = (("prod", 0.8), ("staging", 0.15), ("lab", 0.05))
ROLES = ("web", "db", "cache", "batch", "gateway", "camera")
ROOM_AMBIENT_C = (22.0, 24.0, 21.0, 26.0)
RULES = (  # name, expression, severity
    ("Paper: CPU hot", f"cpu_temp_c > {HOT_C:g} for 30s", "MAJOR"),
    ("Paper: rack over its power budget", "rack power_w > budget for 1m", "MAJOR"),
    ("Paper: running on battery", "on_battery > 0.5 for 10s", "WARNING"),
)


@dataclass(frozen=True, slots=True)
class PaperFleet:
    """What ``seed`` made (ids in placement order: device k sits in rack k % len(racks))."""

    tenant_id: str
    site_id: str
    room_ids: list[str]
    rack_ids: dict[str, str]  # rack name ("A1") → id
    device_ids: list[str]
    hot_rack: str  # the rack whose cooling failed (name)
    battery_rack: str  # the rack that lost mains power (name)
    hot_device_ids: list[str]  # devices above HOT_C
    alerts: int  # open alerts made


async def admin_principal(db: Database) -> Principal:
    """The ``admin`` of the default organisation (made by ``identity.bootstrap``)."""
    async with db.session() as session:
        row = (
            await session.execute(
                select(User.id, Tenant.id)
                .join(Tenant, Tenant.id == User.tenant_id)
                .where(User.username == "admin", Tenant.name == identity.DEFAULT_TENANT)
            )
        ).first()
    if row is None:
        raise LookupError("the paper fleet needs the 'admin' user of the default organisation")
    user_id, tenant_id = row
    return Principal(tenant_id, Role.ADMIN, "user", user_id, "admin (paper fleet)")


def _pick(rng: random.Random, mix: tuple[tuple[str, float], ...], rest: str) -> str:
    x = rng.random()
    for value, share in mix:
        if x < share:
            return value
        x -= share
    return rest


def _fan_pct(cpu_c: float) -> float:
    """The Raspberry Pi 5 fan curve (PWM steps 75/125/175/250 of 255), as percent."""
    for limit, pwm in ((75.0, 250), (67.5, 175), (60.0, 125), (50.0, 75)):
        if cpu_c >= limit:
            return round(pwm / 255 * 100, 1)
    return 0.0


@dataclass(slots=True)
class _Board:
    row: dict[str, Any]
    rack: int
    values: dict[str, float]
    ts: float | None


def _layout(devices: int, rooms: int, racks_per_room: int | None) -> list[int]:
    """Racks per room: ``racks_per_room`` each, or more when the devices need them."""
    total = max(math.ceil(devices / BOARDS_PER_RACK), rooms * (racks_per_room or 1))
    return [total // rooms + (1 if i < total % rooms else 0) for i in range(rooms)]


def _board(
    rng: random.Random,
    k: int,
    rack: int,
    slot: int,
    rack_name: str,
    room: int,
    hot: bool,
    on_mains: bool,
    at: float,
) -> _Board:
    hw = RACK_MIX[slot % len(RACK_MIX)]
    status = _pick(rng, STATUS_MIX, "online")
    env = _pick(rng, ENVS, "prod")
    tags = [env, ROLES[(k * 7 + rack) % len(ROLES)], hw.key.split("-")[0], "paper"]
    seen: float | None = {
        "online": at - rng.uniform(1, 10),
        "offline": at - rng.uniform(300, 3 * 86_400),
        "error": at - rng.uniform(1, 60),
        "maintenance": at - rng.uniform(60, 3600),
        "quarantined": at - rng.uniform(60, 7200),
        "decommissioned": at - 30 * 86_400,
    }.get(status)
    ambient = ROOM_AMBIENT_C[room % len(ROOM_AMBIENT_C)] + 0.4 * (rack % 8) + 0.08 * slot
    load = rng.betavariate(2.0, 3.0)
    if hot:  # the rack's cooling failed while it runs a heavy batch
        ambient += 19.0
        load = rng.uniform(0.8, 0.97)
    cpu = min(86.0, ambient + 16.0 + 24.0 * load + rng.gauss(0, 1.2))
    fan = _fan_pct(cpu)
    battery = rng.uniform(55, 85) if not on_mains else rng.uniform(96, 100)
    values = {
        "cpu_temp_c": round(cpu, 1),
        "gpu_temp_c": round(cpu - rng.uniform(1.5, 4.0), 1),
        "ambient_temp_c": round(ambient + rng.gauss(0, 0.3), 1),
        "fan_pct": fan,
        "fan_rpm": round(fan * 82 + rng.uniform(-60, 60)) if fan else 0.0,
        "power_w": round(2.7 + 4.3 * load + rng.gauss(0, 0.1), 2),
        "battery_pct": round(battery, 1),
        "on_battery": 0.0 if on_mains else 1.0,
    }
    row = {
        "id": new_id(),
        "created_at": at - 90 * 86_400 + k,
        "name": f"{rack_name.lower()}-u{slot:02d}",
        "model": hw.model.replace(" (simulated)", ""),
        "hardware_profile": hw.key,
        "tags": tags,
        "status": status,
        "last_seen_at": seen,
        "agent_version": "0.9.0" if status != "unknown" else None,
        "capabilities": [c.upper() for c in hw.capabilities if c != "sim"],
        "slot_u": slot,
        "zone_id": None,
    }
    ts = seen if status not in ("unknown", "decommissioned") else None
    return _Board(row, rack, values, ts)


async def seed(
    db: Database,
    *,
    devices: int,
    rooms: int = 4,
    racks_per_room: int | None = None,
    seed: int = 0,
    now: float | None = None,
) -> PaperFleet:
    """Write a paper fleet of ``devices`` boards into the admin's organisation.

    One site; ``rooms`` rooms; ``racks_per_room`` 42U racks in each (more when the devices
    need them: 40 boards per rack at most); boards spread evenly over the racks. One rack
    runs hot (its cooling failed under a heavy load: boards above 75 °C; a full rack also
    draws more than its power budget) and another lost mains power (its boards on
    battery); both have open alerts. The same arguments give the same fleet (names, tags,
    statuses, slots, values; the ids differ).
    """
    if devices < 1 or rooms < 1 or (racks_per_room is not None and racks_per_room < 1):
        raise ValueError("devices, rooms and racks_per_room must be 1 or more")
    rng = random.Random(seed)
    at = time.time() if now is None else now
    p = await admin_principal(db)
    per_room = _layout(devices, rooms, racks_per_room)
    async with db.session() as s:
        taken = select(Site.id).where(Site.tenant_id == p.tenant_id, Site.name == SITE_NAME)
        if await s.scalar(taken):
            raise ConflictError(f"a paper fleet exists already (site {SITE_NAME!r})")
        tenant = await s.get(Tenant, p.tenant_id)
        existing = select(func.count()).select_from(Device).where(Device.tenant_id == p.tenant_id)
        have = int(await s.scalar(existing) or 0)
        if tenant is not None and have + devices > tenant.max_devices:
            tenant.max_devices = have + devices  # a benchmark fleet may be larger than the quota
        site = await topo.create_site(s, p, SITE_NAME, "a paper fleet (benchmarks, tests)")
        room_ids: list[str] = []
        racks: list[dict[str, Any]] = []
        rack_room: list[int] = []
        for r, count in enumerate(per_room):
            label = room_label(r)
            room = await topo.create_room(s, p, site.id, f"Room {label}")
            room_ids.append(room.id)
            for i in range(count):
                racks.append(
                    {
                        "id": new_id(),
                        "tenant_id": p.tenant_id,
                        "created_at": at,
                        "room_id": room.id,
                        "name": f"{label}{i + 1}",
                        "units": RACK_UNITS,
                        "power_budget_w": BOARDS_PER_RACK * BOARD_PEAK_W * 0.8,
                        "cooling_zone": f"room-{label.lower()}",
                    }
                )
                rack_room.append(r)
        await s.execute(insert(Rack), racks)

        used = min(devices, len(racks))
        hot = rng.randrange(used)
        battery = (hot + max(1, used // 2)) % used if used > 1 else -1
        nums = await registry.allocate_nums(s, devices)
        boards = []
        for k in range(devices):
            rack = k % len(racks)
            board = _board(
                rng,
                k,
                rack,
                k // len(racks) + 1,
                racks[rack]["name"],
                rack_room[rack],
                rack == hot,
                rack != battery,
                at,
            )
            board.row.update(tenant_id=p.tenant_id, num=nums[k], rack_id=racks[rack]["id"])
            boards.append(board)
        await s.execute(insert(Device), [b.row for b in boards])

        ids = await telemetry_store.metric_ids(s, METRICS)
        conn = await s.connection()
        marks = telemetry_store.placeholders(conn, 4)
        await telemetry_store.executemany(  # the driver's executemany: 80,000 rows in a blink
            conn,
            f"INSERT INTO telemetry_latest (device_num, metric_id, ts, value) VALUES ({marks})",  # noqa: S608
            [
                (b.row["num"], ids[m], b.ts, v)
                for b in boards
                if b.ts is not None
                for m, v in b.values.items()
            ],
        )
        made = await _alerts(s, p, boards, racks, hot, at)
        audit.record(
            s,
            p,
            "paper_fleet.seed",
            resource_type="site",
            resource_id=site.id,
            details={"devices": devices, "racks": len(racks), "rooms": rooms, "seed": seed},
        )
    return PaperFleet(
        tenant_id=p.tenant_id,
        site_id=site.id,
        room_ids=room_ids,
        rack_ids={r["name"]: r["id"] for r in racks},
        device_ids=[b.row["id"] for b in boards],
        hot_rack=racks[hot]["name"],
        battery_rack=racks[battery]["name"] if battery >= 0 else "",
        hot_device_ids=[
            b.row["id"] for b in boards if b.ts is not None and b.values["cpu_temp_c"] > HOT_C
        ],
        alerts=made,
    )


async def _alerts(
    s: Any, p: Principal, boards: list[_Board], racks: list[dict[str, Any]], hot: int, at: float
) -> int:
    """The rules and their open alerts (with history and rule state, as the runner keeps)."""
    rules: dict[str, AlertRule] = {}
    for name, expression, severity in RULES:
        rules[name] = await alerts.create_rule(
            s, p, {"name": name, "expression": expression, "severity": severity}
        )
    cpu, power, batt = (rules[name] for name, _, _ in RULES)
    rows: list[dict[str, Any]] = []

    def add(rule: AlertRule, key: str, device_id: str | None, rack_id: str, value: float) -> None:
        threshold = rule.threshold if rule.threshold is not None else racks[hot]["power_budget_w"]
        what = f"rack {key} {rule.metric}" if device_id is None else rule.metric
        raised = at - 60 - 10 * len(rows)
        rows.append(
            {
                "id": new_id(),
                "tenant_id": p.tenant_id,
                "created_at": raised,
                "rule_id": rule.id,
                "rule_name": rule.name,
                "key": key,
                "device_id": device_id,
                "rack_id": rack_id,
                "metric": rule.metric,
                "severity": rule.severity,
                "state": "active",
                "value": value,
                "threshold": threshold,
                "message": f"{rule.name}: {what} {value:g} {rule.op} {threshold:g}"[:255],
                "raised_at": raised,
                "updated_at": raised,
            }
        )

    draw = 0.0
    for b in boards:
        if b.ts is None:  # not reporting: nothing to alert on
            continue
        if b.rack == hot:
            draw += b.values["power_w"]
        if b.values["cpu_temp_c"] > HOT_C:
            add(cpu, b.row["id"], b.row["id"], b.row["rack_id"], b.values["cpu_temp_c"])
        if b.values["on_battery"] > 0.5:
            add(batt, b.row["id"], b.row["id"], b.row["rack_id"], 1.0)
    if draw > racks[hot]["power_budget_w"]:
        add(power, racks[hot]["id"], None, racks[hot]["id"], round(draw, 1))
    if not rows:
        return 0
    await s.execute(insert(Alert), rows)
    await s.execute(
        insert(AlertEvent),
        [
            {
                "id": new_id(),
                "tenant_id": p.tenant_id,
                "created_at": a["raised_at"],
                "alert_id": a["id"],
                "action": "raised",
                "from_state": "active",
                "to_state": "active",
                "note": a["message"],
                "value": a["value"],
            }
            for a in rows
        ],
    )
    await s.execute(
        insert(AlertRuleState),
        [
            {
                "id": new_id(),
                "tenant_id": p.tenant_id,
                "created_at": a["raised_at"],
                "rule_id": a["rule_id"],
                "key": a["key"],
                "active": True,
                "alert_id": a["id"],
                "last_change_at": a["raised_at"],
            }
            for a in rows
        ],
    )
    return len(rows)
