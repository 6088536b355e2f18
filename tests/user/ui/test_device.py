"""The device page ``/devices/<id>`` without a browser, on SQLite and PostgreSQL: every
section renders, the chart series per range, the twin forms (profile, override, stale
version, bad input), rejected values, commands, diagnostics, alerts, and a viewer's page."""

from __future__ import annotations

import re
import time
from typing import Any

from tests.conftest import Central
from tests.user.ui.conftest import Browser

API = "/api/v1"
SECTIONS = (
    *("identity", "gauges", "charts", "twin", "commands", "diagnostics", "events"),
    *("alerts", "audit"),
)


async def _device(c: Central, name: str = "pi-a1-07", **fields: Any) -> str:
    body = {"name": name, "model": "Raspberry Pi 5", "tags": ["lab"], **fields}
    r = await c.http.post(f"{API}/devices", json=body, headers=c.admin)
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def _upload(
    c: Central, device_id: str, seq: int, points: list[tuple[str, float, float]]
) -> None:
    body = {"seq": seq, "points": [{"metric": m, "ts": t, "value": v} for m, t, v in points]}
    r = await c.http.post(f"{API}/devices/{device_id}/telemetry", json=body, headers=c.admin)
    assert r.status_code == 200, r.text


async def _raise_alert(c: Central, device_id: str) -> str:
    from wrale.fleet.brain.channel.alerts import Effect, apply
    from wrale.fleet.brain.models import Device

    async with c.db.session() as s:
        device = await s.get(Device, device_id)
        assert device is not None
        alert = await apply(
            s,
            device,
            Effect("raise", "event:TAMPER:case", "CRITICAL", "case opened"),
            time.time(),
            [],
        )
        assert alert is not None
        return alert.id


async def _events(c: Central, device_id: str, seq: int, events: list[dict[str, Any]]) -> None:
    from wrale.fleet.brain.channel.events import store_batch
    from wrale.fleet.brain.models import Device

    async with c.db.session() as s:
        device = await s.get(Device, device_id)
        assert device is not None
        await store_batch(s, device, seq, seq - 1, events, time.time())


async def _report(
    c: Central, device_id: str, version: int, doc: dict[str, Any], rejected: dict[str, str]
) -> None:
    from wrale.fleet.brain.models import Device
    from wrale.fleet.brain.services import twin

    async with c.db.session() as s:
        device = await s.get(Device, device_id)
        assert device is not None
        t = await twin.get_twin(s, device.tenant_id, device.id)
        await twin.record_reported(
            s, device, version, doc, t.desired_version, rejected, time.time()
        )


def _version(html: str) -> int:
    m = re.search(r'data-desired-version="(\d+)"', html)
    assert m, html[:500]
    return int(m.group(1))


def _row(html: str, path: str) -> str:
    m = re.search(rf'<tr data-path="{re.escape(path)}"[^>]*>.*?</tr>', html, re.S)
    assert m, f"no twin row {path}"
    return m.group(0)


