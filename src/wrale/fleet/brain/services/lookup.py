"""Finding one row of a tenant: another tenant's row, or an id that cannot be one, is
"not found" (404), never "forbidden", so nothing leaks whether it exists."""

from __future__ import annotations

import re
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from wrale.fleet.brain.models import Base
from wrale.shared.errors import NotFoundError

M = TypeVar("M", bound=Base)
_ID = re.compile(r"^[0-9a-f]{1,32}$")


async def get_owned(
    session: AsyncSession, model: type[M], tenant_id: str, obj_id: str, what: str
) -> M:
    """The ``model`` row ``obj_id`` of ``tenant_id``, or ``NotFoundError`` naming ``what``."""
    row = await session.get(model, obj_id) if _ID.match(obj_id) else None
    if row is None or getattr(row, "tenant_id", None) != tenant_id:
        raise NotFoundError(f"no {what} {obj_id}", **{f"{what.replace(' ', '_')}_id": obj_id})
    return row
