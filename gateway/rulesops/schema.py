"""The rules against a real schema (`shape-gateway check --database URL`, and `serve` with
GATEWAY_CHECK_DATABASE): every shape's table exists, every column its grants and `client_where`
name is a column of that table, and every where PostgreSQL can plan there. A typo'd column
otherwise loads, and every client asking for the shape gets Electric's 400.

Each check runs in its own transaction, `READ ONLY`, rolled back, with a statement timeout (the
connection of `test --database`, proof.py); a where runs as `SELECT 1 ... LIMIT 0` with every
bound value NULL, so nothing is read. A per-tenant table (`tenant_{tenant}.documents`) is
checked on the first tenant's table the database has; with none yet, a note says so.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from gateway.rules.model import Grant, Rules, ShapeRule
from gateway.rules.nodes import Problem
from gateway.rulesops.proof import STATEMENT_TIMEOUT, connect
from gateway.shape.plan import TENANT_IN_TABLE
from gateway.sql.identifiers import format_relation, parse_relation

if TYPE_CHECKING:
    import psycopg

    Connection = psycopg.Connection[tuple[object, ...]]

_MARKER: Final = "zzgatewaytenantzz"  # stands for {tenant} while the name is parsed
_INDETERMINATE: Final = "42P18"  # a NULL whose type PostgreSQL cannot infer: not a schema fault


@dataclass
class SchemaReport:
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    checked: int = 0  # shapes checked


def check_schema(rules: Rules, url: str) -> SchemaReport:
    """Every shape of `rules` against the database at `url`; ProofUnavailableError when the
    database cannot be reached."""
    conn = connect(url)
    report = SchemaReport()
    try:
        for shape in rules.shapes.values():
            _check_shape(conn, shape, rules.path, report)
    finally:
        conn.close()  # never `with conn`: that would commit, and nothing here may
    return report


def _run(conn: Connection, query: str, params: list[object]) -> list[tuple[object, ...]]:
    import psycopg  # noqa: PLC0415 - optional dependency, found by connect()

    try:
        conn.execute("SET TRANSACTION READ ONLY")
        conn.execute(f"SET LOCAL statement_timeout = '{STATEMENT_TIMEOUT}'")
        cursor = psycopg.RawCursor(conn)
        cursor.execute(query, params)
        return cursor.fetchall() if cursor.description else []
    finally:
        conn.rollback()


def _error_text(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _relation(conn: Connection, table: str) -> tuple[str | None, str]:
    """The relation to check (None when there is none) and how it was found."""
    if "{tenant}" not in table:
        schema, name = parse_relation(table)
        return format_relation(schema, name), ""
    schema, name = parse_relation(table.replace("{tenant}", _MARKER))
    tenant = TENANT_IN_TABLE.pattern

    def pattern(part: str) -> str:
        return "^" + re.escape(part).replace(_MARKER, tenant) + "$"

    rows = _run(
        conn,
        "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.relkind IN ('r', 'p') AND n.nspname ~ $1 AND c.relname ~ $2 ORDER BY 1, 2 LIMIT 1",
        [pattern(schema), pattern(name)],
    )
    if not rows:
        return None, ""
    found = format_relation(str(rows[0][0]), str(rows[0][1]))
    return found, f" (checked on {found}, the first tenant's table found)"


def _check_shape(conn: Connection, shape: ShapeRule, path: str, report: SchemaReport) -> None:
    import psycopg  # noqa: PLC0415 - optional dependency, found by connect()

    key = f"shapes.{shape.name}"

    def problem(message: str) -> None:
        report.problems.append(Problem(path, shape.line, key, message))

    relation, found = _relation(conn, shape.table)
    if relation is None:
        report.notes.append(
            f"{path}:{shape.line}: {key}: no table matches {shape.table} yet; not checked"
        )
        return
    report.checked += 1
    exists = _run(conn, "SELECT to_regclass($1) IS NOT NULL", [relation])
    if not exists or not exists[0][0]:
        problem(f"table {relation} does not exist (or this database user cannot see it)")
        return
    rows = _run(
        conn,
        "SELECT a.attname FROM pg_attribute a WHERE a.attrelid = to_regclass($1) "
        "AND a.attnum > 0 AND NOT a.attisdropped",
        [relation],
    )
    columns = {str(row[0]) for row in rows}
    by_grant: dict[int, tuple[Grant, list[str]]] = {}
    for role, grant in sorted(shape.grants.items()):
        by_grant.setdefault(id(grant), (grant, []))[1].append(role)
    for grant, roles in by_grant.values():
        who = f"role {', '.join(roles)}"
        missing = [c for c in grant.columns or () if c not in columns]
        if missing:
            problem(f"{who}: {_columns(missing)} not in {relation}{found}")
        if grant.where is None:
            continue
        query = f"SELECT 1 FROM {relation} WHERE {grant.where.sql} LIMIT 0"  # noqa: S608 - compiled at load
        try:
            _run(conn, query, [None] * len(grant.where.bindings))
        except psycopg.Error as error:
            if error.sqlstate != _INDETERMINATE:
                where = grant.where.source
                problem(f"{who}: where {where!r} fails on {relation}{found}: {_error_text(error)}")
    missing = sorted(set(shape.client_where or ()) - columns)
    if missing:
        problem(f"client_where: {_columns(missing)} not in {relation}{found}")


def _columns(names: list[str]) -> str:
    return f"column {names[0]} is" if len(names) == 1 else f"columns {', '.join(names)} are"