async def test_the_page_shows_every_section_of_a_registered_device(
    central: Central, admin_ui: Browser
) -> None:
    dev = await _device(central, capabilities=["sim"])
    now = time.time()
    await _upload(
        central,
        dev,
        1,
        [
            ("cpu_temp_c", now - 5, 64.2),
            ("gpu_temp_c", now - 5, 61.0),
            ("ambient_temp_c", now - 5, 24.5),
            ("fan_pct", now - 5, 55.0),
            ("fan_rpm", now - 5, 3120.0),
            ("power_w", now - 5, 5.4),
            ("battery_pct", now - 5, 87.0),
            ("on_battery", now - 5, 1.0),
            ("case_open", now - 5, 1.0),
        ],
    )
    alert_id = await _raise_alert(central, dev)
    await _events(
        central,
        dev,
        1,
        [
            {"ts": now - 60, "type": "SOURCE_FAILOVER", "severity": "warning",
             "message": "power source main → battery", "data": {"to_source": "battery"}},
            {"ts": now - 30, "type": "DIAGNOSTICS", "severity": "info",
             "message": "diagnostics run r1: 4 tests, 4 pass",
             "data": {"run_id": "r1", "counts": {"PASS": 4}}},
        ],
    )  # fmt: skip
    r = await admin_ui.page(f"/devices/{dev}")
    assert r.status_code == 200, r.text
    html = r.text
    for section in SECTIONS:
        assert f'id="{section}"' in html, section
    assert f'<div id="live-device" data-device="{dev}"' in html
    assert "/static/vendor/uPlot.iife.min.js" in html
    assert "pi-a1-07" in html
    assert "Raspberry Pi 5" in html
    assert re.search(r'data-metric="cpu_temp_c"[^>]*data-ts="[\d.]+"', html)
    assert ">64.2</text>" in html
    assert ">°C</text>" in html
    assert re.search(r'id="power-source"[^>]*>battery<', html)
    assert re.search(r'data-metric="case_open"[^>]*data-state="on"', html)
    assert f'<tr data-alert-id="{alert_id}"' in html
    assert 'data-action="ack"' in html
    assert '<form id="fan-profile"' in html
    assert _row(html, "thermal.profile")
    assert 'data-twin-state="pending"' in html  # nothing reported yet
    assert "SOURCE_FAILOVER" in html
    assert "diagnostics run r1" in html
    assert "CPU: min 64.2, max 64.2, latest 64.2 °C" in html  # the chart's text summary
    for fragment in ("identity", "twin", "commands", "diagnostics", "events", "alerts", "audit"):
        f = await admin_ui.fragment(f"/devices/{dev}/{fragment}")
        assert f.status_code == 200, (fragment, f.text)
        assert f.text.lstrip().startswith(("<section", "{")) or f'id="{fragment}"' in f.text
        plain = await admin_ui.http.get(f"/devices/{dev}/{fragment}")
        assert plain.status_code == 303  # a fragment's URL opened by hand: the page


async def test_unknown_and_malformed_ids_are_not_found(central: Central, admin_ui: Browser) -> None:
    r = await admin_ui.page(f"/devices/{'0' * 32}")
    assert r.status_code == 404
    assert "no device" in r.text
    for path in ("/devices/not-a-device", "/devices/" + "A" * 32, "/devices/1"):
        r = await admin_ui.page(path)
        assert r.status_code == 404, path
    dev = await _device(central)
    await admin_ui.page(f"/devices/{dev}")  # the CSRF token of a signed-in page
    r = await admin_ui.post(f"/devices/{dev}/commands/{'f' * 32}/cancel")
    assert r.status_code == 404
    r = await admin_ui.post(f"/devices/{dev}/alerts/{'f' * 32}/ack")
    assert r.status_code == 404


async def test_the_series_of_each_range(central: Central, admin_ui: Browser) -> None:
    dev = await _device(central)
    now = time.time()
    pts: list[tuple[str, float, float]] = []
    for i in range(0, 7200, 30):  # two hours, a point every 30 s
        ts = now - 7200 + i
        pts += [("cpu_temp_c", ts, 40 + i / 360), ("power_w", ts, 4.0), ("battery_pct", ts, 90.0)]
    await _upload(central, dev, 1, pts)
    steps = {"1h": "10s", "6h": "1m", "24h": "5m", "7d": "1h"}
    for rng, step in steps.items():
        r = await admin_ui.http.get(f"/devices/{dev}/series", params={"range": rng})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["range"] == rng
        assert body["step"] == step
        temp = body["charts"]["temp"]
        assert temp["ts"] == sorted(temp["ts"])
        assert len(temp["ts"]) == len(temp["series"]["cpu_temp_c"])
        assert temp["ts"]
        assert all(v is None for v in temp["series"]["gpu_temp_c"])
        assert body["summary"]["power_w"]["min"] == 4.0
        assert body["summary"]["cpu_temp_c"]["latest"] == round(pts[-3][2], 3)
        assert body["summary"]["fan_pct"] == {
            "min": None, "max": None, "latest": None, "latest_ts": None
        }  # fmt: skip
        assert all(body["start"] <= t <= body["end"] for t in temp["ts"][1:])
    one_hour = (await admin_ui.http.get(f"/devices/{dev}/series")).json()
    assert 119 <= len(one_hour["charts"]["temp"]["ts"]) <= 121  # 30-s points, 10-s buckets
    r = await admin_ui.http.get(f"/devices/{dev}/series", params={"range": "2y"})
    assert r.status_code == 422


