"""metald's HTTP API end to end: a real server on 127.0.0.1 over the simulated board."""

from __future__ import annotations

import math
import re
from collections.abc import AsyncIterator

import httpx
import pytest

from tests.metal.core.server_harness import API_KEY, Metald, make_hot, running_metald
from wrale.metal.core import api


@pytest.fixture
async def metald() -> AsyncIterator[Metald]:
    async with running_metald() as m:
        yield m


@pytest.fixture
def client(metald: Metald) -> httpx.AsyncClient:
    return metald.client()


def error_of(resp: httpx.Response) -> dict[str, object]:
    body = resp.json()
    assert set(body) == {"error"}, body
    err: dict[str, object] = body["error"]
    assert {"code", "message", "details"} <= set(err)
    return err


# ----------------------------------------------------------------------------- health, auth


async def test_healthz_is_open_and_reports_the_sample(metald: Metald) -> None:
    resp = await metald.client(key=None).get("/healthz")
    assert resp.status_code == 200
    body = resp.json()
    assert body["status"] == "ok"
    assert body["seq"] == metald.core.current().seq
    assert body["uptime_s"] >= 0


async def test_healthz_is_503_before_the_first_sample() -> None:
    async with running_metald(start_core=False) as m:
        resp = await m.client(key=None).get("/healthz")
        assert resp.status_code == 503
        assert resp.json()["status"] == "starting"
        assert resp.json()["error"]["code"] == "unavailable"
        state = await m.client().get("/v1/state")
        assert state.status_code == 503


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-key-wrong-key"},
        {"Authorization": f"Basic {API_KEY}"},
        {"Authorization": f"Bearer {API_KEY}x"},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer ключ".encode()},
    ],
)
@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/v1/state"), ("GET", "/metrics"), ("PUT", "/v1/thermal/fan"), ("GET", "/nope")],
)
async def test_wrong_or_missing_key_is_401(
    metald: Metald, headers: dict[str, str], method: str, path: str
) -> None:
    async with httpx.AsyncClient(base_url=metald.url) as c:
        resp = await c.request(method, path, headers=headers, json={"percent": 100})
    assert resp.status_code == 401
    assert resp.headers["www-authenticate"].startswith("Bearer")
    assert error_of(resp)["code"] == "unauthorized"


async def test_the_key_scheme_is_case_insensitive(metald: Metald) -> None:
    async with httpx.AsyncClient(base_url=metald.url) as c:
        resp = await c.get("/v1/state", headers={"Authorization": f"bearer {API_KEY}"})
    assert resp.status_code == 200


def test_an_empty_api_key_is_refused() -> None:
    from wrale.metal.core.server import MetaldServer

    with pytest.raises(ValueError, match="API key"):
        MetaldServer(None, api_key="", diagnostics=None)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- state


async def test_state_has_the_fixed_contract(client: httpx.AsyncClient) -> None:
    resp = await client.get("/v1/state")
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "application/json"
    state = resp.json()
    assert {"thermal", "power", "security", "gpio", "updated_at"} <= set(state)
    assert {
        "cpu_temp_c",
        "gpu_temp_c",
        "ambient_temp_c",
        "fan_percent",
        "fan_rpm",
        "throttled",
        "warnings",
    } <= set(state["thermal"])
    assert {"source", "battery_pct", "charging", "voltage_v", "power_w", "available"} <= set(
        state["power"]
    )
    assert {"case_open", "motion_detected", "voltage_normal", "armed", "level"} <= set(
        state["security"]
    )
    assert set(state["gpio"]) == {"led", "button", "fan_pwm"}
    assert 30 < state["thermal"]["cpu_temp_c"] < 60
    assert state["thermal"]["gpu_temp_c"] is None  # a Pi 5: one cpu-thermal zone
    assert state["thermal"]["ambient_temp_c"] is None  # and no ambient sensor without a HAT
    assert state["power"]["source"] == "main"


@pytest.mark.parametrize("part", ["thermal", "power", "security", "gpio"])
async def test_each_part_of_the_state_has_its_endpoint(
    client: httpx.AsyncClient, part: str
) -> None:
    state = (await client.get("/v1/state")).json()
    resp = await client.get(f"/v1/{part}")
    assert resp.status_code == 200
    assert resp.json() == state[part]


# ----------------------------------------------------------------------------- fan


