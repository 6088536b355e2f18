"""The device channel's shared language: versioned messages, twin documents, backoff, and
the transports (WebSocket, MQTT, in-memory) that carry them. Pure or thin; no brain, no metal.
"""
