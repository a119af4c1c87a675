"""Row-level proof (`shape-gateway test --database URL`): each allowed case's planned query runs
in PostgreSQL, and its row assertions are checked on the rows it returns.

The query is what Electric would run: the planned columns (or `*`) of the planned table, the
planned where with its values bound as parameters (never spliced into the text). Each case runs
in its own transaction, `READ ONLY` and rolled back, with a statement timeout, so pointing it at
a production replica cannot change a row. psycopg is an optional dependency (the `proof` extra).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING, Final

from gateway.rulesops.model import Allowed
from gateway.rulesops.runner import CaseResult
from gateway.shape.plan import UpstreamRequest
from gateway.sql.identifiers import format_column_list

if TYPE_CHECKING:
    import psycopg

STATEMENT_TIMEOUT: Final = "30s"


class ProofUnavailableError(Exception):
    """The proof cannot run at all: psycopg is missing, or the database does not answer."""


def build_query(request: UpstreamRequest, assertion: str | None) -> str:
    """SQL counting the rows the plan returns and those failing `assertion` (both trusted text:
    the plan is canonical SQL from the planner, the assertion was parsed as one expression)."""
    columns = format_column_list(request.columns) if request.columns is not None else "*"
    where = f" WHERE {request.where}" if request.where is not None else ""
    failing = f"count(*) FILTER (WHERE ({assertion}) IS NOT TRUE)" if assertion else "0"
    return (
        f"SELECT count(*), {failing} "  # noqa: S608 - canonical SQL only, values are bound
        f"FROM (SELECT {columns} FROM {request.table}{where}) AS visible"
    )


def _check(conn: psycopg.Connection[tuple[object, ...]], result: CaseResult) -> CaseResult:
    import psycopg  # noqa: PLC0415 - optional dependency, imported once prove() found it

    expect, request = result.case.expect, result.outcome
    assert isinstance(expect, Allowed)
    assert isinstance(request, UpstreamRequest)
    found = list(result.mismatches)
    try:
        conn.execute("SET TRANSACTION READ ONLY")
        conn.execute(f"SET LOCAL statement_timeout = '{STATEMENT_TIMEOUT}'")
        cursor = psycopg.RawCursor(conn)
        cursor.execute(build_query(request, expect.rows_visible_only_where), request.params)
        row = cursor.fetchone()
        assert row is not None
        rows, failing = row
        assert isinstance(rows, int)
        assert isinstance(failing, int)
    except psycopg.Error as error:
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        found.append(f"database: the planned query fails: {message}")
        return dataclasses.replace(result, mismatches=tuple(found))
    finally:
        conn.rollback()
    if failing:
        found.append(
            f"rows_visible_only_where: {failing} of {rows} visible rows fail "
            f"{expect.rows_visible_only_where}"
        )
    if expect.min_rows is not None and rows < expect.min_rows:
        found.append(f"min_rows: expected at least {expect.min_rows}, got {rows}")
    return dataclasses.replace(result, mismatches=tuple(found), rows=rows)


def connect(url: str) -> psycopg.Connection[tuple[object, ...]]:
    """A connection to the database at `url`, or ProofUnavailableError saying why not. Callers
    run each check in a READ ONLY transaction and roll it back, and close it (never `with`)."""
    try:
        import psycopg  # noqa: PLC0415 - optional dependency: only --database needs it
    except ImportError:
        raise ProofUnavailableError(
            "--database needs psycopg; install it with: pip install 'shape-gateway[proof]'"
        ) from None
    try:
        return psycopg.connect(url, connect_timeout=10)
    except psycopg.Error as error:
        reason = " ".join(str(error).split())  # psycopg's text spans lines
        raise ProofUnavailableError(f"cannot connect to the database: {reason}") from None


def prove(results: Sequence[CaseResult], url: str) -> list[CaseResult]:
    """`results` with each allowed case's rows checked in the database at `url`."""
    conn = connect(url)
    try:
        return [
            _check(conn, result)
            if isinstance(result.case.expect, Allowed)
            and result.case.expect.database
            and isinstance(result.outcome, UpstreamRequest)
            else result
            for result in results
        ]
    finally:
        conn.close()  # never `with conn`: that would commit, and nothing here may
