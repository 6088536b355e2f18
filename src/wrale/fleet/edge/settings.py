"""Settings of the edge agent (``wrale edge``, ``wrale device run``): env ``WRALE_EDGE_*``.

Layered like every process's settings (defaults < TOML < environment < flags) by
``wrale.shared.config.load_settings``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, ClassVar, Literal

from msgspec import Meta

from wrale.shared.config import Settings
from wrale.shared.structs import FieldError, Secret

CREDENTIALS_FILE = "credentials.json"
STORE_FILE = "edge.db"


class EdgeSettings(Settings, frozen=True):
    """What the agent needs besides its credential (``credentials.json`` in ``state_dir``)."""

    ENV_PREFIX: ClassVar[str] = "WRALE_EDGE_"

    # https://HOST[:PORT]; default: the one enrolled with
    central_url: str | None = None
    state_dir: Path = Path("./wrale-data/edge")
    # CA bundle of a private fleet
    ca_file: Path | None = None
    # allow ws:// to a non-loopback host
    insecure: bool = False
    mqtt_url: str | None = None
    # send the device secret in the MQTT hello (a legacy anonymous broker only); default:
    # unless the central said at enrollment that its broker authenticates devices
    mqtt_hello_secret: bool | None = None
    # HTTP or SOCKS proxy for the WebSocket (none by default)
    proxy_url: str | None = None
    metald_url: str = "http://127.0.0.1:8431"
    metald_api_key: Secret | None = None

    heartbeat_s: Annotated[float, Meta(ge=0.01, le=3600)] = 15.0  # status interval
    handshake_timeout_s: Annotated[float, Meta(gt=0, le=300)] = 10.0
    ack_timeout_s: Annotated[float, Meta(gt=0, le=3600)] = 60.0  # then resend
    backoff_base_s: Annotated[float, Meta(gt=0, le=3600)] = 1.0
    backoff_cap_s: Annotated[float, Meta(gt=0, le=86_400)] = 60.0
    # a session this long resets the backoff
    backoff_reset_s: Annotated[float, Meta(ge=0, le=86_400)] = 30.0
    # retry metald's event stream after this
    metal_retry_s: Annotated[float, Meta(gt=0, le=3600)] = 5.0
    # offline this long: AUTONOMOUS mode
    autonomous_after_s: Annotated[float, Meta(gt=0, le=30 * 86_400)] = 300.0

    outbox_max_rows: Annotated[int, Meta(ge=10, le=10_000_000)] = 50_000  # per stream
    # rows older than this are dropped; age counts the store's running time (a monotonic
    # clock saved across restarts), so a wall-clock jump drops nothing
    outbox_max_age_s: Annotated[float, Meta(gt=0, le=365 * 86_400)] = 7 * 86_400.0
    # telemetry is written to flash only after waiting this long for its ack (0: at once);
    # a power cut loses at most this much unacked telemetry (docs/architecture.md)
    outbox_persist_after_s: Annotated[float, Meta(ge=0, le=3600)] = 60.0
    # sequence numbers reserved on flash per write
    outbox_seq_block: Annotated[int, Meta(ge=1, le=100_000)] = 360
    drain_batches_per_s: Annotated[float, Meta(gt=0, le=10_000)] = 5.0
    # unacked batches in flight
    window_batches: Annotated[int, Meta(ge=1, le=1000)] = 4
    batch_max_points: Annotated[int, Meta(ge=1, le=10_000)] = 500
    batch_max_events: Annotated[int, Meta(ge=1, le=1000)] = 100
    # run the outbox's SQLite calls on the event loop instead of a thread: for many agents
    # in one process (the simulated fleet), where a thread hop per call costs more than the
    # call; a real board keeps them off the loop (a synchronous=FULL commit on an SD card
    # can take tens of ms)
    store_inline: bool = False

    # until the desired state says otherwise
    sampling_interval_s: Annotated[float, Meta(ge=0.01, le=3600)] = 1.0
    report_interval_s: Annotated[float, Meta(ge=0.01, le=3600)] = 10.0

    # let reboot / shutdown commands run the commands below
    power_commands: bool = False
    reboot_command: tuple[str, ...] = ("systemctl", "reboot")
    shutdown_command: tuple[str, ...] = ("systemctl", "poweroff")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    # jobs (docs/jobs.md): the argv prefixes this board runs, element by element, exactly;
    # anything else is refused with the reason. Empty: no process workload runs here.
    job_allow: tuple[tuple[str, ...], ...] = ()
    # how jobs run: "auto" (a transient systemd scope with CPUQuota= when the agent is a
    # systemd service and systemd-run can make one, else a plain child process), "system"
    # or "user" (only that manager's scopes), "off" (plain children: no CPU quota)
    job_scope: Literal["auto", "system", "user", "off"] = "auto"
    # CPU seconds and output of running jobs are reported at most this often
    job_report_s: Annotated[float, Meta(ge=0.01, le=3600)] = 30.0

    def check(self) -> None:
        if self.backoff_base_s > self.backoff_cap_s:
            raise ValueError("need backoff_base_s <= backoff_cap_s")
        if any(not prefix or not all(prefix) for prefix in self.job_allow):
            raise FieldError("job_allow", "every prefix is a non-empty list of non-empty strings")

    def credentials_path(self) -> Path:
        return self.state_dir / CREDENTIALS_FILE

    def store_path(self) -> Path:
        return self.state_dir / STORE_FILE