async def test_fan_override_and_clear(metald: Metald, client: httpx.AsyncClient) -> None:
    resp = await client.put("/v1/thermal/fan", json={"percent": 80, "duration_s": 120})
    assert resp.status_code == 200
    thermal = resp.json()
    assert thermal["fan_percent"] == 80.0
    assert thermal["override"] == {"percent": 80.0, "remaining_s": 120.0}
    assert metald.board.fan.read_fan().duty_pct == pytest.approx(80.0)

    resp = await client.put("/v1/thermal/fan", json={"percent": 40})
    assert resp.json()["override"]["remaining_s"] == 300.0  # the default duration

    resp = await client.delete("/v1/thermal/fan")
    assert resp.status_code == 200
    assert resp.json()["override"] is None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "percent"),
        ({"percent": 101}, "percent"),
        ({"percent": -1}, "percent"),
        ({"percent": "50"}, "percent"),
        ({"percent": True}, "percent"),
        ({"percent": None}, "percent"),
        ({"percent": 50, "duration_s": 0}, "duration_s"),
        ({"percent": 50, "duration_s": False}, "duration_s"),
        ({"percent": 50, "speed": 3}, "speed"),
        ([50], "body"),
        ("50", "body"),
    ],
)
async def test_fan_override_validation_is_422(
    client: httpx.AsyncClient, body: object, field: str
) -> None:
    resp = await client.put("/v1/thermal/fan", json=body)
    assert resp.status_code == 422
    err = error_of(resp)
    assert err["code"] == "invalid_request"
    assert str(err["message"]).startswith(f"{field}: ")


async def test_fan_override_beyond_the_policy_maximum_is_422(client: httpx.AsyncClient) -> None:
    resp = await client.put("/v1/thermal/fan", json={"percent": 50, "duration_s": 99999})
    assert resp.status_code == 422
    assert "duration_s" in str(error_of(resp)["message"])


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity", b"1e999"])
async def test_non_finite_numbers_are_refused(client: httpx.AsyncClient, literal: bytes) -> None:
    resp = await client.put(
        "/v1/thermal/fan",
        content=b'{"percent": ' + literal + b"}",
        headers={"Content-Type": "application/json"},
    )
    assert resp.status_code == 422
    assert error_of(resp)["code"] == "invalid_request"


async def test_unsafe_fan_override_on_a_hot_board_is_409(
    metald: Metald, client: httpx.AsyncClient
) -> None:
    hot = await make_hot(metald)
    resp = await client.put("/v1/thermal/fan", json={"percent": 0, "duration_s": 60})
    assert resp.status_code == 409
    err = error_of(resp)
    assert err["code"] == "unsafe"
    assert "may not go below" in str(err["message"])
    assert err["details"]["floor_pct"] == hot.decision.floor_pct  # type: ignore[index]
    # at or above the floor is fine
    resp = await client.put("/v1/thermal/fan", json={"percent": 100, "duration_s": 60})
    assert resp.status_code == 200


# ----------------------------------------------------------------------------- security


async def test_arm_and_disarm(client: httpx.AsyncClient) -> None:
    resp = await client.post("/v1/security/arm", json={"level": "high"})
    assert resp.status_code == 200
    assert resp.json()["armed"] is True
    assert resp.json()["level"] == "high"
    resp = await client.post("/v1/security/arm")  # no body: keeps the level
    assert resp.json()["level"] == "high"
    resp = await client.post("/v1/security/disarm")
    assert resp.status_code == 200
    assert resp.json()["armed"] is False
    resp = await client.post("/v1/security/arm", json={"level": "extreme"})
    assert resp.status_code == 422
    assert str(error_of(resp)["message"]).startswith("level: ")


async def test_lockdown_refuses_actuators_with_409_until_disarmed(
    metald: Metald, client: httpx.AsyncClient
) -> None:
    await client.post("/v1/security/arm", json={"level": "high"})
    resp = await client.post("/v1/sim/faults", json={"fault": "case_open"})
    assert resp.status_code == 200
    await metald.run_for(3)
    assert (await client.get("/v1/security")).json()["lockdown"] is True

    resp = await client.put("/v1/thermal/fan", json={"percent": 100})
    assert resp.status_code == 409
    assert error_of(resp)["code"] == "lockdown"
    resp = await client.put("/v1/gpio/led", json={"value": 1})
    assert resp.status_code == 409
    assert error_of(resp)["code"] == "lockdown"

    resp = await client.post("/v1/security/disarm")
    assert resp.json()["lockdown"] is False
    resp = await client.put("/v1/thermal/fan", json={"percent": 100})
    assert resp.status_code == 200


# ----------------------------------------------------------------------------- gpio


async def test_gpio_write_read_and_pwm(metald: Metald, client: httpx.AsyncClient) -> None:
    resp = await client.put("/v1/gpio/led", json={"value": 1})
    assert resp.status_code == 200
    assert resp.json() == {
        "name": "led",
        "line": 17,
        "direction": "out",
        "pull": "none",
        "edge": "none",
        "value": 1,
        "pwm": None,
    }
    assert (await client.get("/v1/gpio/led")).json()["value"] == 1
    assert (await client.get("/v1/gpio/17")).json()["name"] == "led"  # by offset too

    resp = await client.put(
        "/v1/gpio/fan_pwm", json={"pwm": {"frequency_hz": 25000, "duty_percent": 40}}
    )
    assert resp.status_code == 200
    assert resp.json()["pwm"] == {"frequency_hz": 25000.0, "duty_percent": 40.0}


