"""Schemas every area shares: pages of items and small helpers."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict
from sqlalchemy import Select
from sqlalchemy.ext.asyncio import AsyncSession

from wrale.user.api.deps import PageParams, encode_cursor

T = TypeVar("T")


class Strict(BaseModel):
    """Request bodies refuse unknown fields."""

    model_config = ConfigDict(extra="forbid")


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = None


async def fetch_page(
    session: AsyncSession, stmt: Select[Any], id_column: Any, page: PageParams
) -> Sequence[Any]:
    """``limit + 1`` rows of ``stmt`` after the cursor, in id order (for ``page_of``)."""
    if page.after:
        stmt = stmt.where(id_column > page.after)
    return (await session.scalars(stmt.order_by(id_column).limit(page.limit + 1))).all()


def page_of(rows: Sequence[Any], params: PageParams, view: Callable[[Any], T]) -> Page[T]:
    """A page from ``limit + 1`` rows fetched in order: the extra row says there is more."""
    items = list(rows[: params.limit])
    more = len(rows) > params.limit
    return Page[T](
        items=[view(r) for r in items],
        next_cursor=encode_cursor(items[-1].id) if more and items else None,
    )
