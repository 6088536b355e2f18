"""The dashboard's overview page (being built)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from wrale.user.ui.web import ViewerDep, render

router = APIRouter(include_in_schema=False)


@router.get("/")
async def overview(request: Request, viewer: ViewerDep) -> Response:
    return render(request, "overview/index.html", {})