async def test_fan_profile_form_patches_the_twin_and_a_stale_version_gets_409(
    central: Central, admin_ui: Browser
) -> None:
    dev = await _device(central)
    page = (await admin_ui.page(f"/devices/{dev}")).text
    v = _version(page)
    r = await admin_ui.post(f"/devices/{dev}/twin/profile", {"profile": "cool", "version": v})
    assert r.status_code == 200, r.text
    assert _version(r.text) == v + 1
    row = _row(r.text, "thermal.profile")
    assert '<td class="desired mono">cool</td>' in row
    assert 'data-twin-state="pending"' in r.text
    assert "wrale-notice" in r.headers["HX-Trigger"]
    twin = (await central.http.get(f"{API}/devices/{dev}/twin", headers=central.admin)).json()
    assert twin["desired"]["doc"]["thermal"]["profile"] == "cool"
    assert twin["desired"]["version"] == v + 1

    stale = await admin_ui.post(f"/devices/{dev}/twin/profile", {"profile": "max", "version": v})
    assert stale.status_code == 409
    assert f"at version {v + 1}, not {v}" in stale.text
    assert _version(stale.text) == v + 1  # the fresh twin comes with the message
    assert '<td class="desired mono">cool</td>' in _row(stale.text, "thermal.profile")

    # a plain form post (no JavaScript) goes back to the page
    plain = await admin_ui.post(
        f"/devices/{dev}/twin/profile", {"profile": "quiet", "version": v + 1}, htmx=False
    )
    assert plain.status_code == 303
    assert plain.headers["location"] == f"/devices/{dev}#twin"


async def test_the_fan_override_form_and_its_bad_input(central: Central, admin_ui: Browser) -> None:
    dev = await _device(central)
    v = _version((await admin_ui.page(f"/devices/{dev}")).text)
    bad = await admin_ui.post(f"/devices/{dev}/twin/profile", {"profile": "loud", "version": v})
    assert bad.status_code == 422
    assert 'id="profile-error"' in bad.text
    assert 'aria-invalid="true" aria-describedby="profile-error"' in bad.text

    too_much = {"override_pct": "150", "duration": "5m", "version": v}
    r = await admin_ui.post(f"/devices/{dev}/twin/fan", too_much)
    assert r.status_code == 422
    assert re.search(
        r'<p class="field-error" id="override_pct-error" role="alert">[^<]*100', r.text
    )
    assert 'value="150"' in r.text  # the input is kept
    r = await admin_ui.post(
        f"/devices/{dev}/twin/fan", {"override_pct": "60", "duration": "forever", "version": v}
    )
    assert r.status_code == 422
    assert 'id="duration-error"' in r.text
    r = await admin_ui.post(
        f"/devices/{dev}/twin/fan", {"override_pct": "60", "duration": "2h", "version": v}
    )
    assert r.status_code == 422
    assert "max_override_s" in r.text
    plain = await admin_ui.post(f"/devices/{dev}/twin/fan", too_much, htmx=False)
    assert plain.status_code == 422  # without JavaScript: the whole page with the error
    assert 'id="override_pct-error"' in plain.text
    assert 'id="audit"' in plain.text
    assert _version((await admin_ui.fragment(f"/devices/{dev}/twin")).text) == v  # unchanged

    ok = await admin_ui.post(
        f"/devices/{dev}/twin/fan", {"override_pct": "70", "duration": "10m", "version": v}
    )
    assert ok.status_code == 200, ok.text
    assert '<td class="desired mono">70.0</td>' in _row(ok.text, "fan.override_pct")
    assert '<td class="desired mono">600.0</td>' in _row(ok.text, "fan.duration_s")
    cleared = await admin_ui.post(f"/devices/{dev}/twin/fan", {"clear": "1", "version": v + 1})
    assert cleared.status_code == 200, cleared.text
    assert 'data-path="fan.override_pct"' not in cleared.text


