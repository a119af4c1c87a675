"""The real-Electric path (electric_imitation/real), exercised against the imitation standing in.

No Docker engine or real Electric runs here, so the tap and the discovery are pointed at the
imitation: what they do to the traffic (record, swap the secret, count held requests, delete a
shape for a rotation, read the version) does not depend on which server answers.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import aiohttp
import psycopg
import pytest
from psycopg import sql
from pytest_aiohttp import AiohttpServer

from electric_imitation import ELECTRIC, ElectricConfig, ElectricState, make_electric_app
from electric_imitation.real import Tap, find_real_electric, start_tap
from electric_imitation.real.discover import RealElectricError
from electric_imitation.versions import missing_feature, parse_banner

pytestmark = pytest.mark.postgres

REAL_SECRET = "the-real-servers-secret"
TEST_SECRET = "the-secret-tests-use"


@pytest.fixture
async def upstream(aiohttp_server: AiohttpServer, database_url: str) -> tuple[str, ElectricState]:
    app = make_electric_app(
        ElectricConfig(
            dsn=database_url, secret=REAL_SECRET, allow_shape_deletion=True, long_poll_timeout=5
        )
    )
    server = await aiohttp_server(app)
    return str(server.make_url("")).rstrip("/"), app[ELECTRIC]


@pytest.fixture
async def tap(upstream: tuple[str, ElectricState]) -> AsyncIterator[Tap]:
    async with start_tap(upstream[0], REAL_SECRET, TEST_SECRET) as started:
        yield started


@pytest.fixture
async def items(database_url: str) -> AsyncIterator[str]:
    """`<fresh schema>.items` with two rows."""
    schema = f"tap_{uuid.uuid4().hex[:10]}"
    table = sql.Identifier(schema, "items")
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        await conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        await conn.execute(
            sql.SQL("CREATE TABLE {} (id int PRIMARY KEY, title text)").format(table)
        )
        await conn.execute(sql.SQL("INSERT INTO {} VALUES (1, 'one'), (2, 'two')").format(table))
        yield f"{schema}.items"
        await conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


async def get(session: aiohttp.ClientSession, tap: Tap, **query: str) -> aiohttp.ClientResponse:
    response = await session.get(tap.url.with_path("/v1/shape").with_query(query))
    await response.read()
    return response


async def test_the_tap_records_requests_and_swaps_the_tests_secret_for_the_real_one(
    tap: Tap, upstream: tuple[str, ElectricState], items: str
) -> None:
    async with aiohttp.ClientSession() as session:
        ok = await get(session, tap, table=items, offset="-1", secret=TEST_SECRET)
        refused = await get(session, tap, table=items, offset="-1", secret="wrong")

    assert (ok.status, refused.status) == (200, 401)
    assert [r.param("secret") for r in tap.state.requests] == [TEST_SECRET, "wrong"]
    assert [r.param("secret") for r in upstream[1].requests] == [REAL_SECRET, "wrong"]
    assert ok.headers["electric-server"] == "ElectricSQL/1.7.12"  # passed through untouched


async def test_the_tap_counts_held_polls_and_passes_a_hang_up_upstream(
    tap: Tap, upstream: tuple[str, ElectricState], items: str
) -> None:
    async with aiohttp.ClientSession() as session:
        first = await get(session, tap, table=items, offset="-1", secret=TEST_SECRET)
        handle = first.headers["electric-handle"]
        head = await get(session, tap, table=items, offset="0_0", handle=handle, secret=TEST_SECRET)
        live = {"table": items, "offset": head.headers["electric-offset"], "handle": handle,
                "live": "true", "secret": TEST_SECRET}  # fmt: skip
        poll = asyncio.ensure_future(  # noqa: TID251 - a client request, cancelled below
            session.get(tap.url.with_path("/v1/shape").with_query(live))
        )
        await tap.state.wait_for(lambda s: s.held_requests == 1)
        await upstream[1].wait_for(lambda s: s.held_requests == 1)
        poll.cancel()
        await tap.state.wait_for(lambda s: s.cancelled_requests == 1)
        await upstream[1].wait_for(lambda s: s.cancelled_requests == 1)

    assert tap.state.stats.held_requests == 0


async def test_the_tap_rotates_a_shape_by_deleting_it_in_electric(tap: Tap, items: str) -> None:
    async with aiohttp.ClientSession() as session:
        first = await get(session, tap, table=items, offset="-1", secret=TEST_SECRET)
        old = first.headers["electric-handle"]
        [rotation] = await tap.state.rotate(handle=old)
        stale = await get(session, tap, table=items, offset="0_0", handle=old, secret=TEST_SECRET)
        control = await session.post(tap.url.with_path("/_control/rotate"), json={"table": items})
        rotated = await control.json()
        faults = await session.post(tap.url.with_path("/_control/faults"), json={"kind": "abort"})
        stats = await (await session.get(tap.url.with_path("/_control/stats"))).json()

    assert rotation.old_handle == old
    assert rotation.new_handle not in ("", old)
    assert (stale.status, stale.headers["electric-handle"]) == (409, rotation.new_handle)
    assert [r["old_handle"] for r in rotated["rotated"]] == [rotation.new_handle]
    assert faults.status == 501  # no real Electric can be told to fail
    assert stats["active_requests"] == 0


async def test_find_real_electric_reads_the_environment_and_the_servers_version(
    upstream: tuple[str, ElectricState], database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ELECTRIC_TEST_URL", upstream[0])
    monkeypatch.setenv("ELECTRIC_TEST_SECRET", REAL_SECRET)
    monkeypatch.delenv("ELECTRIC_TEST_DATABASE_URL", raising=False)
    find_real_electric.cache_clear()
    try:
        with pytest.raises(RealElectricError, match="ELECTRIC_TEST_DATABASE_URL"):
            await asyncio.to_thread(find_real_electric)
        monkeypatch.setenv("ELECTRIC_TEST_DATABASE_URL", database_url)
        find_real_electric.cache_clear()
        real = await asyncio.to_thread(find_real_electric)
    finally:
        find_real_electric.cache_clear()

    assert real is not None
    assert (real.url, real.secret, real.database_url) == (upstream[0], REAL_SECRET, database_url)
    assert real.version == (1, 7, 12)


def test_a_test_needing_a_newer_feature_is_told_which_version_brought_it() -> None:
    assert parse_banner("ElectricSQL/1.0.10") == (1, 0, 10)
    assert parse_banner("nginx") is None
    assert missing_feature("sse", (1, 0, 10)) == (
        "needs Electric's sse (since 1.2.0); this server is 1.0.10"
    )
    assert missing_feature("sse", (1, 7, 12)) is None
    with pytest.raises(ValueError, match="unknown Electric feature"):
        missing_feature("time_travel", (9, 9, 9))


def test_without_an_engine_or_a_url_the_tests_use_the_imitation(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("ELECTRIC_TEST_URL", raising=False)
    monkeypatch.setenv("ELECTRIC_TEST_DOCKER", "0")
    find_real_electric.cache_clear()
    try:
        assert find_real_electric() is None
    finally:
        find_real_electric.cache_clear()
