"""Notification channels through the API: a webhook aimed at an internal address is a 422
naming the address class; the URL and header values are secrets nobody reads back (not in
the channel, the list, nor the audit log).

On SQLite only: the address checks are not SQL, and the channels' routes (create, change,
list, tenants, audit without secrets) run on both databases in ``test_alerts_api.py``."""

from __future__ import annotations

import json

import pytest

from tests.conftest import Central

pytestmark = pytest.mark.parametrize("database", ["sqlite"], indirect=True)

API = "/api/v1"


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://169.254.169.254/latest/meta-data/", "link-local (cloud metadata)"),
        ("http://127.0.0.1:5432/", "loopback"),
        ("http://10.0.0.5/hook", "private"),
        ("http://[fd00::5]/hook", "private"),
        ("http://[::ffff:127.0.0.1]:8080/", "IPv4-mapped loopback"),
        ("http://224.0.0.1/", "multicast"),
        ("http://0.0.0.0:8080/", "unspecified"),
    ],
)
async def test_internal_addresses_are_a_422(central: Central, url: str, why: str) -> None:
    body = {"name": "x", "type": "webhook", "config": {"url": url}}
    r = await central.http.post(f"{API}/notification-channels", headers=central.admin, json=body)
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == "invalid_request"
    assert f"is a {why} address" in error["message"]
    assert "webhook_allowed_hosts" in error["message"]
    ok = {"name": "ok", "type": "webhook", "config": {"url": "http://93.184.215.14/"}}
    r = await central.http.post(f"{API}/notification-channels", headers=central.admin, json=ok)
    assert r.status_code == 201, r.text
    r = await central.http.patch(
        f"{API}/notification-channels/{r.json()['id']}",
        headers=central.admin,
        json={"config": {"url": url}},
    )
    assert r.status_code == 422, r.text
    assert f"is a {why} address" in r.json()["error"]["message"]


async def test_webhook_url_and_headers_are_never_shown(central: Central) -> None:
    body = {
        "name": "chat",
        "type": "webhook",
        "config": {
            "url": "https://user:pw@hooks.example:8443/services/T0KEN-PATH?sig=QUERY-SECRET",
            "headers": {"Authorization": "Bearer HEADER-SECRET"},
            "secret": "SIGNING-SECRET",
        },
    }
    r = await central.http.post(f"{API}/notification-channels", headers=central.admin, json=body)
    assert r.status_code == 201, r.text
    ch = r.json()
    assert ch["config"]["url"] == "https://hooks.example:8443/…"
    assert ch["config"]["header_names"] == ["Authorization"]
    assert ch["config"]["has_secret"] is True
    url = f"{API}/notification-channels/{ch['id']}"
    # a change of URL keeps the headers and the secret nobody can read back
    r = await central.http.patch(
        url, headers=central.admin, json={"config": {"url": "https://hooks.example/NEW-PATH"}}
    )
    assert r.status_code == 200, r.text
    assert r.json()["config"]["header_names"] == ["Authorization"]
    seen = [
        (await central.http.get(url, headers=central.admin)).text,
        (await central.http.get(f"{API}/notification-channels", headers=central.admin)).text,
        (await central.http.get(f"{API}/audit", headers=central.admin)).text,
        r.text,
        json.dumps(ch),
    ]
    for text in seen:
        for secret in (
            "T0KEN-PATH",
            "QUERY-SECRET",
            "HEADER-SECRET",
            "SIGNING-SECRET",
            "NEW-PATH",
            "user:pw",
        ):
            assert secret not in text
    audit = (await central.http.get(f"{API}/audit", headers=central.admin)).json()
    actions = [e["action"] for e in audit["items"]]
    assert "notification_channel.create" in actions
    assert "notification_channel.update" in actions