async def test_the_twin_highlights_what_the_board_rejected(
    central: Central, admin_ui: Browser
) -> None:
    dev = await _device(central)
    v = _version((await admin_ui.page(f"/devices/{dev}")).text)
    r = await admin_ui.post(
        f"/devices/{dev}/twin/fan", {"override_pct": "10", "duration": "5m", "version": v}
    )
    assert r.status_code == 200, r.text
    twin = (await central.http.get(f"{API}/devices/{dev}/twin", headers=central.admin)).json()
    reported = {**twin["desired"]["doc"], "fan": {"override_pct": None, "duration_s": None}}
    why = "below the safety floor of 40 % at 72 °C"
    await _report(central, dev, 1, reported, {"fan.override_pct": why})
    html = (await admin_ui.fragment(f"/devices/{dev}/twin")).text
    assert 'data-twin-state="rejected"' in html
    row = _row(html, "fan.override_pct")
    assert 'class="rejected"' in row
    assert why in row
    assert '<td class="desired mono">10.0</td>' in row
    assert '<td class="reported mono">—</td>' in row
    assert 'class="in-sync"' in _row(html, "thermal.profile")

    await _report(central, dev, 2, twin["desired"]["doc"] | {"fan": {"override_pct": 10.0,
                  "duration_s": 300.0}}, {})  # fmt: skip
    html = (await admin_ui.fragment(f"/devices/{dev}/twin")).text
    assert 'data-twin-state="in-sync"' in html


async def test_send_and_cancel_a_command(central: Central, admin_ui: Browser) -> None:
    dev = await _device(central)
    await admin_ui.page(f"/devices/{dev}")
    r = await admin_ui.post(
        f"/devices/{dev}/commands", {"op": "set_fan", "args": '{"percent": 60}', "timeout": "5m"}
    )
    assert r.status_code == 200, r.text
    m = re.search(r'<tr data-command-id="([0-9a-f]{32})" data-status="queued">', r.text)
    assert m
    cid = m.group(1)
    assert "set_fan" in r.text
    assert 'data-action="cancel"' in r.text

    r = await admin_ui.post(f"/devices/{dev}/commands/{cid}/cancel")
    assert r.status_code == 200, r.text
    assert f'<tr data-command-id="{cid}" data-status="failed">' in r.text
    assert "cancelled by admin" in r.text
    again = await admin_ui.post(f"/devices/{dev}/commands/{cid}/cancel")
    assert again.status_code == 409  # shown as a toast
    assert again.headers["HX-Reswap"] == "none"

    bad = await admin_ui.post(
        f"/devices/{dev}/commands", {"op": "set_fan", "args": '{"percent": 150}'}
    )
    assert bad.status_code == 422
    assert 'id="args-error"' in bad.text
    assert "args.percent" in bad.text
    bad = await admin_ui.post(f"/devices/{dev}/commands", {"op": "set_fan", "args": "[1"})
    assert bad.status_code == 422
    assert 'id="args-error"' in bad.text
    bad = await admin_ui.post(f"/devices/{dev}/commands", {"op": "explode", "args": ""})
    assert bad.status_code == 422
    assert 'id="op-error"' in bad.text
    refused = await admin_ui.post(
        f"/devices/{dev}/commands", {"op": "sim_load", "args": '{"percent": 50}'}
    )
    assert refused.status_code == 409  # not a simulated board
    assert "sim" in refused.text
    listed = await central.http.get(f"{API}/devices/{dev}/commands", headers=central.admin)
    assert [c["op"] for c in listed.json()["items"]] == ["set_fan"]


