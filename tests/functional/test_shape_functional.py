"""Through the running gateway to our Electric-protocol upstream on real PostgreSQL: what each
caller receives is judged by rows, and what the upstream saw is judged by its request log."""

from __future__ import annotations

import asyncio
import gzip
import json
from typing import Any

import aiohttp
import pytest

from tests.factories import make_token
from tests.functional.conftest import ELECTRIC_SECRET, Electric, ElectricFactory, World
from tests.gateway import Gateway, GatewayFactory

pytestmark = [pytest.mark.postgres, pytest.mark.across_electric_versions]

ALICE = make_token(sub="alice", tid="acme", role="member")
ADMIN = make_token(sub="root", tid="acme", role="admin")
MEMBER_COLUMNS = {"id", "tenant_id", "project_id", "title", "status", "assigned_to"}


async def gateway_for(
    factory: GatewayFactory, world: World, electric: Electric, **overrides: Any
) -> Gateway:
    return await factory(
        upstream=str(electric.url),
        rules=world.rules,
        electric_secret=ELECTRIC_SECRET,
        **overrides,
    )


async def fetch(
    gateway: Gateway, query: dict[str, str], token: str
) -> tuple[int, dict[str, str], Any]:
    """A whole request (status, headers, parsed body), for running as a task."""
    async with gateway.shape(query, token=token) as response:
        text = await response.text()
        return response.status, dict(response.headers), json.loads(text) if text else None


