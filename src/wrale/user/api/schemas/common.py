"""Schemas every area shares: pages of items and small helpers."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, model_validator

from wrale.user.api.deps import PageParams, encode_cursor

T = TypeVar("T")


class Strict(BaseModel):
    """Request bodies refuse unknown fields, and NUL characters anywhere in their text
    (PostgreSQL cannot store them; no name or note needs one)."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _no_nul(cls, data: Any) -> Any:
        if has_nul(data):
            raise ValueError("text must not contain NUL (\\u0000) characters")
        return data


def has_nul(value: Any, depth: int = 0) -> bool:
    """Whether a decoded JSON value holds a NUL character in any string or key."""
    if isinstance(value, str):
        return "\x00" in value
    if depth > 32:
        return False
    if isinstance(value, dict):
        return any(has_nul(k, depth + 1) or has_nul(v, depth + 1) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(has_nul(v, depth + 1) for v in value)
    return False


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = None


def page_of(rows: Sequence[Any], params: PageParams, view: Callable[[Any], T]) -> Page[T]:
    """A page from ``limit + 1`` rows fetched in order: the extra row says there is more."""
    items = list(rows[: params.limit])
    more = len(rows) > params.limit
    return Page[T](
        items=[view(r) for r in items],
        next_cursor=encode_cursor(items[-1].id) if more and items else None,
    )
