"""Wrale Fleet: physical-first management of fleets of Raspberry Pi-class boards."""

__version__ = "0.1.0"
