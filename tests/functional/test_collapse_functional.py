"""Collapsing (GATEWAY_COLLAPSE, gateway/upstream/exchange.py), judged by what the Electric
imitation received and what each client got: identical rewritten requests share one upstream
request; requests that differ in anything that reaches Electric never do; what is per client
(revocation, expiry, leaving, reading slowly, the audit line) stays per client."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Coroutine, MutableMapping
from typing import Any, TypeVar

import pytest
from structlog.testing import capture_logs

from electric_imitation import Fault, RecordedRequest
from gateway.web.keys import EXCHANGES
from tests.factories import make_token
from tests.functional.conftest import ELECTRIC_SECRET, Electric, ElectricFactory, World
from tests.functional.test_revocation_functional import revoke
from tests.functional.test_shape_functional import fetch, gateway_for, rows_of, sync_to_live
from tests.functional.test_slow_readers import closed_by_server, metric, stalled_client
from tests.gateway import Gateway, GatewayFactory

pytestmark = [pytest.mark.postgres]
T = TypeVar("T")
CLIENTS = 30


def manager(i: int, tenant: str = "acme", **claims: Any) -> str:
    """Managers see their tenant's tasks (no user filter): one rewritten request for them all."""
    return make_token(sub=f"u{i}", tid=tenant, role="manager", **claims)


def waiting(gateway: Gateway) -> int:
    """Clients waiting in the exchanges under way."""
    return sum(len(e.members) for e in gateway.app[EXCHANGES].open.values())


