"""Database models: policies (being built)."""

from __future__ import annotations