async def test_gpio_errors(client: httpx.AsyncClient) -> None:
    resp = await client.put("/v1/gpio/nope", json={"value": 1})
    assert resp.status_code == 404
    assert error_of(resp)["code"] == "not_found"
    assert (await client.get("/v1/gpio/nope")).status_code == 404
    assert (await client.get("/v1/gpio/9999")).status_code == 404
    resp = await client.put("/v1/gpio/button", json={"value": 1})  # an input
    assert resp.status_code == 409
    for body in (
        {"value": 2},
        {"value": True},
        {"value": 1, "pwm": {"frequency_hz": 1, "duty_percent": 1}},
        {},
        {"pwm": {"frequency_hz": 0, "duty_percent": 10}},
        {"pwm": {"frequency_hz": 100, "duty_percent": 101}},
    ):
        resp = await client.put("/v1/gpio/led", json=body)
        assert resp.status_code == 422, body


async def test_gpio_pwm_on_a_line_without_hardware_pwm_is_422(
    client: httpx.AsyncClient,
) -> None:
    resp = await client.put(
        "/v1/gpio/led", json={"pwm": {"frequency_hz": 1000, "duty_percent": 10}}
    )
    assert resp.status_code == 422
    assert error_of(resp)["code"] == "unsupported"
    assert "PWM" in str(error_of(resp)["message"])


# ----------------------------------------------------------------------------- diagnostics


async def test_diagnostics(client: httpx.AsyncClient) -> None:
    assert (await client.get("/v1/diag")).json() == {"tests": ["fan_spin_up", "sensor_sanity"]}
    resp = await client.post("/v1/diag/run")
    assert resp.status_code == 200
    assert [r["name"] for r in resp.json()["results"]] == ["fan_spin_up", "sensor_sanity"]
    resp = await client.post("/v1/diag/run", json={"tests": ["sensor_sanity"]})
    assert [r["name"] for r in resp.json()["results"]] == ["sensor_sanity"]
    resp = await client.get("/v1/diag/history", params={"limit": 2})
    assert [r["name"] for r in resp.json()["items"]] == ["sensor_sanity", "sensor_sanity"]

    resp = await client.post("/v1/diag/run", json={"tests": ["warp_core"]})
    assert resp.status_code == 404
    assert "warp_core" in str(error_of(resp)["message"])
    bad_bodies: list[dict[str, object]] = [{"tests": "sensor_sanity"}, {"tests": [1]}, {"test": []}]
    for bad in bad_bodies:
        assert (await client.post("/v1/diag/run", json=bad)).status_code == 422
    assert (await client.get("/v1/diag/history", params={"limit": 0})).status_code == 422
    assert (await client.get("/v1/diag/history", params={"limit": "x"})).status_code == 422


async def test_diagnostics_absent_is_404() -> None:
    async with running_metald(diagnostics=False) as m:
        c = m.client()
        for method, path in (
            ("GET", "/v1/diag"),
            ("POST", "/v1/diag/run"),
            ("GET", "/v1/diag/history"),
        ):
            resp = await c.request(method, path)
            assert resp.status_code == 404
            assert "diagnostics" in str(error_of(resp)["message"])


# ----------------------------------------------------------------------------- simulator


async def test_sim_controls(metald: Metald, client: httpx.AsyncClient) -> None:
    status = (await client.get("/v1/sim")).json()
    seq = metald.core.current().seq
    assert status["load_pct"] == 10.0
    assert status["active_faults"] == []

    resp = await client.put("/v1/sim/load", json={"percent": 100})
    assert resp.status_code == 200
    assert resp.json()["sim"]["load_pct"] == 100.0
    assert resp.json()["state"]["seq"] == seq + 1  # sampled after the change

    resp = await client.put("/v1/sim/ambient", json={"celsius": 35})
    assert resp.json()["sim"]["ambient_c"] == 35.0

    resp = await client.post("/v1/sim/faults", json={"fault": "fan_failure", "mode": "degraded"})
    assert resp.status_code == 200
    faults = resp.json()["sim"]["active_faults"]
    assert faults[0]["fault"] == "fan_failure"
    assert faults[0]["params"]["mode"] == "degraded"
    resp = await client.post("/v1/sim/faults", json={"fault": "motion", "duration_s": 30})
    assert resp.status_code == 200
    resp = await client.post("/v1/sim/faults", json={"fault": "main_power_loss"})
    assert resp.json()["state"]["power"]["source"] == "battery"

    resp = await client.delete("/v1/sim/faults", params={"fault": "motion"})
    assert resp.json()["cleared"] == 1
    resp = await client.delete("/v1/sim/faults")
    assert resp.json()["cleared"] == 2
    assert resp.json()["sim"]["active_faults"] == []
    assert resp.json()["state"]["power"]["source"] == "main"


