"""Turn one committed transaction into log entries for every shape it affects (Electric's consumer).

Per shape and row: skip it if the shape's snapshot already saw the transaction; otherwise
decide membership of the old and new row with the shape's where. In both -> update (PK plus
changed columns, or the whole row and `old_value` with replica=full); only new -> insert
(move-in); only old -> delete (move-out). A changed key becomes delete + insert.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import psycopg

from electric_imitation.changes import CapturedChange, current_lsn, read_transaction
from electric_imitation.db import Connection, Database
from electric_imitation.messages import build_key, change_message
from electric_imitation.offsets import LogOffset
from electric_imitation.rows import Record, matches_where, render_row
from electric_imitation.shapes import Shape, ShapeRegistry

log = logging.getLogger(__name__)


@dataclass(slots=True)
class LsnTracker:
    """The last transaction position the fake has processed (`global_last_seen_lsn`)."""

    last_lsn: int = 0

    def next_lsn(self, wal_lsn: int) -> int:
        """A strictly increasing position per transaction, close to the real WAL LSN."""
        self.last_lsn = max(wal_lsn, self.last_lsn + 1)
        return self.last_lsn


@dataclass(slots=True)
class _Entry:
    offset: LogOffset
    fields: dict[str, Any] = field(default_factory=dict)


class Consumer:
    """Applies notified transactions to the registry's shapes, one at a time, under the DB lock."""

    def __init__(self, db: Database, registry: ShapeRegistry, lsn: LsnTracker) -> None:
        self._db = db
        self._registry = registry
        self._lsn = lsn

    async def apply(self, xid8: int) -> None:
        async with self._db.session() as conn:
            changes = await read_transaction(conn, xid8)
            lsn = self._lsn.next_lsn(await current_lsn(conn))
            pending: dict[Shape, list[_Entry]] = defaultdict(list)
            for index, change in enumerate(changes):
                offset = LogOffset(lsn, index * 2)
                shapes = [
                    shape
                    for shape in self._registry.for_table(change.schema, change.table)
                    if not shape.snapshot.is_visible(xid8)
                ]
                if not shapes:
                    continue
                if change.op == "TRUNCATE":
                    # Electric invalidates shapes on truncate; clients get 409 and refetch.
                    for shape in shapes:
                        self._registry.remove(shape)
                    continue
                try:
                    await self._route(conn, change, shapes, offset, pending)
                except psycopg.Error:
                    log.exception(
                        "electric-fake: skipping change to %s.%s", change.schema, change.table
                    )
        xid32 = xid8 & 0xFFFFFFFF
        for shape, entries in pending.items():
            if shape.removed or not entries:
                continue
            entries[-1].fields["last"] = True
            shape.append(
                [
                    (
                        e.offset,
                        change_message(
                            lsn=e.offset.tx, op_position=e.offset.op or 0, txid=xid32, **e.fields
                        ),
                    )
                    for e in entries
                ]
            )

    async def _route(
        self,
        conn: Connection,
        change: CapturedChange,
        shapes: list[Shape],
        offset: LogOffset,
        pending: dict[Shape, list[_Entry]],
    ) -> None:
        table = shapes[0].table
        old = await render_row(conn, table, change.old_row) if change.old_row else None
        new = await render_row(conn, table, change.new_row) if change.new_row else None
        verdicts: dict[tuple[str | None, tuple[tuple[str, str], ...], str], bool] = {}

        async def includes(shape: Shape, row_json: str | None) -> bool:
            where = shape.definition.where_sql
            if row_json is None:
                return False
            if where is None:
                return True
            key = (where, shape.definition.params, row_json)
            if key not in verdicts:
                verdicts[key] = await matches_where(
                    conn, shape.table, where, shape.definition.params_map, row_json
                )
            return verdicts[key]

        for shape in shapes:
            old_in = await includes(shape, change.old_row)
            new_in = await includes(shape, change.new_row)
            pending[shape].extend(
                _entries(shape, old if old_in else None, new if new_in else None, offset)
            )


def _entries(
    shape: Shape, old: Record | None, new: Record | None, offset: LogOffset
) -> list[_Entry]:
    """Log entries for one row change, given the old/new record when it is in the shape."""
    definition = shape.definition
    schema, table = definition.relation
    full = definition.replica == "full"
    selected = shape.selected

    def project(record: Record, columns: tuple[str, ...] | list[str]) -> Record:
        return {c: record.get(c) for c in columns if c in selected}

    def key(record: Record) -> str:
        return build_key(schema, table, record, shape.pk)

    def entry(
        at: LogOffset, operation: str, record_key: str, value: Record, **extra: Any
    ) -> _Entry:
        fields: dict[str, Any] = {
            "key": record_key,
            "operation": operation,
            "relation": definition.relation,
            "value": value,
            **extra,
        }
        return _Entry(at, fields)

    def deleted(record: Record) -> Record:
        # `take_pks_or_all/3`: the PK (every column when the table has none) unless replica=full.
        return project(record, selected if full else shape.pk)

    if old is None and new is None:
        return []
    if old is None:
        assert new is not None
        return [entry(offset, "insert", key(new), project(new, selected))]
    if new is None:
        return [entry(offset, "delete", key(old), deleted(old))]
    old_key, new_key = key(old), key(new)
    if old_key != new_key:
        return [
            entry(
                offset, "delete", old_key, deleted(old), extra_headers={"key_change_to": new_key}
            ),
            entry(
                offset.increment(),
                "insert",
                new_key,
                project(new, selected),
                extra_headers={"key_change_from": old_key},
            ),
        ]
    changed = [c for c in selected if old.get(c) != new.get(c)]
    if not changed:
        return []  # nothing the shape can see changed (`should_keep_change?/1`)
    if full:
        return [
            entry(
                offset, "update", new_key, project(new, selected), old_value=project(old, changed)
            )
        ]
    return [entry(offset, "update", new_key, project(new, [*shape.pk, *changed]))]
