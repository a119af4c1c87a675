"""Change capture: a trigger copies every row change into `electric_fake.changes` and NOTIFYs.

This stands in for Electric's logical replication. The NOTIFY payload is the writing
transaction's id; PostgreSQL delivers notifications at commit, in commit order, so reading the
rows of each notified transaction gives the changes in the order a replication slot would.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final

import psycopg
from psycopg import sql

from electric_imitation.catalog import Table
from electric_imitation.db import Connection, connect

CHANNEL: Final = "electric_fake_changes"
TRIGGER: Final = "electric_fake_capture"
TRUNCATE_TRIGGER: Final = "electric_fake_capture_truncate"
_SETUP_LOCK: Final = 0x454C4543  # advisory lock key: concurrent fakes must not race the DDL

_SETUP: Final = (
    "CREATE SCHEMA IF NOT EXISTS electric_fake",
    """CREATE TABLE IF NOT EXISTS electric_fake.changes (
         id bigserial PRIMARY KEY,
         txid bigint NOT NULL,
         op text NOT NULL,
         schema_name text NOT NULL,
         table_name text NOT NULL,
         old_row json,
         new_row json,
         created_at timestamptz NOT NULL DEFAULT now()
       )""",
    "CREATE INDEX IF NOT EXISTS changes_txid ON electric_fake.changes (txid)",
    # to_json keeps json columns' text verbatim and every other value in a form its type reads
    # back exactly, so the row can be rebuilt through the table's row type later.
    """CREATE OR REPLACE FUNCTION electric_fake.capture() RETURNS trigger
       LANGUAGE plpgsql AS $fn$
       DECLARE
         xid bigint := pg_current_xact_id()::text::bigint;
       BEGIN
         INSERT INTO electric_fake.changes (txid, op, schema_name, table_name, old_row, new_row)
         VALUES (xid, TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME,
                 CASE WHEN TG_OP IN ('UPDATE', 'DELETE') THEN to_json(OLD) END,
                 CASE WHEN TG_OP IN ('INSERT', 'UPDATE') THEN to_json(NEW) END);
         PERFORM pg_notify('electric_fake_changes', xid::text);
         RETURN NULL;
       END
       $fn$""",
    # Old rows are only needed until every running fake has read them.
    "DELETE FROM electric_fake.changes WHERE created_at < now() - interval '1 hour'",
)

_HAS_TRIGGER: Final = (
    "SELECT count(*) FROM pg_catalog.pg_trigger "
    "WHERE tgrelid = $1::oid AND tgname = ANY($2::text[])"
)

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CapturedChange:
    """One row of `electric_fake.changes`: rows are JSON text as the trigger wrote them."""

    op: str
    schema: str
    table: str
    old_row: str | None
    new_row: str | None


async def prepare_capture(conn: Connection) -> None:
    """Create the capture schema, table and function once (idempotent, safe concurrently)."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", [_SETUP_LOCK])
        for statement in _SETUP:
            await conn.execute(statement)


async def install_trigger(conn: Connection, table: Table) -> None:
    """Attach the capture triggers to `table` unless they are already there."""
    cursor = await conn.execute(_HAS_TRIGGER, [table.oid, [TRIGGER, TRUNCATE_TRIGGER]])
    row = await cursor.fetchone()
    if row is not None and row[0] == 2:
        return
    target = sql.Identifier(table.schema, table.name)
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", [_SETUP_LOCK])
        # Do not wait forever behind a test's open transaction on the table.
        await conn.execute("SET LOCAL lock_timeout = '5s'")
        await conn.execute(
            sql.SQL(
                "CREATE OR REPLACE TRIGGER {} AFTER INSERT OR UPDATE OR DELETE ON {} "
                "FOR EACH ROW EXECUTE FUNCTION electric_fake.capture()"
            ).format(sql.Identifier(TRIGGER), target)
        )
        await conn.execute(
            sql.SQL(
                "CREATE OR REPLACE TRIGGER {} AFTER TRUNCATE ON {} "
                "FOR EACH STATEMENT EXECUTE FUNCTION electric_fake.capture()"
            ).format(sql.Identifier(TRUNCATE_TRIGGER), target)
        )


async def read_transaction(conn: Connection, xid8: int) -> list[CapturedChange]:
    """The captured changes of one committed transaction, in the order they happened."""
    cursor = await conn.execute(
        "SELECT op, schema_name, table_name, old_row::text, new_row::text "
        "FROM electric_fake.changes WHERE txid = $1 ORDER BY id",
        [xid8],
    )
    return [CapturedChange(*row) for row in await cursor.fetchall()]


async def current_lsn(conn: Connection) -> int:
    """The server's WAL position as an integer (Electric's offsets use LSNs as `tx`)."""
    cursor = await conn.execute("SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::text")
    row = await cursor.fetchone()
    assert row is not None
    return int(row[0])


class ChangeListener:
    """LISTENs on a dedicated connection and hands each committed transaction id on, in order."""

    def __init__(self, conn: Connection, on_commit: Callable[[int], Awaitable[None]]) -> None:
        self._conn = conn
        self._on_commit = on_commit

    @classmethod
    async def open(cls, dsn: str, on_commit: Callable[[int], Awaitable[None]]) -> ChangeListener:
        conn = await connect(dsn)
        await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(CHANNEL)))
        return cls(conn, on_commit)

    async def run(self) -> None:
        """Forward notifications until cancelled; one bad transaction does not stop the feed."""
        try:
            async for notify in self._conn.notifies():
                try:
                    await self._on_commit(int(notify.payload))
                except (psycopg.Error, ValueError, AssertionError):
                    log.exception("electric-fake: could not apply transaction %s", notify.payload)
        except psycopg.OperationalError:
            # The listening connection died: live requests stop seeing changes. Say so loudly
            # rather than leave a failed task behind.
            log.exception("electric-fake: change listener connection lost")

    async def close(self) -> None:
        await self._conn.close()
