"""Database models: telemetry (being built)."""

from __future__ import annotations
