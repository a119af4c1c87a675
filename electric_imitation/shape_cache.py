"""Creating, finding and rotating shapes (Electric's ShapeCache), always under the DB lock."""

from __future__ import annotations

from dataclasses import dataclass

from electric_imitation.catalog import Table, load_table
from electric_imitation.changes import install_trigger
from electric_imitation.chunks import Chunker
from electric_imitation.config import ElectricConfig
from electric_imitation.db import Connection, Database
from electric_imitation.shapes import Shape, ShapeDefinition, ShapeRegistry
from electric_imitation.snapshot import take_snapshot


@dataclass(frozen=True, slots=True)
class Rotation:
    """A shape replaced by a fresh one: requests naming `old_handle` now get 409."""

    old_handle: str
    new_handle: str


class ShapeCache:
    """Owns the registry's lifecycle: one shape per definition, recreated when the table changes."""

    def __init__(self, db: Database, registry: ShapeRegistry, config: ElectricConfig) -> None:
        self._db = db
        self._registry = registry
        self._config = config

    @property
    def registry(self) -> ShapeRegistry:
        return self._registry

    async def get_or_create(
        self, conn: Connection, definition: ShapeDefinition, table: Table, selected: tuple[str, ...]
    ) -> Shape:
        """The definition's shape; a table dropped/recreated or altered gets a new shape."""
        existing = self._registry.get(definition)
        if existing is not None and (existing.table.oid, existing.table.signature) == (
            table.oid,
            table.signature,
        ):
            return existing
        shape = await self._create(conn, definition, table, selected)
        if existing is not None:
            self._registry.remove(existing, shape.handle)
        self._registry.add(shape)
        return shape

    async def rotate(
        self, *, handle: str | None = None, table: str | None = None
    ) -> list[Rotation]:
        """Replace the shape with `handle`, or every shape of `table` (`name` or `schema.name`)."""
        async with self._db.session() as conn:
            victims = [
                shape
                for shape in self._registry.all()
                if (handle is not None and shape.handle == handle)
                or (table is not None and _names(table) == shape.definition.relation)
            ]
            rotations: list[Rotation] = []
            for old in victims:
                current = await load_table(conn, *old.definition.relation) or old.table
                new = await self._create(conn, old.definition, current, old.selected)
                self._registry.remove(old, new.handle)
                self._registry.add(new)
                rotations.append(Rotation(old.handle, new.handle))
            return rotations

    async def _create(
        self, conn: Connection, definition: ShapeDefinition, table: Table, selected: tuple[str, ...]
    ) -> Shape:
        # The trigger must be committed before the snapshot starts, or a change in between is lost.
        await install_trigger(conn, table)
        snapshot = await take_snapshot(
            conn,
            definition,
            table,
            selected,
            self._chunker(),
            with_end=self._config.server.has("snapshot_end"),
        )
        return Shape(
            handle=self._registry.new_handle(definition),
            definition=definition,
            table=table,
            selected=selected,
            snapshot=snapshot,
            chunker=self._chunker(),
        )

    def _chunker(self) -> Chunker:
        return Chunker(self._config.chunk_bytes, self._config.chunk_rows)


def _names(table: str) -> tuple[str, str]:
    schema, dot, name = table.partition(".")
    return (schema, name) if dot else ("public", schema)
