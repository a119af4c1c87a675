"""deploy/nginx/electric-cache.conf: a real nginx running the shipped cache tier between two real
gateway replicas and Electric collapses what their clients ask alike (one snapshot for a herd,
one upstream request per change for held long-polls), never shares an entry between requests
that differ in a bound value, refuses every request without Electric's secret (also for a URL
it holds) and keeps the secret out of its cache files and logs."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp
import pytest
from yarl import URL

from electric_imitation.recorder import RecordedRequest
from tests.deploy.cache_tier import CacheTier, CacheTierFactory, cache_tier_factory, nginx_t
from tests.deploy.cache_tier import rendered as rendered_config
from tests.factories import make_token
from tests.functional.conftest import ELECTRIC_SECRET, Electric, ElectricFactory, World
from tests.gateway import Gateway, GatewayFactory

__all__ = ["cache_tier_factory"]  # the fixture, for the tests below

CLIENTS = 24  # over two replicas
MANAGERS = [make_token(sub=f"manager-{n}", tid="acme", role="manager") for n in range(CLIENTS)]
ACME_IDS = {"1", "2", "3"}


def test_shipped_cache_tier_passes_nginx_t_once_rendered() -> None:
    result = nginx_t(rendered_config("127.0.0.1:3000", ELECTRIC_SECRET))
    assert result.returncode == 0, result.stderr


def test_unrendered_cache_tier_fails_nginx_t() -> None:
    """Started as shipped, without its secret, it would not run as an open Electric."""
    config = rendered_config("127.0.0.1:3000", ELECTRIC_SECRET).replace(
        ELECTRIC_SECRET, "${ELECTRIC_SECRET}"
    )
    result = nginx_t(config)
    assert result.returncode != 0
    assert "electric_secret" in result.stderr


def shape_requests(electric: Electric, **wanted: str | None) -> list[RecordedRequest]:
    """Electric's GET /v1/shape requests with the `wanted` values (None: absent)."""
    return [
        request
        for request in electric.state.requests
        if request.method == "GET"
        and request.path == "/v1/shape"
        and all(request.param(name) == value for name, value in wanted.items())
    ]


async def tier_and_replicas(
    cache_tier_factory: CacheTierFactory, gateway_factory: GatewayFactory, world: World,
    electric: Electric, replicas: int = 2,
) -> tuple[CacheTier, list[Gateway]]:  # fmt: skip
    tier = await cache_tier_factory(electric.url, ELECTRIC_SECRET)
    gateways = [
        await gateway_factory(
            upstream=str(tier.url), rules=world.rules, electric_secret=ELECTRIC_SECRET
        )
        for _ in range(replicas)
    ]
    return tier, gateways


async def get(gateway: Gateway, query: dict[str, str], token: str) -> tuple[int, Any, Any]:
    async with gateway.shape(query, token=token) as response:
        body = await response.json()
        return response.status, response.headers, body


def ids(body: list[dict[str, Any]]) -> set[str]:
    return {message["value"]["id"] for message in body if "key" in message}


