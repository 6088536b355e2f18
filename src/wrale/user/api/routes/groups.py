"""Routes of the central API: groups (being built)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
