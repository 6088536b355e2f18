"""Database models: groups (being built)."""

from __future__ import annotations
