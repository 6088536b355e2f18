"""A telemetry batch's points held in columns: what a decoded batch costs while it waits to
be stored.

As Python tuples a point costs about 100 bytes (the tuple, its value's float object, the
list's slot) and a board's 170-point report ~16 KiB; the central holds one such batch per
connected board, and more after a reconnect, in its receive buffers and group commit.
Here a point is 17 bytes: its metric as an index into the batch's distinct names, its
timestamp and value as C doubles. It reads as the same sequence of ``(metric, ts, value)``
tuples (made as they are iterated), compares equal to a list of them and encodes to the
same JSON.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, overload

Point = tuple[str, float, float]


class Points(Sequence[Point]):
    """Immutable ``(metric, ts, value)`` points in columns (metric index, ts, value)."""

    __slots__ = ("_idx", "_names", "_ts", "_values")

    def __init__(self, points: Iterable[Point] = ()) -> None:
        index: dict[str, int] = {}
        names: list[str] = []
        idx: list[int] = []
        ts: list[float] = []
        values: list[float] = []
        for metric, at, value in points:
            i = index.get(metric)
            if i is None:
                i = index[metric] = len(names)
                names.append(metric)
            idx.append(i)
            ts.append(at)
            values.append(value)
        self._names = tuple(names)
        # made whole from the lists: exactly sized (appending over-allocates)
        self._idx = array("H", idx)  # ≤ 65,536 distinct metrics a batch (a frame: 10,000 points)
        self._ts = array("d", ts)
        self._values = array("d", values)

    def __len__(self) -> int:
        return len(self._values)

    def __iter__(self) -> Iterator[Point]:
        return zip(map(self._names.__getitem__, self._idx), self._ts, self._values, strict=True)

    @overload
    def __getitem__(self, i: int) -> Point: ...

    @overload
    def __getitem__(self, i: slice) -> Points: ...

    def __getitem__(self, i: int | slice) -> Point | Points:
        if isinstance(i, slice):
            return Points(list(self)[i])
        return (self._names[self._idx[i]], self._ts[i], self._values[i])

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Points | list | tuple):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # like the list it stands for

    def __repr__(self) -> str:
        return f"Points({list(self)!r})"

    def to_json(self) -> list[list[Any]]:
        """``[[metric, ts, value], ...]`` as a frame carries them."""
        return [[m, t, v] for m, t, v in self]

    @property
    def names(self) -> Sequence[str]:
        """The batch's distinct metric names."""
        return self._names
