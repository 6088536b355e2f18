"""The device's agent: store-and-forward of telemetry and events, the twin (desired state
applied through metal's safety checks), commands, and offline autonomy. Talks to the board
only through ``MetalClient`` and to the central server only through a ``Dialer``."""