@pytest.mark.postgres
@pytest.mark.imitation_only("counts the requests Electric receives")
async def test_clients_on_two_replicas_cost_electric_one_snapshot_and_one_request_per_change(
    cache_tier_factory: CacheTierFactory, gateway_factory: GatewayFactory, world: World,
    electric_factory: ElectricFactory,
) -> None:  # fmt: skip
    electric = await electric_factory(long_poll_timeout=20.0)
    _, gateways = await tier_and_replicas(cache_tier_factory, gateway_factory, world, electric)
    via = [gateways[n % 2] for n in range(CLIENTS)]

    # A herd: every client opens the shape at once.
    snapshot = {"table": "tasks", "offset": "-1"}
    answers = await asyncio.gather(*(get(via[n], snapshot, MANAGERS[n]) for n in range(CLIENTS)))
    assert {status for status, _, _ in answers} == {200}
    assert all(ids(body) == ACME_IDS for _, _, body in answers)
    assert len(shape_requests(electric, offset="-1")) == 1

    # The catch-up, as the client does next: the same request again for everyone.
    handle, offset = answers[0][1]["electric-handle"], answers[0][1]["electric-offset"]
    catch_up = {"table": "tasks", "offset": offset, "handle": handle}
    answers = await asyncio.gather(*(get(via[n], catch_up, MANAGERS[n]) for n in range(CLIENTS)))
    assert {status for status, _, _ in answers} == {200}
    assert len(shape_requests(electric, offset=offset, live=None)) == 1
    offset = answers[0][1]["electric-offset"]

    # Held long-polls: one reaches Electric, the others wait on the tier's lock for its answer.
    live = {**catch_up, "offset": offset, "live": "true", "cursor": "0"}
    polls = [
        asyncio.ensure_future(get(via[n], live, MANAGERS[n]))  # noqa: TID251 - awaited below
        for n in range(CLIENTS)
    ]
    await electric.state.wait_for(lambda s: s.held_requests == 1)
    await asyncio.sleep(1.0)  # every poll is at the tier by now; still one held by Electric
    assert electric.state.stats.held_requests == 1
    assert not any(poll.done() for poll in polls)
    inserted = time.monotonic()
    world.execute("INSERT INTO {schema}.tasks VALUES (12, 'acme', 1, 'tier', 'open', 'bob')")
    async with asyncio.timeout(5):
        answers = await asyncio.gather(*polls)
    last = time.monotonic() - inserted
    assert {status for status, _, _ in answers} == {200}
    assert all(ids(body) == {"12"} for _, _, body in answers)
    assert len(shape_requests(electric, live="true")) == 1
    assert last < 2.0  # the waiters look for the answer every 0.5 s


@pytest.mark.postgres
@pytest.mark.imitation_only("counts the requests Electric receives")
async def test_requests_that_differ_in_a_bound_value_never_share_an_entry(
    cache_tier_factory: CacheTierFactory, gateway_factory: GatewayFactory, world: World,
    electric: Electric,
) -> None:  # fmt: skip
    _, (gateway,) = await tier_and_replicas(
        cache_tier_factory, gateway_factory, world, electric, replicas=1
    )
    snapshot = {"table": "tasks", "offset": "-1"}
    tokens = {
        "acme manager": MANAGERS[0],
        "acme manager again": MANAGERS[1],  # another user, the same rewritten request
        "globex manager": make_token(sub="manager-0", tid="globex", role="manager"),
        "acme member alice": make_token(sub="alice", tid="acme", role="member"),
        "acme member bob": make_token(sub="bob", tid="acme", role="member"),
    }
    seen = {}
    for name, token in tokens.items():
        status, _, body = await get(gateway, snapshot, token)
        assert status == 200, (name, body)
        seen[name] = ids(body)
    assert seen == {
        "acme manager": ACME_IDS,
        "acme manager again": ACME_IDS,
        "globex manager": {"4", "5"},
        "acme member alice": {"1", "3"},
        "acme member bob": {"2"},
    }
    assert len(shape_requests(electric, offset="-1")) == 4  # the second acme manager's was cached


@pytest.mark.postgres
@pytest.mark.imitation_only("counts the requests Electric receives")
async def test_the_tier_refuses_a_request_without_electrics_secret_even_for_a_url_it_holds(
    cache_tier_factory: CacheTierFactory, gateway_factory: GatewayFactory, world: World,
    electric: Electric,
) -> None:  # fmt: skip
    tier, (gateway,) = await tier_and_replicas(
        cache_tier_factory, gateway_factory, world, electric, replicas=1
    )
    status, _, _ = await get(gateway, {"table": "tasks", "offset": "-1"}, MANAGERS[0])
    assert status == 200
    (sent,) = shape_requests(electric, offset="-1")
    # The query as the gateway encoded it: the key is the URL as sent.
    pairs = sent.query_string.split("&")
    without = [pair for pair in pairs if not pair.startswith("secret=")]
    assert len(without) == len(pairs) - 1
    wrong = f"secret=not-{ELECTRIC_SECRET}"
    async with aiohttp.ClientSession() as session:

        async def status_of(query: list[str]) -> int:
            url = URL(f"{tier.url}/v1/shape?{'&'.join(query)}", encoded=True)
            async with session.get(url) as response:
                await response.read()
                return response.status

        assert await status_of(pairs) == 200  # the gateways' request: from the cache
        assert await status_of(without) == 401
        assert await status_of([*without, "secret="]) == 401
        assert await status_of([*without, wrong]) == 401
        assert await status_of([wrong, *without]) == 401
        async with session.get(tier.url.with_path("/v1/health")) as response:
            assert response.status == 200  # the gateways' probe needs no secret
        async with session.get(tier.url.with_path("/v1/other")) as response:
            assert response.status == 404
    assert len(shape_requests(electric)) == 1  # nothing refused reached Electric
    files = tier.cache_files()
    assert files
    for path in files:
        assert b"\nKEY: /v1/shape?" in path.read_bytes()
        assert ELECTRIC_SECRET.encode() not in path.read_bytes()
    log = tier.access_log.read_text()
    assert " 401 " in log
    assert ELECTRIC_SECRET not in log
    assert "acme" not in log  # no bound values: no query strings


