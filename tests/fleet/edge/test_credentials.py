"""The device credential file and enrollment against the real central API (in process)."""

from __future__ import annotations

import stat
from pathlib import Path

import httpx
import pytest

from tests.conftest import Central
from wrale.fleet.edge.credentials import Credentials, enroll
from wrale.shared.errors import AuthError, ConfigError, InvalidRequestError


def test_credentials_are_written_atomically_and_readable_by_the_owner_only(
    tmp_path: Path,
) -> None:
    path = tmp_path / "state" / "credentials.json"
    creds = Credentials("https://c.example", "d1", "wds_secret", name="rack1-01")
    creds.save(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert Credentials.load(path) == creds
    assert "wds_secret" not in repr(creds)
    Credentials("https://c.example", "d1", "wds_other").save(path)  # replaced whole
    assert Credentials.load(path).secret == "wds_other"
    assert [p.name for p in path.parent.iterdir()] == ["credentials.json"]


def test_a_missing_or_broken_credential_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="wrale enroll"):
        Credentials.load(tmp_path / "credentials.json")
    (tmp_path / "credentials.json").write_text("{not json")
    with pytest.raises(ConfigError, match="cannot be read"):
        Credentials.load(tmp_path / "credentials.json")
    (tmp_path / "credentials.json").write_text('{"device_id": "d"}')
    with pytest.raises(ConfigError, match="lacks"):
        Credentials.load(tmp_path / "credentials.json")


async def test_enroll_trades_a_token_for_the_devices_own_credential(central: Central) -> None:
    r = await central.http.post(
        "/api/v1/enrollment-tokens", headers=central.admin, json={"name": "rack 1"}
    )
    token = r.json()["token"]
    transport = httpx.ASGITransport(app=central.app)
    creds = await enroll(
        "http://central",
        token,
        name="rack1-01",
        model="Raspberry Pi 5",
        capabilities=["sim"],
        insecure=True,  # an in-process server has no TLS
        transport=transport,
    )
    assert creds.central_url == "http://central"
    assert creds.name == "rack1-01"
    assert creds.secret
    device = await central.http.get(f"/api/v1/devices/{creds.device_id}", headers=central.admin)
    assert device.status_code == 200
    assert device.json()["name"] == "rack1-01"

    with pytest.raises(AuthError, match="refused"):  # single use: spent
        await enroll("http://central", token, insecure=True, transport=transport)
    with pytest.raises(InvalidRequestError):
        await enroll("http://central", "x", tags=["bad tag!"], insecure=True, transport=transport)


async def test_enroll_refuses_plain_text_to_another_machine() -> None:
    with pytest.raises(ConfigError, match="not encrypted"):
        await enroll("http://central.example", "wet_token")
