"""Building an agent's parts from its settings and credential (for the entry points:
``wrale edge``, ``wrale device run``, ``wrale sim``)."""

from __future__ import annotations

from wrale.fleet.edge.credentials import Credentials
from wrale.fleet.edge.settings import EdgeSettings
from wrale.fleet.edge.store import EdgeStore
from wrale.fleet.sync.transport.base import Dialer


def make_dialer(settings: EdgeSettings, creds: Credentials) -> Dialer:
    """MQTT when ``settings.mqtt_url`` is set, else a WebSocket to ``settings.central_url``
    (default: the URL the device enrolled with). ``ConfigError`` for a plain-text URL to
    another machine without ``settings.insecure``."""
    if settings.mqtt_url:
        from wrale.fleet.sync.transport.mqtt import MqttDialer

        return MqttDialer(
            settings.mqtt_url,
            creds.device_id,
            creds.secret,
            ca_file=settings.ca_file,
            insecure=settings.insecure,
            handshake_timeout_s=settings.handshake_timeout_s,
            hello_secret=(
                not creds.mqtt_broker_auth
                if settings.mqtt_hello_secret is None
                else settings.mqtt_hello_secret
            ),
        )
    from wrale.fleet.sync.transport.websocket import WebSocketDialer

    return WebSocketDialer(
        settings.central_url or creds.central_url,
        creds.device_id,
        creds.secret,
        ca_file=settings.ca_file,
        insecure=settings.insecure,
        handshake_timeout_s=settings.handshake_timeout_s,
        proxy=settings.proxy_url,
    )


def open_store(settings: EdgeSettings) -> EdgeStore:
    """The agent's store at ``<state_dir>/edge.db`` with the configured outbox bounds.

    A board's store holds telemetry in memory until it has waited
    ``outbox_persist_after_s`` for its ack (see docs/architecture.md, "Storage wear on the
    board"); 0: every row is committed at once."""
    return EdgeStore(
        settings.store_path(),
        max_rows=settings.outbox_max_rows,
        max_age_s=settings.outbox_max_age_s,
        persist_after_s=settings.outbox_persist_after_s or None,
        seq_block=settings.outbox_seq_block,
    )
