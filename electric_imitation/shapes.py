"""Shapes: their identity (definition and handle), their log, and the registry of live ones.

A shape's log is its snapshot (chunks `0_0`, `0_1`, ... ending with `snapshot-end`) followed by
the changes appended after it (`<lsn>_<op>`). Requests read ranges of it; waiters are woken
through the shape's `Signal` when it grows or is rotated.
"""

from __future__ import annotations

import asyncio
import bisect
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field

from electric_imitation.catalog import Table
from electric_imitation.chunks import Chunker
from electric_imitation.offsets import SNAPSHOT_END, LogOffset
from electric_imitation.params import LogMode, Replica


@dataclass(frozen=True, slots=True)
class ShapeDefinition:
    """Everything that makes two requests the same shape (and so the same handle)."""

    schema: str
    table: str
    where: str | None
    where_sql: str | None  # the where rebuilt from its parse tree, as PostgreSQL runs it
    params: tuple[tuple[str, str], ...]
    columns: tuple[str, ...] | None
    queryable_columns: tuple[str, ...] | None
    replica: Replica
    log: LogMode

    @property
    def relation(self) -> tuple[str, str]:
        return (self.schema, self.table)

    @property
    def params_map(self) -> dict[str, str]:
        return dict(self.params)

    def hash27(self) -> int:
        """A stable 27-bit hash, the range of Erlang's `phash2` that Electric's handles use."""
        return zlib.crc32(repr(self).encode()) % (1 << 27)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The initial data: chunks of encoded messages plus the PostgreSQL snapshot it saw."""

    chunks: tuple[tuple[str, ...], ...]
    xmin: int
    xmax: int
    xip: frozenset[int]

    def is_visible(self, xid8: int) -> bool:
        """Whether the transaction is already inside this snapshot (`visible_in_snapshot?/2`)."""
        if xid8 < self.xmin:
            return True
        if xid8 >= self.xmax:
            return False
        return xid8 not in self.xip


class Signal:
    """Wakes every current waiter on `fire()`; a waiter that times out leaves it untouched."""

    def __init__(self) -> None:
        self._future: asyncio.Future[None] | None = None

    def waiter(self) -> asyncio.Future[None]:
        if self._future is None or self._future.done():
            self._future = asyncio.get_running_loop().create_future()
        return self._future

    def fire(self) -> None:
        if self._future is not None and not self._future.done():
            self._future.set_result(None)
        self._future = None


@dataclass(eq=False)
class Shape:
    """One materialised shape: handle, table metadata, snapshot and the change log after it."""

    handle: str
    definition: ShapeDefinition
    table: Table
    selected: tuple[str, ...]
    snapshot: Snapshot
    chunker: Chunker
    log_offsets: list[LogOffset] = field(default_factory=list)
    log_messages: list[str] = field(default_factory=list)
    chunk_ends: list[int] = field(default_factory=list)  # log indices that close a chunk
    rotated_to: str | None = None
    removed: bool = False
    signal: Signal = field(default_factory=Signal)

    @property
    def pk(self) -> tuple[str, ...]:
        return self.table.pk

    @property
    def last_offset(self) -> LogOffset:
        return self.log_offsets[-1] if self.log_offsets else SNAPSHOT_END

    @property
    def last_chunk(self) -> int:
        return len(self.snapshot.chunks) - 1

    def append(self, entries: Sequence[tuple[LogOffset, str]]) -> None:
        """Add changes (offsets strictly increasing) and wake the waiters."""
        for offset, message in entries:
            assert offset > self.last_offset, "shape log offsets must increase"
            self.log_offsets.append(offset)
            self.log_messages.append(message)
            if self.chunker.closes_chunk(message):
                self.chunk_ends.append(len(self.log_messages) - 1)
        if entries:
            self.signal.fire()

    def retire(self, successor: str | None) -> None:
        """Mark the shape gone (rotated or deleted) and wake its waiters so they answer 409."""
        self.removed = True
        self.rotated_to = successor
        self.signal.fire()

    def chunk_end(self, offset: LogOffset) -> LogOffset | None:
        """End of the chunk served for a request at `offset`, or None when nothing follows it."""
        if offset.is_before_all:
            return LogOffset(0, 0)
        if offset.tx == 0 and offset.op is not None and offset.op < self.last_chunk:
            return LogOffset(0, offset.op + 1)
        start = self._first_after(offset)
        if start >= len(self.log_offsets):
            return None
        # Chunk boundaries sit at fixed positions of the log, so chunk URLs stay cacheable.
        boundary = bisect.bisect_left(self.chunk_ends, start)
        end = self.chunk_ends[boundary] if boundary < len(self.chunk_ends) else -1
        return self.log_offsets[end]

    def read(self, since: LogOffset, up_to: LogOffset) -> list[str]:
        """Messages after `since` up to and including `up_to`."""
        if since.is_before_all:
            return list(self.snapshot.chunks[0])
        in_snapshot = since.tx == 0 and since.op is not None and since.op < self.last_chunk
        if in_snapshot and up_to.tx == 0 and up_to.op is not None:
            return list(self.snapshot.chunks[up_to.op])
        start = self._first_after(since)
        end = bisect.bisect_right(self.log_offsets, up_to) if up_to.tx > 0 else 0
        return self.log_messages[start:end]

    def _first_after(self, offset: LogOffset) -> int:
        if offset.tx == 0:
            return 0
        return bisect.bisect_right(self.log_offsets, offset)


class ShapeRegistry:
    """The live shapes by definition and by handle; retired shapes are forgotten."""

    def __init__(self, *, handle_digits: int = 16) -> None:
        self._by_definition: dict[ShapeDefinition, Shape] = {}
        self._by_handle: dict[str, Shape] = {}
        self._unit_ns = 1000 if handle_digits >= 16 else 1_000_000
        self._last_time = 0

    def __len__(self) -> int:
        return len(self._by_handle)

    def all(self) -> list[Shape]:
        return list(self._by_handle.values())

    def get(self, definition: ShapeDefinition) -> Shape | None:
        return self._by_definition.get(definition)

    def by_handle(self, handle: str) -> Shape | None:
        return self._by_handle.get(handle)

    def for_table(self, schema: str, table: str) -> list[Shape]:
        return [s for s in self._by_handle.values() if s.definition.relation == (schema, table)]

    def new_handle(self, definition: ShapeDefinition) -> str:
        """`<hash>-<unix time>` like `Shape.generate_id/1` (µs, or ms for 1.0.10), the time
        kept strictly increasing so two shapes never share a handle."""
        now = max(time.time_ns() // self._unit_ns, self._last_time + 1)
        self._last_time = now
        return f"{definition.hash27()}-{now}"

    def add(self, shape: Shape) -> None:
        self._by_definition[shape.definition] = shape
        self._by_handle[shape.handle] = shape

    def remove(self, shape: Shape, successor: str | None = None) -> None:
        if self._by_definition.get(shape.definition) is shape:
            del self._by_definition[shape.definition]
        self._by_handle.pop(shape.handle, None)
        shape.retire(successor)
