"""fleet: the device agent, state sync and the central brain."""
