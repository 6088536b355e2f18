"""The template filters are total: whatever a board or the database hands them renders as
text, and a board's absurd timestamp (1e300) cannot break the overview or its device page."""

from __future__ import annotations

import math
import time
from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import Central
from tests.user.ui.conftest import Browser
from wrale.user.ui.filters import fmt_age, fmt_num, fmt_time

HOSTILE = st.one_of(
    st.none(),
    st.booleans(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(),
    st.integers(min_value=10**300, max_value=10**400),
    st.sampled_from([1e300, -1e300, math.nan, math.inf, -math.inf, 10**400, -(10**400)]),
    st.decimals(allow_nan=True, allow_infinity=True),
    st.just(Decimal("1e999999")),
    st.text(max_size=50),
    st.binary(max_size=20),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.just(object()),
)


@settings(max_examples=400)
@given(HOSTILE, HOSTILE)
def test_age_is_total(value: Any, now: Any) -> None:
    assert isinstance(fmt_age(value), str)
    assert isinstance(fmt_age(value, now), str)


@settings(max_examples=400)
@given(HOSTILE)
def test_when_is_total(value: Any) -> None:
    assert isinstance(fmt_time(value), str)


@settings(max_examples=400)
@given(HOSTILE, HOSTILE, HOSTILE)
def test_num_is_total(value: Any, digits: Any, unit: Any) -> None:
    text = fmt_num(value, digits, unit)
    assert isinstance(text, str)
    assert len(text) < 80  # never a 300-digit number


def test_the_values_a_board_may_send_read_sensibly() -> None:
    for nonsense in (1e300, -1e300, math.nan, math.inf, None, "soon", 10**400, [1]):
        assert fmt_time(nonsense) == "—"
        assert fmt_age(nonsense) == "—"
    assert fmt_num(math.nan, 1, "°C") == "—"
    assert fmt_num(1e300, 1, "W") == "1e+300 W"
    assert fmt_num(1234.56, 1, "W") == "1,234.6 W"
    assert fmt_num(Decimal("2.5"), 0) == "2"
    assert fmt_time(0) == "1970-01-01 00:00:00Z"
    assert fmt_age(time.time() - 125) == "2 min ago"
    assert fmt_age(time.time() + 5) == "0 s ago"  # a clock a little ahead


async def test_an_event_at_1e300_leaves_the_overview_and_device_page_working(
    central: Central, admin_ui: Browser
) -> None:
    from wrale.fleet.brain.models import Device
    from wrale.fleet.brain.models.channel import DeviceEvent

    r = await central.http.post(
        "/api/v1/devices",
        json={"name": "pi-far-future", "model": "Raspberry Pi 5"},
        headers=central.admin,
    )
    assert r.status_code == 201, r.text
    device_id = r.json()["id"]
    async with central.db.session() as s:  # straight into the database, past any ingest check
        device = await s.get(Device, device_id)
        assert device is not None
        for idx, ts in enumerate((1e300, -1e300, 1.7e308)):
            s.add(
                DeviceEvent(
                    tenant_id=device.tenant_id,
                    device_id=device_id,
                    seq=1,
                    idx=idx,
                    ts=ts,
                    type="TAMPER",
                    severity="critical",
                    message="from the far future",
                    data={"value": 1e300},
                )
            )
        device.last_seen_at = 1e300
        await s.commit()
    for path in ("/", f"/devices/{device_id}", "/devices", "/physical"):
        r = await admin_ui.page(path)
        assert r.status_code == 200, (path, r.text[-500:])
    r = await admin_ui.fragment("/_overview/events")
    assert r.status_code == 200