async def until(condition: Callable[[], bool], within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition never held"
        await asyncio.sleep(0.01)


def live_requests(electric: Electric, since: int = 0) -> list[RecordedRequest]:
    return [r for r in electric.state.requests[since:] if r.param("live") == "true"]


def shape_lines(logs: list[MutableMapping[str, Any]]) -> list[MutableMapping[str, Any]]:
    return [e for e in logs if e["event"] == "shape_request" and e["path"] == "/v1/shape"]


def start(coroutine: Coroutine[Any, Any, T]) -> asyncio.Future[T]:
    return asyncio.ensure_future(coroutine)  # noqa: TID251 - a test's clients


async def test_thirty_held_long_polls_on_one_shape_cost_one_upstream_request_per_change(
    gateway_factory: GatewayFactory, world: World, electric_factory: ElectricFactory
) -> None:
    electric = await electric_factory(long_poll_timeout=20.0)
    gateway = await gateway_for(gateway_factory, world, electric)
    tokens = [manager(i) for i in range(CLIENTS)]
    handle, offset, cursor = await sync_to_live(gateway, tokens[0])
    since = len(electric.state.requests)
    with capture_logs() as logs:
        for row in (20, 21):  # two changes, each one upstream request for all thirty
            query = {"table": "tasks", "offset": offset, "handle": handle, "live": "true",
                     "cursor": cursor}  # fmt: skip
            polls = [start(fetch(gateway, query, token)) for token in tokens]
            await until(lambda: waiting(gateway) == CLIENTS)
            await electric.state.wait_for(lambda s: s.held_requests == 1)
            world.execute(
                "INSERT INTO {schema}.tasks VALUES (%s, 'acme', 1, 'new', 'open', 'bob')", (row,)
            )
            answers = await asyncio.wait_for(asyncio.gather(*polls), timeout=5)
            assert {status for status, _, _ in answers} == {200}
            assert all([r["id"] for r in rows_of(body)] == [str(row)] for _, _, body in answers)
            _, headers, _ = answers[0]
            offset, cursor = headers["electric-offset"], headers["electric-cursor"]
            assert all(h["Cache-Control"] == headers["Cache-Control"] for _, h, _ in answers)
            assert "Authorization" in headers["Vary"]
            assert len({h["X-Request-ID"] for _, h, _ in answers}) == CLIENTS  # each its own
    assert len(live_requests(electric, since)) == 2
    lines = shape_lines(logs)
    assert len(lines) == 2 * CLIENTS  # one audit line per client request
    assert sorted(e["joined"] for e in lines) == [False] * 2 + [True] * (2 * CLIENTS - 2)
    assert {(e["decision"], e["reason"], e["status"]) for e in lines} == {("allowed", "ok", 200)}
    assert len({e["user"] for e in lines}) == CLIENTS
    assert await metric(gateway, "shape_gateway_upstream_joins_total") == 2 * CLIENTS - 2


async def test_thirty_clients_opening_a_shape_at_once_cost_one_snapshot(
    gateway_factory: GatewayFactory, world: World, electric: Electric
) -> None:
    gateway = await gateway_for(gateway_factory, world, electric)
    snapshot = {"table": "tasks", "offset": "-1"}
    answers = await asyncio.gather(*(fetch(gateway, snapshot, manager(i)) for i in range(CLIENTS)))
    assert {status for status, _, _ in answers} == {200}
    assert all(sorted(r["id"] for r in rows_of(body)) == ["1", "2", "3"] for _, _, body in answers)
    assert len({h["electric-handle"] for _, h, _ in answers}) == 1
    assert [r.param("offset") for r in electric.state.requests] == ["-1"]
    assert await metric(gateway, "shape_gateway_upstream_client_requests_total") == CLIENTS
    assert await metric(gateway, "shape_gateway_upstream_requests_total") == 1


async def test_with_collapse_off_every_client_sends_its_own_request(
    gateway_factory: GatewayFactory, world: World, electric: Electric
) -> None:
    gateway = await gateway_for(gateway_factory, world, electric, collapse=False)
    snapshot = {"table": "tasks", "offset": "-1"}
    with capture_logs() as logs:
        answers = await asyncio.gather(*(fetch(gateway, snapshot, manager(i)) for i in range(10)))
    assert {status for status, _, _ in answers} == {200}
    assert [r.param("offset") for r in electric.state.requests] == ["-1"] * 10
    assert [e["joined"] for e in shape_lines(logs)] == [False] * 10


async def test_requests_differing_in_tenant_user_claim_columns_or_upstream_are_never_joined(
    gateway_factory: GatewayFactory, world: World, electric_factory: ElectricFactory
) -> None:
    first, second = await electric_factory(), await electric_factory()
    rules = (
        world.rules
        + f"""\
  by_status:
    table: {world.schema}.tasks
    where: "tenant_id = :tenant AND status = :claims.status"
    allow: {{manager: {{}}}}
upstreams:
  default: {{url: "${{FIRST_URL}}", secret: "${{ELECTRIC_SECRET}}"}}
  eu: {{url: "${{SECOND_URL}}", secret: "${{ELECTRIC_SECRET}}"}}
routing:
  claim: region
"""
    )
    env = {"FIRST_URL": str(first.url), "SECOND_URL": str(second.url),
           "ELECTRIC_SECRET": ELECTRIC_SECRET}  # fmt: skip
    gateway = await gateway_factory(
        upstream=str(first.url), rules=rules, env=env, electric_secret=ELECTRIC_SECRET
    )
    tasks = {"table": "tasks", "offset": "-1"}
    narrow = {**tasks, "columns": "id,title"}
    by_status = {"table": "by_status", "offset": "-1"}
    cases: dict[str, tuple[dict[str, str], str, list[str]]] = {
        "acme": (tasks, manager(1), ["1", "2", "3"]),
        "acme again": (tasks, manager(2), ["1", "2", "3"]),  # the control: this one joins
        "globex": (tasks, manager(3, "globex"), ["4", "5"]),
        "alice": (tasks, make_token(sub="alice", tid="acme", role="member"), ["1", "3"]),
        "bob": (tasks, make_token(sub="bob", tid="acme", role="member"), ["2"]),
        "columns": (narrow, manager(4), ["1", "2", "3"]),
        "open": (by_status, manager(5, status="open"), ["1", "3"]),
        "done": (by_status, manager(6, status="done"), ["2"]),
        "eu": (tasks, manager(7, region="eu"), ["1", "2", "3"]),
    }
    with capture_logs() as logs:
        answers = await asyncio.gather(*(fetch(gateway, q, t) for q, t, _ in cases.values()))
    for (name, (_, _, expected)), (status, _, body) in zip(cases.items(), answers, strict=True):
        assert status == 200, name
        assert sorted(r["id"] for r in rows_of(body)) == expected, name
    _, _, narrowed = answers[list(cases).index("columns")]
    assert all(set(row) == {"id", "title"} for row in rows_of(narrowed))
    assert len(first.state.requests) == len(cases) - 2  # all but the control and eu's
    assert len(second.state.requests) == 1
    assert sum(e["joined"] for e in shape_lines(logs)) == 1


async def hold_polls(
    gateway: Gateway, electric: Electric, tokens: list[str]
) -> tuple[dict[str, str], list[asyncio.Future[Any]]]:
    """`tokens` holding one live long-poll on the managers' shape, all in one exchange."""
    handle, offset, cursor = await sync_to_live(gateway, tokens[0])
    query = {"table": "tasks", "offset": offset, "handle": handle, "live": "true",
             "cursor": cursor}  # fmt: skip
    polls = [start(fetch(gateway, query, token)) for token in tokens]
    await until(lambda: waiting(gateway) == len(tokens))
    await electric.state.wait_for(lambda s: s.held_requests == 1)
    return query, polls


async def test_a_revoked_joiner_is_cut_alone_and_the_others_are_answered(
    gateway_factory: GatewayFactory, world: World, electric_factory: ElectricFactory
) -> None:
    electric = await electric_factory(long_poll_timeout=20.0)
    gateway = await gateway_for(gateway_factory, world, electric)
    _, polls = await hold_polls(gateway, electric, [manager(i) for i in range(10)])
    await revoke(gateway, type="membership.revoked", user="u3", tenant="acme")
    status, _, body = await asyncio.wait_for(polls[3], timeout=2)
    assert (status, body["error"]) == (403, "access_revoked")
    assert waiting(gateway) == 9
    assert electric.state.stats.held_requests == 1  # the others' upstream request goes on
    world.execute("INSERT INTO {schema}.tasks VALUES (30, 'acme', 1, 'x', 'open', 'bob')")
    answers = await asyncio.wait_for(asyncio.gather(*polls[:3], *polls[4:]), timeout=5)
    assert all(s == 200 and [r["id"] for r in rows_of(b)] == ["30"] for s, _, b in answers)
    assert len(live_requests(electric)) == 1


async def test_an_expired_joiner_is_cut_alone_and_the_others_are_answered(
    gateway_factory: GatewayFactory, world: World, electric_factory: ElectricFactory
) -> None:
    electric = await electric_factory(long_poll_timeout=20.0)
    gateway = await gateway_for(gateway_factory, world, electric, jwt_leeway=1)
    short = manager(99, exp=int(time.time()) + 2)
    _, polls = await hold_polls(gateway, electric, [manager(i) for i in range(5)] + [short])
    status, _, body = await asyncio.wait_for(polls[-1], timeout=6)
    assert (status, body["error"]) == (401, "token_expired")
    assert waiting(gateway) == 5
    assert electric.state.stats.held_requests == 1
    world.execute("INSERT INTO {schema}.tasks VALUES (31, 'acme', 1, 'x', 'open', 'bob')")
    answers = await asyncio.wait_for(asyncio.gather(*polls[:-1]), timeout=5)
    assert all(s == 200 and [r["id"] for r in rows_of(b)] == ["31"] for s, _, b in answers)
    assert len(live_requests(electric)) == 1


async def test_the_upstream_request_is_cancelled_when_its_last_client_leaves(
    gateway_factory: GatewayFactory, world: World, electric_factory: ElectricFactory
) -> None:
    electric = await electric_factory(long_poll_timeout=20.0)
    gateway = await gateway_for(gateway_factory, world, electric)
    _, polls = await hold_polls(gateway, electric, [manager(i) for i in range(5)])
    for poll in polls[:-1]:
        poll.cancel()  # these clients give up: their connections close
    await until(lambda: waiting(gateway) == 1)
    await asyncio.sleep(0.2)
    assert electric.state.stats.held_requests == 1
    assert electric.state.stats.cancelled_requests == 0
    polls[-1].cancel()
    await electric.state.wait_for(lambda s: s.cancelled_requests == 1, within=1.0)
    assert electric.state.stats.held_requests == 0
    await asyncio.gather(*polls, return_exceptions=True)


async def test_a_slow_reader_is_dropped_past_its_buffer_and_never_stalls_the_others(
    gateway_factory: GatewayFactory, world: World, electric_factory: ElectricFactory
) -> None:
    electric = await electric_factory()
    world.execute(  # ~12 MB: far past the slow reader's buffer and every socket buffer
        "INSERT INTO {schema}.big SELECT g, repeat(md5(g::text), 64) "
        "FROM generate_series(1, 6000) g"
    )
    gateway = await gateway_for(gateway_factory, world, electric, write_timeout=30)
    gateway.app[EXCHANGES].client_buffer = 1024 * 1024
    admin = make_token(sub="root", tid="acme", role="admin")

    same = {"Accept": "*/*", "Accept-Encoding": "identity"}  # as the stalled client sends

    async def read_whole() -> int:
        query = {"table": "big", "offset": "-1"}
        async with gateway.shape(query, token=admin, headers=same) as response:
            assert response.status == 200
            return len(await response.read())

    electric.state.inject(Fault("delay", seconds=1.0))  # all four join before the answer
    with capture_logs() as logs:
        stalled = stalled_client(gateway, "Accept: */*\r\nAccept-Encoding: identity\r\n")
        try:
            started = time.monotonic()
            readers = [start(read_whole()) for _ in range(3)]
            await until(lambda: waiting(gateway) == 4)
            sizes = await asyncio.wait_for(asyncio.gather(*readers), timeout=10)
            took = time.monotonic() - started
            assert await closed_by_server(stalled, 5)
        finally:
            with contextlib.suppress(OSError):
                stalled.close()
    assert len(set(sizes)) == 1
    assert sizes[0] > 10_000_000
    assert took < 5  # not the write timeout's 30 s: the slow reader held nobody
    assert len(electric.state.requests) == 1
    assert await metric(gateway, "shape_gateway_slow_reader_drops_total") == 1
    reasons = sorted((e["reason"], e["status"]) for e in shape_lines(logs))
    assert reasons == [("ok", 200)] * 3 + [("slow_reader", 499)]


@pytest.mark.electric_feature("sse")
async def test_sse_clients_at_the_same_offset_share_one_upstream_stream(
    gateway_factory: GatewayFactory, world: World, electric_factory: ElectricFactory
) -> None:
    electric = await electric_factory(sse_timeout=30.0, sse_keepalive=10.0)
    gateway = await gateway_for(gateway_factory, world, electric)
    handle, offset, cursor = await sync_to_live(gateway, manager(0))
    query = {"table": "tasks", "offset": offset, "handle": handle, "live": "true",
             "live_sse": "true", "cursor": cursor}  # fmt: skip
    behind = {**query, "offset": "0_0"}  # another offset: its own stream
    headers = {"Accept": "text/event-stream"}

    async def first_event_with(row: str, q: dict[str, str], token: str) -> int:
        async with gateway.shape(q, token=token, headers=headers) as response:
            assert response.status == 200
            while True:
                line = (await response.content.readline()).decode()
                if line.startswith("data:") and f'"{row}"' in line:
                    return int(response.status)

    since = len(electric.state.requests)
    readers = [start(first_event_with("40", query, manager(i))) for i in range(5)]
    readers.append(start(first_event_with("40", behind, manager(9))))
    await until(lambda: waiting(gateway) == 6)
    await electric.state.wait_for(lambda s: s.held_requests == 2)
    world.execute("INSERT INTO {schema}.tasks VALUES (40, 'acme', 1, 'sse', 'open', 'bob')")
    assert await asyncio.wait_for(asyncio.gather(*readers), timeout=5) == [200] * 6
    streams = [r for r in electric.state.requests[since:] if r.param("live_sse") == "true"]
    assert sorted(str(r.param("offset")) for r in streams) == sorted(["0_0", offset])


async def test_a_snapshot_just_answered_is_replayed_but_a_live_answer_never_is(
    gateway_factory: GatewayFactory, world: World, electric_factory: ElectricFactory
) -> None:
    electric = await electric_factory(long_poll_timeout=20.0)
    gateway = await gateway_for(gateway_factory, world, electric)
    snapshot = {"table": "tasks", "offset": "-1"}
    with capture_logs() as logs:
        first = await fetch(gateway, snapshot, manager(0))
        again = await fetch(gateway, snapshot, manager(1))  # within LINGER_SECONDS
    assert first[2] == again[2]
    assert first[1]["electric-handle"] == again[1]["electric-handle"]
    assert [e["joined"] for e in shape_lines(logs)] == [False, True]
    assert len(electric.state.requests) == 1

    query, polls = await hold_polls(gateway, electric, [manager(0)])
    world.execute("INSERT INTO {schema}.tasks VALUES (50, 'acme', 1, 'x', 'open', 'bob')")
    assert (await asyncio.wait_for(polls[0], timeout=5))[0] == 200
    since = len(electric.state.requests)
    # The same URL after its answer: asked anew (Electric answers at once: the change is
    # after that offset), never served the answer that has ended.
    status, _, body = await asyncio.wait_for(fetch(gateway, query, manager(1)), timeout=5)
    assert (status, [r["id"] for r in rows_of(body)]) == (200, ["50"])
    assert len(live_requests(electric, since)) == 1


@pytest.mark.electric_feature("subsets")
async def test_subset_posts_share_an_upstream_request_only_with_an_identical_body(
    gateway_factory: GatewayFactory, world: World, electric: Electric
) -> None:
    gateway = await gateway_for(gateway_factory, world, electric)
    query = {"table": "tasks", "offset": "-1"}
    open_ = {"where": "status = $1", "params": {"1": "open"}, "order_by": "id", "limit": 10}
    done = {**open_, "params": {"1": "done"}}
    electric.state.inject(Fault("delay", count=2, seconds=0.5))  # all in flight together

    async def post(body: dict[str, Any], i: int) -> list[str]:
        async with gateway.request("POST", params=query, json=body, token=manager(i)) as answer:
            assert answer.status == 200, await answer.text()
            return sorted(m["value"]["id"] for m in (await answer.json())["data"])

    got = await asyncio.gather(*(post(open_, i) for i in range(5)), post(done, 9))
    assert got == [["1", "3"]] * 5 + [["2"]]
    posts = [r for r in electric.state.requests if r.method == "POST"]
    assert len(posts) == 2  # the five identical bodies shared one; the other body its own