@pytest.mark.postgres
@pytest.mark.imitation_only("counts the requests Electric receives")
async def test_a_gateway_with_the_wrong_secret_is_told_it_is_misconfigured(
    cache_tier_factory: CacheTierFactory, gateway_factory: GatewayFactory, world: World,
    electric: Electric,
) -> None:  # fmt: skip
    tier = await cache_tier_factory(electric.url, ELECTRIC_SECRET)
    gateway = await gateway_factory(
        upstream=str(tier.url), rules=world.rules, electric_secret="not-" + ELECTRIC_SECRET
    )
    status, _, body = await get(gateway, {"table": "tasks", "offset": "-1"}, MANAGERS[0])
    assert (status, body["error"]) == (502, "upstream_misconfigured")
    assert shape_requests(electric) == []


@pytest.mark.postgres
async def test_a_tier_rendered_with_an_empty_secret_refuses_every_shape_request(
    cache_tier_factory: CacheTierFactory, electric: Electric,
) -> None:  # fmt: skip
    tier = await cache_tier_factory(electric.url, "")
    url = tier.url.with_path("/v1/shape")
    async with aiohttp.ClientSession() as session:
        for query in ({"table": "tasks", "offset": "-1"}, {"table": "tasks", "offset": "-1",
                                                            "secret": ""}):  # fmt: skip
            async with session.get(url.with_query(query)) as response:
                assert response.status == 401


@pytest.mark.postgres
@pytest.mark.electric_feature("sse")
@pytest.mark.imitation_only("counts the streams Electric holds")
async def test_sse_streams_pass_the_tier_unbuffered_and_each_has_its_own(
    cache_tier_factory: CacheTierFactory, gateway_factory: GatewayFactory, world: World,
    electric_factory: ElectricFactory,
) -> None:  # fmt: skip
    electric = await electric_factory(sse_timeout=30.0, sse_keepalive=20.0)
    _, gateways = await tier_and_replicas(cache_tier_factory, gateway_factory, world, electric)
    status, headers, _ = await get(gateways[0], {"table": "tasks", "offset": "-1"}, MANAGERS[0])
    assert status == 200
    query = {"table": "tasks", "handle": headers["electric-handle"],
             "offset": headers["electric-offset"], "live": "true", "live_sse": "true"}  # fmt: skip
    sse = {"Accept": "text/event-stream"}

    async def first_event(gateway: Gateway, token: str) -> dict[str, Any]:
        async with gateway.shape(query, token=token, headers=sse) as response:
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/event-stream")
            while not (line := (await response.content.readline()).decode()).startswith("data:"):
                pass
            event: dict[str, Any] = json.loads(line.removeprefix("data:"))
            return event

    async with asyncio.timeout(8):
        streams = [
            asyncio.ensure_future(first_event(gateways[n], MANAGERS[n]))  # noqa: TID251
            for n in range(2)
        ]
        await electric.state.wait_for(lambda s: s.held_requests == 2)
        world.execute("INSERT INTO {schema}.tasks VALUES (13, 'acme', 1, 'sse', 'open', 'bob')")
        events = await asyncio.gather(*streams)
    # Electric ends a stream after 30 s and sends nothing else for 20 s: within 8 s, only an
    # unbuffered tier delivers the event while Electric still holds the stream.
    assert [event["value"]["title"] for event in events] == ["sse", "sse"]
