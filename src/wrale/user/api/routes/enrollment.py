"""Routes of the central API: enrollment (being built)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