async def test_run_diagnostics_queues_run_diag_and_shows_its_results(
    central: Central, admin_ui: Browser
) -> None:
    from wrale.fleet.brain.models import Device
    from wrale.fleet.brain.services import commands

    dev = await _device(central)
    await admin_ui.page(f"/devices/{dev}")
    r = await admin_ui.post(f"/devices/{dev}/diagnostics")
    assert r.status_code == 200, r.text
    assert "Diagnostics queued" in r.text
    listed = (await central.http.get(f"{API}/devices/{dev}/commands", headers=central.admin)).json()
    assert [c["op"] for c in listed["items"]] == ["run_diag"]
    cid = listed["items"][0]["id"]
    results = [
        {"type": "THERMAL", "name": "cpu_sensor", "component": "cpu", "status": "PASS",
         "reading": 51.2, "unit": "°C", "expected": "-20..95 °C", "message": "ok",
         "timestamp": time.time(), "run_id": "run-7"},
        {"type": "THERMAL", "name": "fan_spin_up", "component": "fan", "status": "FAIL",
         "reading": 0, "unit": "rpm", "expected": ">= 1000 rpm", "message": "fan stalled",
         "timestamp": time.time(), "run_id": "run-7"},
    ]  # fmt: skip
    async with central.db.session() as s:
        device = await s.get(Device, dev)
        assert device is not None
        await commands.record_result(
            s, device, cid, "succeeded", "1 fail, 1 pass",
            {"results": results, "summary": {"FAIL": 1, "PASS": 1}}, time.time(),
        )  # fmt: skip
    html = (await admin_ui.fragment(f"/devices/{dev}/diagnostics")).text
    assert "fan_spin_up" in html
    assert "fan stalled" in html
    assert "51.2 °C" in html
    assert '<span class="badge diag-fail">tests failed</span>' in html


async def test_acknowledge_an_alert_from_the_device_page(
    central: Central, admin_ui: Browser
) -> None:
    dev = await _device(central)
    alert_id = await _raise_alert(central, dev)
    await admin_ui.page(f"/devices/{dev}")
    r = await admin_ui.post(f"/devices/{dev}/alerts/{alert_id}/ack")
    assert r.status_code == 200, r.text
    assert f'<tr data-alert-id="{alert_id}" data-state="acknowledged"' in r.text
    assert 'data-action="ack"' not in r.text
    got = await central.http.get(f"{API}/alerts/{alert_id}", headers=central.admin)
    assert got.json()["state"] == "acknowledged"
    again = await admin_ui.post(f"/devices/{dev}/alerts/{alert_id}/ack")
    assert again.status_code == 409
    audit = (await admin_ui.fragment(f"/devices/{dev}/audit")).text
    assert "alert.acknowledge" in audit


async def test_a_viewer_sees_everything_but_no_action(central: Central, ui_as: Any) -> None:
    dev = await _device(central)
    alert_id = await _raise_alert(central, dev)
    viewer: Browser = await ui_as("viewer")
    r = await viewer.page(f"/devices/{dev}")
    assert r.status_code == 200, r.text
    for section in SECTIONS:
        assert f'id="{section}"' in r.text
    assert f'<tr data-alert-id="{alert_id}"' in r.text
    assert "data-action" not in r.text
    posts = re.findall(r'<form[^>]*method="post"[^>]*>', r.text)
    assert posts == ['<form method="post" action="/logout" class="inline">']
    assert 'id="fan-profile"' not in r.text
    v = _version(r.text)
    for path, data in (
        ("twin/profile", {"profile": "cool", "version": v}),
        ("twin/fan", {"override_pct": "50", "duration": "5m", "version": v}),
        ("commands", {"op": "run_diag", "args": "{}"}),
        ("diagnostics", {}),
        (f"alerts/{alert_id}/ack", {}),
    ):
        denied = await viewer.post(f"/devices/{dev}/{path}", data)
        assert denied.status_code == 403, path
    twin = (await central.http.get(f"{API}/devices/{dev}/twin", headers=central.admin)).json()
    assert twin["desired"]["version"] == v
