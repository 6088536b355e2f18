"""Settings of the edge agent (``wrale edge``, ``wrale device run``): env ``WRALE_EDGE_*``.

Layered like every process's settings (defaults < TOML < environment < flags) by
``wrale.shared.config.load_settings``.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field, SecretStr, model_validator

from wrale.shared.config import Settings

CREDENTIALS_FILE = "credentials.json"
STORE_FILE = "edge.db"


class EdgeSettings(Settings):
    """What the agent needs besides its credential (``credentials.json`` in ``state_dir``)."""

    ENV_PREFIX: ClassVar[str] = "WRALE_EDGE_"

    central_url: str | None = Field(
        default=None, description="https://HOST[:PORT]; default: the one enrolled with"
    )
    state_dir: Path = Path("./wrale-data/edge")
    ca_file: Path | None = Field(default=None, description="CA bundle of a private fleet")
    insecure: bool = Field(default=False, description="allow ws:// to a non-loopback host")
    mqtt_url: str | None = None
    mqtt_hello_secret: bool | None = Field(
        default=None,
        description="send the device secret in the MQTT hello (a legacy anonymous broker "
        "only); default: unless the central said at enrollment that its broker "
        "authenticates devices",
    )
    proxy_url: str | None = Field(
        default=None, description="HTTP or SOCKS proxy for the WebSocket (none by default)"
    )
    metald_url: str = "http://127.0.0.1:8421"
    metald_api_key: SecretStr | None = None

    heartbeat_s: float = Field(default=15.0, ge=0.01, le=3600, description="status interval")
    handshake_timeout_s: float = Field(default=10.0, gt=0, le=300)
    ack_timeout_s: float = Field(default=60.0, gt=0, le=3600, description="then resend")
    backoff_base_s: float = Field(default=1.0, gt=0, le=3600)
    backoff_cap_s: float = Field(default=60.0, gt=0, le=86_400)
    backoff_reset_s: float = Field(
        default=30.0, ge=0, le=86_400, description="a session this long resets the backoff"
    )
    metal_retry_s: float = Field(
        default=5.0, gt=0, le=3600, description="retry metald's event stream after this"
    )
    autonomous_after_s: float = Field(
        default=300.0, gt=0, le=30 * 86_400, description="offline this long: AUTONOMOUS mode"
    )

    outbox_max_rows: int = Field(default=50_000, ge=10, le=10_000_000, description="per stream")
    outbox_max_age_s: float = Field(default=7 * 86_400.0, gt=0, le=365 * 86_400)
    drain_batches_per_s: float = Field(default=5.0, gt=0, le=10_000)
    window_batches: int = Field(default=4, ge=1, le=1000, description="unacked batches in flight")
    batch_max_points: int = Field(default=500, ge=1, le=10_000)
    batch_max_events: int = Field(default=100, ge=1, le=1000)
    store_inline: bool = Field(
        default=False,
        description="run the outbox's SQLite calls on the event loop instead of a thread: "
        "for many agents in one process (the simulated fleet), where a thread hop per call "
        "costs more than the call; a real board keeps them off the loop (a synchronous=FULL "
        "commit on an SD card can take tens of ms)",
    )

    sampling_interval_s: float = Field(default=1.0, ge=0.01, le=3600, description="until desired")
    report_interval_s: float = Field(default=10.0, ge=0.01, le=3600, description="until desired")

    power_commands: bool = Field(
        default=False, description="let reboot / shutdown commands run the commands below"
    )
    reboot_command: tuple[str, ...] = ("systemctl", "reboot")
    shutdown_command: tuple[str, ...] = ("systemctl", "poweroff")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @model_validator(mode="after")
    def _ordered(self) -> EdgeSettings:
        if self.backoff_base_s > self.backoff_cap_s:
            raise ValueError("need backoff_base_s <= backoff_cap_s")
        return self

    def credentials_path(self) -> Path:
        return self.state_dir / CREDENTIALS_FILE

    def store_path(self) -> Path:
        return self.state_dir / STORE_FILE
