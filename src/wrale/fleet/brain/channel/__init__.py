"""The central end of the device channel: sessions (``session``: delivery to the device;
``frames``: what the device sends; ``session_rows``: the session's row; ``ingest``: storing
telemetry and events; ``context``: what a session is given), what may end or refuse
them (``checks``), this replica's live sessions and pushes (``hub``), device events
(``events``), the alerts the channel raises itself (``alerts``), offline detection and
retention (``offline``), quarantine (``quarantine``) and the MQTT bridge (``mqtt_bridge``).

Transports decode frames with ``fleet.sync.protocol`` and hand messages to a
``DeviceSession``: the WebSocket route (``user.api.routes.edge``) and the MQTT bridge.
"""
