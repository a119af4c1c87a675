"""Limits shared by replicas through real Redis: budgets, refill, tenant isolation, live caps
that hold across replicas and come back after a killed replica's lease."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from pathlib import Path

import aiohttp
import pytest

from tests.factories import make_token
from tests.functional.conftest import Electric, ElectricFactory, World, serve_process
from tests.functional.test_collapse_functional import until, waiting
from tests.functional.test_revocation_functional import ready, replica, status_of
from tests.functional.test_shape_functional import fetch, sync_to_live
from tests.gateway import Gateway, GatewayFactory

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


def limited(world: World, **plan: int) -> World:
    """The world with a `limits` section (the default plan) appended to its rules."""
    body = ", ".join(f"{k}: {v}" for k, v in plan.items())

    class Limited(World):
        @property
        def rules(self) -> str:
            return super().rules + f"limits:\n  default: {{{body}}}\n"

    return Limited(world.schema, world.database_url)


async def test_a_users_budget_is_shared_across_replicas_and_refills(
    gateway_factory: GatewayFactory, world: World, electric: Electric, redis_url: str,
    redis_prefix: str,
) -> None:  # fmt: skip
    rules = limited(world, requests_per_minute=30, tenant_requests_per_minute=1000)
    a = await replica(gateway_factory, rules, electric, redis_url, redis_prefix)
    b = await replica(gateway_factory, rules, electric, redis_url, redis_prefix)
    token = make_token(sub="alice", tid="acme", role="member")
    statuses = [(await status_of(a if n % 2 else b, token))[0] for n in range(30)]
    assert statuses == [200] * 30
    async with a.shape({"table": "tasks", "offset": "-1"}, token=token) as response:
        assert response.status == 429
        assert (await response.json())["error"] == "rate_limited"
        retry_after = int(response.headers["Retry-After"])
    assert 1 <= retry_after <= 2
    assert (await status_of(b, token))[0] == 429
    assert (await status_of(b, make_token(sub="bob", tid="acme", role="member")))[0] == 200
    await asyncio.sleep(retry_after + 0.1)
    assert (await status_of(b, token))[0] == 200


async def test_one_tenant_hammering_is_limited_while_another_tenant_passes(
    gateway_factory: GatewayFactory, world: World, electric: Electric, redis_url: str,
    redis_prefix: str,
) -> None:  # fmt: skip
    rules = limited(world, requests_per_minute=1000, tenant_requests_per_minute=20)
    a = await replica(gateway_factory, rules, electric, redis_url, redis_prefix)
    b = await replica(gateway_factory, rules, electric, redis_url, redis_prefix)
    acme = [make_token(sub=f"u{n}", tid="acme", role="admin") for n in range(40)]
    globex = make_token(sub="g", tid="globex", role="admin")
    acme_statuses, globex_statuses = [], []
    for n, token in enumerate(acme):
        acme_statuses.append((await status_of(a if n % 2 else b, token))[0])
        if n % 4 == 0:
            globex_statuses.append((await status_of(b, globex))[0])
    assert acme_statuses.count(200) == 20
    assert acme_statuses.count(429) == 20
    assert set(globex_statuses) == {200}


async def test_live_connection_cap_holds_across_replicas(
    gateway_factory: GatewayFactory, world: World, electric_factory: ElectricFactory,
    redis_url: str, redis_prefix: str,
) -> None:  # fmt: skip
    electric = await electric_factory(long_poll_timeout=20.0)
    rules = limited(world, live_connections_per_user=2)
    a = await replica(gateway_factory, rules, electric, redis_url, redis_prefix)
    b = await replica(gateway_factory, rules, electric, redis_url, redis_prefix)
    alice = make_token(sub="alice", tid="acme", role="member")
    handle, offset, cursor = await sync_to_live(a, alice)
    live = {"table": "tasks", "offset": offset, "handle": handle, "live": "true", "cursor": cursor}
    async with asyncio.TaskGroup() as group:
        held = [group.create_task(fetch(a, live, alice)), group.create_task(fetch(b, live, alice))]
        await electric.state.wait_for(lambda s: s.held_requests == 2)
        status, headers, body = await fetch(a, live, alice)
        assert (status, body["error"]) == (429, "too_many_live_connections")
        assert headers["Retry-After"] == "5"
        assert (await status_of(a, alice))[0] == 200  # non-live requests take no slot
        held[0].cancel()
        await electric.state.wait_for(lambda s: s.held_requests == 1)
        third = group.create_task(fetch(b, live, alice))
        # Held (not refused): it joins b's identical upstream request, so Electric holds one.
        await until(lambda: waiting(b) == 2)
        assert electric.state.stats.held_requests == 1
        third.cancel()
        held[1].cancel()


async def test_a_killed_replicas_live_slots_come_back_after_the_lease(
    gateway_factory: GatewayFactory, world: World, electric_factory: ElectricFactory,
    redis_url: str, redis_prefix: str, tmp_path: Path,
) -> None:  # fmt: skip
    electric = await electric_factory(long_poll_timeout=20.0)
    rules = limited(world, live_connections_per_user=1)
    path = tmp_path / "rules.yaml"
    path.write_text(rules.rules)
    process, url = await serve_process(world, electric, redis_url, redis_prefix, str(path))
    a = await replica(gateway_factory, rules, electric, redis_url, redis_prefix,
                      live_lease_seconds=3)  # fmt: skip
    doomed = Gateway(a.url.with_port(int(url.rsplit(":", 1)[1])), a.runner, a.rules_path, a.session)
    alice = make_token(sub="alice", tid="acme", role="member")
    handle, offset, cursor = await sync_to_live(a, alice)
    live = {"table": "tasks", "offset": offset, "handle": handle, "live": "true", "cursor": cursor}

    async def doomed_poll() -> None:
        with contextlib.suppress(aiohttp.ClientError):
            await fetch(doomed, live, alice)

    async with asyncio.TaskGroup() as group:
        group.create_task(doomed_poll())
        await electric.state.wait_for(lambda s: s.held_requests == 1)
        process.send_signal(signal.SIGKILL)  # no release, no cleanup: the lease is left behind
        await process.wait()
    status, _, _ = await fetch(a, {**live, "live": "true"}, alice)
    killed_at = time.monotonic()
    assert status == 429  # the dead replica's lease still counts...
    async with asyncio.TaskGroup() as group:
        while True:
            poll = group.create_task(fetch(a, live, alice))
            await asyncio.sleep(0.3)
            if not poll.done():
                break  # ...until it expires: now the poll is held
            assert time.monotonic() - killed_at < 5, "slot never came back"
        poll.cancel()


async def test_a_user_with_two_memberships_gets_the_live_cap_once(
    gateway_factory: GatewayFactory, world: World, redis_url: str, redis_prefix: str
) -> None:
    rules = limited(world, live_connections_per_user=1)
    gateway = await gateway_factory(
        rules=rules.rules, redis_url=redis_url, redis_prefix=redis_prefix
    )
    await ready(gateway)
    token = make_token(sub="alice", tid="acme", role="member",
                       tenants={"acme": "member", "globex": "member"})  # fmt: skip
    async with gateway.request("GET", "/v1/events", token=token) as feed:  # a slot, in acme
        assert feed.status == 200
        headers = {"X-Tenant-Id": "globex"}
        async with gateway.request("GET", "/v1/events", token=token, headers=headers) as other:
            assert other.status == 429
            assert (await other.json())["error"] == "too_many_live_connections"
