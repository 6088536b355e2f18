"""Transports of the device channel: a ``Connection`` carries protocol messages, a ``Dialer``
opens one and does the Hello / Welcome handshake. WebSocket (default), MQTT, in-memory."""
