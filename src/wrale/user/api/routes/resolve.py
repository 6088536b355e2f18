"""``/resolve``: the one object a name, a full id or a unique id prefix or suffix names
(404 none, 409 several with ``details.candidates``), and ``/resolve/short-ids``: how many
trailing id digits tell a kind's objects apart. Each kind keeps the role that lists it."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from wrale.fleet.brain.services import resolve as svc
from wrale.user.api.deps import PrincipalDep, SessionDep

router = APIRouter(tags=["resolve"])

KindQ = Annotated[
    str,
    Query(
        max_length=40,
        description="the kind of object (another is a 422)",
        json_schema_extra={"enum": sorted(svc.KINDS)},
    ),
]


class ResolvedPublic(BaseModel):
    kind: str
    id: str = Field(description="the full id")
    name: str | None = Field(description="its name (or a short label for unnamed kinds)")


class ShortIds(BaseModel):
    kind: str
    length: int = Field(
        description="trailing hex digits of an id that resolve back to that object alone"
    )


@router.get("/resolve")
async def resolve(
    p: PrincipalDep,
    session: SessionDep,
    kind: KindQ,
    ref: Annotated[
        str, Query(max_length=svc.REF_MAX, description="a name, full id, or id prefix/suffix")
    ],
) -> ResolvedPublic:
    r = await svc.resolve(session, p, kind, ref)
    return ResolvedPublic(kind=r.kind, id=r.id, name=r.name)


@router.get("/resolve/short-ids")
async def short_ids(p: PrincipalDep, session: SessionDep, kind: KindQ) -> ShortIds:
    return ShortIds(kind=kind, length=await svc.short_length(session, p, kind))
