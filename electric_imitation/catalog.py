"""Table metadata from pg_catalog and the `electric-schema` header built from it (`schema.ex`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from psycopg import AsyncConnection

_COLUMNS_SQL: Final = """
SELECT c.oid::int8,
       a.attname,
       a.atttypid::int8,
       a.attndims,
       a.atttypmod,
       a.attnotnull,
       t.typname,
       elem.typname,
       array_position(i.indkey, a.attnum),
       coalesce(elem.typtype, t.typtype)::text
  FROM pg_catalog.pg_class c
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
  JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
  LEFT JOIN pg_catalog.pg_index i ON i.indrelid = c.oid AND i.indisprimary
  LEFT JOIN pg_catalog.pg_type elem ON elem.oid = t.typelem
 WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')
 ORDER BY a.attnum
"""

_TEXT_TYPES: Final = ("varchar", "text")
_BIT_TYPES: Final = ("bit", "varbit")
_TIME_TYPES: Final = ("date", "time", "timetz", "timestamp", "timestamptz")
_INTERVAL_UNITS: Final = (
    ("YEAR", 1 << 2),
    ("MONTH", 1 << 1),
    ("DAY", 1 << 3),
    ("HOUR", 1 << 10),
    ("MINUTE", 1 << 11),
    ("SECOND", 1 << 12),
)
_ALL_RANGE_BITS: Final = 0x7FFF


@dataclass(frozen=True, slots=True)
class Column:
    """One column as Electric's inspector sees it."""

    name: str
    type_oid: int
    dims: int
    type_mod: int
    not_null: bool
    type_name: str
    element_type: str | None
    pk_position: int | None
    type_kind: str = "b"  # pg_type.typtype of the (element) type: `e` for enums

    @property
    def where_type(self) -> str:
        """The type Electric's where parser gives a reference to this column
        (`gateway.sql.electric`)."""
        is_array = self.dims > 0 and self.element_type is not None
        base = self.element_type if is_array and self.element_type else self.type_name
        if self.type_kind == "e":
            base = f"enum {base}"
        return base + ("[]" if is_array else "")


@dataclass(frozen=True, slots=True)
class Table:
    """A table's identity and columns; `pk` is every column when there is no primary key."""

    oid: int
    schema: str
    name: str
    columns: tuple[Column, ...]

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(column.name for column in self.columns)

    @property
    def pk(self) -> tuple[str, ...]:
        keyed = sorted((c for c in self.columns if c.pk_position is not None), key=_pk_order)
        return tuple(c.name for c in keyed) or self.column_names

    @property
    def where_types(self) -> dict[str, str]:
        """Column name -> type, for judging a where clause over this table."""
        return {column.name: column.where_type for column in self.columns}

    @property
    def signature(self) -> tuple[tuple[str, int, int], ...]:
        """What must stay equal for an existing shape to remain valid."""
        return tuple((c.name, c.type_oid, c.type_mod) for c in self.columns)


async def load_table(conn: AsyncConnection[Any], schema: str, name: str) -> Table | None:
    """The table (kinds r/p only, like Electric) or None when it does not exist."""
    cursor = await conn.execute(_COLUMNS_SQL, [schema, name])
    rows = await cursor.fetchall()
    if not rows:
        return None
    columns = tuple(
        Column(
            name=row[1],
            type_oid=row[2],
            dims=row[3],
            type_mod=row[4],
            not_null=row[5],
            type_name=row[6],
            element_type=row[7],
            pk_position=row[8],
            type_kind=row[9],
        )
        for row in rows
    )
    return Table(oid=rows[0][0], schema=schema, name=name, columns=columns)


def schema_header(table: Table, selected: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """The `electric-schema` value for the selected columns, keys sorted like Jason's maps."""
    return {
        c.name: _column_schema(c) for c in sorted(table.columns, key=_by_name) if c.name in selected
    }


def _column_schema(column: Column) -> dict[str, Any]:
    is_array = column.dims > 0 and column.element_type is not None
    type_name = column.element_type if is_array and column.element_type else column.type_name
    schema: dict[str, Any] = {"type": type_name}
    if column.dims > 0:
        schema["dims"] = column.dims
    if column.pk_position is not None:
        schema["pk_index"] = column.pk_position
    if column.not_null:
        schema["not_null"] = True
    schema.update(_modifier(type_name, column.type_mod))
    return schema


def _modifier(type_name: str, type_mod: int) -> dict[str, Any]:
    if type_name in _TEXT_TYPES and type_mod > 0:
        return {"max_length": type_mod - 4}
    if type_name == "bpchar" and type_mod > 0:
        return {"length": type_mod - 4}
    if type_name in _BIT_TYPES:
        return {"length": type_mod}
    if type_name == "interval" and type_mod > -1:
        return _interval_modifier(type_mod)
    if type_name in _TIME_TYPES and type_mod > 0:
        return {"precision": type_mod}
    if type_name == "numeric" and type_mod > -1:
        packed = type_mod - 4
        return {"precision": (packed >> 16) & 0xFFFF, "scale": _signed16(packed & 0xFFFF)}
    if type_mod > -1:
        return {"type_mod": type_mod}
    return {}


def _interval_modifier(type_mod: int) -> dict[str, Any]:
    # High 16 bits: the range (field) mask; low 16 bits: the precision (-1 when absent).
    range_bits = _signed16((type_mod >> 16) & 0xFFFF)
    precision = _signed16(type_mod & 0xFFFF)
    result: dict[str, Any] = {}
    if range_bits != _ALL_RANGE_BITS:
        units = [unit for unit, mask in _INTERVAL_UNITS if range_bits & mask]
        if len(units) == 1:
            result["fields"] = units[0]
        elif units:
            result["fields"] = f"{units[0]} TO {units[-1]}"
    if precision != -1:
        result["precision"] = precision
    return result


def _signed16(value: int) -> int:
    return value - 0x10000 if value & 0x8000 else value


def _pk_order(column: Column) -> int:
    return column.pk_position if column.pk_position is not None else 0


def _by_name(column: Column) -> str:
    return column.name
