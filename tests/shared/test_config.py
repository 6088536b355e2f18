"""Settings layering: defaults < TOML < environment < flags, with errors that name the setting."""

from __future__ import annotations

from pathlib import Path

import pytest

from wrale.shared.clock import FakeClock, ScaledClock
from wrale.shared.config import DEV_API_KEY, BackendName, MetalSettings, load_settings
from wrale.shared.errors import ConfigError
from wrale.shared.policy import FanProfile


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for key in list(os.environ):
        if key.startswith("WRALE_"):
            monkeypatch.delenv(key)


def test_layers_in_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    toml = tmp_path / "metald.toml"
    toml.write_text(
        'backend = "sim"\nlisten = "0.0.0.0:9000"\ndevice_name = "from-file"\n'
        '[thermal]\nprofile = "quiet"\n[sim]\nspeed = 5\nambient_c = 30\n'
    )
    s = load_settings(MetalSettings, config_file=toml)
    assert (s.backend, s.listen, s.thermal.profile) == (BackendName.SIM, "0.0.0.0:9000", "quiet")
    monkeypatch.setenv("WRALE_METAL_LISTEN", "127.0.0.1:9001")
    monkeypatch.setenv("WRALE_METAL_THERMAL__PROFILE", "cool")
    s = load_settings(MetalSettings, config_file=toml)
    assert s.listen == "127.0.0.1:9001"
    assert s.thermal.profile is FanProfile.COOL
    s = load_settings(
        MetalSettings, config_file=toml, flags={"listen": "127.0.0.1:9002", "sim": {"speed": 60}}
    )
    assert s.listen == "127.0.0.1:9002"
    assert s.sim.speed == 60
    assert s.sim.ambient_c == 30
    assert s.device_name == "from-file"


@pytest.mark.parametrize(
    ("env", "value", "named"),
    [
        ("WRALE_METAL_LISTEN", "nowhere", "listen"),
        ("WRALE_METAL_SAMPLE_INTERVAL_S", "0", "sample_interval_s"),
        ("WRALE_METAL_BACKEND", "quantum", "backend"),
        ("WRALE_METAL_SIM__SPEED", "-1", "sim.speed"),
    ],
)
def test_invalid_value_names_the_setting(
    monkeypatch: pytest.MonkeyPatch, env: str, value: str, named: str
) -> None:
    monkeypatch.setenv(env, value)
    with pytest.raises(ConfigError, match=f"setting '{named}'"):
        load_settings(MetalSettings)


def test_unknown_key_and_bad_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("fan_speed = 3\n")
    with pytest.raises(ConfigError, match="fan_speed"):
        load_settings(MetalSettings, config_file=bad)
    bad.write_text("this is = not toml [")
    with pytest.raises(ConfigError, match="cannot be read"):
        load_settings(MetalSettings, config_file=bad)
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(MetalSettings, config_file=tmp_path / "missing.toml")


def test_api_key_rules() -> None:
    with pytest.raises(ConfigError, match="only with --dev"):
        load_settings(MetalSettings).effective_api_key()
    assert load_settings(MetalSettings, flags={"dev": True}).effective_api_key() == DEV_API_KEY
    with pytest.raises(ConfigError, match="only with --dev"):
        load_settings(MetalSettings, flags={"api_key": DEV_API_KEY}).effective_api_key()
    with pytest.raises(ConfigError, match="16"):
        load_settings(MetalSettings, flags={"api_key": "short"}).effective_api_key()
    key = "k" * 32
    assert load_settings(MetalSettings, flags={"api_key": key}).effective_api_key() == key


async def test_clocks() -> None:
    fake = FakeClock(start=100.0)
    await fake.sleep(5)
    assert fake.now() == 105.0
    assert fake.monotonic() == 5.0
    with pytest.raises(ValueError, match="back"):
        fake.advance(-1)
    scaled = ScaledClock(60.0, base=fake)
    fake.advance(2)
    assert scaled.monotonic() == pytest.approx(120.0)
    assert scaled.now() == pytest.approx(105.0 + 120.0)


def test_power_supply_names_are_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WRALE_METAL_LINUX__POWER_SUPPLIES", '{"mains": "AC"}')
    with pytest.raises(ConfigError, match=r"linux\.power_supplies"):
        load_settings(MetalSettings)


def test_secret_key_is_at_least_32_bytes_outside_development() -> None:
    from wrale.shared.central_settings import CentralSettings

    with pytest.raises(ConfigError, match="WRALE_SECRET_KEY") as err:
        load_settings(CentralSettings, environ={"WRALE_SECRET_KEY": "short-key"})
    assert "32 bytes" in err.value.message
    with pytest.raises(ConfigError, match="WRALE_SECRET_KEY"):
        load_settings(CentralSettings, environ={"WRALE_SECRET_KEY": "é" * 15})  # 30 bytes
    ok = load_settings(CentralSettings, environ={"WRALE_SECRET_KEY": "k" * 32})
    assert ok.secret_key is not None
    dev = load_settings(CentralSettings, environ={"WRALE_SECRET_KEY": "dev", "WRALE_DEV": "1"})
    assert dev.dev
    assert load_settings(CentralSettings, environ={}).secret_key is None  # one is generated