@pytest.mark.parametrize(
    "body",
    [
        {"fault": "gremlins"},
        {},
        {"fault": "fan_failure", "mode": "exploded"},
        {"fault": "fan_failure", "rpm_factor": [1]},
        {"fault": "fan_failure", "rpm_factor": True},
        {"fault": "heat_spike", "watts": 1e9},
        {"fault": "case_open", "duration_s": -5},
        {"fault": "case_open", "colour": "red"},
        {"fault": "sensor_failure", "sensor": {"x": 1}},
    ],
)
async def test_sim_fault_validation_is_422(client: httpx.AsyncClient, body: object) -> None:
    resp = await client.post("/v1/sim/faults", json=body)
    assert resp.status_code == 422, resp.text
    assert error_of(resp)["code"] == "invalid_request"


async def test_sim_value_validation_is_422(client: httpx.AsyncClient) -> None:
    for path, body in (
        ("/v1/sim/load", {"percent": 120}),
        ("/v1/sim/load", {"percent": "full"}),
        ("/v1/sim/ambient", {"celsius": 1000}),
        ("/v1/sim/ambient", {"kelvin": 300}),
    ):
        resp = await client.put(path, json=body)
        assert resp.status_code == 422, (path, body)
    resp = await client.delete("/v1/sim/faults", params={"fault": "gremlins"})
    assert resp.status_code == 422


async def test_sim_endpoints_are_404_without_the_sim_backend() -> None:
    async with running_metald(sim=False) as m:
        c = m.client()
        for method, path, body in (
            ("GET", "/v1/sim", None),
            ("PUT", "/v1/sim/load", {"percent": 50}),
            ("PUT", "/v1/sim/ambient", {"celsius": 20}),
            ("POST", "/v1/sim/faults", {"fault": "case_open"}),
            ("DELETE", "/v1/sim/faults", None),
        ):
            resp = await c.request(method, path, json=body)
            assert resp.status_code == 404, path
            assert error_of(resp)["message"] == (
                "simulation controls exist only with the sim backend"
            )


# ----------------------------------------------------------------------------- metrics

_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-z_]+="[^"]*",?)*\})? (\S+)$')


async def test_metrics_text_parses(client: httpx.AsyncClient) -> None:
    await client.get("/v1/state")
    await client.get("/v1/nope")
    resp = await client.get("/metrics")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples: dict[str, float] = {}
    typed: dict[str, str] = {}
    for line in resp.text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            typed[name] = kind
            continue
        if line.startswith("#"):
            assert line.startswith("# HELP ")
            continue
        match = _SAMPLE.match(line)
        assert match, line
        value = float(match.group(4))
        assert math.isfinite(value)
        samples[match.group(1) + (match.group(2) or "")] = value
    for gauge in (
        "wrale_cpu_temp_celsius",
        "wrale_fan_duty_percent",
        "wrale_fan_rpm",
        "wrale_throttled",
        "wrale_max_freq_percent",
        "wrale_power_watts",
        "wrale_supply_voltage_volts",
        "wrale_battery_percent",
        "wrale_on_battery",
        "wrale_tamper_lockdown",
        "wrale_case_open",
    ):
        assert typed[gauge] == "gauge"
        assert gauge in samples
    for absent in ("wrale_gpu_temp_celsius", "wrale_ambient_temp_celsius"):
        assert typed[absent] == "gauge"  # a Pi 5 without a HAT: declared, no sample, no fake 0
        assert absent not in samples
    assert typed["wrale_samples_total"] == "counter"
    assert typed["wrale_http_requests_total"] == "counter"
    assert samples["wrale_samples_total"] >= 1
    assert samples['wrale_http_requests_total{method="GET",code="200"}'] >= 1
    assert samples['wrale_http_requests_total{method="GET",code="404"}'] == 1
    assert samples["wrale_on_battery"] == 0


# ----------------------------------------------------------------------------- 500s


async def test_an_unexpected_handler_error_is_a_logged_500(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(core: object) -> dict[str, object]:
        raise RuntimeError("boom")

    async with running_metald(allow_500=True) as m:
        monkeypatch.setattr(api, "thermal", broken)
        m.server.routes = m.server._routes()  # pick up the patched view
        c = m.client()
        resp = await c.get("/v1/thermal")
        assert resp.status_code == 500
        assert error_of(resp)["code"] == "internal_error"
        assert "boom" not in resp.text  # no internals leak
        assert any(r.exc_info and r.exc_info[0] is RuntimeError for r in caplog.records)
        assert (await c.get("/v1/state")).status_code == 200  # the server lives on
