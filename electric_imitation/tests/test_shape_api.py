"""The fake Electric (electric_imitation) speaks Electric's shape protocol on real PostgreSQL.

Every test makes its tables in a fresh schema, talks HTTP to a real aiohttp server and changes
rows with real SQL; the protocol facts asserted are Electric's, as its source (sync-service's
`lib/electric/plug/`, `shapes/api.ex`) and its releases show them.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import re
import signal
import sys
import time
import uuid
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, LiteralString, TypeAlias

import aiohttp
import psycopg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from psycopg import sql
from pytest_aiohttp import AiohttpClient

from electric_imitation import ELECTRIC, ElectricConfig, ElectricState, Fault, make_electric_app

pytestmark = pytest.mark.postgres

Client: TypeAlias = TestClient[web.Request, web.Application]
MakeElectric: TypeAlias = Callable[..., Awaitable[Client]]
Query: TypeAlias = list[tuple[str, str]]

HANDLE = re.compile(r"^\d+-\d{16}$")  # 1.7: microseconds
HANDLE_1_0_10 = re.compile(r"^\d+-\d{13}$")  # milliseconds (seen: 111077782-1795968529363)
NO_STORE = "no-store"
# The repository: `python -m electric_imitation` runs from there.
ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True, slots=True)
class Table:
    """A test table: `param` is how a client names it, `ident` how SQL does."""

    schema: str
    name: str

    @property
    def param(self) -> str:
        return f"{self.schema}.{self.name}"

    @property
    def ident(self) -> sql.Identifier:
        return sql.Identifier(self.schema, self.name)


async def run(db: psycopg.AsyncConnection[Any], statements: LiteralString, **tables: Table) -> None:
    """Execute test SQL; table names enter only as identifiers (`{t}` placeholders)."""
    names = {key: table.ident for key, table in tables.items()}
    await db.execute(sql.SQL(statements).format(**names))


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        yield conn


@pytest.fixture
async def schema(db: psycopg.AsyncConnection[Any]) -> AsyncIterator[str]:
    name = f"electric_t_{uuid.uuid4().hex[:10]}"
    await db.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
    yield name
    await db.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(name)))


@pytest.fixture
def make_electric(aiohttp_client: AiohttpClient, database_url: str) -> MakeElectric:
    async def make(**overrides: Any) -> Client:
        return await aiohttp_client(
            make_electric_app(ElectricConfig(dsn=database_url, **overrides))
        )

    return make


@pytest.fixture
async def electric(make_electric: MakeElectric) -> Client:
    return await make_electric()


@pytest.fixture
async def items(db: psycopg.AsyncConnection[Any], schema: str) -> Table:
    """`<schema>.items` with three rows."""
    table = Table(schema, "items")
    await run(
        db,
        """
        CREATE TABLE {t} (
            id int PRIMARY KEY, title text, done boolean NOT NULL DEFAULT false,
            status text, price numeric(10, 2), tags text[], meta jsonb, code varchar(20)
        );
        INSERT INTO {t} (id, title, done, status, price, tags, meta, code) VALUES
            (1, 'a/b', false, 'open', 1.5, '{{x,y}}', '{{"k": 1}}', 'c1'),
            (2, 'hello', true, 'closed', NULL, NULL, NULL, NULL),
            (3, 'three', false, 'open', 3, '{{}}', '[]', 'c3');
        """,
        t=table,
    )
    return table


def hooks(client: Client) -> ElectricState:
    return client.app[ELECTRIC]


async def get_shape(client: Client, query: Query, **kwargs: Any) -> aiohttp.ClientResponse:
    return await client.get("/v1/shape", params=query, **kwargs)


async def sync(client: Client, table: str, *extra: tuple[str, str]) -> tuple[str, str]:
    """Initial sync plus catch-up; returns (handle, offset at the head)."""
    first = await get_shape(client, [("table", table), ("offset", "-1"), *extra])
    assert first.status == 200, await first.text()
    handle = first.headers["electric-handle"]
    offset = first.headers["electric-offset"]
    while True:
        resp = await get_shape(
            client, [("table", table), ("offset", offset), ("handle", handle), *extra]
        )
        assert resp.status == 200
        offset = resp.headers["electric-offset"]
        if "electric-up-to-date" in resp.headers:
            return handle, offset


def live_query(table: str, handle: str, offset: str, *extra: tuple[str, str]) -> Query:
    return [("table", table), ("offset", offset), ("handle", handle), ("live", "true"), *extra]


async def after_held(state: ElectricState, action: Awaitable[None], count: int = 1) -> None:
    """Run `action` once `count` requests are held, so it lands mid-long-poll."""
    await state.wait_for(lambda stats: stats.held_requests == count)
    await action


def changes(body: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [message for message in body if "key" in message]


# --- initial sync ---------------------------------------------------------------------------


async def test_initial_sync_returns_rows_as_strings_with_keys_and_schema(
    electric: Client, items: Table, schema: str
) -> None:
    resp = await get_shape(electric, [("table", items.param), ("offset", "-1")])

    assert resp.status == 200
    assert resp.headers["Transfer-Encoding"] == "chunked"
    assert HANDLE.match(resp.headers["electric-handle"])
    assert resp.headers["electric-offset"] == "0_0"
    assert resp.headers["electric-has-data"] == "true"
    assert "electric-up-to-date" not in resp.headers
    assert resp.headers["Cache-Control"] == (
        "public, max-age=604800, s-maxage=3600, stale-while-revalidate=2629746"
    )
    assert resp.headers["ETag"] == f'"{resp.headers["electric-handle"]}:-1:0_0"'
    assert resp.headers["electric-server"] == "ElectricSQL/1.7.12"
    assert resp.headers["Access-Control-Allow-Origin"] == "*"
    assert json.loads(resp.headers["electric-schema"]) == {
        "code": {"type": "varchar", "max_length": 20},
        "done": {"type": "bool", "not_null": True},
        "id": {"type": "int4", "pk_index": 0, "not_null": True},
        "meta": {"type": "jsonb"},
        "price": {"type": "numeric", "precision": 10, "scale": 2},
        "status": {"type": "text"},
        "tags": {"type": "text", "dims": 1},
        "title": {"type": "text"},
    }
    body = await resp.json()
    assert body[0] == {
        "key": f'"{schema}"."items"/"1"',
        "value": {
            "code": "c1",
            "done": "false",
            "id": "1",
            "meta": '{"k": 1}',
            "price": "1.50",
            "status": "open",
            "tags": "{x,y}",
            "title": "a/b",
        },
        "headers": {"operation": "insert", "relation": [schema, "items"]},
    }
    assert body[1]["value"]["done"] == "true"
    assert body[1]["value"]["price"] is None
    assert body[-1]["headers"]["control"] == "snapshot-end"
    assert set(body[-1]["headers"]) == {"control", "xmin", "xmax", "xip_list"}
    assert isinstance(body[-1]["headers"]["xmin"], str)
    assert len(body) == 4


async def test_keys_double_slashes_and_mark_null_parts(
    electric: Client, db: psycopg.AsyncConnection[Any], schema: str
) -> None:
    odd = Table(schema, "Odd.Name")
    await run(db, "CREATE TABLE {t} (a text, b int); INSERT INTO {t} VALUES ('x/y', NULL)", t=odd)
    body = await (
        await get_shape(electric, [("table", f'{schema}."Odd.Name"'), ("offset", "-1")])
    ).json()

    # No primary key: every column is part of the key, `.` in names and `/` in values doubled.
    assert body[0]["key"] == f'"{schema}"."Odd..Name"/"x//y"/_'


async def test_same_definition_gets_same_handle_and_columns_limit_values(
    electric: Client, items: Table
) -> None:
    one = await get_shape(electric, [("table", items.param), ("offset", "-1")])
    two = await get_shape(
        electric, [("table", items.param), ("offset", "-1"), ("handle", "ignored")]
    )
    narrow = await get_shape(
        electric, [("table", items.param), ("offset", "-1"), ("columns", "id,title")]
    )

    assert one.headers["electric-handle"] == two.headers["electric-handle"]
    assert narrow.headers["electric-handle"] != one.headers["electric-handle"]
    assert (await narrow.json())[0]["value"] == {"id": "1", "title": "a/b"}
    assert set(json.loads(narrow.headers["electric-schema"])) == {"id", "title"}


async def test_snapshot_larger_than_chunk_rows_is_served_in_chunks(
    make_electric: MakeElectric, items: Table
) -> None:
    electric = await make_electric(chunk_rows=2)
    resp = await get_shape(electric, [("table", items.param), ("offset", "-1")])
    handle = resp.headers["electric-handle"]
    seen = [await resp.json()]
    offsets = [resp.headers["electric-offset"]]
    while "electric-up-to-date" not in resp.headers:
        resp = await get_shape(
            electric, [("table", items.param), ("offset", offsets[-1]), ("handle", handle)]
        )
        seen.append(await resp.json())
        offsets.append(resp.headers["electric-offset"])

    assert offsets == ["0_0", "0_1", "0_inf"]
    assert [len(changes(chunk)) for chunk in seen] == [2, 1, 0]
    assert seen[1][-1]["headers"]["control"] == "snapshot-end"
    assert seen[2] == [
        {
            "headers": {
                "control": "up-to-date",
                "global_last_seen_lsn": seen[2][0]["headers"]["global_last_seen_lsn"],
            }
        }
    ]


async def test_change_log_is_served_in_chunks_too(
    make_electric: MakeElectric, db: psycopg.AsyncConnection[Any], items: Table
) -> None:
    electric = await make_electric(chunk_rows=2)
    state = hooks(electric)
    handle, offset = await sync(electric, items.param)
    insert = run(db, "INSERT INTO {t} (id) SELECT generate_series(10, 14)", t=items)
    live, _ = await asyncio.gather(
        get_shape(electric, live_query(items.param, handle, offset)), after_held(state, insert)
    )
    # A live answer is one chunk too, without up-to-date when more follows.
    assert len(changes(await live.json())) == 2
    assert "electric-up-to-date" not in live.headers
    shape = state.shape(handle)
    assert shape is not None
    sizes: list[int] = []
    while True:
        resp = await get_shape(
            electric, [("table", items.param), ("offset", offset), ("handle", handle)]
        )
        sizes.append(len(changes(await resp.json())))
        offset = resp.headers["electric-offset"]
        if "electric-up-to-date" in resp.headers:
            break

    assert sizes == [2, 2, 1]
    assert offset == str(shape.last_offset)


async def test_catch_up_at_head_is_up_to_date_with_schema(electric: Client, items: Table) -> None:
    first = await get_shape(electric, [("table", items.param), ("offset", "-1")])
    handle = first.headers["electric-handle"]
    resp = await get_shape(
        electric, [("table", items.param), ("offset", "0_0"), ("handle", handle)]
    )

    assert resp.status == 200
    assert resp.headers["electric-offset"] == "0_inf"
    assert resp.headers["electric-up-to-date"] == ""
    assert resp.headers["electric-has-data"] == "true"
    assert resp.headers["Cache-Control"] == "public, max-age=60, stale-while-revalidate=300"
    assert "electric-schema" in resp.headers
    [message] = await resp.json()
    assert message["headers"]["control"] == "up-to-date"
    assert int(message["headers"]["global_last_seen_lsn"]) > 0


async def test_offset_now_is_up_to_date_without_data(electric: Client, items: Table) -> None:
    resp = await get_shape(electric, [("table", items.param), ("offset", "now"), ("handle", "x")])

    assert resp.status == 200
    assert resp.headers["electric-has-data"] == "false"
    assert resp.headers["electric-up-to-date"] == ""
    assert resp.headers["electric-offset"] == "0_inf"
    assert [m["headers"]["control"] for m in await resp.json()] == ["up-to-date"]


async def test_where_params_are_bound_and_typed_by_postgres(
    electric: Client, db: psycopg.AsyncConnection[Any], schema: str
) -> None:
    numbers = Table(schema, "n")
    await run(
        db,
        "CREATE TABLE {t} (id int PRIMARY KEY); INSERT INTO {t} VALUES (2), (9), (10)",
        t=numbers,
    )
    resp = await get_shape(
        electric,
        [("table", numbers.param), ("offset", "-1"), ("where", "id > $1"), ("params[1]", "3")],
    )

    # As text "10" < "3"; PostgreSQL typing the parameter as int gives 9 and 10.
    assert [m["value"]["id"] for m in changes(await resp.json())] == ["9", "10"]


# --- live -----------------------------------------------------------------------------------


async def test_live_long_poll_is_woken_by_insert_update_and_delete(
    electric: Client, db: psycopg.AsyncConnection[Any], items: Table, schema: str
) -> None:
    state = hooks(electric)
    handle, offset = await sync(electric, items.param)
    cursor = "0"
    bodies: list[list[dict[str, Any]]] = []
    for statement in (
        "INSERT INTO {t} (id, title, done) VALUES (4, 'four', true)",
        "UPDATE {t} SET title = 'FOUR', done = false WHERE id = 4",
        "DELETE FROM {t} WHERE id = 4",
    ):
        started = time.monotonic()
        resp, _ = await asyncio.gather(
            get_shape(electric, live_query(items.param, handle, offset, ("cursor", cursor))),
            after_held(state, run(db, statement, t=items)),
        )
        assert time.monotonic() - started < 1.5
        assert resp.status == 200
        assert resp.headers["electric-up-to-date"] == ""
        assert resp.headers["Cache-Control"] == "public, max-age=5, stale-while-revalidate=5"
        assert "electric-schema" not in resp.headers
        assert int(resp.headers["electric-cursor"]) > int(cursor)
        cursor = resp.headers["electric-cursor"]
        offset = resp.headers["electric-offset"]
        bodies.append(await resp.json())

    inserted, updated, deleted = (changes(body)[0] for body in bodies)
    assert inserted["value"]["done"] == "t"  # replication's text output, unlike the snapshot
    assert inserted["value"]["title"] == "four"
    assert updated["headers"]["operation"] == "update"
    assert updated["value"] == {"id": "4", "title": "FOUR", "done": "f"}
    assert deleted["headers"]["operation"] == "delete"
    assert deleted["value"] == {"id": "4"}
    assert deleted["key"] == f'"{schema}"."items"/"4"'
    positions = [
        (int(m["headers"]["lsn"]), m["headers"]["op_position"])
        for m in (inserted, updated, deleted)
    ]
    assert positions == sorted(positions)
    assert len(set(positions)) == 3
    for message in (inserted, updated, deleted):
        assert isinstance(message["headers"]["lsn"], str)
        assert isinstance(message["headers"]["op_position"], int)
        assert all(isinstance(txid, int) for txid in message["headers"]["txids"])
        assert message["headers"]["last"] is True
    assert bodies[0][-1]["headers"] == {
        "control": "up-to-date",
        "global_last_seen_lsn": inserted["headers"]["lsn"],
    }


async def test_change_values_use_the_snapshots_text_format(
    electric: Client, db: psycopg.AsyncConnection[Any], schema: str
) -> None:
    kinds = Table(schema, "kinds")
    await run(
        db,
        """CREATE TABLE {t} (
            id int PRIMARY KEY, at timestamptz, day date, amount numeric(12, 3), ratio float8,
            doc jsonb, raw json, ints int[], grid int[][], blob bytea, span interval, uid uuid,
            flag boolean, note text
        )""",
        t=kinds,
    )
    state = hooks(electric)
    handle, offset = await sync(electric, kinds.param)
    insert = """INSERT INTO {t} VALUES (
        1, '2024-02-29 23:59:58.5+02', '2024-01-31', 12.5, 0.1, '{{"b": 1, "a": [1, 2]}}',
        '{{"b":  1,"a":2}}', '{{1,NULL,3}}', '{{{{1,2}},{{3,4}}}}', '\\x00ff', '1 day 02:03:04',
        'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', true, 'snow ❄ / "quoted"'
    )"""
    resp, _ = await asyncio.gather(
        get_shape(electric, live_query(kinds.param, handle, offset)),
        after_held(state, run(db, insert, t=kinds)),
    )
    [change] = changes(await resp.json())
    fresh = await get_shape(electric, [("table", kinds.param), ("offset", "-1"), ("where", "true")])
    [snapshot] = changes(await fresh.json())

    assert change["value"].pop("flag") == "t"
    assert snapshot["value"].pop("flag") == "true"
    assert change["value"] == snapshot["value"]
    assert snapshot["value"]["raw"] == '{"b":  1,"a":2}'
    assert snapshot["value"]["at"] == "2024-02-29 21:59:58.5+00"


async def test_where_text_with_percent_and_quotes_reaches_postgres_intact(
    electric: Client, items: Table
) -> None:
    where = "title LIKE 'a%' OR title = 'it''s' OR code LIKE '%3'"
    resp = await get_shape(electric, [("table", items.param), ("offset", "-1"), ("where", where)])

    assert [m["value"]["id"] for m in changes(await resp.json())] == ["1", "3"]


async def test_transaction_ops_share_lsn_and_step_op_position(
    electric: Client, db: psycopg.AsyncConnection[Any], items: Table
) -> None:
    state = hooks(electric)
    handle, offset = await sync(electric, items.param)
    resp, _ = await asyncio.gather(
        get_shape(electric, live_query(items.param, handle, offset)),
        after_held(
            state,
            run(
                db,
                "BEGIN; INSERT INTO {t} (id) VALUES (10); INSERT INTO {t} (id) VALUES (11); COMMIT",
                t=items,
            ),
        ),
    )
    first, second = changes(await resp.json())

    assert first["headers"]["lsn"] == second["headers"]["lsn"]
    assert (first["headers"]["op_position"], second["headers"]["op_position"]) == (0, 2)
    assert "last" not in first["headers"]
    assert second["headers"]["last"] is True
    assert resp.headers["electric-offset"] == f"{second['headers']['lsn']}_2"


async def test_replica_full_sends_whole_rows_and_old_values(
    electric: Client, db: psycopg.AsyncConnection[Any], items: Table
) -> None:
    state = hooks(electric)
    handle, offset = await sync(electric, items.param, ("replica", "full"))
    resp, _ = await asyncio.gather(
        get_shape(electric, live_query(items.param, handle, offset, ("replica", "full"))),
        after_held(state, run(db, "UPDATE {t} SET title = 'A' WHERE id = 1", t=items)),
    )
    [update] = changes(await resp.json())

    assert update["value"]["title"] == "A"
    assert update["value"]["tags"] == "{x,y}"
    assert update["old_value"] == {"title": "a/b"}


async def test_where_moves_rows_in_and_out_of_the_shape(
    electric: Client, db: psycopg.AsyncConnection[Any], items: Table
) -> None:
    state = hooks(electric)
    shape = (("where", "status = $1"), ("params[1]", "open"))
    handle, offset = await sync(electric, items.param, *shape)
    received: list[dict[str, Any]] = []
    for statement in (
        "UPDATE {t} SET status = 'open' WHERE id = 2",  # moves in
        "UPDATE {t} SET status = 'closed' WHERE id = 1",  # moves out
    ):
        resp, _ = await asyncio.gather(
            get_shape(electric, live_query(items.param, handle, offset, *shape)),
            after_held(state, run(db, statement, t=items)),
        )
        offset = resp.headers["electric-offset"]
        received.extend(changes(await resp.json()))

    moved_in, moved_out = received
    assert moved_in["headers"]["operation"] == "insert"
    assert moved_in["value"]["title"] == "hello"  # the whole row, not just changed columns
    assert moved_out["headers"]["operation"] == "delete"
    assert moved_out["value"] == {"id": "1"}


async def test_changes_outside_the_where_do_not_wake_a_long_poll(
    make_electric: MakeElectric, db: psycopg.AsyncConnection[Any], items: Table
) -> None:
    electric = await make_electric(long_poll_timeout=1.0)
    state = hooks(electric)
    shape = (("where", "status = 'open'"),)
    handle, offset = await sync(electric, items.param, *shape)
    resp, _ = await asyncio.gather(
        get_shape(electric, live_query(items.param, handle, offset, *shape)),
        after_held(state, run(db, "UPDATE {t} SET title = 'x' WHERE id = 2", t=items)),
    )

    assert resp.headers["electric-has-data"] == "false"
    assert changes(await resp.json()) == []


async def test_long_poll_times_out_with_up_to_date_and_no_data(
    make_electric: MakeElectric, items: Table
) -> None:
    electric = await make_electric(long_poll_timeout=1.0)
    handle, offset = await sync(electric, items.param)
    started = time.monotonic()
    resp = await get_shape(
        electric, live_query(items.param, handle, offset, ("cursor", "99999999999"))
    )
    elapsed = time.monotonic() - started

    assert 0.9 < elapsed < 2.0
    assert resp.status == 200
    assert resp.headers["electric-has-data"] == "false"
    assert resp.headers["electric-up-to-date"] == ""
    assert resp.headers["electric-offset"] == offset
    assert int(resp.headers["electric-cursor"]) > 99999999999
    assert resp.headers["ETag"].count(":") == 3  # empty responses get a unique suffix
    assert [m["headers"]["control"] for m in await resp.json()] == ["up-to-date"]


async def test_offset_ahead_of_the_shape_is_out_of_bounds(
    make_electric: MakeElectric, items: Table
) -> None:
    electric = await make_electric(long_poll_timeout=1.0)
    handle, _ = await sync(electric, items.param)
    resp = await get_shape(
        electric, [("table", items.param), ("offset", "999999999999_0"), ("handle", handle)]
    )

    assert resp.status == 400
    assert await resp.json() == {
        "message": "Invalid request",
        "errors": {"offset": ["out of bounds for this shape"]},
    }


# --- SSE ------------------------------------------------------------------------------------


async def read_event(resp: aiohttp.ClientResponse, within: float = 2.0) -> str:
    """The next SSE block (up to the blank line), as text."""
    lines: list[str] = []
    async with asyncio.timeout(within):
        while True:
            line = (await resp.content.readline()).decode()
            if line in ("\n", ""):
                return "".join(lines)
            lines.append(line)


async def test_sse_streams_changes_then_keeps_alive_then_closes(
    make_electric: MakeElectric, db: psycopg.AsyncConnection[Any], items: Table
) -> None:
    electric = await make_electric(sse_keepalive=0.3, sse_timeout=1.5)
    state = hooks(electric)
    handle, offset = await sync(electric, items.param)
    started = time.monotonic()
    resp = await get_shape(electric, live_query(items.param, handle, offset, ("live_sse", "true")))

    assert resp.status == 200
    assert resp.headers["Content-Type"] == "text/event-stream"
    assert resp.headers["Cache-Control"] == "public, max-age=1"
    assert resp.headers["electric-offset"] == offset
    assert "electric-cursor" in resp.headers
    await state.wait_for(lambda stats: stats.held_requests == 1)
    await run(db, "INSERT INTO {t} (id, title) VALUES (7, 'seven')", t=items)
    insert = await read_event(resp)
    control = await read_event(resp)
    keep_alive = await read_event(resp)
    rest = await asyncio.wait_for(resp.content.read(), 3)

    assert insert.startswith("data: ")
    assert insert.endswith("\n")
    assert json.loads(insert.removeprefix("data: "))["value"]["title"] == "seven"
    lsn = json.loads(insert.removeprefix("data: "))["headers"]["lsn"]
    assert json.loads(control.removeprefix("data: ")) == {
        "headers": {"control": "up-to-date", "global_last_seen_lsn": lsn}
    }
    assert keep_alive == ": keep-alive\n"
    assert set(rest.decode().split("\n\n")) <= {": keep-alive", ""}
    assert 1.4 < time.monotonic() - started < 3.0


async def test_sse_behind_the_head_answers_and_closes(
    electric: Client, db: psycopg.AsyncConnection[Any], items: Table
) -> None:
    handle, offset = await sync(electric, items.param)
    await run(db, "INSERT INTO {t} (id) VALUES (8)", t=items)
    await asyncio.sleep(0.3)
    resp = await get_shape(
        electric, live_query(items.param, handle, offset, ("experimental_live_sse", "true"))
    )
    text = await asyncio.wait_for(resp.text(), 2)

    assert resp.headers["Content-Type"] == "text/event-stream"
    events = [json.loads(block.removeprefix("data: ")) for block in text.split("\n\n") if block]
    assert [e["headers"].get("operation") or e["headers"]["control"] for e in events] == [
        "insert",
        "up-to-date",
    ]


# --- 409 and rotation -----------------------------------------------------------------------


async def test_mismatched_handle_is_409_with_current_handle(electric: Client, items: Table) -> None:
    handle, offset = await sync(electric, items.param)
    resp = await get_shape(
        electric, [("table", items.param), ("offset", offset), ("handle", "1-2")]
    )

    assert resp.status == 409
    assert await resp.json() == [{"headers": {"control": "must-refetch"}}]
    assert resp.headers["electric-handle"] == handle
    assert resp.headers["Cache-Control"] == "public, max-age=60, must-revalidate"


async def test_rotation_mid_long_poll_answers_409_and_retires_the_handle(
    electric: Client, items: Table
) -> None:
    state = hooks(electric)
    handle, offset = await sync(electric, items.param)

    async def rotate() -> None:
        [rotation] = await state.rotate(handle=handle)
        assert rotation.old_handle == handle

    resp, _ = await asyncio.gather(
        get_shape(electric, live_query(items.param, handle, offset)), after_held(state, rotate())
    )
    new_handle = resp.headers["electric-handle"]
    later = await get_shape(
        electric, [("table", items.param), ("offset", offset), ("handle", handle)]
    )
    fresh = await get_shape(electric, [("table", items.param), ("offset", "-1")])

    assert resp.status == 409
    assert await resp.json() == [{"headers": {"control": "must-refetch"}}]
    assert new_handle != handle
    assert HANDLE.match(new_handle)
    assert later.status == 409
    assert later.headers["electric-handle"] == new_handle
    assert fresh.headers["electric-handle"] == new_handle


async def test_rotation_closes_sse_stream_and_control_endpoint_rotates_by_table(
    electric: Client, items: Table
) -> None:
    state = hooks(electric)
    handle, offset = await sync(electric, items.param)
    resp = await get_shape(electric, live_query(items.param, handle, offset, ("live_sse", "true")))
    await state.wait_for(lambda stats: stats.held_requests == 1)
    rotated = await electric.post("/_control/rotate", json={"table": items.param})

    assert rotated.status == 200
    [rotation] = (await rotated.json())["rotated"]
    assert rotation["old_handle"] == handle
    assert await asyncio.wait_for(resp.content.read(), 2) == b""
    shapes = await (await electric.get("/_control/shapes")).json()
    assert [s["handle"] for s in shapes] == [rotation["new_handle"]]


async def test_truncate_invalidates_the_shape(
    electric: Client, db: psycopg.AsyncConnection[Any], items: Table
) -> None:
    state = hooks(electric)
    handle, offset = await sync(electric, items.param)
    resp, _ = await asyncio.gather(
        get_shape(electric, live_query(items.param, handle, offset)),
        after_held(state, run(db, "TRUNCATE {t}", t=items)),
    )

    assert resp.status == 409


# --- auth, parsing, validation ----------------------------------------------------------------


async def test_secret_is_checked_before_anything_else(
    make_electric: MakeElectric, items: Table
) -> None:
    electric = await make_electric(secret="s3cret")
    missing = await get_shape(electric, [("table", "no such table"), ("offset", "bad")])
    wrong = await get_shape(
        electric, [("table", items.param), ("offset", "-1"), ("secret", "nope")]
    )
    right = await get_shape(
        electric, [("table", items.param), ("offset", "-1"), ("secret", "s3cret")]
    )
    legacy = await get_shape(
        electric, [("table", items.param), ("offset", "-1"), ("api_secret", "s3cret")]
    )
    preflight = await electric.options("/v1/shape")
    health = await electric.get("/v1/health")

    for resp in (missing, wrong):
        assert resp.status == 401
        assert json.loads(await resp.read()) == {"message": "Unauthorized - Invalid API secret"}
        assert "Access-Control-Allow-Origin" not in resp.headers
    assert (right.status, legacy.status, preflight.status) == (200, 200, 204)
    assert await health.json() == {"status": "active"}


async def test_validation_errors_use_electrics_exact_bodies(electric: Client, items: Table) -> None:
    cases: list[tuple[Query, dict[str, Any]]] = [
        ([("offset", "-1")], {"table": ["can't be blank"]}),
        ([("table", items.param)], {"offset": ["can't be blank"]}),
        ([("table", items.param), ("offset", "0_-1")], {"offset": ["has invalid format"]}),
        ([("table", items.param), ("offset", "invalid")], {"offset": ["has invalid format"]}),
        (
            [("table", items.param), ("offset", "0_0")],
            {"handle": ["can't be blank when offset != -1"]},
        ),
        (
            [("table", items.param), ("offset", "-1"), ("live", "true")],
            {"live": ["can't be true when offset == -1"]},
        ),
        (
            [("table", items.param), ("offset", "now"), ("live", "")],
            {"live": ["can't be true when offset is 'now'"]},
        ),
        (
            [("table", items.param), ("offset", "0_0"), ("handle", "h"), ("live_sse", "true")],
            {"live_sse": ["can't be true unless live is also true"]},
        ),
        (
            [("table", ".invalid_shape"), ("offset", "-1")],
            {"table": ["Invalid zero-length delimited identifier"]},
        ),
        (
            [("table", "nonexistent"), ("offset", "-1")],
            {
                "table": [
                    'Table "public"."nonexistent" does not exist. If the table name contains '
                    "capitals or special characters you must quote it."
                ]
            },
        ),
        (
            [("table", items.param), ("offset", "-1"), ("where", "id = $1")],
            {"where": ["At location 5: parameter $1 was not provided"]},
        ),
        (
            [("table", items.param), ("offset", "-1"), ("where", "id = $1"), ("params[a]", "1")],
            {"params": ["Parameters can only use numbers as keys"]},
        ),
        (
            [("table", items.param), ("offset", "-1"), ("columns", "title")],
            {"columns": ["The list of columns must include all primary key columns, missing: id"]},
        ),
        (
            [("table", items.param), ("offset", "-1"), ("columns", "id,invalid")],
            {"columns": ["The following columns are not found on the table: invalid"]},
        ),
        (
            [("table", items.param), ("offset", "-1"), ("replica", "most")],
            {"replica": ["is invalid"]},
        ),
        (
            [("table", items.param), ("offset", "-1"), ("where", "true"), ("params", "x")],
            {"params": ["is invalid"]},
        ),
    ]
    for query, errors in cases:
        resp = await get_shape(electric, query)
        assert resp.status == 400, query
        assert await resp.json() == {"message": "Invalid request", "errors": errors}, query
        assert resp.headers["Cache-Control"] == NO_STORE, query
        assert resp.headers["surrogate-control"] == NO_STORE, query


async def test_where_is_judged_by_electrics_parser_with_its_messages(
    electric: Client, items: Table
) -> None:
    cases = {
        "nope = 1": "At location 0: unknown reference nope",
        "id = 'abc'": "At location 5: invalid syntax for type int4: abc",
        "id = = 1": 'At location 21: syntax error at or near "="',
        "now() > '2024-01-01'": "At location 0: unknown or unsupported function now/0",
        "price::numeric > 1": "At location 7: unsupported type numeric",
        "true; DROP TABLE x": 'unescaped ";" causing statement split',
        # Breaking out of the parentheses is a syntax error before it is anything else.
        "true); DROP TABLE x; SELECT (1": 'At location 20: syntax error at or near ")"',
    }
    for where, message in cases.items():
        resp = await get_shape(
            electric, [("table", items.param), ("offset", "-1"), ("where", where)]
        )
        assert resp.status == 400, where
        assert await resp.json() == {"message": "Invalid request", "errors": {"where": [message]}}


async def test_duplicate_parameters_last_one_wins_and_unknown_ones_are_ignored(
    electric: Client, items: Table, schema: str
) -> None:
    resp = await electric.get(
        f"/v1/shape?table=nonexistent&table={items.param}&offset=-1&where=false&where=id%3D2"
        "&cache-buster=1&expired_handle=x&bare"
    )

    assert resp.status == 200
    assert [m["key"] for m in changes(await resp.json())] == [f'"{schema}"."items"/"2"']


async def test_requests_are_recorded_raw_with_duplicates(electric: Client, items: Table) -> None:
    state = hooks(electric)
    raw = (
        f"table={items.param}&offset=-1&where=id%20%3E%20$1"
        "&params%5B1%5D=0&params%5B1%5D=1&secret=x&bare"
    )
    await electric.get(f"/v1/shape?{raw}", headers={"X-Tenant": "t1"})
    [recorded] = state.requests

    assert recorded.method == "GET"
    assert recorded.path == "/v1/shape"
    assert recorded.query_string == raw
    assert recorded.params("params[1]") == ["0", "1"]
    assert recorded.param("where") == "id > $1"
    assert recorded.param("bare") == ""
    assert recorded.header("x-tenant") == "t1"
    assert recorded.status == 200
    over_http = await (await electric.get("/_control/requests")).json()
    assert over_http[0]["query"][-1] == ["bare", ""]
    assert over_http[0]["query_string"] == raw
    assert (await electric.delete("/_control/requests")).status == 204
    assert state.requests == []


# --- transport -------------------------------------------------------------------------------


async def test_compression_follows_bandit_errors_yes_etagged_shape_logs_never(
    make_electric: MakeElectric, items: Table
) -> None:
    electric = await make_electric()
    plain_app = await make_electric(gzip=False)
    log = [("table", items.param), ("offset", "-1")]
    bad = [("table", items.param), ("offset", "bad")]
    subset = [*log, ("subset__where", "id > 1")]
    async with aiohttp.ClientSession(auto_decompress=False) as session:

        async def fetch(client: Client, query: Query, coding: str) -> aiohttp.ClientResponse:
            url = client.make_url("/v1/shape")
            response = await session.get(url, params=query, headers={"Accept-Encoding": coding})
            await response.read()
            return response

        shape_log = await fetch(electric, log, "gzip")
        error = await fetch(electric, bad, "gzip")
        sliced = await fetch(electric, subset, "gzip")
        deflated = await fetch(electric, bad, "deflate")
        weighted = await fetch(electric, bad, "gzip;q=1.0")
        plain = await fetch(plain_app, bad, "gzip")

    assert "Content-Encoding" not in shape_log.headers  # it has an ETag: Bandit leaves it
    assert error.headers["Content-Encoding"] == "gzip"
    assert json.loads(gzip.decompress(await error.read())) == {
        "message": "Invalid request",
        "errors": {"offset": ["has invalid format"]},
    }
    assert sliced.headers["Content-Encoding"] == "gzip"  # 1.7 compresses streams too
    assert zlib.decompress(await deflated.read())
    assert deflated.headers["Content-Encoding"] == "deflate"
    assert "Content-Encoding" not in weighted.headers  # Bandit matches whole list items
    assert "Content-Encoding" not in plain.headers
    for response in (shape_log, error, sliced):
        assert response.headers["Vary"] == "accept-encoding"


async def test_if_none_match_with_the_etag_answers_304(electric: Client, items: Table) -> None:
    first = await get_shape(electric, [("table", items.param), ("offset", "-1")])
    again = await get_shape(
        electric,
        [("table", items.param), ("offset", "-1")],
        headers={"If-None-Match": f'"x", {first.headers["ETag"]}'},
    )

    assert again.status == 304
    assert await again.read() == b""
    assert again.headers["electric-handle"] == first.headers["electric-handle"]
    assert again.headers["Cache-Control"] == first.headers["Cache-Control"]


async def test_head_and_options_mirror_electric(electric: Client, items: Table) -> None:
    head = await electric.head("/v1/shape", params=[("table", items.param), ("offset", "-1")])
    preflight = await electric.options(
        "/v1/shape",
        headers={
            "Origin": "https://app.example",
            "Access-Control-Request-Headers": "if-none-match",
        },
    )
    missing = await electric.get("/v1/elsewhere")

    assert head.status == 200
    assert head.headers["electric-offset"] == "0_0"
    assert await head.read() == b""
    assert preflight.status == 204
    assert preflight.headers["access-control-max-age"] == "86400"
    assert preflight.headers["Access-Control-Allow-Headers"] == "if-none-match"
    assert preflight.headers["Access-Control-Allow-Origin"] == "https://app.example"
    assert "Cache-Control" not in preflight.headers
    assert (missing.status, await missing.text()) == (404, "Not found")
    assert missing.headers["Access-Control-Allow-Methods"] == "GET, HEAD"
    deleted = await electric.delete("/v1/shape", params=[("table", items.param)])
    assert (deleted.status, await deleted.json()) == (405, {"message": "DELETE not allowed"})


async def test_subset_snapshot_post_answers_an_object(
    electric: Client, items: Table, schema: str
) -> None:
    resp = await electric.post(
        "/v1/shape",
        params=[
            ("table", items.param),
            ("offset", "-1"),
            ("where", "status = $1"),
            ("params[1]", "open"),
        ],
        json={"where": "id > $1", "params": {"1": "1"}, "order_by": "id DESC", "limit": 5},
    )

    assert resp.status == 200
    assert resp.headers["electric-snapshot"] == "true"
    assert resp.headers["Cache-Control"] == "no-cache"
    body = await resp.json()
    assert set(body["metadata"]) == {"xmin", "xmax", "xip_list", "database_lsn", "snapshot_mark"}
    [row] = body["data"]
    assert row["key"] == f'"{schema}"."items"/"3"'
    assert row["headers"]["snapshot_mark"] == body["metadata"]["snapshot_mark"]


async def test_subset_errors_nest_under_subset(electric: Client, items: Table) -> None:
    base = [("table", items.param), ("offset", "-1")]
    unordered = await get_shape(electric, [*base, ("subset__limit", "2")])
    bad_where = await get_shape(electric, [*base, ("subset__where", "nope > 1")])
    not_json = await electric.post("/v1/shape", params=base, data=b"[1]")

    assert await unordered.json() == {
        "message": "Invalid request",
        "errors": {
            "subset": {"order_by": ["order_by is required when limit or offset is present"]}
        },
    }
    assert await bad_where.json() == {
        "message": "Invalid request",
        "errors": {"subset": {"where": ["At location 0: unknown reference nope"]}},
    }
    assert (not_json.status, await not_json.json()) == (
        400,
        {"error": "Request body must be a JSON object"},
    )


# --- test hooks ------------------------------------------------------------------------------


async def test_faults_answer_503_500_delay_and_abort_for_the_next_requests(
    electric: Client, items: Table
) -> None:
    state = hooks(electric)
    query = [("table", items.param), ("offset", "-1")]
    state.inject(Fault("overloaded", count=2, retry_after=7))
    first, second, third = [await get_shape(electric, query) for _ in range(3)]

    assert (first.status, second.status, third.status) == (503, 503, 200)
    assert first.headers["Retry-After"] == "7"
    assert (await first.json())["code"] == "concurrent_request_limit_exceeded"
    assert first.headers["Cache-Control"] == NO_STORE

    added = await electric.post("/_control/faults", json={"kind": "internal_error"})
    assert added.status == 201
    crashed = await get_shape(electric, query)
    assert (crashed.status, await crashed.json()) == (500, {"error": "Internal server error"})

    state.inject(Fault("delay", seconds=0.4))
    started = time.monotonic()
    assert (await get_shape(electric, query)).status == 200
    assert time.monotonic() - started >= 0.4

    state.inject(Fault("abort", after_bytes=20))
    cut = await get_shape(electric, query)
    assert cut.status == 200
    with pytest.raises(aiohttp.ClientPayloadError):
        await cut.read()
    assert (await get_shape(electric, query)).status == 200


async def test_client_abandoning_a_long_poll_is_seen_as_cancelled(
    electric: Client, items: Table
) -> None:
    state = hooks(electric)
    handle, offset = await sync(electric, items.param)

    with pytest.raises(TimeoutError):
        await asyncio.wait_for(get_shape(electric, live_query(items.param, handle, offset)), 0.5)
    await state.wait_for(lambda stats: stats.cancelled_requests == 1, within=2)

    assert state.stats.held_requests == 0
    stats = await (await electric.get("/_control/stats")).json()
    assert stats["cancelled_requests"] == 1
    assert stats["active_requests"] == 0


async def test_standalone_server_prints_its_address_and_stops_on_sigterm(database_url: str) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "electric_imitation",
        "--port",
        "0",
        "--dsn",
        database_url,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), 10)
    process.send_signal(signal.SIGTERM)

    assert line.decode().startswith("electric-fake listening on http://127.0.0.1:")
    assert await asyncio.wait_for(process.wait(), 10) == 0


# --- what a real Electric did differently (electric_imitation/versions.py) -----------------------
# Each test pins one difference seen on sync-service 1.0.10 (or read in its source), and where
# 1.7 differs, what 1.7 does; the imitation plays either (`ElectricConfig.version`).

OLD = "1.0.10"
PLUG_CRASH_CACHE = "max-age=0, private, must-revalidate"


def rows(body: list[dict[str, Any]]) -> list[str]:
    return [m["value"]["id"] for m in changes(body)]


async def test_any_boolean_not_crashes_1_0_10s_parser_but_not_1_7s(
    make_electric: MakeElectric, items: Table
) -> None:
    old, new = await make_electric(version=OLD), await make_electric()
    for where in ("NOT status = 'open'", "NOT (status = 'open')"):  # one parse tree
        query = [("table", items.param), ("offset", "-1"), ("where", where)]
        crashed, served = await get_shape(old, query), await get_shape(new, query)

        assert crashed.status == 500, where
        assert (await crashed.json())["error"].startswith(
            "** (FunctionClauseError) no function clause matching in "
            "Electric.Replication.Eval.Parser.to_binary_operators/1"
        )
        assert crashed.headers["Cache-Control"] == PLUG_CRASH_CACHE
        assert "electric-schema" not in crashed.headers
        assert rows(await served.json()) == ["2"]


async def test_a_cast_on_a_parameter_crashes_1_0_10_or_breaks_its_numbering(
    make_electric: MakeElectric, items: Table
) -> None:
    old, new = await make_electric(version=OLD), await make_electric()
    cast_last = [("where", "status = $1 AND id = CAST($2 AS integer)"), ("params[1]", "open"),
                 ("params[2]", "1")]  # fmt: skip
    cast_first = [("where", "id = $1::integer AND status = $2"), ("params[1]", "1"),
                  ("params[2]", "open")]  # fmt: skip
    base = [("table", items.param), ("offset", "-1")]

    crashed = await get_shape(old, [*base, *cast_last])
    assert crashed.status == 500
    assert (await crashed.json()) == {
        "error": "** (MatchError) no match of right hand side value: nil"
    }
    misnumbered = await get_shape(old, [*base, *cast_first])
    assert await misnumbered.json() == {
        "message": "Invalid request",
        "errors": {
            "where": [
                "At location 0: expression is missing $1 - parameters should be numbered "
                "sequentially"
            ]
        },
    }
    for extra in (cast_last, cast_first):
        assert rows(await (await get_shape(new, [*base, *extra])).json()) == ["1"]


async def test_where_postgres_runs_but_electric_refuses_is_400_on_both(
    make_electric: MakeElectric, items: Table
) -> None:
    old, new = await make_electric(version=OLD), await make_electric()
    subquery = f"id IN (SELECT id FROM {items.param})"  # noqa: S608 - a where under test
    cases = {
        "status = $1": ("params[1]", "open", "params[2]", "unused"),
        "meta->>'k' = '1'": (),
        "lower(id) = 'a'": (),
        "count(*) > 0": (),
        "CASE WHEN true THEN true END": (),
        "id * 2 = 4": (),  # 1.7 knows `*` on numbers
        subquery: (),  # 1.7 knows `IN (SELECT ...)`
    }
    messages: dict[str, list[str]] = {}
    for where, pairs in cases.items():
        params = list(zip(pairs[::2], pairs[1::2], strict=True))
        query = [("table", items.param), ("offset", "-1"), ("where", where), *params]
        for client in (old, new):
            resp = await get_shape(client, query)
            body = await resp.json()
            messages.setdefault(where, []).append(
                body["errors"]["where"][0] if resp.status == 400 else str(resp.status)
            )

    assert messages == {
        "status = $1": ["At location 0: parameter value for $2 was not used"] * 2,
        "meta->>'k' = '1'": ['At location 4: unknown binary operator "->>"'] * 2,
        "lower(id) = 'a'": ["At location 0: Could not select a function overload for lower(int4)"]
        * 2,
        "count(*) > 0": ["At location 0: aggregation is not supported in this context"] * 2,
        "CASE WHEN true THEN true END": ["At location 0: CaseExpr is not supported in this context"]
        * 2,
        "id * 2 = 4": ["At location 3: Could not select an operator overload", "200"],
        subquery: ["At location 3: subqueries are not supported", "200"],
    }


async def test_a_cast_failing_at_snapshot_time_cuts_a_started_200_on_1_0_10(
    make_electric: MakeElectric, items: Table
) -> None:
    old = await make_electric(version=OLD, snapshot_failure_delay=0.3)
    new = await make_electric()
    query = [("table", items.param), ("offset", "-1"), ("where", "status::int4 > 3")]
    started = time.monotonic()
    cut = await get_shape(old, query)

    assert cut.status == 200
    assert HANDLE_1_0_10.match(cut.headers["electric-handle"])
    with pytest.raises(aiohttp.ClientPayloadError):
        await cut.read()
    assert time.monotonic() - started >= 0.3
    failed = await get_shape(new, query)
    assert failed.status == 500
    assert await failed.json() == {
        "message": "Unexpected error while creating snapshot: invalid input syntax for type "
        'integer: "open"'
    }


async def test_409_names_the_callers_shape_with_electrics_etag_and_a_minute_of_caching(
    make_electric: MakeElectric, items: Table
) -> None:
    for version in (OLD, "1.7"):
        electric = await make_electric(version=version)
        handle, offset = await sync(electric, items.param, ("columns", "id,title"))
        resp = await get_shape(
            electric,
            [("table", items.param), ("offset", offset), ("handle", "1-2"), ("columns", "id,title"),
             ("live", "true"), ("cursor", "5")],
        )  # fmt: skip

        assert resp.status == 409
        assert resp.headers["electric-handle"] == handle
        assert resp.headers["ETag"] == f'"{handle}::"'
        assert resp.headers["Cache-Control"] == "public, max-age=60, must-revalidate"
        assert "electric-cursor" not in resp.headers
        assert "electric-offset" not in resp.headers
        if version == OLD:
            assert json.loads(resp.headers["electric-schema"]) == {
                "id": {"type": "int4", "pk_index": 0, "not_null": True},
                "title": {"type": "text"},
            }
            assert resp.headers["Location"] == (
                f"/v1/shape?columns=id%2Ctitle&handle={handle}&offset=-1&table={items.param}"
            )
        else:
            assert "electric-schema" not in resp.headers
            assert "Location" not in resp.headers


async def test_truncate_under_a_held_poll_answers_409_naming_the_old_handle_on_1_0_10(
    make_electric: MakeElectric, db: psycopg.AsyncConnection[Any], items: Table
) -> None:
    electric = await make_electric(version=OLD)
    state = hooks(electric)
    handle, offset = await sync(electric, items.param)
    resp, _ = await asyncio.gather(
        get_shape(electric, live_query(items.param, handle, offset)),
        after_held(state, run(db, "TRUNCATE {t}", t=items)),
    )

    assert resp.status == 409
    assert resp.headers["electric-handle"] == handle


async def test_errors_are_no_cache_with_a_null_schema_on_1_0_10_and_no_store_on_1_7(
    make_electric: MakeElectric, items: Table
) -> None:
    old, new = await make_electric(version=OLD), await make_electric()
    query = [("table", items.param), ("offset", "0_-1")]
    before, after = await get_shape(old, query), await get_shape(new, query)

    for resp in (before, after):
        assert resp.status == 400
        assert await resp.json() == {
            "message": "Invalid request",
            "errors": {"offset": ["has invalid format"]},
        }
    assert before.headers["Cache-Control"] == "no-cache"
    assert before.headers["electric-schema"] == "null"
    assert "surrogate-control" not in before.headers
    assert after.headers["Cache-Control"] == NO_STORE
    assert after.headers["surrogate-control"] == NO_STORE
    assert "electric-schema" not in after.headers


async def test_offset_beyond_the_end_is_refused_at_once_on_1_0_10(
    make_electric: MakeElectric, items: Table
) -> None:
    electric = await make_electric(version=OLD, long_poll_timeout=4.0)
    handle, _ = await sync(electric, items.param)
    started = time.monotonic()
    resp = await get_shape(
        electric, [("table", items.param), ("offset", "999999999999_0"), ("handle", handle)]
    )

    assert time.monotonic() - started < 1.0  # 1.7 would wait half a long-poll (2 s)
    assert await resp.json() == {
        "message": "Invalid request",
        "errors": {"offset": ["out of bounds for this shape"]},
    }
    assert "electric-schema" in resp.headers  # the shape was known: its schema, not null


async def test_1_0_10_compresses_whole_bodies_in_the_clients_order_never_a_shape_log(
    make_electric: MakeElectric, items: Table
) -> None:
    electric = await make_electric(version=OLD)
    async with aiohttp.ClientSession(auto_decompress=False) as session:
        url = electric.make_url("/v1/shape")
        headers = {"Accept-Encoding": "deflate, gzip"}
        async with session.get(url, params={"table": items.param, "offset": "-1"},
                               headers={"Accept-Encoding": "gzip"}) as log:  # fmt: skip
            raw = await log.read()
        async with session.get(url, params={"offset": "-1"}, headers=headers) as error:
            packed = await error.read()
        async with session.get(electric.make_url("/nowhere"), headers=headers) as missing:
            await missing.read()

    assert "Content-Encoding" not in log.headers
    assert "Vary" not in log.headers  # Bandit 1.5.5 leaves chunked bodies alone entirely
    assert rows(json.loads(raw)) == ["1", "2", "3"]
    assert error.headers["Content-Encoding"] == "deflate"  # the client's first choice
    assert error.headers["Vary"] == "accept-encoding"
    assert json.loads(zlib.decompress(packed)) == {
        "message": "Invalid request",
        "errors": {"table": ["can't be blank"]},
    }
    assert (missing.status, missing.headers["Content-Encoding"]) == (404, "deflate")


async def test_a_large_snapshot_is_one_response_of_many_megabytes(
    make_electric: MakeElectric, db: psycopg.AsyncConnection[Any], schema: str
) -> None:
    big = Table(schema, "big")
    await run(
        db,
        "CREATE TABLE {t} (id int PRIMARY KEY, payload text);"
        "INSERT INTO {t} SELECT g, repeat('x', 1000) FROM generate_series(1, 3000) g",
        t=big,
    )
    electric = await make_electric()
    small = await make_electric(chunk_bytes=1024 * 1024)
    whole = await get_shape(electric, [("table", big.param), ("offset", "-1")])
    body = await whole.read()
    first = await get_shape(small, [("table", big.param), ("offset", "-1")])
    first_rows = changes(await first.json())

    assert whole.headers["Transfer-Encoding"] == "chunked"
    assert len(body) > 3_000_000
    assert len(changes(json.loads(body))) == 3000  # the imitation once cut at 500 rows
    assert json.loads(body)[-1]["headers"]["control"] == "snapshot-end"
    assert 900 < len(first_rows) < 1100  # ~1 MiB of ~1 KiB messages
    assert "electric-up-to-date" not in first.headers


async def test_live_timeout_answer_has_a_content_length_and_a_negative_clock_in_its_etag(
    make_electric: MakeElectric, items: Table
) -> None:
    for version in (OLD, "1.7"):
        electric = await make_electric(version=version, long_poll_timeout=0.3)
        handle, offset = await sync(electric, items.param)
        resp = await get_shape(electric, live_query(items.param, handle, offset))

        assert resp.status == 200
        assert "Transfer-Encoding" not in resp.headers
        assert int(resp.headers["Content-Length"]) == len(await resp.read())
        _, requested, answered, clock = resp.headers["ETag"].strip('"').rsplit(":", 3)
        assert (requested, answered) == (offset, offset)
        assert int(clock) < 0  # Erlang's monotonic clock starts far below zero
        assert resp.headers["electric-up-to-date"] == ""


async def test_1_0_10_sends_no_has_data_no_snapshot_end_and_millisecond_handles(
    make_electric: MakeElectric, items: Table
) -> None:
    electric = await make_electric(version=OLD, secret="s")
    authorised = [("table", items.param), ("offset", "-1"), ("secret", "s")]
    first = await get_shape(electric, authorised)
    body = await first.json()
    others = [
        await get_shape(electric, [("table", items.param), ("offset", "-1")]),  # 401
        await electric.get("/v1/health"),
        await electric.get("/elsewhere"),
        await electric.options("/v1/shape"),
    ]

    assert HANDLE_1_0_10.match(first.headers["electric-handle"])
    assert "electric-has-data" not in first.headers
    assert [m["headers"].get("control") for m in body] == [None, None, None]
    assert first.headers["Access-Control-Expose-Headers"] == (
        "electric-cursor,electric-handle,electric-offset,electric-schema,electric-up-to-date"
    )
    for resp in (first, *others):
        assert resp.headers["electric-server"] == "ElectricSQL/1.0.10"


async def test_1_0_10_lacks_offset_now_changes_only_subsets_and_sse(
    make_electric: MakeElectric, items: Table
) -> None:
    electric = await make_electric(version=OLD, long_poll_timeout=0.3)
    base = [("table", items.param), ("offset", "-1")]
    now = await get_shape(electric, [("table", items.param), ("offset", "now")])
    changes_only = await get_shape(electric, [*base, ("log", "changes_only")])
    subset = await get_shape(electric, [*base, ("subset__where", "id = 1")])
    post = await electric.post("/v1/shape", params=base, json={"where": "id = 1"})
    handle, offset = await sync(electric, items.param)
    sse = await get_shape(electric, live_query(items.param, handle, offset, ("live_sse", "true")))

    assert await now.json() == {
        "message": "Invalid request",
        "errors": {"offset": ["has invalid format"]},
    }
    assert rows(await changes_only.json()) == ["1", "2", "3"]  # `log` is not a 1.0.10 field
    assert rows(await subset.json()) == ["1", "2", "3"]  # an unknown parameter, ignored
    assert (post.status, await post.text()) == (404, "Not found")
    assert sse.headers["Content-Type"] == "application/json; charset=utf-8"
    assert [m["headers"]["control"] for m in await sse.json()] == ["up-to-date"]


async def test_1_0_10_answers_a_stale_handle_at_offset_minus_one_with_409(
    make_electric: MakeElectric, items: Table
) -> None:
    old, new = await make_electric(version=OLD), await make_electric()
    query = [("table", items.param), ("offset", "-1"), ("handle", "1-2")]
    stale, ignored = await get_shape(old, query), await get_shape(new, query)

    assert stale.status == 409  # 1.7 drops `handle` at offset -1, so it can bust caches
    assert ignored.status == 200