def rows_of(body: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [m["value"] for m in body if "key" in m]


async def sync_to_live(gateway: Gateway, token: str) -> tuple[str, str, str]:
    """Initial sync then catch-up, as the client does; returns (handle, offset, cursor)."""
    async with gateway.shape({"table": "tasks", "offset": "-1"}, token=token) as response:
        assert response.status == 200
        handle, offset = response.headers["electric-handle"], response.headers["electric-offset"]
    query = {"table": "tasks", "offset": offset, "handle": handle}
    async with gateway.shape(query, token=token) as response:
        assert response.status == 200
        assert "electric-up-to-date" in response.headers
        return handle, response.headers["electric-offset"], "0"


async def test_member_syncs_exactly_its_rows_and_columns(
    gateway_factory: GatewayFactory, world: World, electric: Electric
) -> None:
    gateway = await gateway_for(gateway_factory, world, electric)
    async with gateway.shape({"table": "tasks", "offset": "-1"}, token=ALICE) as response:
        assert response.status == 200
        body = await response.json()
        headers = response.headers
    rows = rows_of(body)
    assert sorted(r["id"] for r in rows) == ["1", "3"]
    assert all(set(r) <= MEMBER_COLUMNS for r in rows)
    for name in ("electric-handle", "electric-offset", "electric-schema"):
        assert name in headers
    assert headers["Cache-Control"].startswith("private")
    assert "public" not in headers["Cache-Control"]
    assert "s-maxage" not in headers["Cache-Control"]
    assert "Authorization" in headers["Vary"]

    seen = electric.state.requests[-1]
    keys = [key for key, _ in seen.query]
    assert len(keys) == len(set(keys)), "every upstream parameter is sent exactly once"
    assert seen.params("table") == [f"{world.schema}.tasks"]
    assert seen.params("where") == ["(tenant_id = $1) AND (assigned_to = $2)"]
    assert (seen.params("params[1]"), seen.params("params[2]")) == (["acme"], ["alice"])
    assert seen.params("secret") == [ELECTRIC_SECRET]
    assert seen.header("Authorization") is None


async def test_admin_of_another_tenant_sees_only_that_tenant(
    gateway_factory: GatewayFactory, world: World, electric: Electric
) -> None:
    gateway = await gateway_for(gateway_factory, world, electric)
    token = make_token(sub="g", tid="globex", role="admin")
    async with gateway.shape({"table": "tasks", "offset": "-1"}, token=token) as response:
        rows = rows_of(await response.json())
    assert sorted(r["id"] for r in rows) == ["4", "5"]
    assert {r["salary"] for r in rows} == {"1000"}  # admins have no column allow-list


async def test_client_where_narrows_within_the_tenant(
    gateway_factory: GatewayFactory, world: World, electric: Electric
) -> None:
    gateway = await gateway_for(gateway_factory, world, electric)
    query = {"table": "tasks", "offset": "-1", "where": "status = $1 OR project_id = $2",
             "params[1]": "done", "params[2]": "99"}  # fmt: skip
    async with gateway.shape(query, token=ADMIN) as response:
        rows = rows_of(await response.json())
    assert [r["id"] for r in rows] == ["2"]
    seen = electric.state.requests[-1]
    assert seen.param("where") == "(tenant_id = $1) AND ((status = $2) OR (project_id = $3))"


@pytest.mark.parametrize(
    "query",
    [
        [("table", "tasks"), ("offset", "-1"), ("table", "big")],
        [("table", "tasks"), ("offset", "-1"), ("secret", ELECTRIC_SECRET)],
        [("table", "tasks"), ("offset", "-1"), ("where", "tenant_id = 'globex'")],
        [("table", "tasks"), ("offset", "-1"), ("where", "1=1) OR (1=1")],
        [("table", "tasks"), ("offset", "-1"), ("columns", "id,salary")],
        [("table", "public.tasks"), ("offset", "-1")],
        [("table", "big"), ("offset", "-1")],
    ],
)
async def test_refused_requests_never_reach_the_upstream(
    gateway_factory: GatewayFactory, world: World, electric: Electric, query: list[tuple[str, str]]
) -> None:
    gateway = await gateway_for(gateway_factory, world, electric)
    async with gateway.shape(query, token=ALICE) as response:
        assert 400 <= response.status < 500
        body = await response.json()
        assert set(body) == {"error", "message"}
    assert electric.state.requests == []


async def test_live_long_poll_is_woken_by_a_row_inserted_in_postgres(
    gateway_factory: GatewayFactory, world: World, electric: Electric
) -> None:
    gateway = await gateway_for(gateway_factory, world, electric)
    handle, offset, cursor = await sync_to_live(gateway, ALICE)
    query = {"table": "tasks", "offset": offset, "handle": handle, "live": "true", "cursor": cursor}
    async with asyncio.TaskGroup() as group:
        poll = group.create_task(fetch(gateway, query, ALICE))
        await electric.state.wait_for(lambda s: s.held_requests == 1)
        world.execute("INSERT INTO {schema}.tasks VALUES (9, 'globex', 1, 'x', 'open', 'alice')")
        world.execute("INSERT INTO {schema}.tasks VALUES (10, 'acme', 1, 'new', 'open', 'alice')")
        async with asyncio.timeout(2):
            status, headers, body = await poll
    assert status == 200
    assert [r["id"] for r in rows_of(body)] == ["10"]
    assert "electric-cursor" in headers


@pytest.mark.electric_feature("sse")
async def test_sse_events_reach_the_client_before_the_upstream_ends_the_stream(
    gateway_factory: GatewayFactory, world: World, electric_factory: ElectricFactory
) -> None:
    electric = await electric_factory(sse_timeout=30.0, sse_keepalive=10.0)
    gateway = await gateway_for(gateway_factory, world, electric)
    handle, offset, cursor = await sync_to_live(gateway, ALICE)
    query = {"table": "tasks", "offset": offset, "handle": handle, "live": "true",
             "live_sse": "true", "cursor": cursor}  # fmt: skip
    headers = {"Accept": "text/event-stream"}
    async with gateway.shape(query, token=ALICE, headers=headers) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/event-stream")
        await electric.state.wait_for(lambda s: s.held_requests == 1)
        world.execute("INSERT INTO {schema}.tasks VALUES (11, 'acme', 1, 'sse', 'open', 'alice')")
        async with asyncio.timeout(2):
            while True:
                line = (await response.content.readline()).decode()
                if line.startswith("data:") and '"11"' in line:
                    break
        assert electric.state.stats.held_requests == 1  # upstream stream still open
        assert json.loads(line.removeprefix("data:"))["value"]["id"] == "11"


async def test_abandoned_long_poll_is_cancelled_upstream_within_a_second(
    gateway_factory: GatewayFactory, world: World, electric_factory: ElectricFactory
) -> None:
    electric = await electric_factory(long_poll_timeout=20.0)
    gateway = await gateway_for(gateway_factory, world, electric)
    handle, offset, cursor = await sync_to_live(gateway, ALICE)
    query = {"table": "tasks", "offset": offset, "handle": handle, "live": "true", "cursor": cursor}
    async with asyncio.TaskGroup() as group:
        poll = group.create_task(fetch(gateway, query, ALICE))
        await electric.state.wait_for(lambda s: s.held_requests == 1)
        poll.cancel()  # the client gives up: its connection closes
    await electric.state.wait_for(lambda s: s.cancelled_requests == 1, within=1.0)
    assert electric.state.stats.held_requests == 0


async def test_five_megabyte_snapshot_is_byte_identical_to_direct(
    gateway_factory: GatewayFactory, world: World, electric_factory: ElectricFactory
) -> None:
    electric = await electric_factory(chunk_rows=100_000)
    world.execute(
        "INSERT INTO {schema}.big "
        "SELECT g, repeat(md5(g::text), 64) FROM generate_series(1, 2600) g"
    )
    gateway = await gateway_for(gateway_factory, world, electric)
    async with gateway.shape({"table": "big", "offset": "-1"}, token=ADMIN) as response:
        through = await response.read()
    assert len(through) > 5_000_000
    seen = electric.state.requests[-1]
    async with aiohttp.ClientSession() as session:
        direct_url = electric.url.with_path("/v1/shape").with_query(seen.query_string)
        async with session.get(direct_url) as direct:
            assert await direct.read() == through


async def test_gzip_bytes_pass_through_without_recompression(
    gateway_factory: GatewayFactory, world: World, electric: Electric
) -> None:
    # Electric's server compresses what has no ETag (errors), never a shape log (protocol
    # notes §12): the gateway passes both through as they came.
    gateway = await gateway_for(gateway_factory, world, electric)
    headers = {"Authorization": f"Bearer {ADMIN}", "Accept-Encoding": "gzip"}
    async with aiohttp.ClientSession(auto_decompress=False) as session:
        shape = gateway.url.with_path("/v1/shape")
        async with session.get(
            shape.with_query(table="tasks", offset="-1"), headers=headers
        ) as log:
            assert "Content-Encoding" not in log.headers
            assert sorted(r["id"] for r in rows_of(json.loads(await log.read()))) == ["1", "2", "3"]
        async with session.get(
            shape.with_query(table="tasks", offset="0_0"), headers=headers
        ) as error:
            assert error.status == 400
            assert error.headers["Content-Encoding"] == "gzip"
            raw = await error.read()
    assert raw[:2] == b"\x1f\x8b"
    assert json.loads(gzip.decompress(raw)) == {
        "message": "Invalid request",
        "errors": {"handle": ["can't be blank when offset != -1"]},
    }
    assert electric.state.requests[-1].header("Accept-Encoding") == "gzip"


async def test_409_passes_through_with_its_handle_and_private_caching(
    gateway_factory: GatewayFactory, world: World, electric: Electric
) -> None:
    gateway = await gateway_for(gateway_factory, world, electric)
    handle, offset, _ = await sync_to_live(gateway, ALICE)
    await electric.state.rotate(handle=handle)
    query = {"table": "tasks", "offset": offset, "handle": handle}
    async with gateway.shape(query, token=ALICE) as response:
        assert response.status == 409
        assert await response.json() == [{"headers": {"control": "must-refetch"}}]
        assert response.headers["electric-handle"] != handle
        assert response.headers["Cache-Control"].startswith("private")
        # Electric 1.0.10 adds a `location` built from the query it got: secret included.
        assert "Location" not in response.headers
        assert ELECTRIC_SECRET not in str(response.headers)


async def test_errors_are_never_stored_whatever_electric_sent(
    gateway_factory: GatewayFactory, world: World, electric: Electric
) -> None:
    # Electric 1.0.10 marks its 400s `no-cache` only, 1.7 `no-store`
    # (electric_imitation/versions.py): the gateway's own errors and Electric's passed through get
    # one policy, `no-store`.
    gateway = await gateway_for(gateway_factory, world, electric)
    never_stored = "private, no-cache, no-store"
    async with gateway.shape({"table": "tasks", "offset": "0_0"}, token=ADMIN) as response:
        assert response.status == 400
        assert "handle" in (await response.json())["errors"]  # Electric's own refusal
        assert response.headers["Cache-Control"] == never_stored
    query = {"table": "tasks", "offset": "-1", "where": "title = 'x'"}
    async with gateway.shape(query, token=ADMIN) as response:
        assert response.status == 400
        assert (await response.json())["error"] == "invalid_where"  # the gateway's own
        assert response.headers["Cache-Control"] == never_stored
    handle, offset, _ = await sync_to_live(gateway, ADMIN)
    await electric.state.rotate(handle=handle)
    query = {"table": "tasks", "offset": offset, "handle": handle}
    async with gateway.shape(query, token=ADMIN) as response:
        assert response.status == 409
        assert response.headers["Cache-Control"] == never_stored


async def test_rotation_during_a_held_long_poll_answers_409(
    gateway_factory: GatewayFactory, world: World, electric: Electric
) -> None:
    gateway = await gateway_for(gateway_factory, world, electric)
    handle, offset, cursor = await sync_to_live(gateway, ALICE)
    query = {"table": "tasks", "offset": offset, "handle": handle, "live": "true", "cursor": cursor}
    async with asyncio.TaskGroup() as group:
        poll = group.create_task(fetch(gateway, query, ALICE))
        await electric.state.wait_for(lambda s: s.held_requests == 1)
        await electric.state.rotate(handle=handle)
        async with asyncio.timeout(2):
            status, _, _ = await poll
    assert status == 409


async def test_head_and_if_none_match(
    gateway_factory: GatewayFactory, world: World, electric: Electric
) -> None:
    gateway = await gateway_for(gateway_factory, world, electric)
    query = {"table": "tasks", "offset": "-1"}
    async with gateway.request("HEAD", params=query, token=ALICE) as response:
        assert response.status == 200
        assert "electric-handle" in response.headers
        assert await response.read() == b""
    async with gateway.shape(query, token=ALICE) as response:
        etag = response.headers["ETag"]
    async with gateway.shape(query, token=ALICE, headers={"If-None-Match": etag}) as response:
        assert response.status == 304


@pytest.mark.electric_feature("subsets")
async def test_post_subset_snapshot_is_checked_and_forwarded_as_a_json_body(
    gateway_factory: GatewayFactory, world: World, electric: Electric
) -> None:
    gateway = await gateway_for(gateway_factory, world, electric)
    body = {"where": "status = $1", "params": {"1": "open"}, "order_by": "project_id DESC",
            "limit": 10}  # fmt: skip
    query = {"table": "tasks", "offset": "-1"}
    async with gateway.request("POST", params=query, json=body, token=ADMIN) as response:
        assert response.status == 200, await response.text()
        answer = await response.json()
    assert sorted(m["value"]["id"] for m in answer["data"]) == ["1", "3"]
    seen = electric.state.requests[-1]
    assert seen.method == "POST"
    assert seen.param("where") == "tenant_id = $1"
    assert seen.param("params[1]") == "acme"
    assert not [key for key, _ in seen.query if key.startswith("subset__")]

    hostile = {"where": "tenant_id <> 'acme'"}
    async with gateway.request("POST", params=query, json=hostile, token=ADMIN) as response:
        assert response.status == 400
        assert (await response.json())["error"] == "invalid_where"


@pytest.mark.parametrize(
    ("where", "value", "expected"),
    [("NOT (status = $1)", "done", ["1", "3"]), ("project_id::text = $1", "2", ["3"])],
)
async def test_client_where_reaches_electric_in_a_form_its_parser_takes(
    gateway_factory: GatewayFactory,
    world: World,
    electric: Electric,
    where: str,
    value: str,
    expected: list[str],
) -> None:
    # Electric parses wheres itself (electric_imitation/versions.py): 1.0.10 answers 500 to any
    # boolean NOT, parenthesised or not, and to a cast applied to a parameter.
    gateway = await gateway_for(gateway_factory, world, electric)
    query = {"table": "tasks", "offset": "-1", "where": where, "params[1]": value}
    async with gateway.shape(query, token=ADMIN) as response:
        assert response.status == 200, await response.text()
        assert sorted(r["id"] for r in rows_of(await response.json())) == expected
