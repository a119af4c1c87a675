"""PostgreSQL connections with Electric's display settings, and the one shared working connection.

All database work of the fake (catalog reads, snapshots, change processing, rotation) runs on
one connection under one lock. Serialising it is what makes "a change committed after a
shape's snapshot is applied to that shape exactly once" easy to hold (see `consumer.py`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Final, TypeAlias

from psycopg import AsyncConnection, AsyncRawCursor

from electric_imitation.where import register_param_dumpers

Connection: TypeAlias = AsyncConnection[tuple[Any, ...]]

# Electric's `display_settings/0`: value text must not depend on the server's defaults.
DISPLAY_SETTINGS: Final = (
    "SET bytea_output = 'hex'",
    "SET DateStyle = 'ISO, DMY'",
    "SET TimeZone = 'UTC'",
    "SET extra_float_digits = 1",
    "SET IntervalStyle = 'iso_8601'",
)


async def connect(dsn: str) -> Connection:
    """An autocommit connection using `$n` placeholders (raw cursors) and display settings."""
    conn = await AsyncConnection.connect(dsn, autocommit=True)
    conn.cursor_factory = AsyncRawCursor
    for statement in DISPLAY_SETTINGS:
        await conn.execute(statement)
    register_param_dumpers(conn)
    return conn


class Database:
    """The working connection and the lock that serialises its use."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._lock = asyncio.Lock()

    @asynccontextmanager
    async def session(self) -> AsyncIterator[Connection]:
        async with self._lock:
            yield self._conn

    async def close(self) -> None:
        await self._conn.close()
