"""Routes of the central API: ws (being built)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
