"""Readings rounded to their sensor's precision (``wrale.user.ui.units``, the one table of
units): the pure helpers, an event's data on the device page (rounded, the exact value in
its tooltip), an alert's value and the physical view's board labels."""

from __future__ import annotations

import html
import re
import time

import pytest

from tests.conftest import Central
from tests.user.ui.conftest import Browser
from tests.user.ui.test_device import _device, _events, _upload
from wrale.user.ui import units
from wrale.user.ui.pages import device_panels

RAW_TEMP = 70.01314907491161


@pytest.mark.parametrize(
    ("value", "metric", "shown"),
    [
        (RAW_TEMP, "cpu_temp_c", "70.0 °C"),
        (4.2671, "power_w", "4.27 W"),
        (63.4, "fan_pct", "63 %"),
        (58.79504299473932, "fan_rpm", "59 rpm"),
        (5.1234, "voltage_v", "5.12 V"),
        (87.6, "battery_pct", "88 %"),
        (62.5, "cpu_load_pct", "63 %"),  # half up, as people round
        (62.5, "max_freq_pct", "62.5 %"),
        (1e300, "power_w", "1e+300 W"),
        (1.0, "case_open", "1.00"),  # a flag: no unit, plain
        (None, "cpu_temp_c", "—"),
        (float("nan"), "power_w", "—"),
        (True, "power_w", "—"),
    ],
)
def test_a_reading_at_its_sensors_precision(value: object, metric: str, shown: str) -> None:
    assert units.reading(value, metric) == shown


def test_event_data_is_rounded_by_each_keys_unit() -> None:
    data = {
        "duty_pct": 49.0,
        "fan_rpm": 58.79504299473932,
        "cpu_temp_c": RAW_TEMP,
        "readings": [{"metric": "power_w", "value": 4.26712}, {"ambient_temp_c": 21.049}],
        "ratio": 0.123456,
        "max_freq_pct": 62.5,
        "load_pct": 62.5,
        "input": "case",
        "count": 3,
        "bad": float("inf"),
    }
    assert units.round_data(data) == {
        "duty_pct": 49,
        "fan_rpm": 59,
        "cpu_temp_c": 70.0,
        "readings": [{"metric": "power_w", "value": 4.27}, {"ambient_temp_c": 21.0}],
        "ratio": 0.12,
        "max_freq_pct": 62.5,
        "load_pct": 63,
        "input": "case",
        "count": 3,
        "bad": "—",
    }


def test_values_too_big_to_round_are_shown_as_they_are() -> None:
    """A board may send 1e300 (finite, valid JSON): rounding leaves it, it never raises."""
    assert units.round_data({"cpu_temp_c": 1e300, "power_w": -1e300}) == {
        "cpu_temp_c": 1e300,
        "power_w": -1e300,
    }
    assert units.reading(1e300, "cpu_temp_c") != ""


def test_gauges_and_charts_take_their_precision_from_the_one_table() -> None:
    for g in device_panels.GAUGES:
        assert g.digits == units.digits_of(g.metric)
    assert {c.key: c.digits for c in device_panels.CHARTS} == {
        "temp": 1,
        "fan": 0,
        "power": 2,
        "battery": 0,
    }


async def test_the_device_pages_event_data_is_rounded(central: Central, admin_ui: Browser) -> None:
    dev = await _device(central, "pi-rounding")
    now = time.time()
    points = [("cpu_temp_c", now - 5, RAW_TEMP), ("power_w", now - 5, 4.2671)]
    await _upload(central, dev, 1, points)
    await _events(
        central,
        dev,
        1,
        [
            {"ts": now - 10, "type": "THERMAL_WARNING", "severity": "warning",
             "message": "CPU hot", "data": {"cpu_temp_c": RAW_TEMP, "fan_rpm": 58.795}},
        ],
    )  # fmt: skip
    page = (await admin_ui.page(f"/devices/{dev}")).text
    row = re.search(r'<tr data-event-id="[^"]+" data-type="THERMAL_WARNING">.*?</tr>', page, re.S)
    assert row, page
    text = html.unescape(row.group(0))
    assert '{"cpu_temp_c":70.0,"fan_rpm":59}' in text  # shown
    assert f'title="{{"cpu_temp_c":{RAW_TEMP},"fan_rpm":58.795}}"' in text  # exact, on hover
    assert str(RAW_TEMP) not in re.sub(r'title="[^"]*"', "", row.group(0))
    # the gauges: 70.0 °C and 4.27 W, never the raw float
    assert "70.0" in page
    assert "4.27" in page
    fragment = (await admin_ui.fragment(f"/devices/{dev}/events")).text
    assert "{&#34;cpu_temp_c&#34;:70.0,&#34;fan_rpm&#34;:59}" in fragment


async def test_an_alerts_value_is_rounded_to_its_metric(
    central: Central, admin_ui: Browser
) -> None:
    from wrale.fleet.brain.models.alerts import Alert

    dev = await _device(central, "pi-alert-value")
    async with central.db.session() as s:
        s.add(
            Alert(
                tenant_id=(await _tenant(central)),
                rule_id=None,
                rule_name="power high",
                key=dev,
                device_id=dev,
                metric="power_w",
                severity="MAJOR",
                state="active",
                value=7.123456,
                threshold=7.0,
                message="pi-alert-value: power high",
                raised_at=time.time(),
                updated_at=time.time(),
            )
        )
    page = (await admin_ui.page("/alerts")).text
    assert "7.12 W" in page
    assert "7.123456" not in re.sub(r'data-value="[^"]*"', "", page)
    assert 'data-value="7.123456"' in page


async def _tenant(c: Central) -> str:
    r = await c.http.get("/api/v1/auth/me", headers=c.admin)
    assert r.status_code == 200, r.text
    return str(r.json()["tenant_id"])
